package handler

import (
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

// The StarRocks acceptance scenarios (reference/starrocks-mv-repair.md §8.1,
// MVMetaVersionRepairerTest) recreated with our types.
//
// Common setup: base table m1 range-partitioned into p1, p2, p3 (p1 and p2
// hold data); mv0 reads m1. "toPartitionInfo(p, v, t)" is a repair entry
// (p.id, p.name, lastVersion = p's visible version, newVersion v, time t).

const (
	m1ID     int64 = 21001
	now      int64 = 1732400000000
	p1ID     int64 = 31001
	p2ID     int64 = 31002
	p1Vis    int64 = 2 // p1's visible version after the insert
	p2Vis    int64 = 2
	p1VisAt  int64 = 1732390000000
	mv0MVID  int64 = 51001
	srFromDB int64 = 10001
)

var (
	m1  = mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: srFromDB, TableID: m1ID, DBName: "test", TableName: "m1"}
	mv0 = mvstate.MVKey{DBID: srFromDB, MVID: mv0MVID}
)

// mv0After returns mv0 after "REFRESH MATERIALIZED VIEW mv0 PARTITION
// START('1') END('3')" (p1 recorded), or never refreshed when refreshed is false.
func mv0After(refreshed bool) *mvstate.MV {
	m := newMV(mv0, 0, m1)
	m.MVName = "mv0"
	if refreshed {
		m.LastRefreshTime = p1VisAt
		m.VersionMap[m1ID] = mvstate.PartitionMap{"p1": pi(p1ID, p1Vis, p1VisAt)}
	}
	return m
}

func toPartitionInfo(id int64, name string, lastVersion, v, at int64) Input {
	ev := pvc(m1ID, rep(id, name, lastVersion, v, at))
	return input(ev, 0)
}

// testRepairBaseTableVersionChanges1: happy path.
func TestStarRocks_repairBaseTableVersionChanges1_happyPath(t *testing.T) {
	v := newView(mv0After(true))
	res := Process(v, []Input{toPartitionInfo(p1ID, "p1", p1Vis, 100, now)}, opts)
	if len(res.Records) != 1 {
		t.Fatalf("records = %+v", res.Records)
	}
	v.apply(t, res.Records...)
	vm := v.mvs[mv0].VersionMap
	if len(vm) != 1 || len(vm[m1ID]) != 1 {
		t.Fatalf("version map = %+v", vm)
	}
	if got := vm[m1ID]["p1"]; got.Version != 100 || got.LastRefreshTime != now || got.ID != p1ID {
		t.Fatalf("p1 = %+v", got)
	}
}

// testRepairBaseTableVersionChanges2: the MV never refreshed; the version map
// stays empty (pre-#49240 StarRocks created the entry; deliberately reversed).
func TestStarRocks_repairBaseTableVersionChanges2_mvNeverRefreshed(t *testing.T) {
	v := newView(mv0After(false))
	res := Process(v, []Input{toPartitionInfo(p1ID, "p1", p1Vis, 100, now)}, opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipTableNotInVersionMap}) {
		t.Fatalf("result = %+v", res)
	}
	if len(v.mvs[mv0].VersionMap) != 0 {
		t.Fatalf("version map = %+v", v.mvs[mv0].VersionMap)
	}
}

// testRepairBaseTableVersionChanges3: the repaired partition is not recorded.
func TestStarRocks_repairBaseTableVersionChanges3_partitionNotRecorded(t *testing.T) {
	v := newView(mv0After(true))
	res := Process(v, []Input{toPartitionInfo(p2ID, "p2", p2Vis, 100, now)}, opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipPartitionNotInMap}) {
		t.Fatalf("result = %+v", res)
	}
	parts := v.mvs[mv0].VersionMap[m1ID]
	if _, ok := parts["p2"]; len(v.mvs[mv0].VersionMap) != 1 || len(parts) != 1 || ok ||
		parts["p1"] != pi(p1ID, p1Vis, p1VisAt) {
		t.Fatalf("version map = %+v", v.mvs[mv0].VersionMap)
	}
}

// testRepairBaseTableVersionChanges4: a load moved p1's version after the
// refresh; the compaction's last_version is the new one, so no repair.
func TestStarRocks_repairBaseTableVersionChanges4_versionMovedSinceRefresh(t *testing.T) {
	v := newView(mv0After(true))
	res := Process(v, []Input{toPartitionInfo(p1ID, "p1", p1Vis+1, 100, now)}, opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipVersionMismatch}) {
		t.Fatalf("result = %+v", res)
	}
	if parts := v.mvs[mv0].VersionMap[m1ID]; len(parts) != 1 || parts["p1"] != pi(p1ID, p1Vis, p1VisAt) {
		t.Fatalf("version map = %+v", v.mvs[mv0].VersionMap)
	}
}

// testRepairSkippedWhenMvWatermarkIsBehindVersionTime (PR #78469): versions
// match but the pre-commit version time is after the recorded refresh time.
func TestStarRocks_repairSkippedWhenMvWatermarkIsBehindVersionTime(t *testing.T) {
	v := newView(mv0After(true))
	in := input(pvc(m1ID, repAfter(p1ID, "p1", p1Vis, 100, now, p1VisAt+1)), 0)
	res := Process(v, []Input{in}, opts)
	if len(res.Records) != 0 || !slices.Equal(skipReasons(res.Outcomes[0]), []SkipReason{SkipUnconsumedChange}) {
		t.Fatalf("result = %+v", res)
	}
	if got := v.mvs[mv0].VersionMap[m1ID]["p1"]; got.Version != p1Vis || got.LastRefreshTime != p1VisAt {
		t.Fatalf("p1 = %+v", got)
	}
}

// reference §4 (repairExternalBaseTableInfo): a Hive table dropped and
// recreated. Updated partitions keep their entry, partitions of the new table
// take its modified time (ext fields kept), missing ones keep theirs; only
// the identifier changes; unlike StarRocks, the change is journaled and the
// base table keeps its position.
func TestStarRocks_repairExternalBaseTableInfo(t *testing.T) {
	m := newMV(mv0, t0, hiveV1)
	m.ExternalVersionMap[hiveV1] = mvstate.PartitionMap{
		"dt=2024-01-01": extPI(tHive, tHive, tHive, 3),
		"dt=2024-01-02": extPI(tHive, tHive, tHive+1, 4),
		"dt=2024-01-03": extPI(tHive, tHive, tHive+2, 5),
	}
	v := newView(m)
	res := Process(v, inputs(recreated(oldIdent, newIdent)), opts)
	if len(res.Records) != 1 || res.Records[0].Op != editlog.OpBaseTableInfoRepaired {
		t.Fatalf("records = %+v", res.Records)
	}
	v.apply(t, res.Records...)
	got := v.mvs[mv0]
	newBT := hiveV(newIdent)
	if !slices.Equal(got.BaseTables, []mvstate.BaseTableInfo{newBT}) || len(got.ExternalVersionMap) != 1 {
		t.Fatalf("mv = %s", dump(v.mvs))
	}
	parts := got.ExternalVersionMap[newBT]
	if parts["dt=2024-01-01"] != extPI(tNew, tNew, tHive, 3) ||
		parts["dt=2024-01-02"] != extPI(tHive, tHive, tHive+1, 4) ||
		parts["dt=2024-01-03"] != extPI(tHive, tHive, tHive+2, 5) || len(parts) != 3 {
		t.Fatalf("partitions = %+v", parts)
	}
	if got.LastRefreshTime != t0 {
		t.Fatalf("last_refresh_time = %d", got.LastRefreshTime)
	}
}
