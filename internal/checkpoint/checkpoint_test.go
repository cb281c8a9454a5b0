package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/checkpoint"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// editLog is a writer's view of its published records: journal id j is at
// offset 100+j once published through it.
type editLog struct {
	mu      sync.Mutex
	through int64
	asked   chan struct{} // when set, told of each PublishedThrough call (without blocking)
}

func (l *editLog) PublishedThrough() int64 {
	select {
	case l.asked <- struct{}{}:
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.through
}

func (l *editLog) EditLogOffset(jid int64) (int64, bool) {
	if jid > l.PublishedThrough() {
		return 0, false
	}
	return 100 + jid, true
}

func (l *editLog) publish(through int64) {
	l.mu.Lock()
	l.through = through
	l.mu.Unlock()
}

func mv(id, v int64) *mvstate.MV {
	return &mvstate.MV{DBID: 1, MVID: id, DBName: "d", MVName: "m", VersionMap: mvstate.VersionMap{7: {"p": mvstate.NewBasePartitionInfo(1, v, v)}}}
}

func commit(t *testing.T, st *store.Store, recs ...*editlog.Record) {
	t.Helper()
	if _, err := st.Commit(context.Background(), store.Batch{Records: recs, Mode: editlog.Strict}); err != nil {
		t.Fatal(err)
	}
}

func upsert(j, id int64) *editlog.Record {
	return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpUpserted, At: j, MV: editlog.MVRef{DBID: 1, MVID: id}, Definition: mv(id, j)}
}

func drop(j, id int64) *editlog.Record {
	return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpDropped, At: j, MV: editlog.MVRef{DBID: 1, MVID: id}}
}

// keysOf lists the keys of msgs ("-" suffix: a tombstone).
func keysOf(msgs []kafkaio.Message) []string {
	var out []string
	for _, m := range msgs {
		k := string(m.Key)
		if m.Value == nil {
			k += "-"
		}
		out = append(out, k)
	}
	return out
}

func newWriter(st *store.Store, topic *testkit.MemTopic, el *editLog) *checkpoint.Writer {
	return &checkpoint.Writer{State: st.State(), Pub: topic, EditLog: el, Topic: "snaps", Epoch: 3, Log: zerolog.Nop()}
}

func TestWrite_firstHoldsEveryMVThenOnlyChangesAndTombstonesWithTheMarkerLast(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{}
	w := newWriter(st, topic, el)
	commit(t, st, upsert(1, 1), upsert(2, 2), upsert(3, 3))
	el.publish(3)
	c, err := w.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.JournalID != 3 || c.EditLogOffset != 103 || c.MVs != 3 {
		t.Fatalf("first checkpoint %+v, want journal id 3 at edit-log offset 103 with 3 MVs", c)
	}
	if got := strings.Join(keysOf(topic.Records()), " "); got != "1:1 1:2 1:3 __checkpoint" {
		t.Fatalf("first checkpoint wrote %s", got)
	}
	// MV 2 changes, MV 3 is dropped: only they are written next.
	commit(t, st, upsert(4, 2), drop(5, 3))
	el.publish(5)
	if c, err = w.Write(ctx); err != nil {
		t.Fatal(err)
	}
	recs := topic.Records()
	if got := strings.Join(keysOf(recs[4:]), " "); got != "1:2 1:3- __checkpoint" {
		t.Fatalf("second checkpoint wrote %s, want MV 2, MV 3's tombstone and the marker", got)
	}
	s, err := editlog.DecodeSnapshot(recs[4].Value)
	if err != nil || s.JournalID != 4 || s.Epoch != 3 || s.MV.VersionMap[7]["p"].Version != 4 {
		t.Fatalf("snapshot record of MV 2: %+v, %v; want journal id 4, the writer's epoch 3, version 4", s, err)
	}
	m, err := editlog.DecodeCheckpoint(recs[6].Value)
	if err != nil || m != *c || m.JournalID != 5 || m.MVs != 2 {
		t.Fatalf("marker %+v (%v), returned %+v", m, err, c)
	}
	// Nothing changed since: nothing is due, however long ago it was.
	if w.Due(time.Nanosecond, 1, time.Now().Add(time.Hour)) {
		t.Fatal("a checkpoint is due with no change since the last")
	}
}

func TestDue_neverWhenIntervalAndMaxRecordsAreBothOff(t *testing.T) {
	st := store.NewMemory()
	el := &editLog{}
	w := newWriter(st, &testkit.MemTopic{Name: "snaps"}, el)
	commit(t, st, upsert(1, 1), upsert(2, 2))
	el.publish(2)
	if !w.Due(time.Minute, 0, time.Now()) || !w.Due(0, 100, time.Now()) {
		t.Fatal("the first checkpoint is not due with a state on the edit log")
	}
	if w.Due(0, 0, time.Now().Add(24*time.Hour)) {
		t.Fatal("a checkpoint is due with checkpoint.interval and checkpoint.max_records both 0 (off)")
	}
}

