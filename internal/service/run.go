package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/retry"
)

// retryPolicy is the service's backoff of transient failures.
func (s *Service) retryPolicy() retry.Policy {
	r := s.cfg.Retry
	return retry.Policy{InitialInterval: r.InitialInterval, MaxInterval: r.MaxInterval, Multiplier: r.Multiplier,
		MaxElapsedTime: r.MaxElapsedTime}
}

// hooks are the pipeline's report consumers: metrics, logs, and the
// caller's (one set for the service's life, made by Open, so the log
// summary spans roles).
func (s *Service) hooks() pipeline.Hooks { return s.hookSet }

func (s *Service) follower() *pipeline.Follower {
	src := s.kafka.EditLogSource(s.log)
	return &pipeline.Follower{Store: s.Store(), Topic: s.topics.EditLog, Log: s.log.With().Str("role", "follower").Logger(),
		Hooks: s.hooks(), Retry: s.retryPolicy(), Health: s.followerHealth, Open: src.Open, HWM: src.HWM}
}

func (s *Service) writer(dryRun bool) *pipeline.Writer {
	c := s.cfg
	return &pipeline.Writer{
		Proc: &pipeline.Processor{Store: s.Store(), Topics: s.topics, Limits: s.kafka.Limits, DryRun: dryRun},
		Pub:  s.kafka.Producer,
		Cfg: pipeline.WriterConfig{MaxEvents: c.Batch.MaxEvents, MaxWait: c.Batch.MaxWait,
			FinishTimeout: c.ShutdownTimeout, Retry: s.retryPolicy()},
		Log:           s.log,
		Hooks:         s.hooks(),
		CommitHealth:  s.writerHealth,
		PublishHealth: s.publishHealth,
		InputHealth:   s.inputHealth,
		Published:     &s.published,
	}
}

// Run restores the state if it must, joins the group and serves until ctx
// ends, then shuts down gracefully: the batch in flight is finished,
// published and committed, and the member leaves the group. It returns nil
// after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	s.stopMu.Lock()
	s.stop = stop
	s.stopMu.Unlock()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() { defer bgWG.Done(); s.watch(bg) }()
	defer func() { stopBG(); bgWG.Wait() }()

	if err := s.restoreAtStart(ctx); err != nil || ctx.Err() != nil {
		if b := s.fatal.Load().(errBox); b.err != nil {
			return b.err
		}
		return err
	}
	group, err := kafkaio.NewGroup(GroupConfig(s.cfg, s.kafka.Brokers, s.log))
	if err != nil {
		return err
	}
	var genWG sync.WaitGroup
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.groupLoop(ctx, group, &genWG)
	}()
	<-ctx.Done()
	s.log.Info().Msg("shutting down: finishing the batch in flight")
	closed := make(chan error, 1)
	go func() { closed <- group.Close() }()
	select {
	case err = <-closed:
	case <-time.After(s.cfg.ShutdownTimeout):
		err = errors.New("service: group close timed out")
	}
	waitTimeout(&genWG, s.cfg.ShutdownTimeout)
	select {
	case <-loopDone:
	case <-time.After(time.Second):
	}
	if b := s.fatal.Load().(errBox); b.err != nil {
		return b.err
	}
	return err
}

// groupLoop takes one generation after the other and runs its role.
func (s *Service) groupLoop(ctx context.Context, group *kafkaio.Group, genWG *sync.WaitGroup) {
	failures := 0
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkaio.ErrGroupClosed) {
				return
			}
			// kafka-go rejoins by itself (e.g. after an eviction: unknown
			// member id); keep asking for the next generation.
			s.joined.Store(false)
			failures++
			wait := min(s.cfg.Retry.InitialInterval<<min(failures, 10), s.cfg.Retry.MaxInterval)
			logRetry(s.log, "consumer group: no generation; rejoining", err, failures, wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
		s.joined.Store(true)
		s.Metrics.SetActive(gen.Active())
		s.active.Store(gen.Active())
		genWG.Add(1)
		if gen.Active() {
			s.log.Info().Int64("generation", gen.ID()).Str("member", gen.MemberID()).Msg("active: consuming input")
			gen.Run(func(gctx context.Context) { defer genWG.Done(); s.runActive(gctx, gen) })
		} else {
			s.log.Info().Int64("generation", gen.ID()).Msg("standby: following the edit log")
			s.Metrics.ResetConsumerLag()
			gen.Run(func(gctx context.Context) { defer genWG.Done(); s.runStandby(gctx) })
		}
	}
}

