package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestProducer_settings(t *testing.T) {
	p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, BatchTimeout: 3 * time.Millisecond, Compression: "lz4"})
	if err != nil {
		t.Fatal(err)
	}
	w := p.writer()
	if w.RequiredAcks != kafka.RequireAll {
		t.Errorf("RequiredAcks = %v, want RequireAll", w.RequiredAcks)
	}
	if _, ok := w.Balancer.(*kafka.Murmur2Balancer); !ok {
		t.Errorf("Balancer = %T, want *kafka.Murmur2Balancer (the Java client's partitioner)", w.Balancer)
	}
	if w.BatchTimeout != 3*time.Millisecond {
		t.Errorf("BatchTimeout = %v, want 3ms", w.BatchTimeout)
	}
	if w.Async {
		t.Error("Async = true, want false")
	}
	if w.AllowAutoTopicCreation {
		t.Error("AllowAutoTopicCreation = true, want false")
	}
	if w.Topic != "" {
		t.Errorf("Topic = %q, want empty (topic per message)", w.Topic)
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 5 {
		t.Errorf("MaxAttempts = %d, want a small number", w.MaxAttempts)
	}
	if w.Transport == nil || w.Transport == kafka.DefaultTransport {
		t.Error("writer must have its own Transport")
	}
	if w.Compression != kafka.Lz4 {
		t.Errorf("Compression = %v, want lz4", w.Compression)
	}

	// Defaults: never kafka-go's 1s batch timeout.
	p2, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p2.writer().BatchTimeout; got != DefaultBatchTimeout {
		t.Errorf("default BatchTimeout = %v, want %v", got, DefaultBatchTimeout)
	}
	if got := p2.writer().BatchSize; got != DefaultBatchSize {
		t.Errorf("default BatchSize = %v, want %v", got, DefaultBatchSize)
	}

	if _, err := NewProducer(ProducerConfig{Brokers: []string{"x:1"}, Compression: "brotli"}); err == nil {
		t.Error("unknown compression accepted")
	}
	if _, err := NewProducer(ProducerConfig{}); err == nil {
		t.Error("no brokers accepted")
	}
}

func TestProducer_keyed_messages_land_on_one_partition(t *testing.T) {
	addr := startBroker(t, "keyed:4")
	ctx := testCtx(t, 20*time.Second)
	p := newTestProducer(t, addr)

	const n, keys = 200, 7
	start := time.Now()
	publishN(t, ctx, p, "keyed", n, keys)
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("a synchronous publish took %v: batch timeout not applied?", d)
	}

	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}}, "keyed", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	keyPart := map[string]int{}
	lastVal := map[string]int{}
	parts := map[int]bool{}
	for i := 0; i < n; i++ {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		k := string(m.Key)
		if p, ok := keyPart[k]; ok && p != m.Partition {
			t.Fatalf("key %s on partitions %d and %d", k, p, m.Partition)
		}
		keyPart[k] = m.Partition
		parts[m.Partition] = true
		v, _ := strconv.Atoi(string(m.Value))
		if prev, ok := lastVal[k]; ok && v <= prev {
			t.Fatalf("key %s: value %d after %d: order lost", k, v, prev)
		}
		lastVal[k] = v
	}
	if len(keyPart) != keys {
		t.Fatalf("saw %d keys, want %d", len(keyPart), keys)
	}
	if len(parts) < 2 {
		t.Errorf("%d keys all on %d partition(s): not hashed?", keys, len(parts))
	}
	// The partition is the Java client's choice (murmur2).
	for k, got := range keyPart {
		if want := javaPartition([]byte(k), 4); want != got {
			t.Errorf("key %s on partition %d, the Java partitioner says %d", k, got, want)
		}
	}
}