func TestWrite_aCoordinatorThatDoesNotAnswerIsAFailureNotALostRole(t *testing.T) {
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{}
	cw := newWriter(st, topic, el)
	cw.Fence = func(context.Context) error { return fmt.Errorf("commit: %w", context.DeadlineExceeded) }
	commit(t, st, upsert(1, 1))
	el.publish(1)
	_, err := cw.Write(context.Background())
	if err == nil || errors.Is(err, checkpoint.ErrNotWriter) {
		t.Fatalf("Write with a fence that timed out: %v, want a failure that is not ErrNotWriter", err)
	}
	if n := len(topic.Records()); n != 0 || cw.Last != nil {
		t.Fatalf("an unproven writer wrote %d records (last %v)", n, cw.Last)
	}
}

func TestWrite_theMarkersMVCountIsAtItsJournalID(t *testing.T) {
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{asked: make(chan struct{}, 1)}
	w := newWriter(st, topic, el)
	commit(t, st, upsert(1, 1), upsert(2, 2))
	el.publish(1) // Write takes its view at journal id 2, then waits for it
	done := make(chan error, 1)
	var c *editlog.Checkpoint
	go func() {
		var err error
		c, err = w.Write(context.Background())
		done <- err
	}()
	<-el.asked                  // Write took its view and waits for the edit log to hold it
	commit(t, st, upsert(3, 3)) // a third MV after the checkpoint's position
	el.publish(3)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.JournalID != 2 || c.MVs != 2 {
		t.Fatalf("marker at journal id %d counts %d MVs, want 2 and 2 (the state has %d now)", c.JournalID, c.MVs, st.State().Len())
	}
}

func TestWrite_waitsUntilTheEditLogHoldsTheRecordsItReflects(t *testing.T) {
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{}
	w := newWriter(st, topic, el)
	commit(t, st, upsert(1, 1), upsert(2, 2))
	el.publish(1) // record 2 is not acknowledged yet
	done := make(chan error, 1)
	go func() { _, err := w.Write(context.Background()); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) before record 2 was published", err)
	case <-time.After(100 * time.Millisecond): // it must still be waiting: the absence of an event
	}
	if n := len(topic.Records()); n != 0 {
		t.Fatalf("%d snapshot records written before the edit log held their changes", n)
	}
	el.publish(2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write did not finish once the records were published")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	commit(t, st, upsert(3, 3))
	if _, err := w.Write(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write waiting for an unpublished record: %v, want the context's deadline", err)
	}
}

func TestWrite_aWriterThatLostItsGenerationWritesNoMarker(t *testing.T) {
	for name, w := range map[string]func(w *checkpoint.Writer){
		"alive no more": func(w *checkpoint.Writer) { w.Alive = func() bool { return false } },
		"fenced by the coordinator": func(w *checkpoint.Writer) {
			w.Fence = func(context.Context) error { return kafkaio.ErrFenced }
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := store.NewMemory()
			topic := &testkit.MemTopic{Name: "snaps"}
			el := &editLog{}
			cw := newWriter(st, topic, el)
			w(cw)
			commit(t, st, upsert(1, 1))
			el.publish(1)
			_, err := cw.Write(context.Background())
			if !errors.Is(err, checkpoint.ErrNotWriter) {
				t.Fatalf("Write: %v, want ErrNotWriter", err)
			}
			if n := len(topic.Records()); n != 0 {
				t.Fatalf("a writer without its generation wrote %d records", n)
			}
			if cw.Last != nil {
				t.Fatal("a failed checkpoint became the last one")
			}
		})
	}
}

func TestWrite_truncatesTheEditLogBelowThePreviousCheckpoint(t *testing.T) {
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{}
	w := newWriter(st, topic, el)
	var truncated []int64
	fail := false
	w.Truncate = func(_ context.Context, before int64) error {
		truncated = append(truncated, before)
		if fail {
			return errors.New("injected")
		}
		return nil
	}
	for j := int64(1); j <= 3; j++ {
		commit(t, st, upsert(j, j))
		el.publish(j)
		if _, err := w.Write(context.Background()); err != nil {
			t.Fatal(err)
		}
		fail = true // a failed truncation does not fail the checkpoint
	}
	// The first checkpoint has no previous one; then each truncates below
	// the one before it (a restore falls back to it if the latest is lost).
	if len(truncated) != 2 || truncated[0] != 101 || truncated[1] != 102 {
		t.Fatalf("truncated below %v, want [101 102]", truncated)
	}
}

func TestLatest_findsTheMarkerBehindRecordsOfACheckpointCutShort(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	topic := &testkit.MemTopic{Name: "snaps"}
	el := &editLog{}
	w := newWriter(st, topic, el)
	if c, err := checkpoint.Latest(ctx, topic.Source()); err != nil || c != nil {
		t.Fatalf("Latest of an empty topic: %+v, %v", c, err)
	}
	for j := int64(1); j <= 5; j++ {
		commit(t, st, upsert(j, j))
	}
	el.publish(5)
	want, err := w.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A later checkpoint dies after 1,000 records.
	for j := int64(6); j <= 1005; j++ {
		commit(t, st, upsert(j, j))
	}
	el.publish(1005)
	topic.FailAfter = 1001
	if _, err := w.Write(ctx); !errors.Is(err, testkit.ErrKilled) {
		t.Fatalf("cut-short checkpoint: %v", err)
	}
	got, err := checkpoint.Latest(ctx, topic.Source())
	if err != nil || got == nil || *got != *want {
		t.Fatalf("Latest: %+v, %v; want %+v", got, err, want)
	}
}
