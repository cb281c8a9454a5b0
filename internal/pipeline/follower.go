package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/health"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/retry"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Tail is an open reader of one topic (every partition).
type Tail interface {
	Fetcher
	Close() error
}

// TailOpener opens a reader of the edit-log topic starting at the given next
// offsets per partition (partitions absent from start begin at the first
// offset).
type TailOpener func(ctx context.Context, start map[int]int64) (Tail, error)

// HighWatermarks returns the next offset to be written per partition.
type HighWatermarks func(ctx context.Context) (map[int]int64, error)

// ErrTruncated means the edit log no longer holds records this store has
// not applied (they were deleted below a checkpoint): the store must be
// restored from the latest checkpoint.
var ErrTruncated = errors.New("pipeline: the edit log was truncated past this store's position; restore from the latest checkpoint")

// Follower applies edit-log records to a store: standbys follow the active
// writer with it, a writer runs it up to the high watermarks before taking
// over (the restore barrier).
type Follower struct {
	Store *store.Store
	Topic string
	Open  TailOpener
	HWM   HighWatermarks
	Log   zerolog.Logger
	Hooks Hooks
	// Retry is the backoff of local commits failing on the disk.
	Retry retry.Policy
	// Health receives progress and failures (nil: none).
	Health *health.Component
	// MaxBatch is the most records per local commit (default 1000).
	MaxBatch int
	// MaxWait bounds how long a partial batch waits (default 20ms).
	MaxWait time.Duration
}

// CatchUp applies the edit log up to the high watermarks read at its start
// (the restore barrier of docs/design.md §7). It returns an error wrapping
// editlog.ErrForked if the log was forked by a newer writer past this
// store's position, ErrTruncated if it no longer reaches back to it.
func (f *Follower) CatchUp(ctx context.Context) (editlog.Counts, error) {
	hwm, err := f.HWM(ctx)
	if err != nil {
		return editlog.Counts{}, fmt.Errorf("pipeline: edit-log high watermarks: %w", err)
	}
	return f.run(ctx, hwm)
}

// Follow applies the edit log until ctx ends (then returns nil), the log
// forks (editlog.ErrForked) or no longer reaches this store (ErrTruncated).
func (f *Follower) Follow(ctx context.Context) (editlog.Counts, error) {
	c, err := f.run(ctx, nil)
	if err != nil && ctx.Err() != nil {
		return c, nil
	}
	return c, err
}

// position returns the edit-log offsets the store has applied through.
func (f *Follower) position() map[int]int64 {
	pos := map[int]int64{}
	for tp, off := range f.Store.State().Offsets() {
		if tp.Topic == f.Topic {
			pos[tp.Partition] = off
		}
	}
	return pos
}

// run tails from the store's edit-log offsets; with until set it returns once
// every partition reached it.
func (f *Follower) run(ctx context.Context, until map[int]int64) (editlog.Counts, error) {
	var total editlog.Counts
	pos := f.position()
	done := func() bool {
		if until == nil {
			return false
		}
		for p, hw := range until {
			if hw > 0 && pos[p] < hw {
				return false
			}
		}
		return true
	}
	if done() {
		return total, nil
	}
	tail, err := f.Open(ctx, pos)
	if err != nil {
		return total, fmt.Errorf("pipeline: open edit log: %w", err)
	}
	defer tail.Close()
	maxBatch, maxWait := f.MaxBatch, f.MaxWait
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	if maxWait <= 0 {
		maxWait = 20 * time.Millisecond
	}
	for !done() {
		batch, err := Collect(ctx, tail, maxBatch, maxWait, idleAfter, nil)
		if errors.Is(err, ErrIdle) {
			err = nil
		}
		if len(batch) > 0 {
			c, aerr := f.apply(ctx, batch)
			total.Add(c)
			if aerr != nil {
				return total, aerr
			}
			for _, m := range batch {
				if m.Offset+1 > pos[m.Partition] {
					pos[m.Partition] = m.Offset + 1
				}
			}
		}
		// Records fetched before an error are applied first.
		var oor *kafkaio.OffsetOutOfRangeError
		if errors.As(err, &oor) {
			if oor.Offset < oor.LogStart {
				return total, fmt.Errorf("%w (edit log starts at %d, this store is at %d)", ErrTruncated, oor.LogStart, oor.Offset)
			}
			return total, fmt.Errorf("pipeline: this store has applied the edit log up to offset %d, beyond its end %d (the topic was recreated or lost): %w",
				oor.Offset, oor.HighWatermark, ErrTruncated)
		}
		if err != nil && ctx.Err() != nil {
			return total, err
		}
		if err != nil {
			f.Log.Warn().Err(err).Msg("reading the edit log failed; retrying")
		}
	}
	return total, nil
}

// apply commits one batch of edit-log messages to the store.
func (f *Follower) apply(ctx context.Context, batch []kafkaio.Message) (editlog.Counts, error) {
	start := time.Now()
	recs := make([]*editlog.Record, 0, len(batch))
	enc := make([][]byte, 0, len(batch))
	offsets := map[int]int64{}
	for _, m := range batch {
		if m.Offset+1 > offsets[m.Partition] {
			offsets[m.Partition] = m.Offset + 1
		}
		if m.Skip {
			continue
		}
		r, err := editlog.Decode(m.Value)
		if err != nil {
			f.Log.Error().Err(err).Str("topic", m.Topic).Int("partition", m.Partition).Int64("offset", m.Offset).
				Msg("undecodable edit-log record skipped")
			continue
		}
		recs = append(recs, r)
		enc = append(enc, m.Value)
	}
	b := store.Batch{Records: recs, Encoded: enc, Mode: editlog.Follow}
	for p, next := range offsets {
		b.Offsets = append(b.Offsets, mvstate.OffsetChange{TopicPartition: mvstate.TopicPartition{Topic: f.Topic, Partition: p}, Next: next})
	}
	var res store.Result
	_, err := retry.Do(ctx, f.Retry.Forever(), retry.Options{
		ShouldRetry: store.IsInfra,
		OnRetry: func(err error, n int, wait time.Duration) {
			if f.Health != nil {
				f.Health.Failing(fmt.Errorf("local commit failing: %w", err), false)
			}
			f.Hooks.retry("follow", err, n)
			logRetry(f.Log, "local commit of edit-log records failed; retrying", err, n, wait)
		}},
		func(ctx context.Context) error {
			var err error
			res, err = f.Store.Commit(ctx, b)
			return err
		})
	if err != nil {
		if errors.Is(err, editlog.ErrForked) {
			return res.Counts, err
		}
		return res.Counts, fmt.Errorf("pipeline: apply edit log: %w", err)
	}
	if f.Health != nil {
		f.Health.Progress()
	}
	c := res.Counts
	if c.Stale > 0 {
		f.Log.Warn().Int("records", c.Stale).Int64("applied_epoch", f.Store.State().Epoch()).
			Msg("ignored edit-log records of an older epoch (a fenced writer's late writes)")
	}
	if c.Gap > 0 {
		f.Log.Debug().Int("records", c.Gap).Int64("applied_journal_id", f.Store.State().JournalID()).
			Msg("edit-log records beyond the next journal id held back")
	}
	f.Hooks.batch(&Report{Role: RoleFollower, Size: len(batch), Took: time.Since(start), Records: res.Applied, Counts: c, Bytes: res.Bytes})
	return c, nil
}

// IsForked reports whether err says the journal forked.
func IsForked(err error) bool { return errors.Is(err, editlog.ErrForked) }