func TestProducer_headers_and_time_round_trip(t *testing.T) {
	addr := startBroker(t, "hdr:1")
	ctx := testCtx(t, 10*time.Second)
	p := newTestProducer(t, addr)
	at := time.UnixMilli(1732400000123)
	err := p.Publish(ctx, Message{
		Topic: "hdr", Key: []byte("k"), Value: []byte("v"), Time: at,
		Headers: []Header{{Key: "journal-id", Value: []byte("42")}, {Key: "x", Value: nil}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}}, "hdr", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := f.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := HeaderValue(m.Headers, "journal-id"); !ok || v != "42" {
		t.Errorf("journal-id header = %q, %v", v, ok)
	}
	if _, ok := HeaderValue(m.Headers, "missing"); ok {
		t.Error("missing header found")
	}
	if !m.Time.Equal(at) {
		t.Errorf("time = %v, want %v", m.Time, at)
	}
	if m.Topic != "hdr" || m.Offset != 0 || string(m.Key) != "k" || string(m.Value) != "v" {
		t.Errorf("unexpected message %+v", m)
	}
}

func TestProducer_unknown_topic_is_permanent(t *testing.T) {
	addr := startBroker(t, "exists:1")
	ctx := testCtx(t, 10*time.Second)
	p := newTestProducer(t, addr)
	err := p.Publish(ctx, Message{Topic: "does-not-exist", Value: []byte("x")})
	if err == nil {
		t.Fatal("publish to a missing topic succeeded")
	}
	t.Logf("error: %v", err)
	if IsTransient(err) {
		t.Errorf("IsTransient(%v) = true, want false", err)
	}
	if err := p.Publish(ctx, Message{Value: []byte("x")}); err == nil {
		t.Error("message without topic accepted")
	}
}

func TestProducer_message_too_large_is_permanent(t *testing.T) {
	addr := startBroker(t, "big:1")
	ctx := testCtx(t, 10*time.Second)
	p := newTestProducer(t, addr)
	err := p.Publish(ctx, Message{Topic: "big", Value: make([]byte, 2<<20)})
	if err == nil {
		t.Fatal("2 MiB message accepted")
	}
	if IsTransient(err) {
		t.Errorf("IsTransient(%v) = true, want false", err)
	}
}

func TestProducer_broker_down_is_transient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p, err := NewProducer(ProducerConfig{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = p.Publish(ctx, Message{Topic: "t", Value: []byte("x")})
	if err == nil {
		t.Fatal("publish without a broker succeeded")
	}
	t.Logf("error: %v", err)
	if !IsTransient(err) {
		t.Errorf("IsTransient(%v) = false, want true", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	_ = p.Close(cctx)
	if err := p.Publish(ctx, Message{Topic: "t"}); err == nil || IsTransient(err) {
		t.Errorf("publish after close: %v (transient=%v)", err, IsTransient(err))
	}
}

func TestIsTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("kafka.(*Client).Produce: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{syscall.ECONNRESET, true},
		{kafka.LeaderNotAvailable, true},
		{kafka.NotLeaderForPartition, true},
		{kafka.RequestTimedOut, true},
		{kafka.BrokerNotAvailable, true},
		{kafka.NotEnoughReplicas, true},
		{kafka.UnknownTopicOrPartition, false},
		{kafka.MessageSizeTooLarge, false},
		{kafka.MessageTooLargeError{}, false},
		{kafka.IllegalGeneration, false},
		{fmt.Errorf("x: %w", ErrFenced), false},
		{io.ErrClosedPipe, false},
		{kafka.WriteErrors{nil, kafka.LeaderNotAvailable, io.ErrUnexpectedEOF}, true},
		{kafka.WriteErrors{kafka.LeaderNotAvailable, kafka.MessageSizeTooLarge}, false},
		{fmt.Errorf("publish: %w", kafka.WriteErrors{kafka.RequestTimedOut}), true},
		{kafka.WriteErrors{nil, nil}, false},
	}
	for _, c := range cases {
		if got := IsTransient(c.err); got != c.want {
			t.Errorf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
