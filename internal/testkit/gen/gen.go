// Package gen draws random worlds for the property tests
// (pgregory.net/rapid) of the repair engine: a small universe of native and
// Hive tables, MV definitions over it, and event streams whose version
// changes mostly chain from what the MVs recorded, so that the rules repair
// often and every skip reason occurs. The handler's tests and
// internal/enginetest draw from it.
//
// It imports only the model (mvstate) and the events: the engine's own
// packages can use it in their tests.
package gen

import (
	"fmt"
	"slices"

	"pgregory.net/rapid"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// The universe of random catalogs, small on purpose so that random events
// hit the catalog often: three native tables shared by up to five MVs (and a
// fourth table no MV lists), two Hive tables that get recreated under three
// identifiers, four partitions per native table and three per Hive table.
// Tests read these; they never change them.
var (
	// NativeTables are the native tables MVs list; UnlistedTable is one no
	// MV lists.
	NativeTables  = []int64{201, 202, 203}
	UnlistedTable = int64(204)
	// PartNames are the partitions of every native table.
	PartNames = []string{"p1", "p2", "p3", "p4"}
	// HiveTables are the Hive tables, each recreated under the identifiers
	// HiveIdents; DTNames are their partitions.
	HiveTables = []string{"events", "clicks"}
	HiveIdents = []string{"1", "2", "3"}
	DTNames    = []string{"dt1", "dt2", "dt3"}
	// InitialKeys are upserted at the start of a scenario (most of them);
	// LateKey only by a later random upsert; UnknownKey never.
	InitialKeys = []mvstate.MVKey{{DBID: 1, MVID: 501}, {DBID: 1, MVID: 502}, {DBID: 1, MVID: 503}, {DBID: 2, MVID: 504}}
	LateKey     = mvstate.MVKey{DBID: 2, MVID: 505}
	UnknownKey  = mvstate.MVKey{DBID: 1, MVID: 999}
	// NativeTypes are the native table types rule §3.1 repairs.
	NativeTypes = []string{"olap", "cloud_native", "materialized_view", "cloud_native_materialized_view"}
	// OtherTypes are table types rule §3.1 ignores (warning, no change).
	OtherTypes = []string{"hive", "iceberg", "external", "lake"}
)

// AllKeys are the keys of every MV a scenario may define.
func AllKeys() []mvstate.MVKey { return append(slices.Clone(InitialKeys), LateKey) }

// PartID is the partition id a native partition really has.
func PartID(table int64, name string) int64 { return table*100 + int64(name[1]-'0') }

// NativeBT is the base table entry of a native table.
func NativeBT(table int64) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: table, DBName: "sales",
		TableName: fmt.Sprintf("t%d", table)}
}

// HiveBT is the base table entry of a Hive table under an identifier.
func HiveBT(table, ident string) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: table, TableIdentifier: table + ":" + ident}
}

// DrawTime draws a time on a coarse grid so that comparisons tie often.
func DrawTime(t *rapid.T, label string) int64 { return 10 * rapid.Int64Range(1, 30).Draw(t, label) }

type tablePart struct {
	table int64
	name  string
}

// World is the generator's idea of the outside world: each native
// partition's current visible version (so that most version changes chain
// v→v+1 from what the MVs recorded), each Hive table's current identifier, and
// every MV definition sent so far (old snapshots are sometimes re-sent).
type World struct {
	ver       map[tablePart]int64
	ident     map[string]string
	snapshots []*mvstate.MV
	seq       int
}

// NewWorld draws each partition's initial version and each Hive table's
// initial identifier.
func NewWorld(t *rapid.T) *World {
	w := &World{ver: map[tablePart]int64{}, ident: map[string]string{}}
	for _, tid := range append(slices.Clone(NativeTables), UnlistedTable) {
		for _, n := range PartNames {
			w.ver[tablePart{tid, n}] = rapid.Int64Range(1, 3).Draw(t, "initial version")
		}
	}
	for _, h := range HiveTables {
		w.ident[h] = rapid.SampledFrom(HiveIdents).Draw(t, "initial ident")
	}
	return w
}

