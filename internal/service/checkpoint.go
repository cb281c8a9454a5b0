package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/checkpoint"
	"github.com/mvrepair/mvrepair/internal/pipeline"
)

// ErrNotActive is returned by Checkpoint on an instance that is not the
// active writer.
var ErrNotActive = errors.New("service: this instance is not the active writer (checkpoints are written by the active one)")

// startCheckpointer runs the active writer's checkpoints (every
// checkpoint.interval or checkpoint.max_records records) until ctx ends or
// the returned stop is called.
func (s *Service) startCheckpointer(ctx context.Context, w *pipeline.Writer, gen pipeline.Committer, epoch int64) (stop func()) {
	if s.cfg.DryRun {
		return func() {}
	}
	cw := &checkpoint.Writer{State: w.Proc.Store.State(), Pub: s.kafka.Producer, EditLog: w,
		Topic: s.cfg.Kafka.Topics.Snapshots, Epoch: epoch, Log: s.log,
		Alive: func() bool { return ctx.Err() == nil },
		Fence: func(ctx context.Context) error {
			err := w.Fence(ctx, gen)
			if errors.Is(err, pipeline.ErrNoFence) {
				return fmt.Errorf("%w: %w", checkpoint.ErrNotYet, err) // no offset committed yet: later
			}
			return err
		},
		Durable: func(c editlog.Checkpoint, mvs, tombs int, took time.Duration) {
			s.Metrics.Checkpoint(c.JournalID, time.UnixMilli(c.At))
			s.log.Info().Int64("journal_id", c.JournalID).Int64("edit_log_offset", c.EditLogOffset).Int("mvs_written", mvs).
				Int("tombstones", tombs).Int("mvs", c.MVs).Dur("took", took).Msg("checkpoint written")
		}}
	if s.cfg.Checkpoint.Truncate {
		cw.Truncate = s.truncateEditLog
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.checkpointLoop(cctx, cw)
	}()
	return func() { cancel(); wg.Wait() }
}

// checkpointLoop reads the latest checkpoint, then writes checkpoints as
// they fall due, until ctx ends. Until the latest checkpoint is known none
// is written: a checkpoint written without it would hold every MV but no
// tombstone for an MV dropped since, and a restore from it would bring that
// MV back. Failures are tried again after a growing pause, not every poll.
func (s *Service) checkpointLoop(ctx context.Context, cw *checkpoint.Writer) {
	pace := newCheckpointPacer()
	known := false
	defer s.setCheckpointer(nil)
	t := time.NewTicker(checkpointPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !pace.ready(now) {
			continue
		}
		if !known {
			last, err := checkpoint.Latest(ctx, s.kafka.SnapshotSource(s.log))
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn().Err(err).Dur("retry_in", pace.failed(now)).
						Msg("cannot read the latest checkpoint; no checkpoint is written until it is known")
				}
				continue
			}
			cw.Last, known = last, true
			pace.succeeded()
			s.setCheckpointer(cw)
		}
		if !cw.Due(s.cfg.Checkpoint.Interval, s.cfg.Checkpoint.MaxRecords, now) {
			continue
		}
		if _, err := s.runCheckpoint(ctx, cw); checkpointFailed(ctx, err) {
			pace.failed(now)
		} else {
			pace.succeeded()
		}
	}
}

// checkpointFailed says whether err is a failed checkpoint (not a success,
// one that is not due yet, nor one ended by the role or the context).
func checkpointFailed(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && !errors.Is(err, checkpoint.ErrNotYet) && !errors.Is(err, checkpoint.ErrNotWriter)
}

// checkpointPacer spaces the attempts after a failure: 1 s, doubling up to
// a minute, back to the poll after a success.
type checkpointPacer struct {
	b       *backoff.ExponentialBackOff
	retryAt time.Time
}

func newCheckpointPacer() *checkpointPacer {
	return &checkpointPacer{b: backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(time.Minute), backoff.WithMaxElapsedTime(0), backoff.WithRandomizationFactor(0))}
}

// ready says whether an attempt may be made now.
func (p *checkpointPacer) ready(now time.Time) bool { return !now.Before(p.retryAt) }

// failed notes a failure at now and returns the pause before the next try.
func (p *checkpointPacer) failed(now time.Time) time.Duration {
	d := p.b.NextBackOff()
	p.retryAt = now.Add(d)
	return d
}

// succeeded clears the pause.
func (p *checkpointPacer) succeeded() {
	p.b.Reset()
	p.retryAt = time.Time{}
}

// checkpointPoll is how often the checkpointer asks whether one is due (a
// comparison of two counters and a clock: cheap), so a checkpoint starts
// within this long of checkpoint.max_records being reached.
const checkpointPoll = 100 * time.Millisecond

func (s *Service) setCheckpointer(cw *checkpoint.Writer) {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	s.cpWriter = cw
}

// runCheckpoint writes one checkpoint (one at a time).
func (s *Service) runCheckpoint(ctx context.Context, cw *checkpoint.Writer) (*editlog.Checkpoint, error) {
	s.cpRun.Lock()
	defer s.cpRun.Unlock()
	c, err := cw.Write(ctx)
	switch {
	case err == nil, errors.Is(err, checkpoint.ErrNotYet), ctx.Err() != nil:
	case errors.Is(err, checkpoint.ErrNotWriter):
		s.log.Info().Msg("checkpoint abandoned: the writer role ended")
	default:
		s.Metrics.CheckpointFailed()
		s.log.Warn().Err(err).Msg("checkpoint failed; tried again after a pause (1 s, doubling up to 1 min)")
	}
	return c, err
}

// Checkpoint writes a checkpoint now (the `consumer checkpoint` command,
// through POST /v1/checkpoint) and returns its marker.
func (s *Service) Checkpoint(ctx context.Context) (*editlog.Checkpoint, error) {
	s.checkpointMu.Lock()
	cw := s.cpWriter
	s.checkpointMu.Unlock()
	if cw == nil {
		return nil, ErrNotActive
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.runCheckpoint(ctx, cw)
		if !errors.Is(err, checkpoint.ErrNotYet) || time.Now().After(deadline) {
			if c == nil && err == nil {
				return nil, fmt.Errorf("service: nothing to checkpoint yet (the journal is empty)")
			}
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// truncateEditLog deletes edit-log records below offset before.
func (s *Service) truncateEditLog(ctx context.Context, before int64) error {
	low, err := s.kafka.Admin.DeleteRecords(ctx, s.cfg.Kafka.Topics.EditLog, 0, before)
	if err != nil {
		return err
	}
	s.Metrics.SetEditLogFirst(low)
	s.log.Info().Int64("first_offset", low).Msg("edit log truncated below the previous checkpoint")
	return nil
}
