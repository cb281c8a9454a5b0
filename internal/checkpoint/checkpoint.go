// Package checkpoint writes checkpoints to the snapshot topic
// (docs/design.md §4.9): the state as a compacted table, so that restores
// read the state and the edit log after the latest checkpoint, never the
// whole history, and the edit log can be truncated below it.
//
// A checkpoint is incremental: only the MVs changed (or dropped) since the
// previous one are written, each as it was at the checkpoint's journal id.
// The copy is consistent without pausing the writer (an mvstate.Snapshot:
// copy on write), and it is published only once the edit-log records up to
// that journal id are acknowledged, so a snapshot record never holds a
// change the edit log lacks. The marker comes last: a checkpoint whose
// writer died half-way is simply not there, and restores use the one
// before it.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Publisher writes messages and returns once all are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkaio.Message) error
}

// EditLog tells where the writer's edit-log records are.
type EditLog interface {
	// PublishedThrough is the highest journal id acknowledged by the broker.
	PublishedThrough() int64
	// EditLogOffset is the offset of the record with journal id jid.
	EditLogOffset(jid int64) (int64, bool)
}

// Writer writes checkpoints for the active writer. It is used by one
// goroutine at a time.
type Writer struct {
	State   *mvstate.State
	Pub     Publisher
	EditLog EditLog
	// Topic is the snapshot topic.
	Topic string
	// Epoch is stamped on the records (the writer's epoch).
	Epoch int64
	// Truncate, when set, deletes edit-log records below an offset.
	Truncate func(ctx context.Context, before int64) error
	// Alive reports whether the writer still holds its role; records are
	// not written once it does not.
	Alive func() bool
	// Fence, when set, proves with the group coordinator that the writer
	// still holds its generation; it is called before every publish to the
	// snapshot topic, so that a paused writer that lost its role to a newer
	// one (a zombie) does not write its state there. Its error ends the
	// checkpoint with ErrNotWriter.
	Fence func(ctx context.Context) error
	Log   zerolog.Logger
	// Durable is called after each durable checkpoint.
	Durable func(c editlog.Checkpoint, mvs, tombstones int, took time.Duration)
	// Chunk is the most records per publish (default 200).
	Chunk int

	// Last is the latest durable checkpoint (nil: none known).
	Last *editlog.Checkpoint
	prev *editlog.Checkpoint
}

// ErrNotWriter means the writer lost its role while writing a checkpoint;
// what it wrote is harmless (a later checkpoint supersedes it).
var ErrNotWriter = errors.New("checkpoint: the writer lost its role")

// ErrNotYet means a checkpoint cannot be written now (try at the next
// interval): the writer has not published the records it would name.
var ErrNotYet = errors.New("checkpoint: not yet")

// Due reports whether a checkpoint is due: interval since the last one, or
// maxRecords records after it (the first one as soon as there is a state).
// With both 0 automatic checkpoints are off: none is ever due.
func (w *Writer) Due(interval time.Duration, maxRecords int64, now time.Time) bool {
	if interval <= 0 && maxRecords <= 0 {
		return false
	}
	if w.EditLog.PublishedThrough() == 0 {
		return false // nothing of this writer on the edit log yet: no offset to name
	}
	if w.Last == nil {
		return w.State.JournalID() > 0
	}
	j := w.State.JournalID()
	if j <= w.Last.JournalID {
		return false
	}
	if maxRecords > 0 && j-w.Last.JournalID >= maxRecords {
		return true
	}
	return interval > 0 && now.Sub(time.UnixMilli(w.Last.At)) >= interval
}

