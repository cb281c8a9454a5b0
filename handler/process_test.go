package handler

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Repairs on an MV around a catalog event for that MV are split into one
// record before and one after, and keep their order; repairs of other MVs
// wait for the end of the batch, in key order.
func TestProcess_repairsAroundCatalogEventAreSplitAndOrdered(t *testing.T) {
	other := withParts(newMV(mvstate.MVKey{DBID: 1, MVID: 1}, t0, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)})
	v := newView(ordersMV(), other)
	ref := refreshed(mvKey, t0+150)
	ref.VersionMap = mvstate.VersionMap{ordersID: {"p2": pi(30002, 9, t0+150)}}
	res := Process(v, inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)), // both MVs
		ref, // seals mvKey's repair
		pvc(ordersID, rep(30001, "p1", 6, 7, t0+200)), // both MVs again
	), opts)

	type rec struct {
		id  int64
		op  editlog.Op
		mv  mvstate.MVKey
		ver int64
	}
	var got []rec
	for _, r := range res.Records {
		got = append(got, rec{r.JournalID, r.Op, r.MV.Key(), r.Partitions["p1"].Version})
	}
	want := []rec{
		{1000, editlog.OpVersionRepaired, mvKey, 6},
		{1001, editlog.OpRefreshed, mvKey, 0},
		{1002, editlog.OpVersionRepaired, other.Key(), 7}, // (1,1) sorts before mvKey
		{1003, editlog.OpVersionRepaired, mvKey, 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records\n got %+v\nwant %+v", got, want)
	}
	if r := res.Records[3]; r.Previous["p1"].Version != 6 || r.MVLastRefreshTime != t0+200 {
		t.Fatalf("post-refresh repair = %+v", r)
	}
	if r := res.Records[0]; r.MVLastRefreshTime != t0+100 {
		t.Fatalf("pre-refresh repair = %+v", r)
	}
	if r := res.Records[2]; r.Previous["p1"].Version != 5 || len(r.Causes) != 2 {
		t.Fatalf("other MV's repair = %+v", r)
	}
	wantIDs := [][]int64{{1000, 1002}, {1001}, {1002, 1003}}
	for i, o := range res.Outcomes {
		if !slices.Equal(o.Records, wantIDs[i]) {
			t.Fatalf("outcome %d records = %v, want %v", i, o.Records, wantIDs[i])
		}
	}
	v.apply(t, res.Records...)
	m := v.mvs[mvKey]
	if m.VersionMap[ordersID]["p1"].Version != 7 || m.VersionMap[ordersID]["p2"].Version != 9 || m.LastRefreshTime != t0+200 {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}

func TestProcess_repairThenDropSealsTheRepairFirst(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)), dropped(mvKey)), opts)
	if len(res.Records) != 2 || res.Records[0].Op != editlog.OpVersionRepaired || res.Records[1].Op != editlog.OpDropped {
		t.Fatalf("records = %+v", res.Records)
	}
	v.apply(t, res.Records...) // applies cleanly in order
}

func TestProcess_journalIDsAreGapFree(t *testing.T) {
	m := hiveMV(mvKey)
	m.BaseTables = append(m.BaseTables, items)
	m.VersionMap[itemsID] = mvstate.PartitionMap{"p1": pi(40001, 2, t0)}
	v := newView(m, withParts(newMV(mvKey2, t0, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)}))
	ref := refreshed(mvKey2, t0+900)
	res := Process(v, inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
		pvc(itemsID, rep(40001, "p1", 9, 10, t0+100)), // skipped: no record, no id
		recreated(oldIdent, newIdent),
		ref,
		pvc(itemsID, rep(40001, "p1", 2, 3, t0+100)),
		upserted(newMV(mvstate.MVKey{DBID: 7, MVID: 7}, t0)),
		dropped(mvstate.MVKey{DBID: 8, MVID: 8}), // unknown: no id
	), Options{NextJournalID: 42, Epoch: 9, Now: 123})
	if len(res.Records) != 6 {
		t.Fatalf("records = %d", len(res.Records))
	}
	seen := map[int64]bool{}
	for i, r := range res.Records {
		if r.JournalID != 42+int64(i) || r.Epoch != 9 || r.At != 123 || len(r.Causes) == 0 {
			t.Fatalf("record %d = %+v", i, r)
		}
		seen[r.JournalID] = true
	}
	for i, o := range res.Outcomes {
		for _, id := range o.Records {
			if !seen[id] {
				t.Fatalf("outcome %d lists unknown id %d", i, id)
			}
		}
	}
	v.apply(t, res.Records...)
}

