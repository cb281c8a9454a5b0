package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/retry"
)

// restoreAtStart restores the state from Kafka when the store is empty (a
// new or lost state dir: docs/design.md §7) or was moved aside as corrupt,
// retrying transient broker errors until ctx ends: on a real cluster a
// topic created a moment ago answers NotLeaderForPartition for a while, and
// a broker may be restarting. A permanent error (say, a gap in the edit
// log) stops the service.
func (s *Service) restoreAtStart(ctx context.Context) error {
	if !s.Store().State().Empty() && !s.needRestore.Load() {
		return nil
	}
	_, err := retry.Do(ctx, s.retryPolicy().Forever(), retry.Options{
		ShouldRetry: restoreRetry(),
		OnRetry: func(err error, n int, wait time.Duration) {
			logRetry(s.log, "restore from Kafka failed; retrying", err, n, wait)
		}},
		func(ctx context.Context) error { return s.restore(ctx, "empty state dir") })
	if ctx.Err() != nil {
		return nil // stopped while restoring: a clean shutdown; the next start goes on
	}
	if err != nil {
		return fmt.Errorf("restore from Kafka: %w", err)
	}
	s.needRestore.Store(false)
	return nil
}

// selfRebuild rebuilds the store beside the live one and swaps it in: a
// standby whose store forked or fell behind a truncated edit log.
func (s *Service) selfRebuild(ctx context.Context, why string) error {
	s.Metrics.Fork()
	_, err := retry.Do(ctx, s.retryPolicy().Forever(), retry.Options{
		ShouldRetry: restoreRetry(),
		OnRetry: func(err error, n int, wait time.Duration) {
			logRetry(s.log, "rebuild from Kafka failed; retrying", err, n, wait)
		}},
		func(ctx context.Context) error { return s.restore(ctx, why) })
	return err
}

// missingRecordsAttempts is how many restores in all (of one start-up or
// fork, whatever failed in between) may find records missing before it is
// believed: the writer may truncate the edit log
// below a checkpoint while a restore reads it (a restore that started
// before that checkpoint existed reads the whole log); the next attempt
// starts from the new checkpoint.
const missingRecordsAttempts = 5

// restoreRetry says which restore failures are tried again: transient
// broker errors always, records found missing a few times.
func restoreRetry() func(error) bool {
	missing := 0
	return func(err error) bool {
		if kafkaio.IsTransient(err) {
			return true
		}
		var gap *recovery.GapError
		if errors.Is(err, recovery.ErrMissingRecords) || errors.As(err, &gap) {
			missing++
			return missing < missingRecordsAttempts
		}
		return false
	}
}

// restore builds a new store from Kafka beside the live one (the latest
// checkpoint and the edit log after it), then swaps it in: HTTP readers see
// the old state until the new one is complete, never a partial one. The
// instance is not ready meanwhile.
func (s *Service) restore(ctx context.Context, why string) error {
	s.restoring.Store(true)
	s.Metrics.SetRestoring(true, 0)
	s.restoreProgress.Store("starting")
	defer func() {
		s.restoring.Store(false)
		s.Metrics.SetRestoring(false, 0)
	}()
	start := time.Now()
	s.log.Warn().Str("why", why).Msg("restoring the state from Kafka into a new store beside the live one")
	nw, err := s.dir.Build(ctx)
	if err != nil {
		return err
	}
	installed := false
	defer func() {
		if !installed {
			nw.Close(context.Background(), false)
		}
	}()
	opt := recovery.Options{Progress: func(p recovery.Progress) {
		msg := fmt.Sprintf("%s: %d records, %d partition entries, %s", p.Phase, p.Done, p.Entries, p.Elapsed.Round(time.Second))
		s.restoreProgress.Store(msg)
		s.Metrics.SetRestoring(true, p.Entries)
		s.log.Info().Str("phase", p.Phase).Int64("records", p.Done).Int64("entries", p.Entries).
			Dur("elapsed", p.Elapsed).Msg("restoring")
	}}
	rep, err := recovery.Restore(ctx, nw, s.kafka.SnapshotSource(s.log), s.kafka.EditLogSource(s.log), opt)
	if err != nil {
		return err
	}
	if nw.State().Empty() && s.Store().State().Empty() {
		// Nothing in Kafka either (a new deployment): keep the live store.
		installed = true
		s.log.Info().Msg("nothing to restore: Kafka holds no journal yet")
		return s.dir.Discard(nw)
	}
	if _, err := s.dir.Install(ctx, nw); err != nil {
		return err
	}
	installed = true
	old := s.store.Swap(nw)
	if old != nil {
		old.Close(context.Background(), false)
	}
	ev := s.log.Info().Int("records", rep.Applied).Int("snapshots", rep.Snapshots).Int64("journal_id", rep.JournalID).
		Int("mvs", rep.MVs).Int("fenced", len(rep.Fenced)).Dur("took", time.Since(start))
	if rep.Checkpoint != nil {
		ev = ev.Int64("checkpoint_journal_id", rep.Checkpoint.JournalID)
	}
	ev.Msg("state restored from Kafka")
	return nil
}
