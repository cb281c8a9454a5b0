package kafkaio

import (
	"bytes"
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
	"github.com/segmentio/kafka-go/protocol"
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

func TestProducer_Publish_setsPartitionAndOffsetOfEachMessage(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 3, nil)
	p := newTestProducer(t, brokers[0])
	var msgs []Message
	for i := range 60 {
		msgs = append(msgs, Message{Topic: topic, Partition: -7, Offset: -7, Key: fmt.Appendf(nil, "k%d", i%9), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	next := map[int]int64{}
	for i, m := range msgs {
		if want := javaPartition(m.Key, 3); m.Partition != want {
			t.Errorf("message %d: partition %d, want %d", i, m.Partition, want)
		}
		if m.Offset != next[m.Partition] { // in order, from 0, per partition
			t.Errorf("message %d: offset %d on partition %d, want %d", i, m.Offset, m.Partition, next[m.Partition])
		}
		next[m.Partition] = m.Offset + 1
	}
	// The fetcher finds each value where Publish said it is.
	got := readToEnd(t, ctx, FetcherConfig{Brokers: brokers}, topic)
	for _, m := range msgs {
		ms := got[m.Partition]
		if int(m.Offset) >= len(ms) || !bytes.Equal(ms[m.Offset].Value, m.Value) {
			t.Errorf("value %s not at %d/%d", m.Value, m.Partition, m.Offset)
		}
	}
	// A second publish continues the offsets.
	more := []Message{{Topic: topic, Key: msgs[0].Key, Value: []byte("more")}}
	if err := p.Publish(ctx, more...); err != nil {
		t.Fatal(err)
	}
	if more[0].Partition != msgs[0].Partition || more[0].Offset != next[msgs[0].Partition] {
		t.Errorf("second publish at %d/%d, want %d/%d", more[0].Partition, more[0].Offset, msgs[0].Partition, next[msgs[0].Partition])
	}
}

// messageOfSize returns a message to topic whose RecordSize is exactly size.
func messageOfSize(t *testing.T, topic string, size int) Message {
	t.Helper()
	m := Message{Topic: topic, Key: []byte("key"), Headers: []Header{{Key: "h", Value: []byte("v")}}}
	for n := max(size-100, 0); n < size; n++ {
		m.Value = bytes.Repeat([]byte("x"), n)
		if RecordSize(m) == size {
			return m
		}
	}
	t.Fatalf("no message of size %d", size)
	return m
}

func TestRecordSize_isWhatTheBrokerCountsAgainstMaxMessageBytes(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	const limit = 2000
	topic := newTopic(t, ctx, brokers, 1, map[string]string{"max.message.bytes": fmt.Sprint(limit)})
	p := newTestProducer(t, brokers[0]) // MaxMessageBytes 1 MiB: the broker decides
	fits := messageOfSize(t, topic, limit)
	if err := p.Publish(ctx, fits); err != nil {
		t.Fatalf("a record of RecordSize %d = max.message.bytes refused: %v", limit, err)
	}
	over := messageOfSize(t, topic, limit+1)
	err := p.Publish(ctx, over)
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a record of RecordSize %d > max.message.bytes: %v, want ErrMessageTooLarge", limit+1, err)
	}
	t.Logf("refused: %v", err)

	// The small cases, against kafka-go's own encoding of a one-record batch.
	for _, m := range []Message{
		{},
		{Key: []byte{}, Value: []byte{}},
		{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 200)},
		{Value: bytes.Repeat([]byte("v"), 70000), Headers: []Header{{Key: "a", Value: nil}, {Key: "bb", Value: []byte("x")}}},
	} {
		if got, want := RecordSize(m), encodedBatchSize(t, m); got != want {
			t.Errorf("RecordSize(key %d, value %d, %d headers) = %d, kafka-go encodes %d bytes", len(m.Key), len(m.Value), len(m.Headers), got, want)
		}
	}
}

// encodedBatchSize is the size of the record batch kafka-go's protocol
// package writes for m alone.
func encodedBatchSize(t *testing.T, m Message) int {
	t.Helper()
	rec := protocol.Record{Time: time.UnixMilli(1700000000000)}
	if m.Key != nil {
		rec.Key = protocol.NewBytes(m.Key)
	}
	if m.Value != nil {
		rec.Value = protocol.NewBytes(m.Value)
	}
	for _, h := range m.Headers {
		rec.Headers = append(rec.Headers, protocol.Header{Key: h.Key, Value: h.Value})
	}
	rs := protocol.RecordSet{Version: 2, Records: protocol.NewRecordReader(rec)}
	var buf bytes.Buffer
	if _, err := rs.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Len() - 4 // the record set's own size prefix
}

func TestProducer_messageOverTopicLimit_isRefusedAsTooLarge(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 1, map[string]string{"max.message.bytes": "1000"})
	p := newTestProducer(t, brokers[0])
	msgs := []Message{
		{Topic: topic, Key: []byte("a"), Value: []byte("small")},
		{Topic: topic, Key: []byte("b"), Value: bytes.Repeat([]byte("x"), 1500)},
		{Topic: topic, Key: []byte("c"), Value: []byte("small")},
	}
	err := p.Publish(ctx, msgs...)
	var tooLarge *MessageTooLargeError
	if !errors.Is(err, ErrMessageTooLarge) || !errors.As(err, &tooLarge) {
		t.Fatalf("publish: %v, want a *MessageTooLargeError", err)
	}
	t.Logf("error: %v", err)
	want := MessageTooLargeError{Topic: topic, Index: 1, Size: RecordSize(msgs[1]), Limit: 1000}
	if tooLarge.Topic != want.Topic || tooLarge.Index != want.Index || tooLarge.Size != want.Size || tooLarge.Limit != want.Limit {
		t.Errorf("error %+v, want %+v", *tooLarge, want)
	}
	if IsTransient(err) {
		t.Errorf("IsTransient = true")
	}
	if msgs[0].Offset != 0 || msgs[0].Partition != 0 {
		t.Errorf("a failed publish changed the messages: %+v", msgs[0])
	}

	// Two messages over the limit in the refused batch: neither is named.
	msgs = append(msgs, Message{Topic: topic, Key: []byte("d"), Value: bytes.Repeat([]byte("y"), 1800)})
	err = p.Publish(ctx, msgs...)
	if !errors.As(err, &tooLarge) || tooLarge.Index != -1 || tooLarge.Size != RecordSize(msgs[3]) || tooLarge.Limit != 1000 {
		t.Errorf("two messages over the limit: %v (%+v), want Index -1 and the largest size", err, tooLarge)
	}
	t.Logf("error: %v", err)
}

