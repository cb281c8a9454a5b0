package handler

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

const t0 int64 = 1732300000000 // the MV's refresh time in most tests

// ordersMV is an MV over orders that recorded p1 at version 5 and p2 at 3.
func ordersMV() *mvstate.MV {
	return withParts(newMV(mvKey, t0, orders), ordersID, mvstate.PartitionMap{
		"p1": pi(30001, 5, t0),
		"p2": pi(30002, 3, t0),
	})
}

func TestRepair_movesRecordedVersionForward(t *testing.T) {
	v := newView(ordersMV())
	before := v.snapshot()
	res := Process(v, inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)

	if len(res.Records) != 1 {
		t.Fatalf("records = %d, want 1", len(res.Records))
	}
	r := res.Records[0]
	want := &editlog.Record{
		JournalID: opts.NextJournalID, Epoch: opts.Epoch, At: opts.Now, Op: editlog.OpVersionRepaired,
		MV:                editlog.MVRef{DBID: dbID, MVID: mvKey.MVID, MVName: "mv_" + mvKey.String()},
		BaseTable:         &orders,
		Partitions:        mvstate.PartitionMap{"p1": pi(30001, 6, t0+100)},
		Previous:          mvstate.PartitionMap{"p1": pi(30001, 5, t0)},
		MVLastRefreshTime: t0 + 100,
		Causes:            []editlog.Cause{{EventID: "compaction", Topic: pvcTopic, Offset: 0}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("record\n got %+v\nwant %+v", r, want)
	}
	o := res.Outcomes[0]
	if !slices.Equal(o.Records, []int64{opts.NextJournalID}) || o.Repaired != 1 || len(o.Skips) != 0 || o.DLQ != nil || !o.Applied() {
		t.Fatalf("outcome = %+v", o)
	}
	assertUnchanged(t, v, before)

	v.apply(t, res.Records...)
	got := v.mvs[mvKey]
	if got.VersionMap[ordersID]["p1"] != pi(30001, 6, t0+100) || got.VersionMap[ordersID]["p2"] != pi(30002, 3, t0) ||
		got.LastRefreshTime != t0+100 {
		t.Fatalf("applied state = %s", dump(v.mvs))
	}
}

func TestRepair_skipReasons(t *testing.T) {
	neverRefreshed := newMV(mvKey, t0, orders) // lists orders, no version_map key
	cases := []struct {
		name string
		mv   *mvstate.MV
		ev   *events.PartitionVersionChanged
		want Skip
	}{
		{"non-native table type", ordersMV(),
			func() *events.PartitionVersionChanged {
				e := pvc(ordersID, rep(30001, "p1", 5, 6, t0+1))
				e.TableType = "hive"
				return e
			}(),
			Skip{Reason: SkipNonNativeTable, TableID: ordersID}},
		{"no related mv", ordersMV(), pvc(99999, rep(30001, "p1", 5, 6, t0+1)),
			Skip{Reason: SkipNoRelatedMV, TableID: 99999}},
		{"table not in version map", neverRefreshed, pvc(ordersID, rep(30001, "p1", 5, 6, t0+1)),
			Skip{Reason: SkipTableNotInVersionMap, MV: mvKey, TableID: ordersID, Partition: "p1"}},
		{"partition not in version map", ordersMV(), pvc(ordersID, rep(30009, "p9", 5, 6, t0+1)),
			Skip{Reason: SkipPartitionNotInMap, MV: mvKey, TableID: ordersID, Partition: "p9"}},
		{"version moved", ordersMV(), pvc(ordersID, rep(30001, "p1", 6, 7, t0+1)),
			Skip{Reason: SkipVersionMismatch, MV: mvKey, TableID: ordersID, Partition: "p1"}},
		{"partition recreated (id differs)", ordersMV(), pvc(ordersID, rep(39999, "p1", 5, 6, t0+1)),
			Skip{Reason: SkipVersionMismatch, MV: mvKey, TableID: ordersID, Partition: "p1"}},
		{"unconsumed change", ordersMV(), pvc(ordersID, repAfter(30001, "p1", 5, 6, t0+10, t0+1)),
			Skip{Reason: SkipUnconsumedChange, MV: mvKey, TableID: ordersID, Partition: "p1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newView(c.mv)
			before := v.snapshot()
			res := Process(v, inputs(c.ev), opts)
			if len(res.Records) != 0 {
				t.Fatalf("records = %+v, want none", res.Records)
			}
			o := res.Outcomes[0]
			if len(o.Skips) != 1 || o.Repaired != 0 || len(o.Records) != 0 || o.Applied() {
				t.Fatalf("outcome = %+v", o)
			}
			s := o.Skips[0]
			if s.Detail == "" {
				t.Errorf("skip has no detail")
			}
			s.Detail = ""
			if s != c.want {
				t.Fatalf("skip = %+v, want %+v", s, c.want)
			}
			assertUnchanged(t, v, before)
		})
	}
}

func TestRepair_skipDetailsCarryTheNumbers(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(pvc(ordersID, rep(30001, "p1", 6, 7, t0+1), repAfter(30002, "p2", 3, 4, t0+5, t0+2))), opts)
	d := res.Outcomes[0].Skips
	if len(d) != 2 {
		t.Fatalf("skips = %+v", d)
	}
	for _, want := range []string{"30001", "5", "6"} {
		if !strings.Contains(d[0].Detail, want) {
			t.Errorf("version mismatch detail %q lacks %s", d[0].Detail, want)
		}
	}
	for _, want := range []string{"1732300000002", "1732300000000"} {
		if !strings.Contains(d[1].Detail, want) {
			t.Errorf("unconsumed change detail %q lacks %s", d[1].Detail, want)
		}
	}
}

