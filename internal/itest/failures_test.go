package itest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// readiness samples a service's /readyz verdict in the background, so that
// a test can assert it never said "ready" in a state it should not have.
type readiness struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	lies  []string // "ready" while bad() said why not
	ready atomic.Int64
}

// watchReady calls svc.Ready every few milliseconds until the returned
// readiness is stopped; whenever it answers ready while bad returns a
// reason, the reason is recorded.
func watchReady(svc *service.Service, bad func() string) *readiness {
	r := &readiness{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			if svc.Ready() != nil {
				continue
			}
			r.ready.Add(1)
			if why := bad(); why != "" {
				r.mu.Lock()
				r.lies = append(r.lies, why)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// Stop ends the sampling and returns the samples that said ready wrongly.
func (r *readiness) Stop() []string {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lies
}

// readyErr waits until svc's readiness error contains every part.
func readyErr(e *testkit.Env, svc *service.Service, timeout time.Duration, parts ...string) error {
	var last error
	e.Eventually(timeout, func() error {
		last = svc.Ready()
		if last == nil {
			return fmt.Errorf("ready, want not ready because of %q", parts)
		}
		for _, p := range parts {
			if !strings.Contains(last.Error(), p) {
				return fmt.Errorf("not ready because %v; want a reason containing %q", last, p)
			}
		}
		return nil
	})
	return last
}

func TestFailure_storeOffsetsBeyondTheTopicStallLoudlyWhileOtherPartitionsFlow(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("beyond")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	mv := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2)}}
	// The topics were recreated (or the broker lost its data) under a store
	// that applied partition 0 up to offset 1000.
	lost := e.Placed(encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100))).Partition
	testkit.WithStore(t, cfg.State.Dir, func(st *store.Store) {
		_, err := st.Commit(context.Background(), store.Batch{Offsets: []mvstate.OffsetChange{
			{TopicPartition: mvstate.TopicPartition{Topic: tp.Input, Partition: lost}, Next: 1000}}})
		if err != nil {
			t.Fatal(err)
		}
	})
	in := e.StartService(cfg, "service")
	e.Publish(upsert(t, tp.Catalog, mv))
	e.WaitApplied(in.State, tp.Catalog)
	err := readyErr(e, in.Svc, testkit.WaitLong, "input stalled", fmt.Sprintf("%s[%d]", tp.Input, lost), "offset 1000",
		"consumer replay --topic "+tp.Input+" --partition "+strconv.Itoa(lost))
	t.Logf("/readyz: %v", err)

	// The other partitions keep flowing, and a commit does not make the
	// stalled partition look healthy.
	for i := 0; ; i++ {
		m := encode(t, tp.Input, compaction(orders, 2, 5, 6, t0+200))
		m.Key = []byte("probe-" + strconv.Itoa(i))
		if e.Placed(m).Partition != lost {
			break
		}
		if i > 100 {
			t.Fatal("every key lands on one partition")
		}
	}
	e.Eventually(testkit.WaitLong, func() error {
		if v := in.State().Get(mv.Key()).VersionMap[orders][partName(2)].Version; v != 6 {
			return fmt.Errorf("p002 at version %d: the readable partition is not processed", v)
		}
		return nil
	})
	readyErr(e, in.Svc, testkit.WaitShort, "input stalled", "consumer replay")
	if v := in.State().Get(mv.Key()).VersionMap[orders][partName(1)].Version; v != 5 {
		t.Errorf("p001 at version %d: the event below the store's offset was applied", v)
	}
	e.Eventually(testkit.WaitShort, func() error {
		if v, _ := testkit.Gauge(t, in.Svc.Metrics, "mvrepair_stalled", "component", "input"); v != 1 {
			return fmt.Errorf("mvrepair_stalled{component=\"input\"} = %v, want 1", v)
		}
		return nil
	})
	in.Stop()
	logged, _ := os.ReadFile(e.LogPath("service"))
	if !bytes.Contains(logged, []byte("input offsets out of range")) {
		t.Error("the service log does not say the input offsets are out of range")
	}
}