// kafka-go refuses a message larger than the Writer's BatchBytes itself;
// Publish checks sizes first so that this cannot happen with its settings,
// but the refusal is still reported as ErrMessageTooLarge.
func TestProducer_refusalByKafkaGo_isMessageTooLarge(t *testing.T) {
	p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	p.writer().BatchBytes = 100
	ctx := testCtx(t, 5*time.Second)
	err = p.Publish(ctx, Message{Topic: "t", Value: []byte("fits")}, Message{Topic: "t", Value: bytes.Repeat([]byte("x"), 200)})
	var tooLarge *MessageTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Index != 1 || tooLarge.Size != RecordSize(Message{Value: bytes.Repeat([]byte("x"), 200)}) || IsTransient(err) {
		t.Fatalf("publish: %v (%+v), want message 1 too large", err, tooLarge)
	}
	if !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Errorf("the kafka-go error is not kept: %v", err)
	}
}

func TestProducer_messageOverMaxMessageBytes_isRefusedBeforeSending(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	topic2 := newTopic(t, ctx, brokers, 1, map[string]string{"max.message.bytes": "1000"})
	p, err := NewProducer(ProducerConfig{Brokers: brokers, MaxMessageBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if got := p.writer().BatchBytes; got > 1000-recordBatchOverhead+legacySizeSlack {
		t.Errorf("BatchBytes %d lets batches pass MaxMessageBytes", got)
	}
	// The largest message that fits is sent (kafka-go's own estimate does
	// not refuse it).
	if err := p.Publish(ctx, messageOfSize(t, topic, 1000)); err != nil {
		t.Fatalf("a message of exactly MaxMessageBytes: %v", err)
	}
	big := messageOfSize(t, topic, 1001)
	err = p.Publish(ctx, Message{Topic: topic, Value: []byte("ok")}, big)
	var tooLarge *MessageTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Index != 1 || tooLarge.Size != 1001 || tooLarge.Limit != 1000 || IsTransient(err) {
		t.Fatalf("publish: %v (%+v), want message 1 of 1001 bytes over the limit 1000", err, tooLarge)
	}
	admin := newTestAdmin(t, brokers[0])
	offs, err := admin.ListOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if offs[0].Last != 1 {
		t.Errorf("high watermark %d: the refused call sent something", offs[0].Last)
	}
	// Many messages to one partition stay in batches the broker accepts.
	var many []Message
	for range 20 {
		many = append(many, messageOfSize(t, topic, 300))
	}
	for i := range many {
		many[i].Topic = topic2
	}
	if err := p.Publish(ctx, many...); err != nil {
		t.Errorf("20 messages of 300 bytes with MaxMessageBytes = max.message.bytes = 1000: %v", err)
	}
	if _, err := NewProducer(ProducerConfig{Brokers: brokers, MaxMessageBytes: 10}); err == nil {
		t.Error("MaxMessageBytes 10 accepted")
	}
}
