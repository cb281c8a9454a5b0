package pipeline

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// chanFetcher yields the messages sent on its channel.
type chanFetcher chan kafkaio.Message

func (f chanFetcher) Fetch(ctx context.Context) (kafkaio.Message, error) {
	select {
	case m := <-f:
		return m, nil
	case <-ctx.Done():
		return kafkaio.Message{}, ctx.Err()
	}
}

func (f chanFetcher) TryFetch() (kafkaio.Message, bool) {
	select {
	case m := <-f:
		return m, true
	default:
		return kafkaio.Message{}, false
	}
}

// recordingPublisher keeps what it was asked to publish.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []kafkaio.Message
}

func (p *recordingPublisher) Publish(_ context.Context, msgs ...kafkaio.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *recordingPublisher) published() []kafkaio.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]kafkaio.Message(nil), p.msgs...)
}

// recordingCommitter keeps the highest committed offset per partition.
type recordingCommitter struct {
	mu      sync.Mutex
	offsets map[string]map[int]int64
}

func (c *recordingCommitter) Commit(_ context.Context, offsets map[string]map[int]int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offsets == nil {
		c.offsets = map[string]map[int]int64{}
	}
	for t, po := range offsets {
		if c.offsets[t] == nil {
			c.offsets[t] = map[int]int64{}
		}
		for p, o := range po {
			c.offsets[t][p] = max(c.offsets[t][p], o)
		}
	}
	return nil
}

func (c *recordingCommitter) offset(topic string, p int) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offsets[topic][p]
}

// deadLetterGate announces, through the processor's observer, the commit
// that dead-letters a record: DeadLetter reports the DLQ inside its commit,
// before the store's commit hook runs. The hook below lets exactly that
// commit through, so every attempt to apply the records fails and only
// their dead-lettering succeeds.
type deadLetterGate struct {
	nopObserver
	open *atomic.Bool
}

func (g deadLetterGate) DLQ(reason string) {
	if reason == string(events.ReasonRetriesExhausted) {
		g.open.Store(true)
	}
}

type countingWriterObs struct {
	nopWriterObserver
	retries atomic.Int64
}

