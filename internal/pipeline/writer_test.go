package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/health"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

func TestWriter_fullDiskStallsTheWriterAndNeverDeadLettersAValidEvent(t *testing.T) {
	var mu sync.Mutex
	var fault error
	st := diskStore(t, &mu, &fault)
	pub, com := &recordingPublisher{}, &recordingCommitter{}
	w := newWriter(st, pub)
	wd := health.New(50*time.Millisecond, nil)
	w.CommitHealth = wd.Component("writer")
	fetch := make(chanFetcher, 10)
	fetch <- upsert(t, 0, ordersMV(3))
	startWriter(t, w, fetch, com, 1)
	eventually(t, func() error {
		if com.offset(topics.Catalog, 0) != 1 {
			return errors.New("catalog not committed")
		}
		return nil
	})

	mu.Lock()
	fault = fmt.Errorf("write: %w", syscall.ENOSPC)
	mu.Unlock()
	fetch <- compaction(t, 0, 0, 1, 5, 6)
	eventually(t, func() error {
		err := wd.Check()
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			return fmt.Errorf("watchdog says %v, want the writer stalled on the full disk", err)
		}
		return nil
	})
	for _, m := range pub.published() {
		if m.Topic == topics.DLQ {
			t.Fatalf("a full disk dead-lettered a valid event: %+v", m)
		}
	}
	if com.offset(topics.Input, 0) != 0 {
		t.Fatal("an offset was committed past an event that was not applied")
	}

	mu.Lock()
	fault = nil // the operator freed space
	mu.Unlock()
	eventually(t, func() error {
		if com.offset(topics.Input, 0) != 1 {
			return errors.New("the event was not committed after the disk recovered")
		}
		return wd.Check()
	})
	if v := st.State().Get(ordersMV(0).Key()).VersionMap[table][pname(0)].Version; v != 6 {
		t.Fatalf("version %d after recovery, want 6", v)
	}
	for _, m := range pub.published() {
		if m.Topic == topics.DLQ {
			t.Fatalf("dead letter published: %+v", m)
		}
	}
}

func TestProcessor_skipsRecordsBelowTheAppliedOffset(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics}
	ctx := context.Background()
	if _, err := p.Process(ctx, []kafkaio.Message{upsert(t, 0, ordersMV(2)), compaction(t, 0, 0, 1, 5, 6)}, 1, Extra{}); err != nil {
		t.Fatal(err)
	}
	before := st.State().JournalID()
	// Redelivered (a crash before the offset commit): applied already.
	out, err := p.Process(ctx, []kafkaio.Message{compaction(t, 0, 0, 1, 5, 6), compaction(t, 1, 1, 1, 5, 6)}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Report
	if r.Events[0].Outcome != OutcomeDuplicate || r.Events[1].Outcome != OutcomeApplied || len(r.Records) != 1 {
		t.Fatalf("outcomes %v, %v with %d records; want duplicate, applied and one record", r.Events[0].Outcome, r.Events[1].Outcome, len(r.Records))
	}
	if st.State().JournalID() != before+1 {
		t.Fatal("a redelivered event was journaled again")
	}
}

func TestProcessor_appliesTheCatalogOfABatchBeforeItsEvents(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics}
	// The event arrives first in the batch, its MV's catalog record after.
	out, err := p.Process(context.Background(), []kafkaio.Message{compaction(t, 0, 0, 1, 5, 6), upsert(t, 0, ordersMV(2))}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	if v := st.State().Get(ordersMV(0).Key()).VersionMap[table][pname(0)].Version; v != 6 {
		t.Fatalf("version %d: the event was decided before the catalog record of its batch (report %+v)", v, out.Report.Events)
	}
}

func TestProcessor_reportsTheBytesOfTheRecordsItJournals(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics}
	out, err := p.Process(context.Background(), []kafkaio.Message{upsert(t, 0, ordersMV(2)), compaction(t, 0, 0, 2, 5, 6)}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, o := range out.Outbox {
		if m := toKafka(o); m.Topic == topics.EditLog {
			want += int64(len(m.Value))
		}
	}
	if want == 0 || out.Report.RecordBytes != want {
		t.Fatalf("Report.RecordBytes = %d, want %d (the edit-log values in the outbox)", out.Report.RecordBytes, want)
	}
}