func (w *World) eventID(kind string) string {
	w.seq++
	return fmt.Sprintf("%s-%d", kind, w.seq)
}

// DrawMV draws an MV definition: some shared native tables (listed and
// recorded, listed and not recorded, recorded with no partitions), entries at
// the current version or one behind (a stale MV), now and then a wrong
// partition id, and some Hive tables under their current or another
// identifier. About one MV in four is inactive.
func (w *World) DrawMV(t *rapid.T, k mvstate.MVKey) *mvstate.MV {
	m := &mvstate.MV{Active: rapid.IntRange(0, 3).Draw(t, "active") > 0, DBID: k.DBID,
		DBName: fmt.Sprintf("db%d", k.DBID), MVID: k.MVID, MVName: fmt.Sprintf("mv_%d", k.MVID),
		LastRefreshTime: DrawTime(t, "mv lrt"), BaseTables: []mvstate.BaseTableInfo{},
		VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}}
	for _, tid := range NativeTables {
		if rapid.IntRange(0, 9).Draw(t, "lists table") >= 6 {
			continue
		}
		m.BaseTables = append(m.BaseTables, NativeBT(tid))
		if rapid.IntRange(0, 9).Draw(t, "records table") == 0 {
			continue // listed, not in version_map
		}
		parts := mvstate.PartitionMap{}
		for _, n := range PartNames {
			if rapid.IntRange(0, 9).Draw(t, "records partition") >= 7 {
				continue
			}
			id := PartID(tid, n)
			if rapid.IntRange(0, 19).Draw(t, "wrong id") == 0 {
				id += 50
			}
			v := w.ver[tablePart{tid, n}]
			if rapid.IntRange(0, 3).Draw(t, "behind") == 0 {
				v = max(1, v-1) // a stale MV
			}
			parts[n] = mvstate.NewBasePartitionInfo(id, v, DrawTime(t, "entry lrt"))
		}
		m.VersionMap[tid] = parts
	}
	for _, h := range HiveTables {
		if rapid.IntRange(0, 9).Draw(t, "lists hive") >= 4 {
			continue
		}
		ident := w.ident[h]
		if rapid.IntRange(0, 3).Draw(t, "other ident") == 0 {
			ident = rapid.SampledFrom(HiveIdents).Draw(t, "ident")
		}
		bt := HiveBT(h, ident)
		m.BaseTables = append(m.BaseTables, bt)
		if rapid.IntRange(0, 9).Draw(t, "records hive") >= 7 {
			continue
		}
		parts := mvstate.PartitionMap{}
		for _, d := range DTNames {
			if rapid.Bool().Draw(t, "records dt") {
				at := DrawTime(t, "dt time")
				parts[d] = mvstate.BasePartitionInfo{ID: -1, Version: at, LastRefreshTime: at,
					ExtLastFileModifiedTime: at, FileNumber: rapid.Int64Range(1, 5).Draw(t, "files")}
			}
		}
		m.ExternalVersionMap[bt] = parts
	}
	m.BaseTables = rapid.Permutation(m.BaseTables).Draw(t, "base table order")
	return m
}

// Upsert draws an mv_upserted event of a new definition of k (remembered:
// DrawEvent sometimes re-sends an old one).
func (w *World) Upsert(t *rapid.T, k mvstate.MVKey) events.Event {
	m := w.DrawMV(t, k)
	w.snapshots = append(w.snapshots, m)
	return &events.MVUpserted{EventID: w.eventID("upsert"), MV: m.Clone()}
}

