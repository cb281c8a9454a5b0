package handler

import (
	"maps"
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// memView is a small in-memory View for tests. Its indexes are computed from
// base_tables on each call unless related overrides them.
type memView struct {
	mvs map[mvstate.MVKey]*mvstate.MV
	// related, when set for a table, replaces the computed RelatedMVs answer
	// (to simulate an index that disagrees with base_tables).
	related map[int64][]mvstate.MVKey
}

func newView(mvs ...*mvstate.MV) *memView {
	v := &memView{mvs: make(map[mvstate.MVKey]*mvstate.MV)}
	for _, m := range mvs {
		v.mvs[m.Key()] = m
	}
	return v
}

func (v *memView) MV(k mvstate.MVKey) *mvstate.MV { return v.mvs[k] }

func (v *memView) RelatedMVs(t int64) []mvstate.MVKey {
	if ks, ok := v.related[t]; ok {
		return ks
	}
	return v.keys(func(m *mvstate.MV) bool { return m.HasNativeBase(t) })
}

func (v *memView) MVsWithExternal(ref mvstate.ExternalRef) []mvstate.MVKey {
	return v.keys(func(m *mvstate.MV) bool {
		for _, bt := range m.BaseTables {
			if !bt.IsNative() && bt.ExternalRef() == ref {
				return true
			}
		}
		return false
	})
}

func (v *memView) keys(match func(*mvstate.MV) bool) []mvstate.MVKey {
	var out []mvstate.MVKey
	for k, m := range v.mvs {
		if match(m) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, mvstate.MVKey.Compare)
	return out
}

// snapshot returns a deep copy of the state, to compare with later.
func (v *memView) snapshot() map[mvstate.MVKey]*mvstate.MV {
	out := make(map[mvstate.MVKey]*mvstate.MV, len(v.mvs))
	for k, m := range v.mvs {
		out[k] = m.Clone()
	}
	return out
}

// clone returns an independent view holding the same state.
func (v *memView) clone() *memView {
	return &memView{mvs: v.snapshot(), related: v.related}
}

func sameState(a, b map[mvstate.MVKey]*mvstate.MV) bool {
	if len(a) != len(b) {
		return false
	}
	for k, m := range a {
		if !m.Equal(b[k]) {
			return false
		}
	}
	return true
}

func assertUnchanged(t *testing.T, v *memView, before map[mvstate.MVKey]*mvstate.MV) {
	t.Helper()
	if !sameState(v.mvs, before) {
		t.Fatalf("the View was mutated:\n got %s\nwant %s", dump(v.mvs), dump(before))
	}
}

// apply applies records the way the brief says editlog.Apply does. It copies
// on write (whole MV) and never keeps a map of a record.
func (v *memView) apply(t fataler, recs ...*editlog.Record) {
	t.Helper()
	for _, r := range recs {
		k := r.MV.Key()
		switch r.Op {
		case editlog.OpUpserted:
			v.mvs[k] = r.Definition.Clone()
			continue
		case editlog.OpDropped:
			delete(v.mvs, k)
			continue
		}
		old := v.mvs[k]
		if old == nil {
			t.Fatalf("apply %d %s: unknown mv %s", r.JournalID, r.Op, k)
		}
		m := old.Clone()
		switch r.Op {
		case editlog.OpVersionRepaired:
			parts := m.VersionMap[r.BaseTable.TableID]
			if parts == nil {
				parts = mvstate.PartitionMap{}
				m.VersionMap[r.BaseTable.TableID] = parts
			}
			maps.Copy(parts, r.Partitions)
			m.LastRefreshTime = r.MVLastRefreshTime
		case editlog.OpBaseTableInfoRepaired:
			j := slices.Index(m.BaseTables, *r.OldBaseTable)
			if j < 0 {
				t.Fatalf("apply %d: mv %s has no base table %+v", r.JournalID, k, *r.OldBaseTable)
			}
			m.BaseTables[j] = *r.NewBaseTable
			delete(m.ExternalVersionMap, *r.OldBaseTable)
			m.ExternalVersionMap[*r.NewBaseTable] = maps.Clone(r.Partitions)
		case editlog.OpRefreshed:
			for tid, parts := range r.VersionMap {
				if m.VersionMap[tid] == nil {
					m.VersionMap[tid] = mvstate.PartitionMap{}
				}
				maps.Copy(m.VersionMap[tid], parts)
			}
			for bt, parts := range r.ExternalVersionMap {
				if m.ExternalVersionMap[bt] == nil {
					m.ExternalVersionMap[bt] = mvstate.PartitionMap{}
				}
				maps.Copy(m.ExternalVersionMap[bt], parts)
			}
			for tid, names := range r.Removed {
				for _, n := range names {
					delete(m.VersionMap[tid], n)
				}
			}
			m.LastRefreshTime = r.MVLastRefreshTime
		default:
			t.Fatalf("apply: unknown op %q", r.Op)
		}
		v.mvs[k] = m
	}
}

// fataler is what apply needs of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// ---- builders ----

const (
	dbID     int64 = 10001
	ordersID int64 = 20001
	itemsID  int64 = 20002
	pvcTopic       = "partition-version-changed"
	catTopic       = "mv-catalog"
)

var (
	mvKey  = mvstate.MVKey{DBID: dbID, MVID: 50001}
	mvKey2 = mvstate.MVKey{DBID: dbID, MVID: 50002}
	orders = mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: ordersID, DBName: "sales", TableName: "orders"}
	items  = mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: itemsID, DBName: "sales", TableName: "items"}
	hiveV1 = mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}
)

