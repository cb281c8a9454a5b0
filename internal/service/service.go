// Package service wires the parts into the running service of
// docs/design.md: the state store, the Kafka clients (or the embedded
// broker), the consumer group whose single active member runs the writer
// pipeline while the others follow the edit log, restores from Kafka, the
// stall watchdog, the HTTP surface, and graceful shutdown.
package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/checkpoint"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/health"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/store"
)

// Options are the parts of a service that tests replace.
type Options struct {
	// WrapFile wraps the store's log files (fault injection in tests).
	WrapFile func(store.File) store.File
	// Hooks receive the pipeline's reports, besides the service's own
	// metrics and logs.
	Hooks pipeline.Hooks
}

// Service is one running instance.
type Service struct {
	cfg     *config.Config
	log     zerolog.Logger
	opt     Options
	Metrics *metrics.Metrics

	dir   *store.Dir
	store atomic.Pointer[store.Store] // swapped by a self-rebuild
	kafka *Kafka
	// topics are the pipeline's topic names.
	topics pipeline.Topics

	watchdog                    *health.Watchdog
	writerHealth, publishHealth *health.Component
	followerHealth              *health.Component
	inputHealth                 *health.Component // input partitions not readable where the store stands
	joined, active, restoring   atomic.Bool
	needRestore                 atomic.Bool  // the store was found corrupt and moved aside
	brokerErr                   atomic.Value // errBox: the last broker ping
	fatal                       atomic.Value // errBox: set when the loop died
	restoreProgress             atomic.Value // string: what /readyz says while restoring
	closeOnce                   sync.Once
	stop                        context.CancelFunc // ends Run (set by Run)
	stopMu                      sync.Mutex
	checkpointMu                sync.Mutex // guards cpWriter
	cpWriter                    *checkpoint.Writer
	cpRun                       sync.Mutex // one checkpoint at a time
	hookSet                     pipeline.Hooks
}

type errBox struct{ err error }

// Open prepares a service: takes the state dir, opens the store (moving a
// corrupt one aside: Run restores it from Kafka), starts the embedded
// broker when configured, connects the Kafka clients and checks the
// topics. It does not consume; call Run. Its errors are one line naming the
// cause and the fix.
func Open(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts ...Options) (*Service, error) {
	s := &Service{cfg: cfg, log: log, Metrics: metrics.New(), topics: topicsOf(cfg)}
	if len(opts) > 0 {
		s.opt = opts[0]
	}
	s.brokerErr.Store(errBox{})
	s.fatal.Store(errBox{})
	s.restoreProgress.Store("")
	s.watchdog = health.New(cfg.Health.StallTimeout, nil)
	s.writerHealth = s.watchdog.Component("writer")
	s.publishHealth = s.watchdog.Component("publisher")
	s.followerHealth = s.watchdog.Component("follower")
	s.inputHealth = s.watchdog.Component("input")
	s.hookSet = append(pipeline.Hooks{metricsHook{s.Metrics}, newLogHook(log)}, s.opt.Hooks...)
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	var err error
	if s.kafka, err = OpenKafka(ctx, cfg, log); err != nil {
		return nil, err
	}
	opened = true
	return s, nil
}

