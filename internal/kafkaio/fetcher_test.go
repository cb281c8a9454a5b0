package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/embedded"
)

// fillPartitions publishes parts*n messages to topic over 40 keys, so that
// every partition gets some.
func fillPartitions(t *testing.T, ctx context.Context, addr, topic string, parts, n int) {
	t.Helper()
	p := newTestProducer(t, addr)
	msgs := make([]Message, 0, parts*n)
	for i := 0; i < parts*n; i++ {
		msgs = append(msgs, Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%40), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestFetcher_preserves_order_and_starts_at_offsets(t *testing.T) {
	addr := startBroker(t, "fetch:3")
	ctx := testCtx(t, 20*time.Second)
	admin := newTestAdmin(t, addr)
	fillPartitions(t, ctx, addr, "fetch", 3, 100)
	offs, err := admin.ListOffsets(ctx, "fetch")
	if err != nil {
		t.Fatal(err)
	}
	start := map[int]int64{0: 5, 1: OffsetFirst, 2: 3}
	want := 0
	for p, po := range offs {
		if po.Last < 6 {
			t.Fatalf("partition %d has only %d records", p, po.Last)
		}
		s := start[p]
		if s < 0 {
			s = po.First
		}
		want += int(po.Last - s)
	}

	f, err := NewFetcher(ctx, FetcherConfig{Brokers: []string{addr}, QueueCapacity: 16}, map[string][]Assignment{
		"fetch": {{Partition: 0, Offset: start[0]}, {Partition: 1, Offset: start[1]}, {Partition: 2, Offset: start[2]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	next := map[int]int64{0: 5, 1: 0, 2: 3}
	for got := 0; got < want; {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch after %d/%d: %v", got, want, err)
		}
		batch := []Message{m}
		for len(batch) < 50 { // fill a batch without blocking
			m, ok := f.TryFetch()
			if !ok {
				break
			}
			batch = append(batch, m)
		}
		for _, m := range batch {
			if m.Topic != "fetch" {
				t.Fatalf("topic %q", m.Topic)
			}
			if m.Offset != next[m.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
			}
			next[m.Partition]++
		}
		got += len(batch)
	}
	for p, po := range offs {
		if next[p] != po.Last {
			t.Errorf("partition %d read up to %d, high watermark %d", p, next[p], po.Last)
		}
	}
	if m, ok := f.TryFetch(); ok {
		t.Errorf("extra message %+v", m)
	}

	// Nothing more: Fetch blocks until its ctx ends.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := f.Fetch(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("fetch on an idle fetcher: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := f.Fetch(ctx); !errors.Is(err, ErrFetcherClosed) {
		t.Errorf("fetch after close: %v, want ErrFetcherClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestFetcher_stops_with_its_context(t *testing.T) {
	addr := startBroker(t, "stop:1")
	ctx := testCtx(t, 10*time.Second)
	fctx, cancel := context.WithCancel(ctx)
	f, err := NewFetcher(fctx, FetcherConfig{Brokers: []string{addr}}, map[string][]Assignment{"stop": {{Partition: 0, Offset: OffsetFirst}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cancel() // e.g. the generation ended
	if _, err := f.Fetch(ctx); !errors.Is(err, ErrFetcherClosed) {
		t.Errorf("fetch after the fetcher's ctx ended: %v, want ErrFetcherClosed", err)
	}
}

func TestTopicTail_reads_live_records_from_given_offsets(t *testing.T) {
	addr := startBroker(t, "tail:2")
	ctx := testCtx(t, 20*time.Second)
	admin := newTestAdmin(t, addr)
	p := newTestProducer(t, addr)
	publishN(t, ctx, p, "tail", 40, 10)
	offs, err := admin.ListOffsets(ctx, "tail")
	if err != nil {
		t.Fatal(err)
	}
	if offs[0].Last < 2 || offs[1].Last < 1 {
		t.Fatalf("unbalanced fill: %v", offs)
	}

	// Partition 0 from offset 2; partition 1 missing: from the start.
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}}, "tail", map[int]int64{0: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := map[int]int64{0: 2, 1: 0}
	want := int(offs[0].Last-2) + int(offs[1].Last)
	for i := 0; i < want; i++ {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != next[m.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
	}
	// Records published later arrive too.
	publishN(t, ctx, p, "tail", 10, 10)
	for i := 0; i < 10; i++ {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != next[m.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
	}

	if _, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}}, "nope", nil); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("tail of a missing topic: %v, want ErrUnknownTopic", err)
	}
}

// publishTo writes values to one partition of topic (keys chosen to land
// there with the Java partitioner).
func publishTo(t *testing.T, ctx context.Context, p *Producer, topic string, partition, partitions int, vals ...string) {
	t.Helper()
	key := []byte(nil)
	for i := 0; ; i++ {
		key = fmt.Appendf(nil, "key-%d", i)
		if javaPartition(key, partitions) == partition {
			break
		}
	}
	msgs := make([]Message, len(vals))
	for i, v := range vals {
		msgs[i] = Message{Topic: topic, Key: key, Value: []byte(v)}
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestFetcher_offsetBelowLogStart_withReset_deliversOneErrorAndContinuesAtLogStart(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	admin := newTestAdmin(t, brokers[0])
	p := newTestProducer(t, brokers[0])
	publishTo(t, ctx, p, topic, 0, 1, seq("v", 0, 10)...)
	if low, err := admin.DeleteRecords(ctx, topic, 0, 6); err != nil || low != 6 {
		t.Fatalf("delete records below 6: low watermark %d, %v", low, err)
	}

	f, err := NewFetcher(ctx, FetcherConfig{Brokers: brokers, ResetBelowLogStart: true},
		map[string][]Assignment{topic: {{Partition: 0, Offset: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Fetch(ctx)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("first item: %v, want an *OffsetOutOfRangeError", err)
	}
	if *oor != (OffsetOutOfRangeError{Topic: topic, Partition: 0, Offset: 2, LogStart: 6, HighWatermark: 10}) || !oor.BelowLogStart() {
		t.Errorf("error %+v", *oor)
	}
	if IsTransient(err) {
		t.Errorf("IsTransient(%v) = true", err)
	}
	t.Logf("delivered: %v", err)
	got := fetchFor(t, ctx, f, 500*time.Millisecond)
	if v := values(got); !slices.Equal(v, seq("v", 6, 10)) || got[0].Offset != 6 {
		t.Errorf("after the error: %s, want v6..v9 from offset 6", describe(map[int][]Message{0: got}))
	}
}

func TestFetcher_offsetBelowLogStart_withoutReset_deliversTheErrorAndStopsThePartition(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 2, nil)
	admin := newTestAdmin(t, brokers[0])
	p := newTestProducer(t, brokers[0])
	publishTo(t, ctx, p, topic, 0, 2, seq("v", 0, 5)...)
	if _, err := admin.DeleteRecords(ctx, topic, 0, 3); err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(ctx, FetcherConfig{Brokers: brokers, MaxWait: 100 * time.Millisecond},
		map[string][]Assignment{topic: {{Partition: 0, Offset: 1}, {Partition: 1, Offset: OffsetFirst}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Fetch(ctx)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Offset != 1 || oor.LogStart != 3 || oor.HighWatermark != 5 {
		t.Fatalf("first item: %v, want offset 1 below log start 3", err)
	}
	// Partition 0 is stopped; partition 1 goes on.
	publishTo(t, ctx, p, topic, 0, 2, "late0")
	publishTo(t, ctx, p, topic, 1, 2, "p1")
	got := fetchFor(t, ctx, f, time.Second)
	if v := values(got); !slices.Equal(v, []string{"p1"}) || got[0].Partition != 1 {
		t.Errorf("after the error: %v, want only p1 from partition 1", describe(map[int][]Message{-1: got}))
	}
}

func TestFetcher_offsetAboveHighWatermark_deliversOneErrorAndStopsThePartition(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 2, nil)
	p := newTestProducer(t, brokers[0])
	publishTo(t, ctx, p, topic, 0, 2, seq("v", 0, 3)...)
	var logs syncBuffer
	f, err := NewFetcher(ctx, FetcherConfig{Brokers: brokers, MaxWait: 100 * time.Millisecond,
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)},
		map[string][]Assignment{topic: {{Partition: 0, Offset: 50}, {Partition: 1, Offset: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Fetch(ctx)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Offset != 50 || oor.HighWatermark != 3 || oor.BelowLogStart() {
		t.Fatalf("first item: %v, want offset 50 above the high watermark 3", err)
	}
	t.Logf("delivered: %v", err)
	publishTo(t, ctx, p, topic, 1, 2, "p1")
	got := fetchFor(t, ctx, f, time.Second) // 10 MaxWaits: no second error
	if v := values(got); !slices.Equal(v, []string{"p1"}) || len(got) != 1 {
		t.Errorf("after the error: %v, want only p1", describe(map[int][]Message{-1: got}))
	}
	if s := logs.String(); strings.Contains(s, `"level":"warn"`) || strings.Contains(s, `"level":"error"`) {
		t.Errorf("warnings logged:\n%s", s)
	}
}

func TestFetcher_idlePartitions_deliverNothingAndLogNothing(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 2, nil)
	p := newTestProducer(t, brokers[0])
	publishTo(t, ctx, p, topic, 0, 2, "only")
	var logs syncBuffer
	const maxWait = 200 * time.Millisecond
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: brokers, MaxWait: maxWait,
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)}, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m, err := f.Fetch(ctx); err != nil || string(m.Value) != "only" {
		t.Fatalf("first fetch: %+v, %v", m, err)
	}
	start := time.Now()
	if got := fetchFor(t, ctx, f, 8*maxWait); len(got) != 0 {
		t.Errorf("idle partitions delivered %s", describe(map[int][]Message{-1: got}))
	}
	t.Logf("idle for %v", time.Since(start))
	if s := logs.String(); s != "" {
		t.Errorf("an idle fetcher logged:\n%s", s)
	}
}

// A broker restart is one episode: retried inside the fetcher, nothing
// delivered but the records, one warning and one recovery line.
func TestFetcher_brokerRestart_isRetriedAndLoggedOnce(t *testing.T) {
	addr, stop, start := restartableBroker(t, embedded.Topic{Name: "restart", Partitions: 2})
	ctx := testCtx(t, 30*time.Second)
	p := newTestProducer(t, addr)
	var logs syncBuffer
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}, MaxWait: 100 * time.Millisecond,
		Logger: zerolog.New(&logs).Level(zerolog.InfoLevel)}, "restart", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	publishTo(t, ctx, p, "restart", 0, 2, "before")
	if m, err := f.Fetch(ctx); err != nil || string(m.Value) != "before" {
		t.Fatalf("fetch: %+v, %v", m, err)
	}
	stop()
	time.Sleep(1500 * time.Millisecond) // the outage itself
	start()
	publishTo(t, ctx, p, "restart", 1, 2, "after")
	m, err := f.Fetch(ctx)
	if err != nil || string(m.Value) != "after" {
		t.Fatalf("fetch after the restart: %+v, %v", m, err)
	}
	waitFor(t, 5*time.Second, "the recovery line", func() bool { return strings.Contains(logs.String(), "recovered") })
	s := logs.String()
	if n := strings.Count(s, `"level":"warn"`); n != 1 {
		t.Errorf("%d warnings for one outage, want 1:\n%s", n, s)
	}
	t.Logf("logs:\n%s", s)
}

func TestFetcher_decode_runsOnTheFetchGoroutineAndTravelsWithTheMessage(t *testing.T) {
	addr := startBroker(t, "decode:2")
	ctx := testCtx(t, 20*time.Second)
	fillPartitions(t, ctx, addr, "decode", 2, 20)
	var calls atomic.Int64
	cfg := FetcherConfig{Brokers: []string{addr}, Decode: func(topic string, value []byte) any {
		calls.Add(1)
		return topic + ":" + string(value) // a copy: Decode must not keep value
	}}
	f, err := NewFetcher(ctx, cfg, map[string][]Assignment{"decode": {{Partition: 0, Offset: OffsetFirst}, {Partition: 1, Offset: OffsetFirst}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 20 {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Decoded, "decode:"+string(m.Value); got != want {
			t.Fatalf("offset %d of partition %d: Decoded %v, want %q", m.Offset, m.Partition, got, want)
		}
	}
	if calls.Load() < 20 {
		t.Errorf("Decode called %d times for 20 records", calls.Load())
	}
}
