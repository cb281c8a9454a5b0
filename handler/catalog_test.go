package handler

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

func upserted(m *mvstate.MV) *events.MVUpserted { return &events.MVUpserted{EventID: "upsert", MV: m} }

func refreshed(k mvstate.MVKey, lrt int64) *events.MVRefreshed {
	return &events.MVRefreshed{EventID: "refresh", DBID: k.DBID, MVID: k.MVID, LastRefreshTime: lrt}
}

func dropped(k mvstate.MVKey) *events.MVDropped {
	return &events.MVDropped{EventID: "drop", DBID: k.DBID, MVID: k.MVID}
}

func TestUpsert_createsUnknownMV(t *testing.T) {
	v := newView()
	m := ordersMV()
	res := Process(v, inputs(upserted(m)), opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	r := res.Records[0]
	if r.Op != editlog.OpUpserted || r.MV.Key() != mvKey || r.MV.MVName != m.MVName || !r.Definition.Equal(m) ||
		r.Definition == m || len(r.Causes) != 1 || r.Causes[0].Topic != catTopic {
		t.Fatalf("record = %+v", r)
	}
	if o := res.Outcomes[0]; !slices.Equal(o.Records, []int64{1000}) || o.Repaired != 0 {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestUpsert_skipsWhenDefinitionAndStateAreEqual(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(upserted(ordersMV())), opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipNoChange}) {
		t.Fatalf("result = %+v", res)
	}
}

func TestUpsert_replacesChangedMV(t *testing.T) {
	v := newView(ordersMV())
	m := ordersMV()
	m.Active = false
	res := Process(v, inputs(upserted(m)), opts)
	if len(res.Records) != 1 || res.Records[0].Definition.Active {
		t.Fatalf("records = %+v", res.Records)
	}
}

// An upsert equal to what the batch already decided (a repair earlier in the
// same batch) is a no-op; equal to the View's (pre-batch) state is not.
func TestUpsert_comparesWithTheBatchState(t *testing.T) {
	repaired := ordersMV()
	repaired.VersionMap[ordersID]["p1"] = pi(30001, 6, t0+100)
	repaired.LastRefreshTime = t0 + 100
	res := Process(newView(ordersMV()), inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
		upserted(repaired),
		upserted(ordersMV()),
	), opts)
	if got := skipReasons(res.Outcomes[1]); !slices.Equal(got, []SkipReason{SkipNoChange}) {
		t.Fatalf("upsert of the repaired state: skips %v", got)
	}
	if len(res.Records) != 2 || res.Records[0].Op != editlog.OpVersionRepaired || res.Records[1].Op != editlog.OpUpserted {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRefreshed_unknownMVIsSkipped(t *testing.T) {
	res := Process(newView(), inputs(refreshed(mvKey, t0)), opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipUnknownMV}) ||
		res.Outcomes[0].Skips[0].MV != mvKey {
		t.Fatalf("result = %+v", res)
	}
}

func TestRefreshed_recordCarriesOnlyChanges(t *testing.T) {
	m := ordersMV()
	m.BaseTables = append(m.BaseTables, hiveV1)
	m.ExternalVersionMap[hiveV1] = mvstate.PartitionMap{"dt=1": extPI(tHive, tHive, tHive, 3)}
	v := newView(m)
	ev := refreshed(mvKey, t0+500)
	ev.VersionMap = mvstate.VersionMap{
		ordersID: {"p1": pi(30001, 5, t0), "p3": pi(30003, 1, t0+500)}, // p1 unchanged
		itemsID:  {"p1": pi(40001, 2, t0+500)},                         // new table key
	}
	ev.ExternalVersionMap = mvstate.ExternalVersionMap{hiveV1: {
		"dt=1": extPI(tHive, tHive, tHive, 3), // unchanged
		"dt=2": extPI(tNew, tNew, tNew, 1),
	}}
	ev.Removed = map[int64][]string{ordersID: {"p2", "p404", "p2"}, 777: {"x"}}
	res := Process(v, inputs(ev), opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	want := &editlog.Record{
		JournalID: 1000, Epoch: opts.Epoch, At: opts.Now, Op: editlog.OpRefreshed,
		MV: editlog.MVRef{DBID: dbID, MVID: mvKey.MVID, MVName: m.MVName},
		VersionMap: mvstate.VersionMap{
			ordersID: {"p3": pi(30003, 1, t0+500)},
			itemsID:  {"p1": pi(40001, 2, t0+500)},
		},
		ExternalVersionMap: mvstate.ExternalVersionMap{hiveV1: {"dt=2": extPI(tNew, tNew, tNew, 1)}},
		Removed:            map[int64][]string{ordersID: {"p2"}},
		MVLastRefreshTime:  t0 + 500,
		Causes:             []editlog.Cause{{EventID: "refresh", Topic: catTopic}},
	}
	if !reflect.DeepEqual(res.Records[0], want) {
		t.Fatalf("record\n got %+v\nwant %+v", res.Records[0], want)
	}
	v.apply(t, res.Records...)
	got := v.mvs[mvKey]
	if len(got.VersionMap[ordersID]) != 2 || len(got.VersionMap[itemsID]) != 1 || len(got.ExternalVersionMap[hiveV1]) != 2 {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}

func TestRefreshed_nothingChangingJournalsNothing(t *testing.T) {
	ev := refreshed(mvKey, t0-1) // older refresh time: never backwards
	ev.VersionMap = mvstate.VersionMap{ordersID: {"p1": pi(30001, 5, t0)}}
	ev.Removed = map[int64][]string{ordersID: {"gone"}}
	res := Process(newView(ordersMV()), inputs(ev), opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipNoChange}) {
		t.Fatalf("result = %+v", res)
	}
}

func TestRefreshed_lastRefreshTimeNeverMovesBackwards(t *testing.T) {
	ev := refreshed(mvKey, t0-1)
	ev.VersionMap = mvstate.VersionMap{ordersID: {"p3": pi(30003, 1, t0-1)}}
	res := Process(newView(ordersMV()), inputs(ev), opts)
	if len(res.Records) != 1 || res.Records[0].MVLastRefreshTime != t0 {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRefreshed_onlyNewerRefreshTimeIsAChange(t *testing.T) {
	res := Process(newView(ordersMV()), inputs(refreshed(mvKey, t0+1)), opts)
	if len(res.Records) != 1 || res.Records[0].MVLastRefreshTime != t0+1 || res.Records[0].VersionMap != nil {
		t.Fatalf("records = %+v", res.Records)
	}
}

func TestRefreshed_givenAndRemovedNameEndsRemoved(t *testing.T) {
	v := newView(ordersMV())
	ev := refreshed(mvKey, t0)
	ev.VersionMap = mvstate.VersionMap{ordersID: {"p2": pi(30002, 4, t0), "p7": pi(30007, 1, t0)}}
	ev.Removed = map[int64][]string{ordersID: {"p2", "p7"}}
	res := Process(v, inputs(ev), opts)
	if len(res.Records) != 1 || !reflect.DeepEqual(res.Records[0].Removed, map[int64][]string{ordersID: {"p2"}}) ||
		res.Records[0].VersionMap != nil {
		t.Fatalf("records = %+v", res.Records)
	}
	v.apply(t, res.Records...)
	if _, ok := v.mvs[mvKey].VersionMap[ordersID]["p2"]; ok {
		t.Fatalf("p2 still recorded")
	}
}

func TestDropped_unknownMVIsANoOp(t *testing.T) {
	res := Process(newView(), inputs(dropped(mvKey)), opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipUnknownMV}) {
		t.Fatalf("result = %+v", res)
	}
}

func TestDropped_emitsRecord(t *testing.T) {
	v := newView(ordersMV())
	res := Process(v, inputs(dropped(mvKey), dropped(mvKey)), opts)
	if len(res.Records) != 1 || res.Records[0].Op != editlog.OpDropped || res.Records[0].MV.MVName != "mv_"+mvKey.String() {
		t.Fatalf("records = %+v", res.Records)
	}
	if !slices.Equal(skipReasons(res.Outcomes[1]), []SkipReason{SkipUnknownMV}) {
		t.Fatalf("second drop = %+v", res.Outcomes[1])
	}
	v.apply(t, res.Records...)
	if len(v.mvs) != 0 {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}

// The related-MV index follows the batch: an MV upserted earlier in the batch
// is repaired, a dropped one is not related any more, and an upsert that no
// longer lists the table removes the MV from its index.
func TestCatalog_indexFollowsTheBatch(t *testing.T) {
	t.Run("upserted then repaired", func(t *testing.T) {
		res := Process(newView(), inputs(upserted(ordersMV()), pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
		if len(res.Records) != 2 || res.Records[1].Op != editlog.OpVersionRepaired || res.Outcomes[1].Repaired != 1 {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("dropped then no related mv", func(t *testing.T) {
		res := Process(newView(ordersMV()), inputs(dropped(mvKey), pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
		if len(res.Records) != 1 || !slices.Equal(skipReasons(res.Outcomes[1]), []SkipReason{SkipNoRelatedMV}) {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("upsert without the table", func(t *testing.T) {
		m := ordersMV()
		m.BaseTables = []mvstate.BaseTableInfo{items}
		res := Process(newView(ordersMV()), inputs(upserted(m), pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
		if len(res.Records) != 1 || !slices.Equal(skipReasons(res.Outcomes[1]), []SkipReason{SkipNoRelatedMV}) {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("dropped then recreated", func(t *testing.T) {
		res := Process(newView(ordersMV()), inputs(dropped(mvKey), upserted(ordersMV()), pvc(ordersID, rep(30001, "p1", 5, 6, t0+100))), opts)
		if len(res.Records) != 3 || res.Outcomes[2].Repaired != 1 {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("refreshed then repaired", func(t *testing.T) {
		ev := refreshed(mvKey, t0+50)
		ev.VersionMap = mvstate.VersionMap{itemsID: {"p1": pi(40001, 2, t0+50)}}
		m := ordersMV()
		m.BaseTables = append(m.BaseTables, items)
		res := Process(newView(m), inputs(
			pvc(itemsID, rep(40001, "p1", 2, 3, t0+60)), // not yet recorded
			ev,
			pvc(itemsID, rep(40001, "p1", 2, 3, t0+60)), // now recorded
		), opts)
		if !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipTableNotInVersionMap}) || res.Outcomes[2].Repaired != 1 {
			t.Fatalf("outcomes = %+v", res.Outcomes)
		}
	})
}