// Write writes one checkpoint of the state as of now and returns its
// marker. Commits go on meanwhile.
func (w *Writer) Write(ctx context.Context) (*editlog.Checkpoint, error) {
	start := time.Now()
	after := int64(0)
	if w.Last != nil {
		after = w.Last.JournalID
	}
	// The first checkpoint (this writer knows of) holds every MV
	// (ChangedAfter 0).
	sn, err := w.State.Snapshot(mvstate.Selection{ChangedAfter: max(after, 0)})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer sn.Close()
	j := sn.JournalID
	if j == 0 {
		return nil, nil
	}
	// The records up to j must be on the edit log before any snapshot
	// record that reflects them.
	off, err := w.waitPublished(ctx, j)
	if err != nil {
		return nil, err
	}
	mvs, tombs, err := w.publishSnapshot(ctx, sn)
	if err != nil {
		return nil, err
	}
	c := editlog.Checkpoint{JournalID: j, Epoch: sn.Epoch, EditLogOffset: off, MVs: sn.MVs, At: time.Now().UnixMilli()}
	if err := w.fenced(ctx); err != nil {
		return nil, err
	}
	marker := kafkaio.Message{Topic: w.Topic, Key: []byte(editlog.CheckpointKey), Value: editlog.AppendCheckpoint(nil, c)}
	if err := w.Pub.Publish(ctx, marker); err != nil {
		return nil, fmt.Errorf("checkpoint: publish the marker: %w", err)
	}
	w.durable(ctx, c, mvs, tombs, start)
	return &c, nil
}

// publishSnapshot publishes a record of every MV of sn (a tombstone for a
// dropped one) in chunks, each after proving the writer still holds its
// role, and counts them.
func (w *Writer) publishSnapshot(ctx context.Context, sn *mvstate.Snapshot) (mvs, tombs int, err error) {
	var batch []kafkaio.Message
	chunk := w.Chunk
	if chunk <= 0 {
		chunk = 200
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.fenced(ctx); err != nil {
			return err
		}
		if err := w.Pub.Publish(ctx, batch...); err != nil {
			return fmt.Errorf("checkpoint: publish snapshot records: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	err = sn.Each(ctx, func(v mvstate.SnapMV) error {
		m := kafkaio.Message{Topic: w.Topic, Key: []byte(v.Key.String())}
		if v.MV != nil {
			m.Value = editlog.AppendSnapshot(nil, editlog.MVSnapshot{JournalID: v.JournalID, Epoch: w.Epoch, MV: v.MV})
			mvs++
		} else {
			tombs++ // nil value: a tombstone
		}
		batch = append(batch, m)
		if len(batch) >= chunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return mvs, tombs, err
}

// durable records that checkpoint c is durable: it becomes Last, the drops
// its tombstones cover are forgotten, Durable is told, and the edit log
// before the previous checkpoint is truncated.
func (w *Writer) durable(ctx context.Context, c editlog.Checkpoint, mvs, tombs int, start time.Time) {
	w.prev, w.Last = w.Last, &c
	// Tombstones written: forget the drops they cover.
	if w.prev != nil {
		w.State.PruneDropped(w.prev.JournalID)
	}
	if w.Durable != nil {
		w.Durable(c, mvs, tombs, time.Since(start))
	}
	// The journal before the previous checkpoint is no longer needed:
	// restores start at the latest one (or, if it were lost, the one before).
	if w.Truncate != nil && w.prev != nil && w.prev.EditLogOffset > 0 {
		if err := w.Truncate(ctx, w.prev.EditLogOffset); err != nil {
			w.Log.Warn().Err(err).Int64("before", w.prev.EditLogOffset).Msg("checkpoint: truncating the edit log failed; it is retried after the next checkpoint")
		}
	}
}

// fenced returns ErrNotWriter when the writer no longer holds its role, and
// another error when that cannot be told.
func (w *Writer) fenced(ctx context.Context) error {
	if w.Alive != nil && !w.Alive() {
		return ErrNotWriter
	}
	if w.Fence != nil {
		if err := w.Fence(ctx); err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, kafkaio.ErrFenced):
				return fmt.Errorf("%w: %w", ErrNotWriter, err)
			}
			// A coordinator that does not answer proves nothing either
			// way: a failed checkpoint, tried again.
			return fmt.Errorf("checkpoint: cannot prove the writer's generation: %w", err)
		}
	}
	return nil
}

// waitPublished waits until record j is acknowledged on the edit log and
// returns its offset.
func (w *Writer) waitPublished(ctx context.Context, j int64) (int64, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if w.EditLog.PublishedThrough() >= j {
			off, ok := w.EditLog.EditLogOffset(j)
			if !ok {
				return 0, fmt.Errorf("%w: the edit-log offset of journal id %d is not known", ErrNotYet, j)
			}
			return off, nil
		}
		if w.Alive != nil && !w.Alive() {
			return 0, ErrNotWriter
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}