func TestProcessor_predecodedMessagesGiveTheSameBatch(t *testing.T) {
	msgs := []kafkaio.Message{upsert(t, 0, ordersMV(3)), compaction(t, 0, 0, 2, 5, 6), compaction(t, 1, 1, 3, 6, 7),
		{Topic: topics.Input, Partition: 0, Offset: 2, Value: []byte(`{"not":"an event"`)}}
	run := func(pre bool) (*Committed, string) {
		st := store.NewMemory()
		p := &Processor{Store: st, Topics: topics}
		in := slices.Clone(msgs)
		for i := range in {
			if pre {
				in[i].Decoded = Predecode(in[i].Topic, in[i].Value)
			}
		}
		out, err := p.Process(context.Background(), in, 1, Extra{})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := st.State().Export(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		return out, b.String()
	}
	plain, plainState := run(false)
	pre, preState := run(true)
	if preState != plainState {
		t.Fatal("a batch of predecoded messages leads to another state")
	}
	if len(pre.Report.Records) != len(plain.Report.Records) || len(pre.Report.DeadLetters) != 1 || len(plain.Report.DeadLetters) != 1 ||
		pre.Report.DeadLetters[0].Reason != plain.Report.DeadLetters[0].Reason {
		t.Fatalf("reports differ: %d/%d records, dead letters %+v / %+v", len(pre.Report.Records), len(plain.Report.Records),
			pre.Report.DeadLetters, plain.Report.DeadLetters)
	}
	for i := range pre.Report.Events {
		if a, b := pre.Report.Events[i], plain.Report.Events[i]; a.Outcome != b.Outcome || a.Repaired != b.Repaired || a.Kind != b.Kind {
			t.Errorf("event %d: %+v predecoded, %+v not", i, a, b)
		}
	}
}

func TestProcessor_deadLetterCopiesKeepHeadersAndEmptyValues(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics, Limits: Limits{EditLog: 1 << 20, DLQ: 1 << 20}}
	bad := kafkaio.Message{Topic: topics.Input, Offset: 4, Key: []byte("k"), Value: []byte{},
		Headers: []kafkaio.Header{{Key: "trace", Value: []byte("abc")}}}
	out, err := p.Process(context.Background(), []kafkaio.Message{bad}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Outbox) != 1 {
		t.Fatalf("outbox %+v", out.Outbox)
	}
	m := toKafka(out.Outbox[0])
	if m.Value == nil || len(m.Value) != 0 || string(m.Key) != "k" || header(m, "trace") != "abc" ||
		header(m, HeaderDLQReason) != string(events.ReasonInvalidJSON) || header(m, HeaderSourceOffset) != "4" {
		t.Fatalf("dead letter %+v: want the original key, empty value and headers, plus the DLQ headers", m)
	}
	if d := out.Report.DeadLetters; len(d) != 1 || d[0].Source.Offset != 4 {
		t.Fatalf("report dead letters %+v", d)
	}
}

func TestProcessor_recordTooLargeToJournalIsDeadLetteredAndChangesNothing(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics, Limits: Limits{EditLog: 64 << 10, DLQ: 1 << 20}}
	ctx := context.Background()
	big := ordersMV(3000) // its mv_upserted record is well over 64 KiB
	small := ordersMV(3)
	small.MVID = 50002
	out, err := p.Process(ctx, []kafkaio.Message{upsert(t, 0, big), upsert(t, 1, small)}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	if st.State().Get(big.Key()) != nil || st.State().Get(small.Key()) == nil {
		t.Fatal("the oversized upsert changed the state, or the small one did not apply")
	}
	d := out.Report.DeadLetters
	if len(d) != 1 || d[0].Reason != ReasonRecordTooLarge || !strings.Contains(d[0].Error, "max.message.bytes") {
		t.Fatalf("dead letters %+v, want one record_too_large naming the limit", d)
	}
	if st.State().AppliedOffset(topics.Catalog, 0) != 2 {
		t.Fatal("the batch's offsets were not recorded")
	}
}

