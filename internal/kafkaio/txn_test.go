package kafkaio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactional input: a franz-go (kgo) transactional producer writes, the
// Fetcher reads with read_committed (the default). Against the embedded
// broker, or KAFKA_BROKERS.

// txnClient is a transactional producer that writes to explicit partitions.
func txnClient(t *testing.T, brokers []string, name string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID(fmt.Sprintf("%s-%x", name, rand.Uint32())),
		kgo.TransactionTimeout(60*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), // batch sizes as written
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func begin(t *testing.T, cl *kgo.Client) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin transaction: %v", err)
	}
}

// produce writes values to topic/partition in one request (one batch).
func produce(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, partition int32, values ...string) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Key: []byte("k"), Value: []byte(v)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %v: %v", values, err)
	}
}

func end(t *testing.T, ctx context.Context, cl *kgo.Client, how kgo.TransactionEndTry) {
	t.Helper()
	if err := cl.EndTransaction(ctx, how); err != nil {
		t.Fatalf("end transaction (commit=%v): %v", how, err)
	}
}

// abortEmptyTransaction writes an abort marker and nothing else to
// topic/partition: a transaction that adds the partition and aborts without
// producing (raw InitProducerID, AddPartitionsToTxn and EndTxn requests).
func abortEmptyTransaction(t *testing.T, ctx context.Context, brokers []string, topic string, partition int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	id := fmt.Sprintf("empty-%x", rand.Uint32())
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr(id)
	init.TransactionTimeoutMillis = 60000
	ir, err := init.RequestWith(ctx, cl)
	if err == nil && ir.ErrorCode != 0 {
		err = fmt.Errorf("error code %d", ir.ErrorCode)
	}
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{partition}
	add.Topics = append(add.Topics, at)
	ar, err := add.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("add partitions to txn: %v", err)
	}
	for _, rt := range ar.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("add partitions to txn: %s/%d: error code %d", rt.Topic, rp.Partition, rp.ErrorCode)
			}
		}
	}
	et := kmsg.NewPtrEndTxnRequest()
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = id, ir.ProducerID, ir.ProducerEpoch, false
	er, err := et.RequestWith(ctx, cl)
	if err == nil && er.ErrorCode != 0 {
		err = fmt.Errorf("error code %d", er.ErrorCode)
	}
	if err != nil {
		t.Fatalf("end txn: %v", err)
	}
}

// readToEnd reads topic's partitions from the start with cfg until every
// partition's position (the offset after the last message, placeholders
// included) is at its high watermark and nothing more comes; it returns the
// messages by partition. It fails if the position cannot reach the high
// watermark, which is what placeholders are for.
func readToEnd(t *testing.T, ctx context.Context, cfg FetcherConfig, topic string) map[int][]Message {
	t.Helper()
	admin := newTestAdmin(t, cfg.Brokers[0])
	f, err := NewTopicTail(ctx, cfg, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int][]Message{}
	pos := map[int]int64{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range fetchFor(t, ctx, f, 300*time.Millisecond) {
			if m.Topic != topic {
				t.Fatalf("message of topic %q", m.Topic)
			}
			if prev, ok := pos[m.Partition]; ok && m.Offset < prev {
				t.Fatalf("partition %d: offset %d after position %d", m.Partition, m.Offset, prev)
			}
			out[m.Partition] = append(out[m.Partition], m)
			pos[m.Partition] = m.Offset + 1
		}
		offs, err := admin.ListOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for p, po := range offs {
			if pos[p] != po.Last && !(po.Last == po.First && pos[p] == 0) {
				done = false
			}
		}
		if done {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("positions %v never reached the high watermarks %v; read: %s", pos, offs, describe(out))
		}
	}
}

