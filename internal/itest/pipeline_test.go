package itest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/testkit"

	"syscall"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	orders   = int64(20001)
	lineitem = int64(20002)
)

// entries returns a partition map of partitions ps of table at version v.
func entries(table int64, v int64, ps ...int) mvstate.PartitionMap {
	pm := mvstate.PartitionMap{}
	for _, p := range ps {
		pm[partName(p)] = mvstate.NewBasePartitionInfo(partID(table, p), v, t0)
	}
	return pm
}

func TestPipeline_repairsEndToEndThroughBothTopics(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("e2e")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	mvA := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2, 3)}}
	mvB := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50002, MVName: "mv_b", Active: false, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders), nativeTable(lineitem)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2), lineitem: entries(lineitem, 9, 1)}}

	in := e.StartService(cfg, "service")
	e.Publish(upsert(t, tp.Catalog, mvA), upsert(t, tp.Catalog, mvB))
	e.WaitApplied(in.State, tp.Catalog)
	e.Publish(
		encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)),
		encode(t, tp.Input, compaction(orders, 2, 5, 6, t0+200)),
		encode(t, tp.Input, compaction(orders, 1, 6, 7, t0+300)),
		encode(t, tp.Input, compaction(lineitem, 1, 9, 10, t0+400)),
		encode(t, tp.Input, compaction(orders, 3, 4, 5, t0+500)), // version mismatch: skipped
	)
	e.WaitCaughtUp(cfg)
	st := in.State()

	// The store is repaired.
	want := func(table int64, p int, v, at int64) mvstate.BasePartitionInfo {
		return mvstate.NewBasePartitionInfo(partID(table, p), v, at)
	}
	a, b := st.Get(mvA.Key()), st.Get(mvB.Key())
	if a == nil || b == nil {
		t.Fatalf("MVs missing from the store: %v", st.Keys())
	}
	checks := []struct {
		name      string
		got, want mvstate.BasePartitionInfo
	}{
		{"A orders p001", a.VersionMap[orders][partName(1)], want(orders, 1, 7, t0+300)},
		{"A orders p002", a.VersionMap[orders][partName(2)], want(orders, 2, 6, t0+200)},
		{"A orders p003 (mismatch)", a.VersionMap[orders][partName(3)], want(orders, 3, 5, t0)},
		{"B orders p001", b.VersionMap[orders][partName(1)], want(orders, 1, 7, t0+300)},
		{"B orders p002", b.VersionMap[orders][partName(2)], want(orders, 2, 6, t0+200)},
		{"B lineitem p001", b.VersionMap[lineitem][partName(1)], want(lineitem, 1, 10, t0+400)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
	if a.LastRefreshTime != t0+300 || b.LastRefreshTime != t0+400 {
		t.Errorf("last_refresh_time A=%d B=%d, want %d and %d", a.LastRefreshTime, b.LastRefreshTime, t0+300, t0+400)
	}

	// The edit log holds every change, journal ids 1..N.
	j := testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog))
	if int64(len(j.Records)) != st.JournalID() || j.Total != len(j.Records) {
		t.Fatalf("edit log: %d records (%d distinct), store journal id %d; want one record per journal id",
			j.Total, len(j.Records), st.JournalID())
	}
	inputHWM := e.HWM(tp.Input)
	upserted := map[int64]bool{}
	repaired := map[string]bool{} // "mv/table/partition"
	for _, r := range j.Records {
		switch r.Op {
		case editlog.OpUpserted:
			if r.JournalID > 2 {
				t.Errorf("journal id %d: mv_upserted after the repairs", r.JournalID)
			}
			upserted[r.MV.MVID] = true
		case editlog.OpVersionRepaired:
			if r.BaseTable == nil || !r.BaseTable.IsNative() {
				t.Fatalf("journal id %d: repair without a native base table: %+v", r.JournalID, r.BaseTable)
			}
			for name, p := range r.Partitions {
				repaired[fmt.Sprintf("%d/%d/%s", r.MV.MVID, r.BaseTable.TableID, name)] = true
				if prev, ok := r.Previous[name]; !ok || p.Version <= prev.Version {
					t.Errorf("journal id %d: %s moved from %+v to %+v", r.JournalID, name, r.Previous[name], p)
				}
			}
			for _, c := range r.Causes {
				if c.Topic != tp.Input || c.Offset < 0 || c.Offset >= inputHWM[c.Partition] || c.EventID == "" {
					t.Errorf("journal id %d: cause %+v is not an input record", r.JournalID, c)
				}
			}
		default:
			t.Errorf("journal id %d: unexpected op %s", r.JournalID, r.Op)
		}
	}
	if !upserted[mvA.MVID] || !upserted[mvB.MVID] {
		t.Errorf("mv_upserted journaled for %v, want both MVs", upserted)
	}
	wantRepaired := []string{"50001/20001/p001", "50001/20001/p002", "50002/20001/p001", "50002/20001/p002", "50002/20002/p001"}
	if len(repaired) != len(wantRepaired) {
		t.Errorf("the edit log repairs %v, want %v", repaired, wantRepaired)
	}
	for _, k := range wantRepaired {
		if !repaired[k] {
			t.Errorf("the edit log has no repair of %s (it has %v)", k, repaired)
		}
	}
	testkit.SameText(t, "state rebuilt from the edit log vs live state", testkit.ExportOf(t, testkit.Rebuild(t, j)), testkit.ExportOf(t, st))

	// Input offsets are committed to the group, and match the store's.
	for _, topic := range []string{tp.Input, tp.Catalog} {
		committed := e.Committed(cfg.Kafka.GroupID, topic)
		for p, hw := range e.HWM(topic) {
			if hw == 0 {
				continue
			}
			if committed[p] != hw || st.AppliedOffset(topic, p) != hw {
				t.Errorf("%s/%d: committed %d, applied %d, high watermark %d", topic, p, committed[p], st.AppliedOffset(topic, p), hw)
			}
		}
	}
	for p, hw := range e.HWM(tp.DLQ) {
		if hw != 0 {
			t.Errorf("DLQ partition %d has %d records, want none", p, hw)
		}
	}
	in.Stop()
}