func TestProcessor_deadLetterCopyTooLargeForTheDLQKeepsOnlyHeaders(t *testing.T) {
	st := store.NewMemory()
	p := &Processor{Store: st, Topics: topics, Limits: Limits{EditLog: 1 << 20, DLQ: 4 << 10}}
	junk := kafkaio.Message{Topic: topics.Input, Offset: 9, Key: []byte("k"), Value: []byte(strings.Repeat("x", 10<<10))}
	out, err := p.Process(context.Background(), []kafkaio.Message{junk}, 1, Extra{})
	if err != nil {
		t.Fatal(err)
	}
	m := toKafka(out.Outbox[0])
	if len(m.Value) != 0 || header(m, HeaderDLQReason) != string(ReasonRecordTooLarge) ||
		header(m, HeaderSourceSize) != "10240" || header(m, HeaderSourceOffset) != "9" || kafkaio.RecordSize(m) > 4<<10 {
		t.Fatalf("dead letter %+v (%d bytes): want an empty value with record_too_large and source-size", m.Headers, kafkaio.RecordSize(m))
	}
}

func TestWriter_splitsABatchWhoseJointRecordWouldBeTooLarge(t *testing.T) {
	st := store.NewMemory()
	if _, err := (&Processor{Store: st, Topics: topics}).Process(context.Background(), []kafkaio.Message{upsert(t, 0, ordersMV(600))}, 1, Extra{}); err != nil {
		t.Fatal(err)
	}
	pub, com, reps := &recordingPublisher{}, &recordingCommitter{}, &reports{}
	w := newWriter(st, pub, reps)
	w.Proc.Limits = Limits{EditLog: 48 << 10}
	// Two events repair 300 partitions each of one MV and table: one
	// record of both would exceed 48 KiB, each alone fits.
	fetch := make(chanFetcher, 10)
	fetch <- compaction(t, 0, 0, 300, 5, 6)
	fetch <- compaction(t, 1, 300, 300, 5, 6)
	startWriter(t, w, fetch, com, 1)
	eventually(t, func() error {
		if com.offset(topics.Input, 0) != 2 {
			return errors.New("not committed")
		}
		return nil
	})
	var recs []*editlog.Record
	for _, r := range reps.all() {
		recs = append(recs, r.Records...)
		if len(r.DeadLetters) > 0 {
			t.Fatalf("dead letters %+v: splitting must avoid them", r.DeadLetters)
		}
	}
	if len(recs) != 2 || len(recs[0].Partitions) != 300 || len(recs[1].Partitions) != 300 {
		t.Fatalf("%d records; want 2 of 300 entries", len(recs))
	}
}

func TestWriter_refusedPublishStallsLoudlyAndResumesOnceFixed(t *testing.T) {
	st := store.NewMemory()
	pub, com := &recordingPublisher{}, &recordingCommitter{}
	w := newWriter(st, pub)
	wd := health.New(time.Hour, nil) // a refusal must not wait for the timeout
	w.PublishHealth = wd.Component("publisher")
	pub.setFail(fmt.Errorf("produce: %w", kafkaio.ErrMessageTooLarge))
	fetch := make(chanFetcher, 10)
	fetch <- upsert(t, 0, ordersMV(3))
	startWriter(t, w, fetch, com, 1)
	eventually(t, func() error {
		err := wd.Check()
		if err == nil || !strings.Contains(err.Error(), "max.message.bytes") {
			return fmt.Errorf("watchdog says %v, want the publisher stalled with the fix", err)
		}
		return nil
	})
	if com.offset(topics.Catalog, 0) != 0 {
		t.Fatal("offsets committed before the outbox was published")
	}
	pub.setFail(nil)
	eventually(t, func() error {
		if com.offset(topics.Catalog, 0) != 1 {
			return errors.New("not committed after the fix")
		}
		return wd.Check()
	})
}