// bigMV is an MV over one table with n partitions: its catalog record is
// about 60 bytes per partition.
func bigMV(mvID int64, table int64, n int) *mvstate.MV {
	pm := mvstate.PartitionMap{}
	for p := range n {
		pm[fmt.Sprintf("p%05d", p)] = mvstate.NewBasePartitionInfo(table*100000+int64(p), 1, t0)
	}
	return &mvstate.MV{DBID: dbID, DBName: "sales", MVID: mvID, MVName: fmt.Sprintf("mv_%d", mvID), Active: true,
		LastRefreshTime: t0, BaseTables: []mvstate.BaseTableInfo{nativeTable(table)}, VersionMap: mvstate.VersionMap{table: pm}}
}

func TestFailure_catalogRecordTooLargeForTheEditLogIsDeadLetteredAndEverythingElseFlows(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("too-large")
	// An edit log that accepts 64 KiB records: an MV of 2,000 partitions
	// (about 120 KB journaled) does not fit; the DLQ (1 MiB) takes it.
	cfg.Kafka.EditLogMaxBytes = 64 << 10
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	small := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)},
		VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1, 2)}}
	huge := bigMV(50002, lineitem, 2000)
	in := e.StartService(cfg, "service")
	hugeMsg := upsert(t, tp.Catalog, huge)
	hugeMsg.Headers = []kafkaio.Header{{Key: "origin", Value: []byte("fe-1")}}
	e.Publish(hugeMsg, upsert(t, tp.Catalog, small))
	e.WaitApplied(in.State, tp.Catalog) // the two topics have no order between them
	e.Publish(encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)),
		encode(t, tp.Input, compaction(lineitem, 7, 1, 2, t0+100)))
	e.WaitCaughtUp(cfg)

	st := in.State()
	if st.Get(huge.Key()) != nil {
		t.Error("the MV whose record cannot be journaled is in the state")
	}
	if v := st.Get(small.Key()).VersionMap[orders][partName(1)].Version; v != 6 {
		t.Errorf("mv_a p001 at version %d, want 6: the service stopped flowing", v)
	}
	if err := in.Svc.Ready(); err != nil {
		t.Errorf("not ready after a dead-lettered record: %v", err)
	}
	dlq := e.ReadTopic(tp.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("DLQ holds %d records, want the one too large to journal", len(dlq))
	}
	d := dlq[0]
	if r, _ := kafkaio.HeaderValue(d.Headers, pipeline.HeaderDLQReason); r != string(pipeline.ReasonRecordTooLarge) {
		t.Errorf("dlq-reason %q, want record_too_large", r)
	}
	if msg, _ := kafkaio.HeaderValue(d.Headers, pipeline.HeaderDLQError); !strings.Contains(msg, "max.message.bytes") && !strings.Contains(msg, "limit") {
		t.Errorf("dlq-error %q does not name the limit", msg)
	}
	if !bytes.Equal(d.Value, hugeMsg.Value) || !bytes.Equal(d.Key, hugeMsg.Key) {
		t.Error("the DLQ copy is not the source record")
	}
	if o, _ := kafkaio.HeaderValue(d.Headers, "origin"); o != "fe-1" {
		t.Errorf("the source record's header is lost on the DLQ copy (origin=%q)", o)
	}
	j := testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog))
	if j.Last() != st.JournalID() {
		t.Errorf("edit log up to %d, store %d", j.Last(), st.JournalID())
	}
	if n := in.Reports.DeadLetters()[string(pipeline.ReasonRecordTooLarge)]; n != 1 {
		t.Errorf("%d record_too_large dead letters reported, want 1", n)
	}
	in.Stop()
}