// PVC draws a partition_version_changed event: mostly the next link of the
// partition's version chain (v→v+1, sometimes v→v+2), otherwise a version
// the MVs do not hold; distinct partitions per event; last_version_time
// absent, or before or after what an MV recorded.
func (w *World) PVC(t *rapid.T) events.Event {
	table := rapid.SampledFrom(append(slices.Clone(NativeTables), NativeTables[0], UnlistedTable)).Draw(t, "table")
	typ := rapid.SampledFrom(NativeTypes).Draw(t, "native type")
	if rapid.IntRange(0, 6).Draw(t, "non-native") == 0 {
		typ = rapid.SampledFrom(OtherTypes).Draw(t, "other type")
	}
	ev := &events.PartitionVersionChanged{EventID: w.eventID("pvc"), Source: "compaction", DBID: 1, TableID: table,
		TableName: fmt.Sprintf("t%d", table), TableType: typ, EmittedAt: 1732400000123}
	names := rapid.SliceOfNDistinct(rapid.SampledFrom(PartNames), 1, 3, func(s string) string { return s }).Draw(t, "names")
	for _, n := range names {
		tp := tablePart{table, n}
		id := PartID(table, n)
		if rapid.IntRange(0, 9).Draw(t, "wrong id") == 0 {
			id += 50
		}
		var last, next int64
		if rapid.IntRange(0, 9).Draw(t, "chain") < 7 {
			last = w.ver[tp]
			next = last + rapid.Int64Range(1, 2).Draw(t, "step")
			w.ver[tp] = next
		} else {
			last = max(1, w.ver[tp]+rapid.Int64Range(-1, 2).Draw(t, "off by"))
			next = last + 1
		}
		pr := events.PartitionRepair{PartitionID: id, PartitionName: n, LastVersion: last, NewVersion: next,
			NewVersionTime: DrawTime(t, "new version time")}
		if rapid.IntRange(0, 2).Draw(t, "has last_version_time") > 0 {
			at := DrawTime(t, "last_version_time")
			pr.LastVersionTime = &at
		}
		ev.Partitions = append(ev.Partitions, pr)
	}
	return ev
}

// Recreated draws an external_table_recreated event, mostly from the table's
// current identifier.
func (w *World) Recreated(t *rapid.T) events.Event {
	h := rapid.SampledFrom(HiveTables).Draw(t, "hive table")
	old := w.ident[h]
	if rapid.IntRange(0, 3).Draw(t, "stale old ident") == 0 {
		old = rapid.SampledFrom(HiveIdents).Draw(t, "old ident")
	}
	var others []string
	for _, id := range HiveIdents {
		if id != old {
			others = append(others, id)
		}
	}
	nw := rapid.SampledFrom(others).Draw(t, "new ident")
	if old == w.ident[h] {
		w.ident[h] = nw
	}
	ev := &events.ExternalTableRecreated{EventID: w.eventID("recreated"), Catalog: "hive", DBName: "ods", TableName: h,
		OldTableIdentifier: h + ":" + old, NewTableIdentifier: h + ":" + nw,
		Partitions: map[string]events.ExternalPartition{}, UpdatedPartitions: []string{}}
	for _, d := range append(slices.Clone(DTNames), "dt9") {
		if rapid.IntRange(0, 9).Draw(t, "in new table") < 6 {
			ev.Partitions[d] = events.ExternalPartition{ModifiedTime: DrawTime(t, "modified")}
		}
		if rapid.IntRange(0, 3).Draw(t, "updated") == 0 {
			ev.UpdatedPartitions = append(ev.UpdatedPartitions, d)
		}
	}
	return ev
}