func TestPipeline_deadLettersEveryReasonAndKeepsFlowing(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("dlq")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	mv := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2, 3)}}
	in := e.StartService(cfg, "service")
	e.Publish(upsert(t, tp.Catalog, mv))
	e.WaitApplied(in.State, tp.Catalog)

	// Everything under one key, so on one partition, good and bad interleaved.
	key := []byte(fmt.Sprintf("%d:%d", dbID, orders))
	good := func(p int, last, next, at int64) kafkaio.Message {
		return encode(t, tp.Input, compaction(orders, p, last, next, at))
	}
	raw := func(v string) kafkaio.Message { return kafkaio.Message{Topic: tp.Input, Key: key, Value: []byte(v)} }
	internal := encode(t, tp.Input, &events.ExternalTableRecreated{EventID: "recreate-internal", Catalog: mvstate.DefaultCatalog,
		DBName: "sales", TableName: "orders", OldTableIdentifier: "orders:1", NewTableIdentifier: "orders:2"})
	internal.Key = key
	bad := map[string]events.Reason{}
	msgs := []kafkaio.Message{
		good(1, 5, 6, t0+100),
		raw(`{"kind":"partition_version_changed",`),
		good(2, 5, 6, t0+200),
		raw(`{"kind":"partition_version_changed","event_id":"bad-1","db_id":10001,"table_id":20001,"table_type":"cloud_native","partitions":[{"partition_id":20001003,"partition_name":"p003","last_version":5,"new_version":5,"new_version_time":1732400000000}]}`),
		good(1, 6, 7, t0+300),
		raw(`{"kind":"table_truncated","event_id":"bad-2"}`),
		good(3, 5, 6, t0+400),
		internal,
		good(1, 7, 8, t0+500),
	}
	for i, r := range []events.Reason{events.ReasonInvalidJSON, events.ReasonInvalidEvent, events.ReasonUnknownKind, events.ReasonInternalCatalog} {
		bad[string(msgs[2*i+1].Value)] = r
	}
	started := time.Now().UnixMilli()
	e.Publish(msgs...)
	e.WaitCaughtUp(cfg)

	// Where each record landed.
	inputs := e.ReadTopic(tp.Input)
	if len(inputs) != len(msgs) {
		t.Fatalf("input topic holds %d records, want %d", len(inputs), len(msgs))
	}
	pos := map[string]kafkaio.Message{}
	for _, m := range inputs {
		pos[string(m.Value)] = m
	}

	dlq := e.ReadTopic(tp.DLQ)
	if len(dlq) != len(bad) {
		t.Fatalf("DLQ holds %d records, want %d", len(dlq), len(bad))
	}
	for _, d := range dlq {
		reason, ok := bad[string(d.Value)]
		if !ok {
			t.Errorf("unexpected DLQ record %q", d.Value)
			continue
		}
		src := pos[string(d.Value)]
		h := func(k string) string { v, _ := kafkaio.HeaderValue(d.Headers, k); return v }
		if !bytes.Equal(d.Key, key) {
			t.Errorf("%s: DLQ key %q, want the original %q", reason, d.Key, key)
		}
		if got := h(pipeline.HeaderDLQReason); got != string(reason) {
			t.Errorf("%s: dlq-reason %q", reason, got)
		}
		if got := h(pipeline.HeaderDLQError); !strings.HasPrefix(got, string(reason)+":") {
			t.Errorf("%s: dlq-error %q does not explain the reason", reason, got)
		}
		if got := h(pipeline.HeaderSourceTopic); got != tp.Input {
			t.Errorf("%s: source-topic %q, want %q", reason, got, tp.Input)
		}
		if got := h(pipeline.HeaderSourcePartition); got != strconv.Itoa(src.Partition) {
			t.Errorf("%s: source-partition %q, want %d", reason, got, src.Partition)
		}
		if got := h(pipeline.HeaderSourceOffset); got != strconv.FormatInt(src.Offset, 10) {
			t.Errorf("%s: source-offset %q, want %d", reason, got, src.Offset)
		}
		if got := h(pipeline.HeaderAttempts); got != "1" {
			t.Errorf("%s: attempts %q, want 1", reason, got)
		}
		if at, err := strconv.ParseInt(h(pipeline.HeaderFailedAt), 10, 64); err != nil || at < started || at > time.Now().UnixMilli() {
			t.Errorf("%s: failed-at %q is not the time of the failure (epoch ms)", reason, h(pipeline.HeaderFailedAt))
		}
		delete(bad, string(d.Value))
	}
	if len(bad) > 0 {
		t.Errorf("not dead-lettered: %v", bad)
	}

	// The good records around the bad ones were all applied.
	got := in.State().Get(mv.Key())
	for p, v := range map[int]int64{1: 8, 2: 6, 3: 6} {
		if e := got.VersionMap[orders][partName(p)]; e.Version != v {
			t.Errorf("%s at version %d, want %d", partName(p), e.Version, v)
		}
	}
	dl := in.Reports.DeadLetters()
	for _, r := range []events.Reason{events.ReasonInvalidJSON, events.ReasonInvalidEvent, events.ReasonUnknownKind, events.ReasonInternalCatalog} {
		if n := dl[string(r)]; n != 1 {
			t.Errorf("dead letters of reason %q: %d, want 1", r, n)
		}
	}
	in.Stop()
}

