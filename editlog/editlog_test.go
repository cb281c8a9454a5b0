package editlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

var (
	orders = mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 10001, TableID: 20001, DBName: "sales", TableName: "orders"}
	// ordersRef is how a repair record names the table (the contract's shape).
	ordersRef = mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 10001, TableID: 20001, TableName: "orders"}
	events    = mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}
)

func mv() *mvstate.MV {
	return &mvstate.MV{DBID: 10001, DBName: "sales", MVID: 50001, MVName: "mv_orders_daily", Active: true,
		LastRefreshTime: 1732300000000, BaseTables: []mvstate.BaseTableInfo{orders, events},
		VersionMap: mvstate.VersionMap{20001: {
			"p20240101": mvstate.NewBasePartitionInfo(30001, 5, 1732300000000),
			"p20231231": mvstate.NewBasePartitionInfo(30000, 2, 1732300000000),
		}},
		ExternalVersionMap: mvstate.ExternalVersionMap{events: {
			"dt=2024-01-01": {ID: -1, Version: 1700000000000, LastRefreshTime: 1700000000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 3},
		}},
	}
}

var ref = editlog.MVRef{DBID: 10001, MVID: 50001, MVName: "mv_orders_daily"}

// allOps returns one record of every op, in an order that applies cleanly.
func allOps() []*editlog.Record {
	newEvents := events
	newEvents.TableIdentifier = "events:1732400000"
	return []*editlog.Record{
		{JournalID: 1, Epoch: 1, Op: editlog.OpUpserted, At: 1, MV: ref, Definition: mv()},
		{JournalID: 2, Epoch: 1, Op: editlog.OpVersionRepaired, At: 1732400000456, MV: ref, BaseTable: &ordersRef,
			Partitions:        mvstate.PartitionMap{"p20240101": mvstate.NewBasePartitionInfo(30001, 6, 1732400000000)},
			Previous:          mvstate.PartitionMap{"p20240101": mvstate.NewBasePartitionInfo(30001, 5, 1732300000000)},
			MVLastRefreshTime: 1732400000000,
			Causes:            []editlog.Cause{{EventID: "COMPACTION_10001-20001-30001-1732400000000", Topic: "partition-version-changed", Partition: 3, Offset: 1234}}},
		{JournalID: 3, Epoch: 1, Op: editlog.OpBaseTableInfoRepaired, At: 3, MV: ref, OldBaseTable: &events, NewBaseTable: &newEvents,
			Partitions: mvstate.PartitionMap{"dt=2024-01-01": {ID: -1, Version: 1732400000000, LastRefreshTime: 1732400000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 3}},
			Previous:   mvstate.PartitionMap{"dt=2024-01-01": {ID: -1, Version: 1700000000000, LastRefreshTime: 1700000000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 3}}},
		{JournalID: 4, Epoch: 2, Op: editlog.OpRefreshed, At: 4, MV: ref,
			VersionMap:        mvstate.VersionMap{20001: {"p20240102": mvstate.NewBasePartitionInfo(30002, 3, 1732500000000)}},
			Removed:           map[int64][]string{20001: {"p20231231"}},
			MVLastRefreshTime: 1732500000000},
		{JournalID: 5, Epoch: 2, Op: editlog.OpDropped, At: 5, MV: ref},
	}
}

