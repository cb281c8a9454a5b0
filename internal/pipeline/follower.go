package pipeline

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

// TailOpener opens a reader of the edit-log topic starting at the given next
// offsets per partition (partitions absent from start begin at the first
// offset).
type TailOpener func(ctx context.Context, start map[int]int64) (Tail, error)

// Tail is an open edit-log reader.
type Tail interface {
	Fetcher
	Close() error
}

// HighWatermarks returns the next offset to be written per partition.
type HighWatermarks func(ctx context.Context) (map[int]int64, error)

// FollowerObserver receives what a follower applied (metrics).
type FollowerObserver interface {
	Applied(result string, journalID int64)
}

type nopFollowerObserver struct{}

func (nopFollowerObserver) Applied(string, int64) {}

// Follower applies edit-log records to a store: standbys follow the active
// writer with it, a writer runs it up to the high watermarks before taking
// over (the restore barrier), and rebuild runs it on an empty store.
type Follower struct {
	Store *mvstate.Store
	Topic string
	Open  TailOpener
	HWM   HighWatermarks
	Log   zerolog.Logger
	Obs   FollowerObserver
	// MaxBatch is the most records per local commit (default 1000).
	MaxBatch int
	// MaxWait bounds how long a partial batch waits (default 20ms).
	MaxWait time.Duration
}

// Stats counts what a follower run did, by Apply result.
type Stats struct {
	Applied, Duplicate, Stale, Gap, Forked int
	Undecodable                            int
	LastJournal                            int64
}

func (s *Stats) add(r editlog.Result) {
	switch r {
	case editlog.Applied:
		s.Applied++
	case editlog.Duplicate:
		s.Duplicate++
	case editlog.Stale:
		s.Stale++
	case editlog.Gap:
		s.Gap++
	case editlog.Forked:
		s.Forked++
	}
}

func (f *Follower) obs() FollowerObserver {
	if f.Obs == nil {
		return nopFollowerObserver{}
	}
	return f.Obs
}

// CatchUp applies the edit log up to the high watermarks read at its start
// (the restore barrier of DESIGN.md §7). It returns editlog.ErrForked if the
// log was forked by a newer writer past this store's position.
func (f *Follower) CatchUp(ctx context.Context) (Stats, error) {
	hwm, err := f.HWM(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("pipeline: edit-log high watermarks: %w", err)
	}
	return f.run(ctx, hwm)
}

// Follow applies the edit log until ctx ends (then returns nil) or the log
// forks (editlog.ErrForked).
func (f *Follower) Follow(ctx context.Context) (Stats, error) {
	st, err := f.run(ctx, nil)
	if err != nil && ctx.Err() != nil {
		return st, nil
	}
	return st, err
}

// run tails from the store's edit-log offsets; with until set it returns once
// every partition reached it.
func (f *Follower) run(ctx context.Context, until map[int]int64) (Stats, error) {
	var st Stats
	pos := map[int]int64{}
	for tp, off := range f.Store.Offsets() {
		if tp.Topic == f.Topic {
			pos[tp.Partition] = off
		}
	}
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
		return st, nil
	}
	tail, err := f.Open(ctx, pos)
	if err != nil {
		return st, fmt.Errorf("pipeline: open edit log: %w", err)
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
		batch, err := Collect(ctx, tail, maxBatch, maxWait, idleAfter)
		if errors.Is(err, ErrIdle) {
			err = nil
		}
		if len(batch) > 0 {
			if aerr := f.apply(ctx, batch, &st, pos); aerr != nil {
				return st, aerr
			}
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// apply commits one batch of edit-log messages to the store.
func (f *Follower) apply(ctx context.Context, batch []kafkaio.Message, st *Stats, pos map[int]int64) error {
	recs := make([]*editlog.Record, 0, len(batch))
	for _, m := range batch {
		r, err := editlog.Decode(m.Value)
		if err != nil {
			st.Undecodable++
			f.Log.Error().Err(err).Str("topic", m.Topic).Int("partition", m.Partition).Int64("offset", m.Offset).
				Msg("undecodable edit-log record skipped")
			continue
		}
		recs = append(recs, r)
	}
	keys, structural := editlog.Touches(recs)
	var local Stats
	forked := false
	err := f.Store.Commit(ctx, mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		local = Stats{}
		for _, r := range recs {
			res, err := editlog.Apply(tx, r)
			if err != nil {
				return err
			}
			local.add(res)
			f.obs().Applied(res.String(), r.JournalID)
			switch res {
			case editlog.Forked:
				forked = true
				return editlog.ErrForked
			case editlog.Stale:
				f.Log.Warn().Int64("journal_id", r.JournalID).Int64("epoch", r.Epoch).Int64("applied_epoch", tx.Epoch()).
					Msg("ignored edit-log record of an older epoch (fenced writer)")
			case editlog.Gap:
				f.Log.Warn().Int64("journal_id", r.JournalID).Int64("applied_journal_id", tx.JournalID()).
					Msg("edit-log record beyond the next journal id held back")
			}
		}
		for _, m := range batch {
			if err := tx.SetOffset(m.Topic, m.Partition, m.Offset+1); err != nil {
				return err
			}
		}
		return nil
	}})
	if forked {
		st.Forked++
		return editlog.ErrForked
	}
	if err != nil {
		return fmt.Errorf("pipeline: apply edit log: %w", err)
	}
	st.Applied += local.Applied
	st.Duplicate += local.Duplicate
	st.Stale += local.Stale
	st.Gap += local.Gap
	st.LastJournal = f.Store.JournalID()
	for _, m := range batch {
		if m.Offset+1 > pos[m.Partition] {
			pos[m.Partition] = m.Offset + 1
		}
	}
	return nil
}

// IsForked reports whether err says the journal forked.
func IsForked(err error) bool { return errors.Is(err, editlog.ErrForked) }