func TestProcess_emptyBatch(t *testing.T) {
	res := Process(newView(), nil, opts)
	if len(res.Records) != 0 || len(res.Outcomes) != 0 {
		t.Fatalf("result = %+v", res)
	}
}

type strangeEvent struct{}

func (strangeEvent) Kind() events.Kind { return "strange" }
func (strangeEvent) ID() string        { return "" }

func TestProcess_unhandledEventsAreDeadLettered(t *testing.T) {
	res := Process(newView(ordersMV()), []Input{
		{Event: strangeEvent{}},
		{Event: nil},
		{Event: (*events.PartitionVersionChanged)(nil)},
		{Event: &events.MVUpserted{}},
	}, opts)
	want := []events.Reason{events.ReasonUnknownKind, events.ReasonUnknownKind, events.ReasonInvalidEvent, events.ReasonInvalidEvent}
	for i, o := range res.Outcomes {
		if o.DLQ == nil || o.DLQ.Reason != want[i] || o.Applied() {
			t.Fatalf("outcome %d = %+v", i, o)
		}
	}
	if len(res.Records) != 0 {
		t.Fatalf("records = %+v", res.Records)
	}
}

// mixedBatch touches every rule: repairs, an external repair, and each
// catalog op, with maps in the View and in the inputs.
func mixedBatch() (*memView, []Input) {
	m := hiveMV(mvKey)
	m.VersionMap[ordersID]["p2"] = pi(30002, 3, t0)
	ref := refreshed(mvKey2, t0+300)
	ref.VersionMap = mvstate.VersionMap{ordersID: {"p5": pi(30005, 1, t0+300)}}
	ref.ExternalVersionMap = mvstate.ExternalVersionMap{hiveV1: {"dt=9": extPI(tNew, tNew, tNew, 1)}}
	ref.Removed = map[int64][]string{ordersID: {"p1"}}
	up := ordersMV()
	up.MVID = 50009
	v := newView(m, withParts(newMV(mvKey2, t0, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)}))
	return v, inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100), repAfter(30002, "p2", 3, 4, t0+100, t0)),
		recreated(oldIdent, newIdent),
		ref,
		upserted(up),
		pvc(ordersID, rep(30001, "p1", 6, 7, t0+200)),
	)
}

func TestProcess_doesNotMutateViewOrInputs(t *testing.T) {
	v, in := mixedBatch()
	before := v.snapshot()
	inBefore := make([]events.Event, len(in))
	for i, x := range in {
		inBefore[i] = cloneEvent(x.Event)
	}
	res := Process(v, in, opts)
	if len(res.Records) < 5 {
		t.Fatalf("the batch should touch every rule: %d records", len(res.Records))
	}
	assertUnchanged(t, v, before)
	for i := range in {
		if !reflect.DeepEqual(in[i].Event, inBefore[i]) {
			t.Fatalf("input %d was mutated:\n got %+v\nwant %+v", i, in[i].Event, inBefore[i])
		}
	}
}