func TestPipeline_retriesFailedLocalCommitsAndLosesNothing(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("retry")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	mv := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2)}}
	const failures = 3
	var left atomic.Int32
	retries := &retryCounter{}
	in := e.StartService(cfg, "service", service.Options{Hooks: pipeline.Hooks{retries},
		WrapFile: func(f store.File) store.File { return failingWrites{f, &left} }})
	st := in.State()
	e.Publish(upsert(t, tp.Catalog, mv))
	e.WaitCaughtUp(cfg)
	// Wait for the idle writer to record the acknowledged outbox, so that the
	// only commits left are those of the next batch.
	e.Eventually(testkit.WaitShort, func() error {
		if msgs := in.Svc.Store().Outbox(); len(msgs) > 0 {
			return fmt.Errorf("outbox holds %d messages", len(msgs))
		}
		return nil
	})
	left.Store(failures)
	e.Publish(
		encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)),
		encode(t, tp.Input, compaction(orders, 2, 5, 6, t0+200)),
		encode(t, tp.Input, compaction(orders, 1, 6, 7, t0+300)),
	)
	e.WaitCaughtUp(cfg)
	// Each failed attempt of the batch's local commit is retried (a commit
	// of another kind, after an unexpected rebalance, may take a failure).
	if n := retries.n.Load(); n < 1 || n > failures {
		t.Errorf("%d retries of the local commit, want 1..%d", n, failures)
	}
	got := st.Get(mv.Key())
	if v1, v2 := got.VersionMap[orders][partName(1)].Version, got.VersionMap[orders][partName(2)].Version; v1 != 7 || v2 != 6 {
		t.Errorf("versions p001=%d p002=%d, want 7 and 6", v1, v2)
	}
	j := testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog))
	if int64(len(j.Records)) != st.JournalID() {
		t.Errorf("edit log has journal ids 1..%d, store %d", len(j.Records), st.JournalID())
	}
	testkit.SameText(t, "state rebuilt from the edit log vs live state", testkit.ExportOf(t, testkit.Rebuild(t, j)), testkit.ExportOf(t, st))
	for p, hw := range e.HWM(tp.DLQ) {
		if hw != 0 {
			t.Errorf("DLQ partition %d has %d records: a transient failure must not dead-letter", p, hw)
		}
	}
	in.Stop()
}

