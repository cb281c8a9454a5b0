package handler

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	oldIdent = "events:1700000000"
	newIdent = "events:1732400000"
	tHive    = int64(1700000000000)
	tNew     = int64(1732400000000)
)

func hiveV(ident string) mvstate.BaseTableInfo {
	bt := hiveV1
	bt.TableIdentifier = ident
	return bt
}

func extPI(version, lrt, fileMod, files int64) mvstate.BasePartitionInfo {
	return mvstate.BasePartitionInfo{ID: -1, Version: version, LastRefreshTime: lrt, ExtLastFileModifiedTime: fileMod, FileNumber: files}
}

// hiveMV reads orders (p1 at v5) and the Hive table events (three partitions).
func hiveMV(k mvstate.MVKey) *mvstate.MV {
	m := withParts(newMV(k, t0, hiveV1, orders), ordersID, mvstate.PartitionMap{"p1": pi(30001, 5, t0)})
	m.ExternalVersionMap[hiveV1] = mvstate.PartitionMap{
		"dt=2024-01-01": extPI(tHive, tHive, tHive, 3),
		"dt=2024-01-02": extPI(tHive, tHive, tHive+1, 4),
		"dt=2024-01-03": extPI(tHive, tHive, tHive+2, 5),
	}
	return m
}

func recreated(from, to string) *events.ExternalTableRecreated {
	return &events.ExternalTableRecreated{EventID: "recreate", Catalog: "hive", DBName: "ods", TableName: "events",
		OldTableIdentifier: from, NewTableIdentifier: to,
		Partitions: map[string]events.ExternalPartition{
			"dt=2024-01-01": {ModifiedTime: tNew},
			"dt=2024-01-02": {ModifiedTime: tNew + 1},
			"dt=2024-01-09": {ModifiedTime: tNew + 9}, // new in the table, not recorded: not added
		},
		UpdatedPartitions: []string{"dt=2024-01-02"},
	}
}

// DESIGN §3.2 / reference §4, and the deliberate difference: the repair is
// journaled (StarRocks has a TODO there) and base_tables keeps its order
// (StarRocks appends the new BaseTableInfo at the end).
func TestExternalRepair_isJournaledAndKeepsPosition(t *testing.T) {
	v := newView(hiveMV(mvKey))
	before := v.snapshot()
	res := Process(v, inputs(recreated(oldIdent, newIdent)), opts)
	assertUnchanged(t, v, before)

	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	newBT := hiveV(newIdent)
	want := &editlog.Record{
		JournalID: 1000, Epoch: opts.Epoch, At: opts.Now, Op: editlog.OpBaseTableInfoRepaired,
		MV:           editlog.MVRef{DBID: dbID, MVID: mvKey.MVID, MVName: "mv_" + mvKey.String()},
		OldBaseTable: &hiveV1,
		NewBaseTable: &newBT,
		Partitions: mvstate.PartitionMap{
			// present in the new table: moved to its modified time, ext fields kept
			"dt=2024-01-01": extPI(tNew, tNew, tHive, 3),
			// updated: old entry kept so the MV sees the change
			"dt=2024-01-02": extPI(tHive, tHive, tHive+1, 4),
			// missing from the new table: old entry kept (will be refreshed)
			"dt=2024-01-03": extPI(tHive, tHive, tHive+2, 5),
		},
		Previous: before[mvKey].ExternalVersionMap[hiveV1],
		Causes:   []editlog.Cause{{EventID: "recreate", Topic: pvcTopic}},
	}
	if !reflect.DeepEqual(res.Records[0], want) {
		t.Fatalf("record\n got %+v\nwant %+v", res.Records[0], want)
	}
	if o := res.Outcomes[0]; o.Repaired != 1 || !slices.Equal(o.Records, []int64{1000}) || len(o.Skips) != 0 {
		t.Fatalf("outcome = %+v", o)
	}

	v.apply(t, res.Records...)
	got := v.mvs[mvKey]
	if !slices.Equal(got.BaseTables, []mvstate.BaseTableInfo{newBT, orders}) {
		t.Fatalf("base_tables = %+v", got.BaseTables)
	}
	if _, ok := got.ExternalVersionMap[hiveV1]; ok || !maps.Equal(got.ExternalVersionMap[newBT], want.Partitions) {
		t.Fatalf("external_version_map = %+v", got.ExternalVersionMap)
	}
	if got.LastRefreshTime != t0 {
		t.Fatalf("last_refresh_time moved to %d", got.LastRefreshTime)
	}
}

