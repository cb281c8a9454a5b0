package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/retry"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

var topics = Topics{Input: "in", Catalog: "cat", EditLog: "el", DLQ: "dlq"}

const (
	table = int64(20001)
	t0    = int64(1732300000000)
)

var fastRetry = retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond, Multiplier: 2, MaxElapsedTime: 2 * time.Second}

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

// recordingPublisher keeps what it was asked to publish and gives each
// message an offset; fail, when set, refuses publishes.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []kafkaio.Message
	fail error
}

func (p *recordingPublisher) Publish(_ context.Context, msgs ...kafkaio.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	for i := range msgs {
		msgs[i].Offset = int64(len(p.msgs))
		p.msgs = append(p.msgs, msgs[i])
	}
	return nil
}

func (p *recordingPublisher) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
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

// reports collects batch reports.
type reports struct {
	mu sync.Mutex
	rs []*Report
}

func (r *reports) OnBatch(rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rs = append(r.rs, rep)
}

func (r *reports) all() []*Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Report(nil), r.rs...)
}

// eventually polls cond until it returns nil, failing with its last error
// after 10s.
func eventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 10s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ordersMV(parts int) *mvstate.MV {
	m := &mvstate.MV{DBID: 10001, DBName: "sales", MVID: 50001, MVName: "mv", Active: true, LastRefreshTime: t0,
		BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 10001, TableID: table, DBName: "sales", TableName: "orders"}},
		VersionMap: mvstate.VersionMap{table: {}}}
	for i := 0; i < parts; i++ {
		m.VersionMap[table][pname(i)] = mvstate.NewBasePartitionInfo(int64(30000+i), 5, t0)
	}
	return m
}

func pname(i int) string { return fmt.Sprintf("p%05d", i) }

func encode(t *testing.T, topic string, offset int64, ev events.Event) kafkaio.Message {
	t.Helper()
	b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return kafkaio.Message{Topic: topic, Partition: 0, Offset: offset, Key: []byte(events.Key(ev)), Value: b}
}

// compaction moves partitions [from, from+n) of the orders table from
// version last to next.
func compaction(t *testing.T, offset int64, from, n int, last, next int64) kafkaio.Message {
	t.Helper()
	ev := &events.PartitionVersionChanged{EventID: "c" + strconv.FormatInt(offset, 10), DBID: 10001, TableID: table, TableType: "cloud_native"}
	for i := from; i < from+n; i++ {
		ev.Partitions = append(ev.Partitions, events.PartitionRepair{PartitionID: int64(30000 + i), PartitionName: pname(i),
			LastVersion: last, NewVersion: next, NewVersionTime: t0 + next})
	}
	return encode(t, topics.Input, offset, ev)
}

func upsert(t *testing.T, offset int64, m *mvstate.MV) kafkaio.Message {
	t.Helper()
	return encode(t, topics.Catalog, offset, &events.MVUpserted{EventID: "u" + strconv.FormatInt(offset, 10), MV: m})
}

// faultyFile fails writes while its fault is set.
type faultyFile struct {
	store.File
	mu    *sync.Mutex
	fault *error
}

func (f faultyFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	err := *f.fault
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

// diskStore opens a store on disk whose writes fail while *fault is set.
func diskStore(t *testing.T, mu *sync.Mutex, fault *error) *store.Store {
	t.Helper()
	d, err := store.LockDir(t.TempDir(), store.Options{NoSync: true,
		WrapFile: func(f store.File) store.File { return faultyFile{f, mu, fault} }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background(), false); d.Close() })
	return st
}

type runningWriter struct {
	w    *Writer
	stop context.CancelFunc
	done chan error
}

func startWriter(t *testing.T, w *Writer, f Fetcher, c Committer, epoch int64) *runningWriter {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	r := &runningWriter{w: w, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx, f, c, epoch) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *runningWriter) shutdown(t *testing.T) {
	r.stop()
	select {
	case err := <-r.done:
		if err != nil && !errors.Is(err, ErrStopped) {
			t.Errorf("Run: %v, want ErrStopped", err)
		}
		r.done <- ErrStopped
	case <-time.After(10 * time.Second):
		t.Error("Run did not stop within 10s")
	}
}

func newWriter(st *store.Store, pub Publisher, hooks ...any) *Writer {
	return &Writer{Proc: &Processor{Store: st, Topics: topics}, Pub: pub, Log: zerolog.Nop(), Hooks: hooks,
		Cfg: WriterConfig{MaxEvents: 100, MaxWait: 5 * time.Millisecond, FinishTimeout: 5 * time.Second, Retry: fastRetry}}
}

func header(m kafkaio.Message, k string) string {
	v, _ := kafkaio.HeaderValue(m.Headers, k)
	return v
}
