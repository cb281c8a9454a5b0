package testkit

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/recovery"
)

// topicRec is one record of a MemTopic.
type topicRec struct {
	off   int64
	key   string
	value []byte // nil: a tombstone
}

// MemTopic is an in-memory one-partition topic with what the restore
// depends on: a log start that truncation moves, and compaction that keeps
// the newest record of each key (never the last record: Kafka does not
// clean the active segment).
type MemTopic struct {
	mu    sync.Mutex
	Name  string
	recs  []topicRec
	next  int64
	start int64
	// FailAfter, when > 0, makes Publish fail once that many more records
	// were written (a writer killed in the middle of a checkpoint).
	FailAfter int
}

// ErrKilled is what Publish returns when FailAfter runs out.
var ErrKilled = errors.New("testkit: writer killed")

// Publish appends msgs, setting their offsets (FailAfter may cut it short).
func (t *MemTopic) Publish(_ context.Context, msgs ...kafkaio.Message) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range msgs {
		if t.FailAfter > 0 {
			t.FailAfter--
			if t.FailAfter == 0 {
				return ErrKilled
			}
		}
		var v []byte
		if msgs[i].Value != nil {
			v = bytes.Clone(msgs[i].Value)
		}
		t.recs = append(t.recs, topicRec{off: t.next, key: string(msgs[i].Key), value: v})
		msgs[i].Offset = t.next
		t.next++
	}
	return nil
}

// Truncate deletes the records below before (DeleteRecords).
func (t *MemTopic) Truncate(_ context.Context, before int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if before > t.start {
		t.start = before
	}
	i := 0
	for i < len(t.recs) && t.recs[i].off < t.start {
		i++
	}
	t.recs = t.recs[i:]
	return nil
}

// Compact keeps the newest record of every key (and the last record); with
// dropTombstones it also removes tombstones that are not the last record
// (Kafka does after delete.retention.ms).
func (t *MemTopic) Compact(dropTombstones bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	newest := map[string]int64{}
	for _, r := range t.recs {
		newest[r.key] = r.off
	}
	var kept []topicRec
	for i, r := range t.recs {
		last := i == len(t.recs)-1
		if !last && (newest[r.key] != r.off || (dropTombstones && r.value == nil)) {
			continue
		}
		kept = append(kept, r)
	}
	t.recs = kept
}

// Source is the topic as a recovery source (partition 0).
func (t *MemTopic) Source() recovery.Source {
	return recovery.Source{Topic: t.Name,
		Open: func(_ context.Context, start map[int]int64) (pipeline.Tail, error) {
			return &memTail{t: t, pos: start[0]}, nil
		},
		HWM: func(context.Context) (map[int]int64, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			return map[int]int64{0: t.next}, nil
		}}
}

// memTail reads a MemTopic from pos, as the Kafka fetcher does: an offset
// below the log start is an *OffsetOutOfRangeError, compacted-away offsets
// are skipped.
type memTail struct {
	t   *MemTopic
	pos int64
}

func (tt *memTail) Fetch(ctx context.Context) (kafkaio.Message, error) {
	tt.t.mu.Lock()
	if tt.pos < tt.t.start {
		err := &kafkaio.OffsetOutOfRangeError{Topic: tt.t.Name, Offset: tt.pos, LogStart: tt.t.start, HighWatermark: tt.t.next}
		tt.t.mu.Unlock()
		return kafkaio.Message{}, err
	}
	for _, r := range tt.t.recs {
		if r.off >= tt.pos {
			tt.pos = r.off + 1
			tt.t.mu.Unlock()
			return kafkaio.Message{Topic: tt.t.Name, Offset: r.off, Key: []byte(r.key), Value: r.value}, nil
		}
	}
	tt.t.mu.Unlock()
	<-ctx.Done()
	return kafkaio.Message{}, ctx.Err()
}

func (tt *memTail) TryFetch() (kafkaio.Message, bool) { return kafkaio.Message{}, false }
func (tt *memTail) Close() error                      { return nil }

// Records returns the records the topic holds, in offset order (a nil
// Value is a tombstone).
func (t *MemTopic) Records() []kafkaio.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]kafkaio.Message, len(t.recs))
	for i, r := range t.recs {
		out[i] = kafkaio.Message{Topic: t.Name, Offset: r.off, Key: []byte(r.key), Value: r.value}
	}
	return out
}
