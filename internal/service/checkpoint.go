package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
		Fence: func(ctx context.Context) error { return w.Fence(ctx, gen) },
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
		last, err := checkpoint.Latest(cctx, s.kafka.SnapshotSource(s.log))
		if err != nil {
			if cctx.Err() == nil {
				s.log.Warn().Err(err).Msg("cannot read the latest checkpoint; the next one holds every MV")
			}
		} else {
			cw.Last = last
		}
		s.setCheckpointer(cw)
		defer s.setCheckpointer(nil)
		t := time.NewTicker(checkpointPoll)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
			}
			if !cw.Due(s.cfg.Checkpoint.Interval, s.cfg.Checkpoint.MaxRecords, time.Now()) {
				continue
			}
			s.runCheckpoint(cctx, cw)
		}
	}()
	return func() { cancel(); wg.Wait() }
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
		s.log.Warn().Err(err).Msg("checkpoint failed; retried at the next interval")
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