func TestWriter_syncOffsetsKeepsTheStoreAheadAndWarnsOfAForeignRewind(t *testing.T) {
	st := store.NewMemory()
	var buf strings.Builder
	pub, com := &recordingPublisher{}, &recordingCommitter{}
	w := newWriter(st, pub)
	w.Log = zerolog.New(&buf)
	// The store applied input/0 up to 100 and last committed 100 to the group.
	_, err := st.Commit(context.Background(), store.Batch{Offsets: []mvstate.OffsetChange{
		{TopicPartition: mvstate.TopicPartition{Topic: topics.Input, Partition: 0}, Next: 100},
		{TopicPartition: mvstate.TopicPartition{Topic: GroupMarkTopic(topics.Input), Partition: 0}, Next: 100},
		{TopicPartition: mvstate.TopicPartition{Topic: topics.Input, Partition: 1}, Next: 50},
		{TopicPartition: mvstate.TopicPartition{Topic: GroupMarkTopic(topics.Input), Partition: 1}, Next: 48}}})
	if err != nil {
		t.Fatal(err)
	}
	start, err := w.SyncOffsets(context.Background(), com, map[string][]kafkaio.Assignment{
		topics.Input: {{Partition: 0, Offset: 10}, {Partition: 1, Offset: 48}}})
	if err != nil {
		t.Fatal(err)
	}
	if start[topics.Input][0].Offset != 100 || start[topics.Input][1].Offset != 50 || com.offset(topics.Input, 0) != 100 {
		t.Fatalf("start %v, committed %d: the store's applied offsets must win", start, com.offset(topics.Input, 0))
	}
	log := buf.String()
	if !strings.Contains(log, "moved back by another tool") || !strings.Contains(log, "consumer replay --topic in --partition 0 --from-offset 10") {
		t.Fatalf("no warning naming the replay command for the rewound partition 0:\n%s", log)
	}
	if strings.Count(log, "moved back") != 1 {
		t.Fatalf("partition 1 (behind by a crash, not a rewind) was warned about too:\n%s", log)
	}
}

func TestCollect_waitsFromTheOldestRecordAndNotWhenIdle(t *testing.T) {
	f := make(chanFetcher, 10)
	old := kafkaio.Message{Offset: 1, Received: time.Now().Add(-time.Hour)}
	f <- old
	start := time.Now()
	b, err := Collect(context.Background(), f, 10, time.Minute, time.Second, func() bool { return true })
	if err != nil || len(b) != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("a record that waited longer than the window was held %v (%d records, %v)", time.Since(start), len(b), err)
	}
	f <- kafkaio.Message{Offset: 2, Received: time.Now()}
	start = time.Now()
	b, _ = Collect(context.Background(), f, 10, time.Minute, time.Second, func() bool { return false })
	if len(b) != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("an idle writer waited %v for more records", time.Since(start))
	}
	// Busy downstream: the batch fills for up to the window.
	f <- kafkaio.Message{Offset: 3, Received: time.Now()}
	go func() { time.Sleep(20 * time.Millisecond); f <- kafkaio.Message{Offset: 4, Received: time.Now()} }()
	b, _ = Collect(context.Background(), f, 10, time.Second, time.Second, func() bool { return true })
	if len(b) != 2 {
		t.Fatalf("a busy writer's batch has %d records, want 2", len(b))
	}
}

// errFetcher delivers its records, then err forever.
type errFetcher struct {
	msgs []kafkaio.Message
	err  error
}

func (f *errFetcher) Fetch(context.Context) (kafkaio.Message, error) {
	if m, ok := f.TryFetch(); ok {
		return m, nil
	}
	return kafkaio.Message{}, f.err
}