func TestFailure_recordTooLargeForTheDLQIsDeadLetteredEmptyWithItsSizeAndHeadersSurvive(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("dlq-size")
	tp := cfg.Kafka.Topics
	// A DLQ that accepts 32 KiB records, and an input that takes more.
	ctx := testkit.Ctx(t, testkit.WaitLong)
	if err := e.Admin.EnsureTopics(ctx, []kafkaio.TopicSpec{
		{Name: tp.DLQ, Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"max.message.bytes": strconv.Itoa(32 << 10)}},
		{Name: tp.Input, Partitions: cfg.Kafka.Partitions, ReplicationFactor: 1, Configs: map[string]string{"max.message.bytes": strconv.Itoa(1 << 20)}},
	}); err != nil {
		t.Fatal(err)
	}
	e.EnsureTopics(cfg)
	in := e.StartService(cfg, "service")
	key := []byte(fmt.Sprintf("%d:%d", dbID, orders))
	hdr := []kafkaio.Header{{Key: "traceparent", Value: []byte("00-abc-01")}, {Key: "empty", Value: []byte{}}}
	huge := kafkaio.Message{Topic: tp.Input, Key: key, Value: bytes.Repeat([]byte("not json "), 100<<10/9), Headers: hdr}
	empty := kafkaio.Message{Topic: tp.Input, Key: key, Value: []byte{}, Headers: hdr}
	mv := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)}, VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1)}}
	e.Publish(upsert(t, tp.Catalog, mv))
	e.WaitApplied(in.State, tp.Catalog)
	huge, empty = e.Placed(huge), e.Placed(empty)
	e.Publish(encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)))
	e.WaitCaughtUp(cfg)
	if v := in.State().Get(mv.Key()).VersionMap[orders][partName(1)].Version; v != 6 {
		t.Errorf("p001 at version %d, want 6: the partition stopped flowing", v)
	}
	dlq := e.ReadTopic(tp.DLQ)
	if len(dlq) != 2 {
		t.Fatalf("DLQ holds %d records, want 2", len(dlq))
	}
	h := func(m kafkaio.Message, k string) string { v, _ := kafkaio.HeaderValue(m.Headers, k); return v }
	for _, d := range dlq {
		switch h(d, pipeline.HeaderSourceOffset) {
		case strconv.FormatInt(huge.Offset, 10):
			if r := h(d, pipeline.HeaderDLQReason); r != string(pipeline.ReasonRecordTooLarge) {
				t.Errorf("huge record: dlq-reason %q, want record_too_large", r)
			}
			if len(d.Value) != 0 {
				t.Errorf("huge record: DLQ value of %d bytes, want empty", len(d.Value))
			}
			if s := h(d, pipeline.HeaderSourceSize); s != strconv.Itoa(len(huge.Value)) {
				t.Errorf("huge record: source-size %q, want %d", s, len(huge.Value))
			}
			if msg := h(d, pipeline.HeaderDLQError); !strings.Contains(msg, string(events.ReasonInvalidJSON)) {
				t.Errorf("huge record: dlq-error %q does not keep the first reason", msg)
			}
		case strconv.FormatInt(empty.Offset, 10):
			if r := h(d, pipeline.HeaderDLQReason); r != string(events.ReasonInvalidJSON) {
				t.Errorf("empty record: dlq-reason %q", r)
			}
			if d.Value == nil || len(d.Value) != 0 {
				t.Errorf("empty record: DLQ value %q (nil: %v), want empty, not null", d.Value, d.Value == nil)
			}
			if h(d, "traceparent") != "00-abc-01" {
				t.Errorf("empty record: source header lost: %v", d.Headers)
			}
			if v, ok := kafkaio.HeaderValue(d.Headers, "empty"); !ok || v != "" {
				t.Errorf("empty record: empty header lost: %v", d.Headers)
			}
		default:
			t.Errorf("unexpected DLQ record from offset %s", h(d, pipeline.HeaderSourceOffset))
		}
	}
	in.Stop()
}