func TestExternalRepair_skipsWhenNoMVReadsTheTable(t *testing.T) {
	v := newView(hiveMV(mvKey))
	res := Process(v, inputs(recreated("events:1", newIdent)), opts)
	o := res.Outcomes[0]
	if len(res.Records) != 0 || !slices.Equal(skipReasons(o), []SkipReason{SkipNoMVWithExternal}) || o.Skips[0].Detail == "" {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestExternalRepair_internalCatalogIsDeadLettered(t *testing.T) {
	ev := recreated(oldIdent, newIdent)
	ev.Catalog = mvstate.DefaultCatalog
	res := Process(newView(hiveMV(mvKey)), inputs(ev), opts)
	o := res.Outcomes[0]
	if len(res.Records) != 0 || o.DLQ == nil || o.DLQ.Reason != events.ReasonInternalCatalog || len(o.Skips) != 0 {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestExternalRepair_missingPartitionMapMovesAnEmptyMap(t *testing.T) {
	m := hiveMV(mvKey)
	delete(m.ExternalVersionMap, hiveV1) // listed in base_tables, never refreshed
	v := newView(m)
	res := Process(v, inputs(recreated(oldIdent, newIdent)), opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	r := res.Records[0]
	if r.Partitions == nil || len(r.Partitions) != 0 || len(r.Previous) != 0 || res.Outcomes[0].Repaired != 0 {
		t.Fatalf("record = %+v", r)
	}
	v.apply(t, r)
	if p, ok := v.mvs[mvKey].ExternalVersionMap[hiveV(newIdent)]; !ok || len(p) != 0 {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}

func TestExternalRepair_oneRecordPerMV(t *testing.T) {
	other := hiveMV(mvKey2)
	unrelated := newMV(mvstate.MVKey{DBID: dbID, MVID: 50003}, t0, hiveV("events:1"))
	res := Process(newView(other, hiveMV(mvKey), unrelated), inputs(recreated(oldIdent, newIdent)), opts)
	if len(res.Records) != 2 || res.Records[0].MV.Key() != mvKey || res.Records[1].MV.Key() != mvKey2 {
		t.Fatalf("records = %+v", res.Records)
	}
	if o := res.Outcomes[0]; o.Repaired != 2 || !slices.Equal(o.Records, []int64{1000, 1001}) {
		t.Fatalf("outcome = %+v", o)
	}
}

// A second recreation in the same batch finds the MV under the identifier the
// first one gave it (the overlay keeps the external index current).
func TestExternalRepair_chainedRecreationsInOneBatch(t *testing.T) {
	v := newView(hiveMV(mvKey))
	second := recreated(newIdent, "events:1732500000")
	second.Partitions = map[string]events.ExternalPartition{"dt=2024-01-01": {ModifiedTime: tNew + 100}}
	second.UpdatedPartitions = nil
	res := Process(v, inputs(recreated(oldIdent, newIdent), second, recreated(oldIdent, newIdent)), opts)
	if len(res.Records) != 2 {
		t.Fatalf("records = %+v", res.Records)
	}
	r := res.Records[1]
	if *r.OldBaseTable != hiveV(newIdent) || r.NewBaseTable.TableIdentifier != "events:1732500000" ||
		r.Previous["dt=2024-01-01"] != extPI(tNew, tNew, tHive, 3) || r.Partitions["dt=2024-01-01"] != extPI(tNew+100, tNew+100, tHive, 3) {
		t.Fatalf("second record = %+v", r)
	}
	// The first record's maps are not the second's.
	res.Records[0].Partitions["dt=2024-01-01"] = pi(0, 0, 0)
	if r.Previous["dt=2024-01-01"] != extPI(tNew, tNew, tHive, 3) {
		t.Fatalf("records share a map")
	}
	if got := skipReasons(res.Outcomes[2]); !slices.Equal(got, []SkipReason{SkipNoMVWithExternal}) {
		t.Fatalf("third input skips = %v", got)
	}
	v.apply(t, res.Records...)
	if !slices.Equal(v.mvs[mvKey].BaseTables, []mvstate.BaseTableInfo{hiveV("events:1732500000"), orders}) {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}

func TestExternalRepair_sameEventTwiceEmitsNothing(t *testing.T) {
	v := newView(hiveMV(mvKey))
	ev := recreated(oldIdent, newIdent)
	v.apply(t, Process(v, inputs(ev), opts).Records...)
	again := Process(v, []Input{input(ev, 5)}, opts)
	if len(again.Records) != 0 || !slices.Equal(skipReasons(again.Outcomes[0]), []SkipReason{SkipNoMVWithExternal}) {
		t.Fatalf("second pass = %+v", again)
	}
}

func TestExternalRepair_sealsPendingNativeRepairFirst(t *testing.T) {
	v := newView(hiveMV(mvKey))
	res := Process(v, inputs(
		pvc(ordersID, rep(30001, "p1", 5, 6, t0+100)),
		recreated(oldIdent, newIdent),
	), opts)
	if len(res.Records) != 2 || res.Records[0].Op != editlog.OpVersionRepaired || res.Records[1].Op != editlog.OpBaseTableInfoRepaired {
		t.Fatalf("records = %+v", res.Records)
	}
	// The native repair record still names orders; the MV keeps the repaired
	// last_refresh_time after the external repair.
	v.apply(t, res.Records...)
	if v.mvs[mvKey].LastRefreshTime != t0+100 || v.mvs[mvKey].VersionMap[ordersID]["p1"].Version != 6 {
		t.Fatalf("state = %s", dump(v.mvs))
	}
}