func TestPipeline_restartResumesAndReconsumingChangesNothing(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("restart")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 2, 10, 2)
	input := w.stream(t, tp.Input, 80, 0)

	in := e.StartService(cfg, "run-1")
	e.Publish(w.catalog(t, tp.Catalog)...)
	e.WaitApplied(in.State, tp.Catalog)
	e.Publish(input...)
	e.WaitCaughtUp(cfg)
	in.Stop()
	st := in.State()
	before, journalID := testkit.ExportOf(t, st), st.JournalID()
	testkit.SameText(t, "state", testkit.MVsOf(t, before), testkit.ExpectedMVs(t, in.Svc.Topics(), w.catalog(t, tp.Catalog), input))
	editLogHWM := e.HWM(tp.EditLog)[0]
	if int64(editLogHWM) != journalID {
		t.Fatalf("edit log holds %d records, journal id %d", editLogHWM, journalID)
	}

	// 1. A plain restart resumes after the last applied record: a sentinel
	// (a table no MV reads: skipped, journals nothing) is reached and
	// nothing is journaled again.
	in = e.StartService(cfg, "run-2")
	e.Publish(encode(t, tp.Input, compaction(29999, 1, 1, 2, t0+1)))
	input = append(input, kafkaio.Message{}) // the sentinel counts as an input record
	e.WaitApplied(in.State, tp.Input)
	e.WaitCaughtUp(cfg)
	if n := in.Reports.Events(); n != 1 {
		t.Errorf("restart handled %v events, want only the sentinel", n)
	}
	in.Stop()
	if got := in.State().JournalID(); got != journalID {
		t.Errorf("restart journaled: journal id %d → %d", journalID, got)
	}
	testkit.SameText(t, "export after a restart", testkit.ExportOf(t, in.State()), before)

	// 2. Rewinding the group alone: the store's applied offsets win, nothing
	// is consumed twice, and the group's offsets are moved forward again.
	e.WaitGroupEmpty(cfg.Kafka.GroupID)
	rewind := map[int]int64{}
	for p := range e.HWM(tp.Input) {
		rewind[p] = 0
	}
	if err := e.Admin.CommitGroupOffsets(context.Background(), cfg.Kafka.GroupID, map[string]map[int]int64{tp.Input: rewind}); err != nil {
		t.Fatalf("rewind group: %v", err)
	}
	in = e.StartService(cfg, "run-3")
	e.WaitCaughtUp(cfg)
	if n := in.Reports.Events(); n != 0 {
		t.Errorf("after a group-only rewind the service handled %v events again, want 0", n)
	}
	in.Stop()
	testkit.SameText(t, "export after a group rewind", testkit.ExportOf(t, in.State()), before)

	// 3. Rewinding the group AND the store's applied offsets (a replay): every
	// input record goes through the rules again, applied repairs now
	// mismatch, and the state and the edit log do not change.
	e.WaitGroupEmpty(cfg.Kafka.GroupID)
	if err := e.Admin.CommitGroupOffsets(context.Background(), cfg.Kafka.GroupID, map[string]map[int]int64{tp.Input: rewind}); err != nil {
		t.Fatalf("rewind group: %v", err)
	}
	testkit.WithStore(t, cfg.State.Dir, func(st *store.Store) {
		if _, err := st.Commit(context.Background(), store.Batch{Reset: map[string]map[int]int64{tp.Input: rewind}}); err != nil {
			t.Fatalf("reset applied offsets: %v", err)
		}
	})
	in = e.StartService(cfg, "run-4")
	e.WaitApplied(in.State, tp.Input)
	e.WaitCaughtUp(cfg)
	in.Stop()
	if n := in.Reports.Events(pipeline.OutcomeSkipped); n != len(input) {
		t.Errorf("replay skipped %v events, want all %d (%s)", n, len(input), in.Reports)
	}
	if n := in.Reports.Events(pipeline.OutcomeApplied); n != 0 {
		t.Errorf("replay applied %v events again, want 0", n)
	}
	testkit.SameText(t, "export after a replay", testkit.ExportOf(t, in.State()), before)
	if got := e.HWM(tp.EditLog)[0]; got != editLogHWM {
		t.Errorf("replay wrote to the edit log: %d → %d records", editLogHWM, got)
	}
}