func TestFailure_fullDiskStallsSaysSoNeverDeadLettersAndResumes(t *testing.T) {
	mnt := testkit.MountTmpfs(t, "8m")
	e := testkit.NewEnv(t)
	cfg := e.Config("disk-full")
	cfg.State.Dir = filepath.Join(mnt, "state")
	// The combination that dead-lettered valid events: a shutdown budget
	// above the retry budget.
	cfg.Retry.MaxElapsedTime = 2 * time.Second
	cfg.ShutdownTimeout = 10 * time.Second
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 3, 10, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 400, 50)
	in := e.StartService(cfg, "service")
	e.Publish(catalog...)
	e.WaitApplied(in.State, tp.Catalog)

	filler := testkit.FillDisk(t, mnt)
	e.Publish(input[:200]...)
	err := readyErr(e, in.Svc, cfg.Health.StallTimeout+testkit.WaitShort, "no space left on device")
	t.Logf("/readyz with the disk full: %v", err)
	// Stalled for longer than the retry budget: still nothing dead-lettered.
	time.Sleep(cfg.Retry.MaxElapsedTime + time.Second) // the fault lasting, not a wait for a condition
	if dl := in.Reports.DeadLetters(); dl[string(pipeline.ReasonRetriesExhausted)] > 0 {
		t.Fatalf("a full disk dead-lettered valid events: %v", dl)
	}
	if err := in.Svc.Ready(); err == nil {
		t.Fatal("ready while the disk is full")
	}
	os.Remove(filler)
	e.Publish(input[200:]...)
	e.WaitCaughtUp(cfg)
	if err := in.Svc.Ready(); err != nil {
		t.Errorf("not ready after the disk was freed: %v", err)
	}
	in.Stop()
	for _, d := range e.ReadTopic(tp.DLQ) {
		if r, _ := kafkaio.HeaderValue(d.Headers, pipeline.HeaderDLQReason); r != string(events.ReasonInvalidJSON) {
			t.Errorf("DLQ holds a record of reason %q: only the malformed input belongs there", r)
		}
	}
	e.CheckFinalState(cfg, catalog, input)
}

func TestFailure_corruptStoreIsMovedAsideAndRestoredBeforeAnythingIsServed(t *testing.T) {
	for _, damage := range []string{testkit.DamageFlip, testkit.DamageValue, testkit.DamageTruncated} {
		t.Run(damage, func(t *testing.T) {
			e := testkit.NewEnv(t)
			cfg := e.Config("corrupt")
			cfg.State.SnapshotBytes = 32 << 10 // snapshots and several log files
			e.EnsureTopics(cfg)
			tp := cfg.Kafka.Topics
			w := newWorkload(newRand(t), 4, 20, 6)
			catalog := w.catalog(t, tp.Catalog)
			input := w.stream(t, tp.Input, 1500, 100)
			in := e.StartService(cfg, "run-1")
			e.Publish(catalog...)
			e.Publish(input...)
			e.WaitCaughtUp(cfg)
			in.Stop()
			want := testkit.ExportOf(t, in.State())
			wantJID := in.State().JournalID()

			damaged := testkit.DamageStore(t, cfg.State.Dir, damage)
			t.Logf("damaged %s", damaged)

			var svcp atomic.Pointer[service.Service]
			svc, err := service.Open(testkit.Ctx(t, testkit.WaitLong), cfg, e.Logger("run-2", cfg.Log.Level))
			if err != nil {
				t.Fatalf("open on a damaged store: %v", err)
			}
			svcp.Store(svc)
			watch := watchReady(svc, func() string {
				if jid := svc.Store().State().JournalID(); jid != wantJID {
					return fmt.Sprintf("journal id %d of %d", jid, wantJID)
				}
				return ""
			})
			in2 := e.Run(svc)
			e.Eventually(testkit.WaitLong, func() error {
				if err := svc.Ready(); err != nil {
					return err
				}
				return nil
			})
			lies := watch.Stop()
			if len(lies) > 0 {
				t.Errorf("/readyz said ready %d times while the state was not restored (first: %s)", len(lies), lies[0])
			}
			testkit.SameText(t, "state after the damaged store was replaced", testkit.ExportOf(t, in2.State()), want)
			in2.Stop()
			{
				aside, _ := filepath.Glob(filepath.Join(cfg.State.Dir, "store.old-*"))
				if len(aside) == 0 {
					t.Error("the damaged store was not kept aside")
				}
				logged, _ := os.ReadFile(e.LogPath("run-2"))
				if !bytes.Contains(logged, []byte("CORRUPT")) {
					t.Error("the log does not say the store is corrupt")
				}
			}
		})
	}
}