// openStore takes the state dir and opens the store in it.
func (s *Service) openStore(ctx context.Context) error {
	sopt := store.Options{SnapshotEvery: s.cfg.State.SnapshotBytes, Log: s.log, WrapFile: s.opt.WrapFile}
	dir, err := store.LockDir(s.cfg.State.Dir, sopt)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("state dir %s is in use by another mvrepair process: stop it, or give this instance its own state.dir (MVREPAIR_STATE_DIR)", s.cfg.State.Dir)
	}
	if err != nil {
		return fmt.Errorf("state dir: %w (check state.dir / MVREPAIR_STATE_DIR)", err)
	}
	s.dir = dir
	for _, n := range dir.Notes {
		s.log.Warn().Str("state_dir", s.cfg.State.Dir).Msg("store: " + n)
	}
	st, err := dir.Open(ctx)
	if errors.Is(err, store.ErrCorrupt) {
		aside, merr := dir.MoveAside()
		if merr != nil {
			return fmt.Errorf("the local store is corrupt (%v) and cannot be moved aside: %w", err, merr)
		}
		s.log.Error().Err(err).Str("moved_to", aside).
			Msg("THE LOCAL STORE IS CORRUPT: it was moved aside, and the state is restored from Kafka before anything is served")
		s.needRestore.Store(true)
		st, err = dir.Open(ctx)
	}
	if err != nil {
		return fmt.Errorf("open the local store in %s: %w", s.cfg.State.Dir, err)
	}
	if r := st.Recovery(); r.TornBytes > 0 {
		s.log.Warn().Int64("bytes", r.TornBytes).Msg("store: cut off a torn last log entry (a crash during a commit; that commit never completed)")
	}
	for _, n := range dir.Notes {
		if n != "" {
			s.needRestore.Store(true) // a legacy store moved aside: restore it
		}
	}
	s.store.Store(st)
	s.log.Info().Str("state_dir", s.cfg.State.Dir).Int64("journal_id", st.State().JournalID()).Int("mvs", st.State().Len()).
		Dur("took", st.Recovery().Took).Int("log_entries_replayed", st.Recovery().Entries).Msg("local store opened")
	return nil
}

func topicsOf(cfg *config.Config) pipeline.Topics {
	return pipeline.Topics{Input: cfg.Kafka.Topics.Input, Catalog: cfg.Kafka.Topics.Catalog,
		EditLog: cfg.Kafka.Topics.EditLog, DLQ: cfg.Kafka.Topics.DLQ}
}

// Store returns the live state store (it changes when a standby rebuilds
// itself: callers that keep it across calls get the old one).
func (s *Service) Store() *store.Store { return s.store.Load() }

// Kafka returns the Kafka side of the service.
func (s *Service) Kafka() *Kafka { return s.kafka }

// Brokers returns the bootstrap brokers in use (the embedded one's address
// when embedded).
func (s *Service) Brokers() []string { return s.kafka.Brokers }

// Topics returns the topic names in use.
func (s *Service) Topics() pipeline.Topics { return s.topics }

// Active reports whether this instance is the writer now.
func (s *Service) Active() bool { return s.active.Load() }

// Close releases everything Open acquired: the store is closed after a
// final snapshot (so the next start replays nothing), within
// shutdown_timeout. It is safe to call twice.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		if st := s.store.Load(); st != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			if err := st.Close(ctx, true); err != nil {
				s.log.Warn().Err(err).Msg("closing the store")
			}
			cancel()
		}
		if s.dir != nil {
			_ = s.dir.Close()
		}
		if s.kafka != nil {
			s.kafka.Close()
		}
	})
}

// fail records a fatal error (/livez turns unhealthy) and stops Run.
func (s *Service) fail(err error) {
	s.log.Error().Err(err).Msg("fatal: stopping the service")
	s.fatal.Store(errBox{err})
	s.stopMu.Lock()
	stop := s.stop
	s.stopMu.Unlock()
	if stop != nil {
		stop()
	}
}

// Live is the /livez check: the process is healthy (its loop has not died).
func (s *Service) Live() error {
	if b := s.fatal.Load().(errBox); b.err != nil {
		return b.err
	}
	return nil
}

// Ready is the /readyz check: the store restored and open, the broker
// reachable, the group joined, and no component stalled.
func (s *Service) Ready() error {
	err := s.ready()
	s.Metrics.SetReady(err == nil)
	return err
}

func (s *Service) ready() error {
	if err := s.Live(); err != nil {
		return err
	}
	if s.restoring.Load() {
		return fmt.Errorf("restoring the state from Kafka: %s", s.restoreProgress.Load().(string))
	}
	if b := s.brokerErr.Load().(errBox); b.err != nil {
		return fmt.Errorf("broker unreachable: %w", b.err)
	}
	if !s.joined.Load() {
		return errors.New("consumer group not joined yet")
	}
	return s.watchdog.Check()
}

// waitTimeout waits for wg at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// Admin returns the admin client.
func (s *Service) Admin() *kafkaio.Admin { return s.kafka.Admin }

// Producer returns the producer.
func (s *Service) Producer() *kafkaio.Producer { return s.kafka.Producer }