func (f *errFetcher) TryFetch() (kafkaio.Message, bool) {
	if len(f.msgs) == 0 {
		return kafkaio.Message{}, false
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, true
}

func TestCollect_returnsAFetchErrorNeverMistakenForIdle(t *testing.T) {
	oor := &kafkaio.OffsetOutOfRangeError{Topic: "in", Partition: 2, Offset: 1000, HighWatermark: 1}
	b, err := Collect(context.Background(), &errFetcher{err: oor}, 10, time.Second, time.Second, nil)
	if len(b) != 0 || !errors.Is(err, kafkaio.ErrOffsetOutOfRange) {
		t.Fatalf("Collect of a failing fetcher: %d records, %v; want the fetch error", len(b), err)
	}
	// An error behind records: the records and the error.
	f := &errFetcher{msgs: []kafkaio.Message{{Offset: 1}, {Offset: 2}}, err: oor}
	b, err = Collect(context.Background(), f, 10, time.Second, time.Second, func() bool { return true })
	if len(b) != 2 || !errors.Is(err, kafkaio.ErrOffsetOutOfRange) {
		t.Fatalf("Collect: %d records, %v; want both records and the fetch error", len(b), err)
	}
	// Nothing within the idle time: ErrIdle.
	if _, err := Collect(context.Background(), make(chanFetcher), 10, time.Second, 10*time.Millisecond, nil); !errors.Is(err, ErrIdle) {
		t.Fatalf("Collect of an idle fetcher: %v, want ErrIdle", err)
	}
}

func TestWriter_reportsReachHooksOnlyAfterTheCommit(t *testing.T) {
	var mu sync.Mutex
	var fault error
	st := diskStore(t, &mu, &fault)
	reps := &reports{}
	w := newWriter(st, &recordingPublisher{}, reps)
	mu.Lock()
	fault = syscall.EIO
	mu.Unlock()
	fetch := make(chanFetcher, 10)
	fetch <- upsert(t, 0, ordersMV(1))
	r := startWriter(t, w, fetch, &recordingCommitter{}, 1)
	time.Sleep(50 * time.Millisecond) // commits keep failing meanwhile
	if n := len(reps.all()); n != 0 {
		t.Fatalf("%d reports of a batch that was not committed", n)
	}
	mu.Lock()
	fault = nil
	mu.Unlock()
	eventually(t, func() error {
		if len(reps.all()) != 1 {
			return errors.New("no report after the commit")
		}
		return nil
	})
	r.shutdown(t)
}

// batchLimitPublisher refuses, as a broker does, a publish whose messages
// to one topic exceed that topic's max.message.bytes together (the producer
// sends them as one record batch).
type batchLimitPublisher struct {
	recordingPublisher
	limits map[string]int
	calls  int
}

func (p *batchLimitPublisher) Publish(ctx context.Context, msgs ...kafkaio.Message) error {
	sums := map[string]int{}
	for _, m := range msgs {
		sums[m.Topic] += kafkaio.RecordSize(m)
	}
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	for topic, n := range sums {
		if lim := p.limits[topic]; lim > 0 && n > lim {
			return fmt.Errorf("%w: %d bytes to %s", kafkaio.ErrMessageTooLarge, n, topic)
		}
	}
	return p.recordingPublisher.Publish(ctx, msgs...)
}

func TestWriter_deadLettersOfABatchArePublishedInChunksTheDLQAccepts(t *testing.T) {
	st := store.NewMemory()
	pub := &batchLimitPublisher{limits: map[string]int{topics.DLQ: 8 << 10}}
	w := newWriter(st, pub)
	w.Proc.Limits = Limits{EditLog: 1 << 20, DLQ: 8 << 10}
	fetch := make(chanFetcher, 100)
	for i := range 60 {
		fetch <- kafkaio.Message{Topic: topics.Input, Offset: int64(i), Key: []byte("k"), Value: bytes.Repeat([]byte{'x'}, 1000)}
	}
	com := &recordingCommitter{}
	startWriter(t, w, fetch, com, 1)
	eventually(t, func() error {
		if com.offset(topics.Input, 0) != 60 {
			return errors.New("the batch is not committed")
		}
		return nil
	})
	dl := pub.published()
	if len(dl) != 60 {
		t.Fatalf("%d dead letters published, want 60", len(dl))
	}
	for _, m := range dl {
		if len(m.Value) != 1000 {
			t.Fatalf("a dead letter lost its value (%d bytes, reason %s): the batch was refused as too large", len(m.Value), header(m, HeaderDLQReason))
		}
	}
	if pub.calls < 60*1000/(8<<10) {
		t.Errorf("%d publish calls for 60 KB of dead letters under an 8 KiB limit", pub.calls)
	}
}