func commit(t *testing.T, s *mvstate.State, recs ...*editlog.Record) []editlog.Result {
	t.Helper()
	keys, structural := editlog.Touches(recs)
	var out []editlog.Result
	err := s.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		for _, r := range recs {
			res, err := editlog.Apply(tx, r)
			if err != nil {
				return err
			}
			out = append(out, res)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exportOf(t *testing.T, s *mvstate.State) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRecord_roundTripsEveryOp(t *testing.T) {
	for _, r := range allOps() {
		t.Run(string(r.Op), func(t *testing.T) {
			b, err := editlog.Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := editlog.Decode(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip changed the record:\n%+v\n%+v", got, r)
			}
		})
	}
}

func TestRecord_usesTheContractFieldNames(t *testing.T) {
	b, err := editlog.Encode(allOps()[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"journal_id", "epoch", "op", "at", "mv", "base_table", "partitions", "previous", "mv_last_refresh_time", "causes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, b)
		}
	}
	if m["op"] != "mv_version_repaired" {
		t.Errorf("op = %v", m["op"])
	}
	mvObj := m["mv"].(map[string]any)
	if len(mvObj) != 3 || mvObj["mv_name"] != "mv_orders_daily" {
		t.Errorf("mv ref = %v, want db_id, mv_id, mv_name only", mvObj)
	}
	if len(b) >= 600 {
		t.Errorf("a one-partition repair record is %d bytes, want < 600", len(b))
	}
	up, _ := editlog.Encode(allOps()[0])
	if !strings.Contains(string(up), `"version_map":{"20001":{"p20231231":{"id":30000,"version":2,"last_refresh_time":1732300000000}`) {
		t.Errorf("mv_upserted must carry the mv in full, entries in compact form: %s", up)
	}
}

func TestDecode_rejectsRecordsMissingWhatTheirOpNeeds(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown op":           `{"journal_id":1,"epoch":1,"op":"mv_exploded","mv":{"db_id":1,"mv_id":2}}`,
		"no journal id":        `{"epoch":1,"op":"mv_dropped","mv":{"db_id":1,"mv_id":2}}`,
		"no mv":                `{"journal_id":1,"epoch":1,"op":"mv_dropped"}`,
		"repair without table": `{"journal_id":1,"epoch":1,"op":"mv_version_repaired","mv":{"db_id":1,"mv_id":2},"partitions":{"p":{"id":1,"version":2,"last_refresh_time":3}}}`,
		"not json":             `{"journal_id":`,
	} {
		if _, err := editlog.Decode([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestApply_everyOpChangesStateAsSpecified(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0])
	if got := s.Get(ref.Key()); !got.Equal(mv()) {
		t.Fatalf("after upsert: %+v", got)
	}
	commit(t, s, recs[1])
	got := s.Get(ref.Key())
	if p := got.VersionMap[20001]["p20240101"]; p.Version != 6 || got.LastRefreshTime != 1732400000000 {
		t.Fatalf("after repair: %+v, lrt %d", p, got.LastRefreshTime)
	}
	if p := got.VersionMap[20001]["p20231231"]; p.Version != 2 {
		t.Fatalf("repair touched another entry: %+v", p)
	}
	commit(t, s, recs[2])
	got = s.Get(ref.Key())
	if got.BaseTables[1].TableIdentifier != "events:1732400000" || got.BaseTables[0] != orders {
		t.Fatalf("base tables after external repair: %+v", got.BaseTables)
	}
	if _, old := got.ExternalVersionMap[events]; old {
		t.Fatal("old external key still present")
	}
	if len(s.MVsWithExternal(events.ExternalRef())) != 0 || len(s.MVsWithExternal(recs[2].NewBaseTable.ExternalRef())) != 1 {
		t.Fatal("external index not moved")
	}
	commit(t, s, recs[3])
	got = s.Get(ref.Key())
	if _, ok := got.VersionMap[20001]["p20231231"]; ok {
		t.Fatal("removed partition still present")
	}
	if got.VersionMap[20001]["p20240102"].Version != 3 || got.LastRefreshTime != 1732500000000 {
		t.Fatalf("after refresh: %+v", got)
	}
	commit(t, s, recs[4])
	if s.Get(ref.Key()) != nil || len(s.RelatedMVs(20001)) != 0 {
		t.Fatal("mv not dropped")
	}
	if s.JournalID() != 5 || s.Epoch() != 2 {
		t.Fatalf("journal %d epoch %d", s.JournalID(), s.Epoch())
	}
}

func TestApply_redeliveredRecordIsANoOp(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0], recs[1])
	before := exportOf(t, s)
	res := commit(t, s, recs[0], recs[1])
	if res[0] != editlog.Duplicate || res[1] != editlog.Duplicate {
		t.Fatalf("results %v, want duplicates", res)
	}
	if exportOf(t, s) != before {
		t.Fatal("a redelivered record changed the state")
	}
}

func TestApply_zombieRecordOfOlderEpochIsIgnored(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0], recs[1], recs[2], recs[3]) // now at epoch 2, journal 4
	before := exportOf(t, s)
	zombie := &editlog.Record{JournalID: 5, Epoch: 1, Op: editlog.OpDropped, MV: ref}
	if res := commit(t, s, zombie); res[0] != editlog.Stale {
		t.Fatalf("result %v, want stale", res[0])
	}
	if exportOf(t, s) != before || s.JournalID() != 4 {
		t.Fatal("a zombie record changed the state")
	}
}