// describe renders messages as "value@offset" and "skip@offset".
func describe(byPart map[int][]Message) string {
	var b strings.Builder
	for _, p := range slices.Sorted(func(yield func(int) bool) {
		for p := range byPart {
			if !yield(p) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "p%d:", p)
		for _, m := range byPart[p] {
			if m.Skip {
				fmt.Fprintf(&b, " skip@%d", m.Offset)
			} else {
				fmt.Fprintf(&b, " %s@%d", m.Value, m.Offset)
			}
		}
		b.WriteString(" ")
	}
	return b.String()
}

// values returns the values of the records (not placeholders) in order.
func values(ms []Message) []string {
	var out []string
	for _, m := range ms {
		if !m.Skip {
			out = append(out, string(m.Value))
		}
	}
	return out
}

// checkPlaceholders checks that placeholders carry nothing but their
// position and that runs are coalesced: no two placeholders in a row.
func checkPlaceholders(t *testing.T, ms []Message) {
	t.Helper()
	for i, m := range ms {
		if !m.Skip {
			continue
		}
		if m.Key != nil || m.Value != nil || m.Headers != nil || !m.Time.IsZero() {
			t.Errorf("placeholder at %d carries data: %+v", m.Offset, m)
		}
		if i > 0 && ms[i-1].Skip {
			t.Errorf("placeholders at %d and %d in a row: runs not coalesced", ms[i-1].Offset, m.Offset)
		}
	}
}

func TestFetcher_skipsAbortedTransaction_thenDeliversCommittedOne(t *testing.T) {
	brokers, external := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	cl := txnClient(t, brokers, "abort-commit")
	begin(t, cl)
	produce(t, ctx, cl, topic, 0, "a1", "a2")
	end(t, ctx, cl, kgo.TryAbort)
	begin(t, cl)
	produce(t, ctx, cl, topic, 0, "c1", "c2")
	end(t, ctx, cl, kgo.TryCommit)

	got := readToEnd(t, ctx, FetcherConfig{Brokers: brokers}, topic)
	t.Logf("read: %s", describe(got))
	if v := values(got[0]); !slices.Equal(v, []string{"c1", "c2"}) {
		t.Errorf("delivered %v, want [c1 c2]", v)
	}
	checkPlaceholders(t, got[0])
	if !external { // offsets are deterministic on the embedded broker
		if d := describe(got); d != "p0: skip@2 c1@3 c2@4 skip@5 " {
			t.Errorf("read %q, want the aborted run and its marker as one placeholder, then c1, c2 and the commit marker", d)
		}
	}

	// read_uncommitted sees the aborted records (the filter is what hides
	// them), never the markers.
	raw := readToEnd(t, ctx, FetcherConfig{Brokers: brokers, IsolationLevel: IsolationReadUncommitted}, topic)
	if v := values(raw[0]); !slices.Equal(v, []string{"a1", "a2", "c1", "c2"}) {
		t.Errorf("read_uncommitted delivered %v, want [a1 a2 c1 c2]", v)
	}
	checkPlaceholders(t, raw[0])
}

func TestFetcher_interleavedTransactions_dropOnlyTheAbortedProducer(t *testing.T) {
	brokers, external := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 2, nil)
	a := txnClient(t, brokers, "interleaved-a")
	b := txnClient(t, brokers, "interleaved-b")
	begin(t, a)
	begin(t, b)
	for i := range 3 {
		produce(t, ctx, a, topic, 0, fmt.Sprintf("a%d", i))
		produce(t, ctx, b, topic, 0, fmt.Sprintf("b%d", i))
		produce(t, ctx, b, topic, 1, fmt.Sprintf("b%d'", i))
	}
	end(t, ctx, a, kgo.TryAbort)
	// After a's abort marker, b is still open: its records after the marker
	// belong to it too.
	produce(t, ctx, b, topic, 0, "b3")
	end(t, ctx, b, kgo.TryCommit)

	got := readToEnd(t, ctx, FetcherConfig{Brokers: brokers}, topic)
	t.Logf("read: %s", describe(got))
	if v := values(got[0]); !slices.Equal(v, []string{"b0", "b1", "b2", "b3"}) {
		t.Errorf("partition 0 delivered %v, want [b0 b1 b2 b3]", v)
	}
	if v := values(got[1]); !slices.Equal(v, []string{"b0'", "b1'", "b2'"}) {
		t.Errorf("partition 1 delivered %v, want [b0' b1' b2']", v)
	}
	checkPlaceholders(t, got[0])
	checkPlaceholders(t, got[1])
	if !external { // p0 holds a0 b0 a1 b1 a2 b2 abort(a) b3 commit(b)
		want := "p0: skip@0 b0@1 skip@2 b1@3 skip@4 b2@5 skip@6 b3@7 skip@8 p1: b0'@0 b1'@1 b2'@2 skip@3 "
		if d := describe(got); d != want {
			t.Errorf("read %q, want %q", d, want)
		}
	}

	raw := readToEnd(t, ctx, FetcherConfig{Brokers: brokers, IsolationLevel: IsolationReadUncommitted}, topic)
	if v := values(raw[0]); !slices.Equal(v, []string{"a0", "b0", "a1", "b1", "a2", "b2", "b3"}) {
		t.Errorf("read_uncommitted partition 0 delivered %v", v)
	}
}