func pi(id, version, lrt int64) mvstate.BasePartitionInfo {
	return mvstate.NewBasePartitionInfo(id, version, lrt)
}

// newMV returns an active MV reading bts, with empty version maps.
func newMV(k mvstate.MVKey, lrt int64, bts ...mvstate.BaseTableInfo) *mvstate.MV {
	return &mvstate.MV{Active: true, DBID: k.DBID, DBName: "sales", MVID: k.MVID, MVName: "mv_" + k.String(),
		LastRefreshTime: lrt, BaseTables: bts,
		VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}}
}

// withParts records parts for native table tid.
func withParts(m *mvstate.MV, tid int64, parts mvstate.PartitionMap) *mvstate.MV {
	m.VersionMap[tid] = parts
	return m
}

func rep(id int64, name string, last, next, at int64) events.PartitionRepair {
	return events.PartitionRepair{PartitionID: id, PartitionName: name, LastVersion: last, NewVersion: next, NewVersionTime: at}
}

func repAfter(id int64, name string, last, next, at, lastAt int64) events.PartitionRepair {
	r := rep(id, name, last, next, at)
	r.LastVersionTime = &lastAt
	return r
}

func pvc(tid int64, parts ...events.PartitionRepair) *events.PartitionVersionChanged {
	return &events.PartitionVersionChanged{EventID: "compaction", Source: "compaction", DBID: dbID, TableID: tid,
		TableName: "t", TableType: "cloud_native", Partitions: parts}
}

// input wraps ev at offset off of partition 0 of the topic its kind uses.
func input(ev events.Event, off int64) Input {
	topic := catTopic
	switch ev.(type) {
	case *events.PartitionVersionChanged, *events.ExternalTableRecreated:
		topic = pvcTopic
	}
	return Input{Event: ev, Source: editlog.Cause{EventID: ev.ID(), Topic: topic, Partition: 0, Offset: off}}
}

// inputs wraps evs at offsets 0, 1, 2…
func inputs(evs ...events.Event) []Input {
	out := make([]Input, len(evs))
	for i, ev := range evs {
		out[i] = input(ev, int64(i))
	}
	return out
}

var opts = Options{NextJournalID: 1000, Epoch: 3, Now: 1732400000456}

func dump(m any) string {
	switch x := m.(type) {
	case map[mvstate.MVKey]*mvstate.MV:
		s := ""
		for _, k := range slices.SortedFunc(maps.Keys(x), mvstate.MVKey.Compare) {
			b, _ := x[k].MarshalJSON()
			s += string(b) + "\n"
		}
		return s
	}
	return ""
}

func skipReasons(o Outcome) []SkipReason {
	var out []SkipReason
	for _, s := range o.Skips {
		out = append(out, s.Reason)
	}
	return out
}

// cloneEvent deep-copies an event, keeping nil maps and slices nil, so that
// reflect.DeepEqual can show an input was not mutated.
func cloneEvent(ev events.Event) events.Event {
	switch e := ev.(type) {
	case *events.PartitionVersionChanged:
		c := *e
		if e.Partitions != nil {
			c.Partitions = make([]events.PartitionRepair, len(e.Partitions))
			for i, p := range e.Partitions {
				if p.LastVersionTime != nil {
					x := *p.LastVersionTime
					p.LastVersionTime = &x
				}
				c.Partitions[i] = p
			}
		}
		return &c
	case *events.ExternalTableRecreated:
		c := *e
		c.Partitions = maps.Clone(e.Partitions)
		c.UpdatedPartitions = slices.Clone(e.UpdatedPartitions)
		return &c
	case *events.MVUpserted:
		c := *e
		c.MV = cloneMVExact(e.MV)
		return &c
	case *events.MVRefreshed:
		c := *e
		if e.VersionMap != nil {
			c.VersionMap = make(mvstate.VersionMap, len(e.VersionMap))
			for k, p := range e.VersionMap {
				c.VersionMap[k] = maps.Clone(p)
			}
		}
		if e.ExternalVersionMap != nil {
			c.ExternalVersionMap = make(mvstate.ExternalVersionMap, len(e.ExternalVersionMap))
			for k, p := range e.ExternalVersionMap {
				c.ExternalVersionMap[k] = maps.Clone(p)
			}
		}
		if e.Removed != nil {
			c.Removed = make(map[int64][]string, len(e.Removed))
			for k, p := range e.Removed {
				c.Removed[k] = slices.Clone(p)
			}
		}
		return &c
	case *events.MVDropped:
		c := *e
		return &c
	}
	return ev
}

func cloneMVExact(m *mvstate.MV) *mvstate.MV {
	if m == nil {
		return nil
	}
	c := *m
	c.BaseTables = slices.Clone(m.BaseTables)
	if m.VersionMap != nil {
		c.VersionMap = make(mvstate.VersionMap, len(m.VersionMap))
		for k, p := range m.VersionMap {
			c.VersionMap[k] = maps.Clone(p)
		}
	}
	if m.ExternalVersionMap != nil {
		c.ExternalVersionMap = make(mvstate.ExternalVersionMap, len(m.ExternalVersionMap))
		for k, p := range m.ExternalVersionMap {
			c.ExternalVersionMap[k] = maps.Clone(p)
		}
	}
	return &c
}