func TestPipeline_publishesOutboxLeftoversAfterCrash(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("outbox")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 2, 6, 2)
	catalog := w.catalog(t, tp.Catalog)
	first := w.stream(t, tp.Input, 30, 0)
	e.Publish(catalog...)
	e.Publish(first...)

	// A previous run committed the batches locally and crashed before
	// publishing anything: its outbox holds the edit-log records.
	const crashedEpoch = 1
	var leftovers []store.OutboxMessage
	testkit.WithStore(t, cfg.State.Dir, func(st *store.Store) {
		proc := &pipeline.Processor{Store: st, Topics: testkit.TopicsOf(cfg)}
		for _, topic := range []string{tp.Catalog, tp.Input} {
			if _, err := proc.Process(context.Background(), e.ReadTopic(topic), crashedEpoch, pipeline.Extra{}); err != nil {
				t.Fatalf("process %s: %v", topic, err)
			}
		}
		leftovers = st.Outbox()
		if int64(len(leftovers)) != st.State().JournalID() || len(leftovers) == 0 {
			t.Fatalf("outbox holds %d messages, journal id %d", len(leftovers), st.State().JournalID())
		}
	})

	in := e.StartService(cfg, "service")
	e.Eventually(testkit.WaitLong, func() error {
		if n := e.HWM(tp.EditLog)[0]; n < int64(len(leftovers)) {
			return fmt.Errorf("edit log holds %d of the %d leftovers", n, len(leftovers))
		}
		return nil
	})
	second := w.stream(t, tp.Input, 30, 0)
	e.Publish(second...)
	e.WaitCaughtUp(cfg)
	in.Stop()
	st := in.State()

	log := e.ReadTopic(tp.EditLog)
	for i, m := range leftovers {
		if i >= len(log) || !bytes.Equal(log[i].Value, m.Value) {
			t.Fatalf("edit log offset %d is not outbox leftover %d", i, m.Seq)
		}
	}
	j := testkit.CheckEditLog(t, log)
	if int64(len(j.Records)) != st.JournalID() || st.JournalID() <= int64(len(leftovers)) {
		t.Fatalf("edit log has journal ids 1..%d, store %d, leftovers %d; want the leftovers then the new records",
			len(j.Records), st.JournalID(), len(leftovers))
	}
	for _, r := range j.Records[len(leftovers):] {
		if r.Epoch <= crashedEpoch {
			t.Errorf("journal id %d written with epoch %d, not above the crashed writer's %d", r.JournalID, r.Epoch, crashedEpoch)
		}
	}
	if msgs := testkit.OpenDurable(t, cfg.State.Dir).Outbox(); len(msgs) > 0 {
		t.Errorf("outbox still holds %d messages after a clean stop", len(msgs))
	}
	// The locally applied input was not consumed again.
	if n := in.Reports.Events(); n != len(second) {
		t.Errorf("the service handled %v events, want only the %d new ones", n, len(second))
	}
	testkit.SameText(t, "state", testkit.MVsOf(t, testkit.ExportOf(t, st)), testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), catalog, append(first, second...)))
	testkit.SameText(t, "state rebuilt from the edit log vs live state", testkit.ExportOf(t, testkit.Rebuild(t, j)), testkit.ExportOf(t, st))
}