func TestApply_newerEpochStartingBelowTheJournalIsReportedAsFork(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0], recs[1], recs[2])
	fork := &editlog.Record{JournalID: 3, Epoch: 7, Op: editlog.OpDropped, MV: ref}
	if res := commit(t, s, fork); res[0] != editlog.Forked {
		t.Fatalf("result %v, want forked", res[0])
	}
	if s.Get(ref.Key()) == nil {
		t.Fatal("a forked record was applied")
	}
}

func TestApply_recordsReplayedOnEmptyStateRebuildTheLiveState(t *testing.T) {
	live := mvstate.NewState()
	recs := allOps()[:4]
	commit(t, live, recs...)
	var log [][]byte
	for _, r := range recs {
		b, _ := editlog.Encode(r)
		log = append(log, b)
	}
	rebuilt := mvstate.NewState()
	for _, b := range log {
		r, err := editlog.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		commit(t, rebuilt, r)
	}
	if a, b := exportOf(t, live), exportOf(t, rebuilt); a != b {
		t.Fatalf("rebuilt state differs:\n%s\n%s", a, b)
	}
}

func TestApply_stateSharesNoMapsWithTheRecord(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0], recs[1])
	before := exportOf(t, s)
	recs[0].Definition.VersionMap[20001]["p20240101"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	recs[1].Partitions["p20240101"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	recs[0].Definition.BaseTables[0].TableID = 1
	if exportOf(t, s) != before {
		t.Fatal("mutating an applied record changed the state")
	}
}

func TestApply_recordBeyondTheNextJournalIdIsHeldBackAsGap(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	commit(t, s, recs[0])
	if res := commit(t, s, recs[2]); res[0] != editlog.Gap {
		t.Fatalf("result %v, want gap", res[0])
	}
	if s.JournalID() != 1 {
		t.Fatal("a record after a gap was applied")
	}
	if res := commit(t, s, recs[1], recs[2]); res[0] != editlog.Applied || res[1] != editlog.Applied {
		t.Fatalf("results %v after the gap was filled", res)
	}
}

func TestSupersede_dropsZombieRecordsWrittenAfterTheNewWritersStart(t *testing.T) {
	r := func(j, e int64) *editlog.Record { return &editlog.Record{JournalID: j, Epoch: e} }
	log := []*editlog.Record{r(1, 3), r(2, 3), r(3, 3), r(3, 4), r(4, 3) /* zombie, late */, r(4, 4), r(2, 3) /* redelivery */}
	keep, sup := editlog.Supersede(log)
	var k, s []string
	for _, x := range keep {
		k = append(k, fmtJE(x))
	}
	for _, x := range sup {
		s = append(s, fmtJE(x))
	}
	if got := strings.Join(k, " "); got != "1@3 2@3 3@4 4@4 2@3" {
		t.Errorf("kept %s", got)
	}
	if got := strings.Join(s, " "); got != "3@3 4@3" {
		t.Errorf("superseded %s", got)
	}
}

func fmtJE(r *editlog.Record) string {
	return strings.TrimSpace(strings.Join([]string{itoa(r.JournalID), "@", itoa(r.Epoch)}, ""))
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestApply_recordCoveredByANewerMVSnapshotOnlyAdvancesTheJournal(t *testing.T) {
	// A state restored from a checkpoint holds an MV as of record 7 while its
	// journal is at 4: records 5..7 of the tail must not apply to that MV.
	s := mvstate.NewState()
	newer := mv()
	newer.VersionMap[20001]["p20240101"] = mvstate.NewBasePartitionInfo(30001, 9, 1732900000000)
	s.LoadMV(newer, 7)
	s.LoadMeta(4, 1, nil)
	before := exportOf(t, s)
	stale := &editlog.Record{JournalID: 5, Epoch: 1, Op: editlog.OpVersionRepaired, MV: ref, BaseTable: &ordersRef,
		Partitions:        mvstate.PartitionMap{"p20240101": mvstate.NewBasePartitionInfo(30001, 6, 1732400000000)},
		MVLastRefreshTime: 1732400000000}
	drop := &editlog.Record{JournalID: 6, Epoch: 1, Op: editlog.OpDropped, MV: ref}
	if res := commit(t, s, stale, drop); res[0] != editlog.Applied || res[1] != editlog.Applied {
		t.Fatalf("results %v, want the journal to advance", res)
	}
	if got := exportOf(t, s); got != strings.Replace(before, `"journal_id":4`, `"journal_id":6`, 1) {
		t.Fatalf("records below the MV's snapshot changed it:\n%s\nwas\n%s", got, before)
	}
	later := &editlog.Record{JournalID: 7, Epoch: 1, Op: editlog.OpDropped, MV: ref}
	commit(t, s, later) // record 7 is what the snapshot already holds
	if s.Get(ref.Key()) == nil {
		t.Fatal("record 7 applied twice")
	}
	commit(t, s, &editlog.Record{JournalID: 8, Epoch: 1, Op: editlog.OpDropped, MV: ref})
	if s.Get(ref.Key()) != nil {
		t.Fatal("record 8, above the MV's snapshot, did not apply")
	}
}

func applyBatch(s *mvstate.State, recs []*editlog.Record, mode editlog.Mode) (editlog.Counts, []int, error) {
	keys, structural := editlog.Touches(recs)
	var c editlog.Counts
	var applied []int
	err := s.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		applied = applied[:0]
		var err error
		c, err = editlog.ApplyBatch(tx, recs, mode, func(i int) { applied = append(applied, i) })
		return err
	}})
	return c, applied, err
}

