package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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