func (o *countingWriterObs) Retry(string) { o.retries.Add(1) }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriter_deadLettersRecordsWhoseCommitKeepsFailing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := mvstate.Open(ctx, t.TempDir(), mvstate.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	topics := Topics{Input: "in", Catalog: "cat", EditLog: "el", DLQ: "dlq"}
	var gateOpen atomic.Bool
	proc := &Processor{Store: store, Topics: topics, Log: zerolog.Nop(), Obs: deadLetterGate{open: &gateOpen}}

	const table, t0 = int64(20001), int64(1732300000000)
	mv := &mvstate.MV{DBID: 10001, DBName: "sales", MVID: 50001, MVName: "mv", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 10001, TableID: table, DBName: "sales", TableName: "orders"}},
		VersionMap: mvstate.VersionMap{table: {"p1": mvstate.NewBasePartitionInfo(30001, 5, t0)}}}
	encode := func(topic string, offset int64, ev events.Event) kafkaio.Message {
		b, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		return kafkaio.Message{Topic: topic, Partition: 0, Offset: offset, Key: []byte(events.Key(ev)), Value: b}
	}
	compaction := func(offset, last, next int64) kafkaio.Message {
		return encode(topics.Input, offset, &events.PartitionVersionChanged{EventID: "c" + strconv.FormatInt(offset, 10),
			DBID: 10001, TableID: table, TableType: "cloud_native",
			Partitions: []events.PartitionRepair{{PartitionID: 30001, PartitionName: "p1", LastVersion: last, NewVersion: next, NewVersionTime: t0 + next}}})
	}
	if _, err := proc.Process(ctx, []kafkaio.Message{encode(topics.Catalog, 0, &events.MVUpserted{EventID: "u", MV: mv})}, 1, 0); err != nil {
		t.Fatal(err)
	}

	// From now on every commit fails, except a dead-lettering one.
	store.SetCommitHook(func() error {
		if gateOpen.Swap(false) {
			return nil
		}
		return errors.New("injected: the disk is full")
	})
	poison := []kafkaio.Message{compaction(0, 5, 6), compaction(1, 6, 7), compaction(2, 7, 8)}
	fetch := make(chanFetcher, 10)
	for _, m := range poison {
		fetch <- m
	}
	pub, com, wobs := &recordingPublisher{}, &recordingCommitter{}, &countingWriterObs{}
	w := &Writer{Proc: proc, Pub: pub, Log: zerolog.Nop(), Obs: wobs,
		Cfg: WriterConfig{MaxEvents: 10, MaxWait: 20 * time.Millisecond, FinishTimeout: 10 * time.Second,
			Retry: RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond, Multiplier: 2, MaxElapsedTime: 40 * time.Millisecond}}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx, fetch, com, 2) }()

	waitUntil(t, "the poison records to be committed past", func() bool { return com.offset(topics.Input, 0) == 3 })
	dlq := pub.published()
	if len(dlq) != len(poison) {
		t.Fatalf("published %d messages, want the %d records dead-lettered", len(dlq), len(poison))
	}
	for i, m := range dlq {
		h := func(k string) string { v, _ := kafkaio.HeaderValue(m.Headers, k); return v }
		if m.Topic != topics.DLQ || string(m.Key) != string(poison[i].Key) || string(m.Value) != string(poison[i].Value) {
			t.Errorf("DLQ message %d = %s %q %q, want the original record on %s", i, m.Topic, m.Key, m.Value, topics.DLQ)
		}
		if got := h(HeaderDLQReason); got != string(events.ReasonRetriesExhausted) {
			t.Errorf("DLQ message %d: dlq-reason %q", i, got)
		}
		if n, err := strconv.Atoi(h(HeaderAttempts)); err != nil || n <= 1 {
			t.Errorf("DLQ message %d: attempts %q, want more than 1", i, h(HeaderAttempts))
		}
		if got := h(HeaderDLQError); !strings.Contains(got, "disk is full") {
			t.Errorf("DLQ message %d: dlq-error %q does not carry the cause", i, got)
		}
		if h(HeaderSourceTopic) != topics.Input || h(HeaderSourcePartition) != "0" || h(HeaderSourceOffset) != strconv.Itoa(i) {
			t.Errorf("DLQ message %d: source %s/%s@%s", i, h(HeaderSourceTopic), h(HeaderSourcePartition), h(HeaderSourceOffset))
		}
	}
	if got := store.AppliedOffset(topics.Input, 0); got != 3 {
		t.Errorf("applied offset %d after dead-lettering, want 3", got)
	}
	if v := store.Get(mv.Key()).VersionMap[table]["p1"].Version; v != 5 {
		t.Errorf("a dead-lettered record changed the state: version %d", v)
	}
	if wobs.retries.Load() == 0 {
		t.Error("no retry was counted before dead-lettering")
	}

	// The store recovers: the next record is applied and journaled.
	store.SetCommitHook(nil)
	fetch <- compaction(3, 5, 6)
	waitUntil(t, "the next record to be committed", func() bool { return com.offset(topics.Input, 0) == 4 })
	stop()
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Fatalf("Run: %v, want ErrStopped", err)
	}
	if v := store.Get(mv.Key()).VersionMap[table]["p1"].Version; v != 6 {
		t.Errorf("version %d after the store recovered, want 6", v)
	}
	last := pub.published()
	if len(last) != len(poison)+1 || last[len(poison)].Topic != topics.EditLog {
		t.Fatalf("published %d messages; want the edit-log record of the recovered batch last", len(last))
	}
	rec, err := editlog.Decode(last[len(poison)].Value)
	if err != nil || rec.JournalID != 2 || rec.Epoch != 2 {
		t.Errorf("edit-log record %+v (err %v), want journal id 2 of epoch 2", rec, err)
	}
}