func TestFailure_tableOnTwoInputPartitionsIsWarned(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("moved")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	in := e.StartService(cfg, "service")
	// A producer that does not partition by the Java default: the same
	// table's events under keys landing on different partitions.
	first := encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100))
	first.Key = []byte("k-0")
	first = e.Placed(first)
	e.WaitCaughtUp(cfg)
	for i := 1; ; i++ {
		m := encode(t, tp.Input, compaction(orders, 1, 6, 7, t0+200))
		m.Key = []byte("k-" + strconv.Itoa(i))
		if e.Placed(m).Partition != first.Partition {
			break
		}
		if i > 100 {
			t.Fatal("every key lands on one partition")
		}
	}
	e.WaitCaughtUp(cfg)
	var moves []pipeline.PartitionMove
	for _, r := range in.Reports.All() {
		moves = append(moves, r.PartitionMoves...)
	}
	if len(moves) != 1 || moves[0].From != first.Partition || !strings.Contains(moves[0].Table, strconv.FormatInt(orders, 10)) {
		t.Errorf("partition moves %+v, want table %d moved from partition %d", moves, orders, first.Partition)
	}
	in.Stop()
	logged, _ := os.ReadFile(e.LogPath("service"))
	if !bytes.Contains(logged, []byte("arrived on another input partition")) || !bytes.Contains(logged, []byte(`"level":"warn"`)) {
		t.Error("the service log has no WARN about the table's events changing partition")
	}
}

func TestFailure_groupRewindByAnotherToolIsWarnedWithTheReplayCommand(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("rewind")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	mv := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_a", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{nativeTable(orders)}, VersionMap: mvstate.VersionMap{orders: entries(orders, 5, 1)}}
	in := e.StartService(cfg, "run-1")
	e.Publish(upsert(t, tp.Catalog, mv))
	evs := []kafkaio.Message{encode(t, tp.Input, compaction(orders, 1, 5, 6, t0+100)),
		encode(t, tp.Input, compaction(orders, 1, 6, 7, t0+200)), encode(t, tp.Input, compaction(orders, 1, 7, 8, t0+300))}
	e.Publish(evs...) // the slice gets the partitions and offsets
	e.WaitCaughtUp(cfg)
	in.Stop()
	e.WaitGroupEmpty(cfg.Kafka.GroupID)
	// kafka-consumer-groups --reset-offsets --to-earliest, in effect.
	p := evs[0].Partition
	if err := e.Admin.CommitGroupOffsets(testkit.Ctx(t, testkit.WaitLong), cfg.Kafka.GroupID,
		map[string]map[int]int64{tp.Input: {p: 0}}); err != nil {
		t.Fatal(err)
	}
	in = e.StartService(cfg, "run-2")
	e.WaitCaughtUp(cfg)
	in.Stop()
	if n := in.Reports.Events(); n != 0 {
		t.Errorf("the rewind re-processed %d events; the store's applied offsets win", n)
	}
	logged, _ := os.ReadFile(e.LogPath("run-2"))
	want := fmt.Sprintf("consumer replay --topic %s --partition %d --from-offset 0", tp.Input, p)
	if !bytes.Contains(logged, []byte("moved back by another tool")) || !bytes.Contains(logged, []byte(want)) {
		t.Errorf("the log does not warn about the rewind with %q", want)
	}
}

func TestFailure_infoLogIsASummaryNotALinePerRecord(t *testing.T) {
	if testkit.LogLevel() != "info" {
		t.Skip("counts INFO lines: needs ITEST_LOG_LEVEL=info")
	}
	e := testkit.NewEnv(t)
	cfg := e.Config("log-volume")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 4, 20, 8)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 2000, 0)
	in := e.StartService(cfg, "service")
	e.Publish(catalog...)
	e.Publish(input...)
	e.WaitCaughtUp(cfg)
	in.Stop()
	records := testkit.CheckEditLog(t, e.ReadTopic(tp.EditLog)).Total
	logged, _ := os.ReadFile(e.LogPath("service"))
	lines := bytes.Count(logged, []byte("\n"))
	t.Logf("%d log lines for %d events and %d edit-log records", lines, len(input), records)
	if lines > 60 {
		t.Errorf("%d log lines at INFO for %d events: INFO must be summaries, per-record lines are DEBUG", lines, len(input))
	}
	if bytes.Contains(logged, []byte("older epoch")) {
		t.Error("the log warns about records of an older epoch with no zombie writer")
	}
}