// Refreshed draws an mv_refreshed event: merged entries (current, stale or
// new versions), removed names (never also merged), sometimes Hive entries.
func (w *World) Refreshed(t *rapid.T) events.Event {
	k := rapid.SampledFrom(append(AllKeys(), UnknownKey)).Draw(t, "refreshed mv")
	ev := &events.MVRefreshed{EventID: w.eventID("refreshed"), DBID: k.DBID, MVID: k.MVID,
		LastRefreshTime: DrawTime(t, "refresh lrt"), VersionMap: mvstate.VersionMap{},
		ExternalVersionMap: mvstate.ExternalVersionMap{}, Removed: map[int64][]string{}}
	if rapid.IntRange(0, 4).Draw(t, "refresh lrt zero") == 0 {
		ev.LastRefreshTime = 0
	}
	for _, tid := range NativeTables {
		for _, n := range PartNames {
			switch rapid.IntRange(0, 5).Draw(t, "refresh op") {
			case 0, 1:
				if ev.VersionMap[tid] == nil {
					ev.VersionMap[tid] = mvstate.PartitionMap{}
				}
				v := max(1, w.ver[tablePart{tid, n}]-rapid.Int64Range(0, 1).Draw(t, "refreshed behind"))
				ev.VersionMap[tid][n] = mvstate.NewBasePartitionInfo(PartID(tid, n), v, DrawTime(t, "refreshed at"))
			case 2:
				ev.Removed[tid] = append(ev.Removed[tid], n)
			}
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "refresh hive") == 0 {
		h := rapid.SampledFrom(HiveTables).Draw(t, "refresh hive table")
		bt := HiveBT(h, w.ident[h])
		at := DrawTime(t, "hive at")
		ev.ExternalVersionMap[bt] = mvstate.PartitionMap{rapid.SampledFrom(DTNames).Draw(t, "dt"): {
			ID: -1, Version: at, LastRefreshTime: at, ExtLastFileModifiedTime: at, FileNumber: 2}}
	}
	return ev
}

// DrawEvent draws one event of any kind: mostly partition_version_changed,
// then catalog changes (new or re-sent old definitions, refreshes, drops of
// known and unknown MVs) and external table recreations.
func (w *World) DrawEvent(t *rapid.T) events.Event {
	switch n := rapid.IntRange(0, 99).Draw(t, "kind"); {
	case n < 55:
		return w.PVC(t)
	case n < 63:
		return w.Recreated(t)
	case n < 78:
		if len(w.snapshots) > 0 && rapid.IntRange(0, 3).Draw(t, "old snapshot") == 0 {
			// An old catalog snapshot at a new position: it legitimately
			// rolls the MV back (docs/design.md §5.2 dedupes by offset only).
			m := rapid.SampledFrom(w.snapshots).Draw(t, "snapshot")
			return &events.MVUpserted{EventID: w.eventID("upsert"), MV: m.Clone()}
		}
		return w.Upsert(t, rapid.SampledFrom(AllKeys()).Draw(t, "upserted mv"))
	case n < 95:
		return w.Refreshed(t)
	default:
		k := rapid.SampledFrom(append(AllKeys(), UnknownKey)).Draw(t, "dropped mv")
		return &events.MVDropped{EventID: w.eventID("dropped"), DBID: k.DBID, MVID: k.MVID}
	}
}

// Batch is a slice of the input stream processed as one batch (one
// pipeline.Processor.Process) by a writer of Epoch.
type Batch struct {
	Events []events.Event
	Epoch  int64
}

// DrawScenario draws a catalog (upserts of most initial MVs, sometimes
// arriving after the first version changes), up to maxEvents random events,
// and cuts the stream into random batches; the writer's epoch now and then
// moves up between batches (a new group generation).
func DrawScenario(t *rapid.T, maxEvents int) []Batch {
	w := NewWorld(t)
	var catalog []events.Event
	for _, k := range InitialKeys {
		if rapid.IntRange(0, 4).Draw(t, "initially defined") > 0 {
			catalog = append(catalog, w.Upsert(t, k))
		}
	}
	var evs []events.Event
	for range rapid.IntRange(0, maxEvents).Draw(t, "events") {
		evs = append(evs, w.DrawEvent(t))
	}
	at := 0
	if rapid.IntRange(0, 3).Draw(t, "catalog late") == 0 {
		at = rapid.IntRange(0, len(evs)).Draw(t, "catalog position")
	}
	evs = slices.Insert(evs, at, catalog...)

	var out []Batch
	epoch := int64(1)
	for len(evs) > 0 {
		n := min(len(evs), rapid.IntRange(1, 8).Draw(t, "batch size"))
		if rapid.IntRange(0, 9).Draw(t, "new epoch") == 0 {
			epoch++
		}
		out = append(out, Batch{Events: evs[:n:n], Epoch: epoch})
		evs = evs[n:]
	}
	return out
}