func TestRepair_repairsWhenLastVersionTimeEqualsRecordedRefreshTime(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(pvc(ordersID, repAfter(30001, "p1", 5, 6, t0+10, t0))), opts)
	if res.Outcomes[0].Repaired != 1 || len(res.Records) != 1 {
		t.Fatalf("outcome = %+v", res.Outcomes[0])
	}
}

func TestRepair_acceptsEveryNativeTableType(t *testing.T) {
	for _, tt := range []string{"olap", "cloud_native", "materialized_view", "cloud_native_materialized_view"} {
		ev := pvc(ordersID, rep(30001, "p1", 5, 6, t0+10))
		ev.TableType = tt
		if res := Process(newView(ordersMV()), inputs(ev), opts); len(res.Records) != 1 {
			t.Errorf("table_type %s: outcome %+v", tt, res.Outcomes[0])
		}
	}
}

func TestRepair_repairsInactiveMV(t *testing.T) {
	m := ordersMV()
	m.Active = false
	res := Process(newView(m), inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+10))), opts)
	if len(res.Records) != 1 || res.Records[0].Partitions["p1"].Version != 6 {
		t.Fatalf("inactive MV not repaired: %+v", res.Outcomes[0])
	}
}

// StarRocks overwrites the MV's last_refresh_time with the repaired entries'
// max time; here it never moves backwards.
func TestRepair_lastRefreshTimeNeverMovesBackwards(t *testing.T) {
	m := ordersMV()
	m.LastRefreshTime = t0 + 5000 // refreshed from another table more recently
	v := newView(m)
	res := Process(v, inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
	if len(res.Records) != 1 {
		t.Fatalf("outcome = %+v", res.Outcomes[0])
	}
	if got := res.Records[0].MVLastRefreshTime; got != t0+5000 {
		t.Fatalf("mv_last_refresh_time = %d, want %d (unchanged)", got, t0+5000)
	}
	if got := res.Records[0].Partitions["p1"].LastRefreshTime; got != t0+100 {
		t.Fatalf("entry last_refresh_time = %d, want the new version time", got)
	}
	v.apply(t, res.Records...)
	if v.mvs[mvKey].LastRefreshTime != t0+5000 {
		t.Fatalf("applied last_refresh_time = %d", v.mvs[mvKey].LastRefreshTime)
	}
}

func TestRepair_lastRefreshTimeIsMaxOfRepairedEntries(t *testing.T) {
	res := Process(newView(ordersMV()), inputs(pvc(ordersID,
		rep(30001, "p1", 5, 6, t0+300), rep(30002, "p2", 3, 4, t0+200))), opts)
	if len(res.Records) != 1 || res.Records[0].MVLastRefreshTime != t0+300 || len(res.Records[0].Partitions) != 2 {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRepair_chainedVersionsInOneBatchEndAtLastInOneRecord(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
		pvc(ordersID, rep(30001, "p1", 6, 7, t0+200)),
	), opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %d, want 1", len(res.Records))
	}
	r := res.Records[0]
	if r.Partitions["p1"] != pi(30001, 7, t0+200) || r.Previous["p1"] != pi(30001, 5, t0) || r.MVLastRefreshTime != t0+200 {
		t.Fatalf("record = %+v", r)
	}
	if len(r.Causes) != 2 || r.Causes[0].Offset != 0 || r.Causes[1].Offset != 1 {
		t.Fatalf("causes = %+v", r.Causes)
	}
	for i, o := range res.Outcomes {
		if !slices.Equal(o.Records, []int64{r.JournalID}) || o.Repaired != 1 {
			t.Fatalf("outcome %d = %+v", i, o)
		}
	}
}

func TestRepair_chainedVersionsInOneEvent(t *testing.T) {
	res := Process(newView(ordersMV()), inputs(pvc(ordersID,
		rep(30001, "p1", 5, 6, t0+100), rep(30001, "p1", 6, 7, t0+200))), opts)
	if len(res.Records) != 1 || res.Records[0].Partitions["p1"].Version != 7 || res.Records[0].Previous["p1"].Version != 5 ||
		res.Outcomes[0].Repaired != 2 || len(res.Records[0].Causes) != 1 {
		t.Fatalf("result = %+v / %+v", res.Records, res.Outcomes)
	}
}

func TestRepair_eventOrderMattersWithinTheBatch(t *testing.T) {
	// v6→v7 arrives before v5→v6: the first does not match (the MV recorded
	// v5), the second repairs to v6 only.
	res := Process(newView(ordersMV()), inputs(
		pvc(ordersID, rep(30001, "p1", 6, 7, t0+200)),
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
	), opts)
	if got := skipReasons(res.Outcomes[0]); !slices.Equal(got, []SkipReason{SkipVersionMismatch}) {
		t.Fatalf("first input skips = %v", got)
	}
	if len(res.Records) != 1 || res.Records[0].Partitions["p1"].Version != 6 {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRepair_recordCarriesOnlyChangedEntries(t *testing.T) {
	res := Process(newView(ordersMV()), inputs(pvc(ordersID,
		rep(30001, "p1", 5, 6, t0+100), rep(30002, "p2", 9, 10, t0+100))), opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	r := res.Records[0]
	if len(r.Partitions) != 1 || len(r.Previous) != 1 || r.Partitions["p1"].Version != 6 {
		t.Fatalf("record = %+v", r)
	}
	o := res.Outcomes[0]
	if o.Repaired != 1 || !slices.Equal(skipReasons(o), []SkipReason{SkipVersionMismatch}) || o.Skips[0].Partition != "p2" {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestRepair_twoBaseTablesOfOneMVGiveTwoRecords(t *testing.T) {
	m := ordersMV()
	m.BaseTables = append(m.BaseTables, items)
	m.VersionMap[itemsID] = mvstate.PartitionMap{"p1": pi(40001, 2, t0)}
	v := newView(m)
	// items first in the batch: records still come out in table id order.
	res := Process(v, inputs(
		pvc(itemsID, rep(40001, "p1", 2, 3, t0+50)),
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
	), opts)
	if len(res.Records) != 2 {
		t.Fatalf("records = %d, want 2", len(res.Records))
	}
	r0, r1 := res.Records[0], res.Records[1]
	if *r0.BaseTable != orders || *r1.BaseTable != items || r0.JournalID != 1000 || r1.JournalID != 1001 {
		t.Fatalf("records = %+v, %+v", r0, r1)
	}
	// Both carry the MV's resulting last_refresh_time.
	if r0.MVLastRefreshTime != t0+100 || r1.MVLastRefreshTime != t0+100 {
		t.Fatalf("mv_last_refresh_time = %d, %d", r0.MVLastRefreshTime, r1.MVLastRefreshTime)
	}
	if !slices.Equal(res.Outcomes[0].Records, []int64{1001}) || !slices.Equal(res.Outcomes[1].Records, []int64{1000}) {
		t.Fatalf("outcomes = %+v", res.Outcomes)
	}
	v.apply(t, res.Records...)
	if v.mvs[mvKey].LastRefreshTime != t0+100 {
		t.Fatalf("applied = %s", dump(v.mvs))
	}
}

func TestRepair_relatedMVsInKeyOrder(t *testing.T) {
	a := ordersMV()
	b := withParts(newMV(mvKey2, t0, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)})
	c := withParts(newMV(mvstate.MVKey{DBID: 1, MVID: 99999}, t0, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 4, t0)})
	res := Process(newView(b, c, a), inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
	if len(res.Records) != 2 || res.Records[0].MV.Key() != mvKey || res.Records[1].MV.Key() != mvKey2 {
		t.Fatalf("records = %+v", res.Records)
	}
	o := res.Outcomes[0]
	if o.Repaired != 2 || !slices.Equal(o.Records, []int64{1000, 1001}) || len(o.Skips) != 1 ||
		o.Skips[0].MV != c.Key() || o.Skips[0].Reason != SkipVersionMismatch {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestRepair_baseTableFallsBackToEventWhenNotListed(t *testing.T) {
	m := withParts(newMV(mvKey, t0), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)})
	v := newView(m)
	v.related = map[int64][]mvstate.MVKey{ordersID: {mvKey}}
	ev := pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))
	ev.TableName = "orders"
	res := Process(v, inputs(ev), opts)
	want := mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: ordersID, TableName: "orders"}
	if len(res.Records) != 1 || *res.Records[0].BaseTable != want {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRepair_skipsRelatedMVTheViewDoesNotHold(t *testing.T) {
	v := newView(ordersMV())
	v.related = map[int64][]mvstate.MVKey{ordersID: {mvKey, mvKey2}}
	res := Process(v, inputs(pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
	o := res.Outcomes[0]
	if len(res.Records) != 1 || o.Repaired != 1 || !slices.Equal(skipReasons(o), []SkipReason{SkipUnknownMV}) || o.Skips[0].MV != mvKey2 {
		t.Fatalf("outcome = %+v", o)
	}
}

// Processing an event again, against the state its records produced, emits
// nothing (the recorded version is no longer the event's last_version).
func TestRepair_sameEventTwiceEmitsNothing(t *testing.T) {
	v := newView(ordersMV())
	ev := pvc(ordersID, rep(30001, "p1", 5, 6, t0+100), rep(30002, "p2", 3, 4, t0+100))
	first := Process(v, inputs(ev), opts)
	v.apply(t, first.Records...)
	again := Process(v, []Input{input(ev, 7)}, Options{NextJournalID: 1001})
	if len(again.Records) != 0 || again.Outcomes[0].Applied() {
		t.Fatalf("second pass: %+v", again)
	}
	if got := skipReasons(again.Outcomes[0]); !slices.Equal(got, []SkipReason{SkipVersionMismatch, SkipVersionMismatch}) {
		t.Fatalf("second pass skips = %v", got)
	}
}

// A one-partition repair reads the MV's entry, never its whole map: the
// allocations do not depend on how many partitions the MV recorded.
func TestRepair_costIsFlatInMVSize(t *testing.T) {
	allocs := func(n int) float64 {
		v, in := benchFixture(n)
		return testing.AllocsPerRun(50, func() { Process(v, in, opts) })
	}
	small, large := allocs(10), allocs(100000)
	if small != large {
		t.Fatalf("allocs per repair: %v with 10 partitions, %v with 100000", small, large)
	}
}