func TestApplyBatch_strictRefusesARecordThatDoesNotApply(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	if _, _, err := applyBatch(s, recs[:2], editlog.Strict); err != nil {
		t.Fatal(err)
	}
	_, _, err := applyBatch(s, []*editlog.Record{recs[1]}, editlog.Strict)
	if !errors.Is(err, editlog.ErrInconsistent) {
		t.Fatalf("a duplicate in strict mode: %v, want ErrInconsistent", err)
	}
	if s.JournalID() != 2 {
		t.Fatal("a refused batch changed the state")
	}
}

func TestApplyBatch_followCountsSkipsAndStopsAtAFork(t *testing.T) {
	s := mvstate.NewState()
	recs := allOps()
	c, applied, err := applyBatch(s, []*editlog.Record{recs[0], recs[0], recs[2], recs[1], recs[2]}, editlog.Follow)
	if err != nil {
		t.Fatal(err)
	}
	if c.Applied != 3 || c.Duplicate != 1 || c.Gap != 1 || len(c.Gaps) != 1 || c.Gaps[0] != (editlog.Hole{After: 1, Next: 3}) {
		t.Fatalf("counts %+v", c)
	}
	if fmt.Sprint(applied) != "[0 3 4]" {
		t.Fatalf("applied indexes %v, want [0 3 4]", applied)
	}
	fork := &editlog.Record{JournalID: 2, Epoch: 9, Op: editlog.OpDropped, MV: ref}
	if _, _, err := applyBatch(s, []*editlog.Record{fork}, editlog.Follow); !errors.Is(err, editlog.ErrForked) {
		t.Fatalf("fork in follow mode: %v, want ErrForked", err)
	}
	c, _, err = applyBatch(s, []*editlog.Record{fork}, editlog.Rebuild)
	if err != nil || c.Duplicate != 1 {
		t.Fatalf("fork in rebuild mode: %+v, %v; want a duplicate", c, err)
	}
}