func TestService_restoresEmptyStateDirFromEditLog(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("restore")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	hive := mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}
	ext := func(v int64) mvstate.BasePartitionInfo {
		return mvstate.BasePartitionInfo{ID: -1, Version: v, LastRefreshTime: v, ExtLastFileModifiedTime: v, FileNumber: 3}
	}
	mvs := []*mvstate.MV{
		{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)}, VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2, 3)}},
		{DBID: dbID, DBName: "sales", MVID: 50002, MVName: "mv_b", Active: false, LastRefreshTime: t0,
			BaseTables:         []mvstate.BaseTableInfo{nativeTable(orders), hive},
			VersionMap:         mvstate.VersionMap{orders: entries(orders, 5, 1)},
			ExternalVersionMap: mvstate.ExternalVersionMap{hive: {"dt=2024-01-01": ext(1700000000000), "dt=2024-01-02": ext(1700000000000)}}},
		{DBID: dbID, DBName: "sales", MVID: 50003, MVName: "mv_c", Active: true, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{nativeTable(lineitem)}, VersionMap: mvstate.VersionMap{lineitem: entries(lineitem, 2, 1)}},
	}
	in := e.StartService(cfg, "run-1")
	for _, m := range mvs {
		e.Publish(upsert(t, tp.Catalog, m))
	}
	e.WaitApplied(in.State, tp.Catalog)
	// Every journal op: repairs, a base-table repair, a refresh, a drop.
	e.Publish(
		encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)),
		encode(t, tp.Input, compaction(orders, 2, 5, 6, t0+200)),
		encode(t, tp.Input, &events.ExternalTableRecreated{EventID: "recreate", Catalog: "hive", DBName: "ods", TableName: "events",
			OldTableIdentifier: "events:1700000000", NewTableIdentifier: "events:1732400000",
			Partitions:        map[string]events.ExternalPartition{"dt=2024-01-01": {ModifiedTime: 1732400000000}},
			UpdatedPartitions: []string{"dt=2024-01-02"}}),
	)
	e.Publish(
		encode(t, tp.Catalog, &events.MVRefreshed{EventID: "refresh", DBID: dbID, MVID: 50001, LastRefreshTime: t0 + 1000,
			VersionMap: mvstate.VersionMap{orders: entries(orders, 9, 4)}, Removed: map[int64][]string{orders: {partName(3)}}}),
		encode(t, tp.Catalog, &events.MVDropped{EventID: "drop", DBID: dbID, MVID: 50003}),
	)
	e.WaitCaughtUp(cfg)
	in.Stop()
	before := testkit.ExportOf(t, in.State())
	ops := map[editlog.Op]bool{}
	for _, r := range testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog)).Records {
		ops[r.Op] = true
	}
	for _, op := range []editlog.Op{editlog.OpUpserted, editlog.OpVersionRepaired, editlog.OpBaseTableInfoRepaired, editlog.OpRefreshed, editlog.OpDropped} {
		if !ops[op] {
			t.Fatalf("the edit log has no %s record; the scenario does not cover every op", op)
		}
	}

	// The state dir is lost.
	if err := os.RemoveAll(cfg.State.Dir); err != nil {
		t.Fatal(err)
	}
	// A new instance on the empty state dir restores the state from Kafka
	// before it consumes anything, and takes over from there.
	in = e.StartService(cfg, "run-2")
	e.Eventually(testkit.WaitLong, func() error {
		if in.State().JournalID() == 0 {
			return fmt.Errorf("not restored yet")
		}
		return nil
	})
	testkit.SameText(t, "export restored from the edit log", testkit.ExportOf(t, in.State()), before)
	journalID := in.State().JournalID()
	e.Publish(encode(t, tp.Input, compaction(orders, 2, 6, 7, t0+300))) // only mv_a records p002
	e.WaitCaughtUp(cfg)
	in.Stop()
	j := testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog))
	if got := j.Last(); got != journalID+1 || in.State().JournalID() != got {
		t.Errorf("after the restore: edit log up to %d, store journal id %d, want %d", got, in.State().JournalID(), journalID+1)
	}
	if v := in.State().Get(mvs[0].Key()).VersionMap[orders][partName(2)].Version; v != 7 {
		t.Errorf("p002 at version %d after the restore, want 7", v)
	}
	if n := in.Reports.Events(); n != 1 {
		t.Errorf("the restored service handled %v events, want only the new one (the group's offsets hold)", n)
	}
}

// failingWrites fails the next *left writes of a log file (a disk fault).
type failingWrites struct {
	store.File
	left *atomic.Int32
}

func (f failingWrites) Write(p []byte) (int, error) {
	if f.left.Add(-1) >= 0 {
		return 0, fmt.Errorf("injected: %w", syscall.ENOSPC)
	}
	return f.File.Write(p)
}

// retryCounter counts retried local commits.
type retryCounter struct{ n atomic.Int32 }

func (r *retryCounter) OnRetry(op string, _ error, _ int) {
	if op == "commit" {
		r.n.Add(1)
	}
}