func TestFetcher_abortedTransactionAcrossFetches_isSkippedAsOneRun(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	cl := txnClient(t, brokers, "span")
	pad := strings.Repeat("x", 300)
	begin(t, cl)
	for i := range 8 { // 8 batches of ~1.2 KB
		produce(t, ctx, cl, topic, 0, fmt.Sprintf("a%d-%s", i*2, pad), fmt.Sprintf("a%d-%s", i*2+1, pad))
	}
	end(t, ctx, cl, kgo.TryAbort)
	begin(t, cl)
	var want []string
	for i := range 4 {
		v1, v2 := fmt.Sprintf("c%d-%s", i*2, pad), fmt.Sprintf("c%d-%s", i*2+1, pad)
		produce(t, ctx, cl, topic, 0, v1, v2)
		want = append(want, v1, v2)
	}
	end(t, ctx, cl, kgo.TryCommit)

	// MaxBytes below one batch (2 × 300 bytes, uncompressed): every fetch
	// returns a single batch, so the aborted transaction spans 8 fetches.
	got := readToEnd(t, ctx, FetcherConfig{Brokers: brokers, MaxBytes: 512}, topic)
	t.Logf("read: %.300s", describe(got))
	if v := values(got[0]); !slices.Equal(v, want) {
		t.Errorf("delivered %d values (%.60q...), want the %d committed ones", len(v), v, len(want))
	}
	checkPlaceholders(t, got[0])
	if len(got[0]) == 0 || !got[0][0].Skip || got[0][1].Skip {
		t.Fatalf("the aborted records do not start with one placeholder: %.200s", describe(got))
	}
	if got[0][0].Offset != 16 { // a0..a15 and the abort marker
		t.Errorf("first placeholder at %d, want 16: the run of 8 fetches must be covered by one", got[0][0].Offset)
	}
}

func TestFetcher_openTransaction_isDeliveredOnlyOnceCommitted(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	plain := newTestProducer(t, brokers[0])
	if err := plain.Publish(ctx, Message{Topic: topic, Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	cl := txnClient(t, brokers, "open")
	begin(t, cl)
	produce(t, ctx, cl, topic, 0, "o1", "o2")
	// A record after the open transaction's: held back too (the broker
	// answers read_committed fetches up to the last stable offset).
	if err := plain.Publish(ctx, Message{Topic: topic, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}

	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: brokers, MaxWait: 100 * time.Millisecond}, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := fetchFor(t, ctx, f, time.Second) // 10 MaxWaits
	if v := values(first); !slices.Equal(v, []string{"before"}) {
		t.Fatalf("with the transaction open, delivered %v, want [before]", v)
	}

	end(t, ctx, cl, kgo.TryCommit)
	var rest []Message
	for len(values(rest)) < 3 {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatalf("after the commit: %v (got %v)", err, values(rest))
		}
		rest = append(rest, m)
	}
	if v := values(rest); !slices.Equal(v, []string{"o1", "o2", "after"}) {
		t.Errorf("after the commit, delivered %v, want [o1 o2 after]", v)
	}
}

func TestFetcher_markersOnly_moveThePositionToTheEnd(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	abortEmptyTransaction(t, ctx, brokers, topic, 0)
	abortEmptyTransaction(t, ctx, brokers, topic, 0)

	admin := newTestAdmin(t, brokers[0])
	waitFor(t, 10*time.Second, "the abort markers", func() bool {
		offs, err := admin.ListOffsets(ctx, topic)
		return err == nil && offs[0].Last == 2
	})
	got := readToEnd(t, ctx, FetcherConfig{Brokers: brokers}, topic)
	if d := describe(got); d != "p0: skip@1 " {
		t.Errorf("read %q, want one placeholder covering both markers", d)
	}
	raw := readToEnd(t, ctx, FetcherConfig{Brokers: brokers, IsolationLevel: IsolationReadUncommitted}, topic)
	if d := describe(raw); d != "p0: skip@1 " {
		t.Errorf("read_uncommitted read %q, want the markers skipped too", d)
	}
}

// Why the Fetcher filters itself: kafka-go's Reader, even with
// ReadCommitted, hands out the records of aborted transactions and the
// transaction markers as messages (kafka-go issue 1332). If this test fails,
// kafka-go has fixed that.
func TestKafkaGoReader_deliversAbortedRecordsAndMarkers_evenWithReadCommitted(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 60*time.Second)
	topic := newTopic(t, ctx, brokers, 1, nil)
	cl := txnClient(t, brokers, "kafka-go-reader")
	begin(t, cl)
	produce(t, ctx, cl, topic, 0, "a1", "a2")
	end(t, ctx, cl, kgo.TryAbort)
	begin(t, cl)
	produce(t, ctx, cl, topic, 0, "c1")
	end(t, ctx, cl, kgo.TryCommit)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0,
		IsolationLevel: kafka.ReadCommitted, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var got []string
	for len(got) < 5 { // everything: a1 a2 abort-marker c1 commit-marker
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if len(m.Key) == 4 && m.Key[0] == 0 && m.Key[1] == 0 { // a control record's key
			got = append(got, fmt.Sprintf("marker(%d)", m.Key[3]))
			continue
		}
		got = append(got, string(m.Value))
	}
	t.Logf("kafka-go Reader (read_committed) delivered %q", got)
	if !slices.Contains(got, "a1") || !slices.Contains(got, "marker(0)") {
		t.Errorf("kafka-go's Reader no longer delivers aborted records and markers: %q", got)
	}
}