// No returned record shares a map or slice with the View or the inputs:
// writing into every map of the records leaves them as they were, and writing
// into the View and the inputs after Process leaves the records as they were.
func TestProcess_recordsShareNoMapsWithViewOrInputs(t *testing.T) {
	t.Run("mutating records", func(t *testing.T) {
		v, in := mixedBatch()
		before := v.snapshot()
		inBefore := make([]events.Event, len(in))
		for i, x := range in {
			inBefore[i] = cloneEvent(x.Event)
		}
		res := Process(v, in, opts)
		for _, r := range res.Records {
			scribble(r)
		}
		assertUnchanged(t, v, before)
		for i := range in {
			if !reflect.DeepEqual(in[i].Event, inBefore[i]) {
				t.Fatalf("input %d changed by writing into a record", i)
			}
		}
	})
	t.Run("mutating view and inputs", func(t *testing.T) {
		v, in := mixedBatch()
		res := Process(v, in, opts)
		saved := make([]*editlog.Record, len(res.Records))
		for i, r := range res.Records {
			saved[i] = cloneRecord(r)
		}
		for _, m := range v.mvs {
			scribbleMV(m)
		}
		for _, x := range in {
			switch e := x.Event.(type) {
			case *events.PartitionVersionChanged:
				for i := range e.Partitions {
					e.Partitions[i].NewVersion = -7
				}
			case *events.ExternalTableRecreated:
				e.Partitions["dt=2024-01-01"] = events.ExternalPartition{ModifiedTime: -7}
				e.UpdatedPartitions[0] = "x"
			case *events.MVUpserted:
				scribbleMV(e.MV)
			case *events.MVRefreshed:
				for _, p := range e.VersionMap {
					scribbleParts(p)
				}
				for _, p := range e.ExternalVersionMap {
					scribbleParts(p)
				}
				for _, names := range e.Removed {
					names[0] = "x"
				}
			}
		}
		for i, r := range res.Records {
			if !reflect.DeepEqual(r, saved[i]) {
				t.Fatalf("record %d changed by writing into the View or the inputs:\n got %+v\nwant %+v", i, r, saved[i])
			}
		}
	})
}

func scribbleParts(p mvstate.PartitionMap) {
	for n := range p {
		p[n] = pi(-7, -7, -7)
	}
	p["scribbled"] = pi(-7, -7, -7)
}

func scribbleMV(m *mvstate.MV) {
	for i := range m.BaseTables {
		m.BaseTables[i].TableName = "scribbled"
	}
	for _, p := range m.VersionMap {
		scribbleParts(p)
	}
	for _, p := range m.ExternalVersionMap {
		scribbleParts(p)
	}
	m.VersionMap[-7] = mvstate.PartitionMap{}
}

func scribble(r *editlog.Record) {
	if r.Definition != nil {
		scribbleMV(r.Definition)
	}
	for _, p := range []mvstate.PartitionMap{r.Partitions, r.Previous} {
		if p != nil {
			scribbleParts(p)
		}
	}
	for _, p := range r.VersionMap {
		scribbleParts(p)
	}
	for _, p := range r.ExternalVersionMap {
		scribbleParts(p)
	}
	for _, names := range r.Removed {
		names[0] = "scribbled"
	}
	for _, bt := range []*mvstate.BaseTableInfo{r.BaseTable, r.OldBaseTable, r.NewBaseTable} {
		if bt != nil {
			bt.TableName = "scribbled"
		}
	}
	for i := range r.Causes {
		r.Causes[i].Offset = -7
	}
}

func cloneRecord(r *editlog.Record) *editlog.Record {
	c := *r
	c.Definition = cloneMVExact(r.Definition)
	for _, p := range []**mvstate.BaseTableInfo{&c.BaseTable, &c.OldBaseTable, &c.NewBaseTable} {
		if *p != nil {
			x := **p
			*p = &x
		}
	}
	c.Partitions = cloneParts(r.Partitions)
	c.Previous = cloneParts(r.Previous)
	if r.VersionMap != nil {
		c.VersionMap = mvstate.VersionMap{}
		for k, p := range r.VersionMap {
			c.VersionMap[k] = cloneParts(p)
		}
	}
	if r.ExternalVersionMap != nil {
		c.ExternalVersionMap = mvstate.ExternalVersionMap{}
		for k, p := range r.ExternalVersionMap {
			c.ExternalVersionMap[k] = cloneParts(p)
		}
	}
	if r.Removed != nil {
		c.Removed = map[int64][]string{}
		for k, p := range r.Removed {
			c.Removed[k] = slices.Clone(p)
		}
	}
	c.Causes = slices.Clone(r.Causes)
	return &c
}

func cloneParts(p mvstate.PartitionMap) mvstate.PartitionMap { return mvstate.ClonePartitions(p) }