// logRetry logs a retried failure: the first attempts at WARN, then every
// tenth.
func logRetry(log zerolog.Logger, msg string, err error, attempt int, wait time.Duration) {
	if attempt <= 3 || attempt%10 == 0 {
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg(msg)
	}
}

// runActive is the writer role for one generation: restore barrier, outbox
// leftovers, then batches until the generation ends.
func (s *Service) runActive(ctx context.Context, gen *kafkaio.Generation) {
	defer func() {
		s.writerHealth.Reset()
		s.publishHealth.Reset()
		s.inputHealth.Reset()
	}()
	epoch := max(gen.ID(), s.Store().State().Epoch()+1)
	s.Metrics.SetEpoch(epoch)
	log := s.log.With().Int64("epoch", epoch).Logger()
	failures := 0
	for ctx.Err() == nil {
		w := s.writer(s.cfg.DryRun)
		err := s.activeOnce(ctx, gen, w, epoch, log)
		if err == nil || errors.Is(err, pipeline.ErrStopped) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, kafkaio.ErrFenced) {
			log.Warn().Err(err).Msg("lost the writer role; waiting for the next generation")
			return
		}
		if pipeline.IsForked(err) {
			// This store holds records the edit log does not: the last
			// writer (us, in an earlier generation) lost them. Rebuild from
			// Kafka and take over from there.
			log.Error().Err(err).Msg("this store is ahead of the edit log (forked); rebuilding it from Kafka before taking over")
			if rerr := s.selfRebuild(ctx, "forked"); rerr != nil {
				s.fail(fmt.Errorf("rebuild after a fork: %w", rerr))
				return
			}
			continue
		}
		if pipeline.IsFatal(err) {
			s.fail(err)
			return
		}
		failures++
		wait := min(s.cfg.Retry.InitialInterval<<min(failures, 10), s.cfg.Retry.MaxInterval)
		log.Error().Err(err).Dur("retry_in", wait).Msg("writer pipeline failed; restarting it")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Service) activeOnce(ctx context.Context, gen *kafkaio.Generation, w *pipeline.Writer, epoch int64, log zerolog.Logger) error {
	f := s.follower()
	c, err := f.CatchUp(ctx)
	if errors.Is(err, pipeline.ErrTruncated) {
		log.Warn().Err(err).Msg("the edit log no longer reaches this store's position; restoring from the latest checkpoint")
		if rerr := s.selfRebuild(ctx, "behind a truncated edit log"); rerr != nil {
			return rerr
		}
		return errRestart
	}
	if err != nil {
		return err
	}
	if c.Applied > 0 {
		log.Info().Int("records", c.Applied).Int64("journal_id", s.Store().State().JournalID()).Msg("restore barrier applied edit-log records")
	}
	if n, err := w.PublishLeftovers(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Info().Int("messages", n).Msg("published outbox leftovers")
	}
	start, err := w.SyncOffsets(ctx, gen, gen.Assignments())
	if err != nil {
		return err
	}
	fcfg := s.kafka.FetcherConfig(s.log)
	fcfg.Decode = pipeline.Predecode // events decoded on the fetch goroutines, beside the writer
	fetcher, err := kafkaio.NewFetcher(ctx, fcfg, start)
	if err != nil {
		return err
	}
	defer fetcher.Close()
	stopCP := s.startCheckpointer(ctx, w, gen, epoch)
	defer stopCP()
	return w.Run(ctx, fetcher, gen, epoch)
}

// errRestart asks runActive to start the role over at once.
var errRestart = errors.New("service: restart the role")

// runStandby is the follower role for one generation.
func (s *Service) runStandby(ctx context.Context) {
	defer s.followerHealth.Reset()
	failures := 0
	for ctx.Err() == nil {
		_, err := s.follower().Follow(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		if pipeline.IsForked(err) || errors.Is(err, pipeline.ErrTruncated) {
			why := "forked"
			if !pipeline.IsForked(err) {
				why = "behind a truncated edit log"
			}
			s.log.Warn().Err(err).Msg("this standby's store cannot follow the edit log any more; rebuilding it from Kafka beside the live one")
			if rerr := s.selfRebuild(ctx, why); rerr != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error().Err(rerr).Msg("standby rebuild failed; retrying")
			}
			continue
		}
		failures++
		wait := min(s.cfg.Retry.InitialInterval<<min(failures, 10), s.cfg.Retry.MaxInterval)
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("following the edit log failed; retrying")
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
