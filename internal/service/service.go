// Package service wires the parts into the running service of DESIGN.md: the
// state store, the Kafka clients (or the embedded broker), the consumer
// group whose single active member runs the writer pipeline while the others
// follow the edit log, the HTTP surface, and graceful shutdown.
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Service is one running instance.
type Service struct {
	cfg     *config.Config
	log     zerolog.Logger
	Metrics *metrics.Metrics

	store  *mvstate.Store
	kafka  *Kafka
	topics pipeline.Topics

	joined    atomic.Bool  // a generation was received
	active    atomic.Bool  // this instance is the writer
	brokerErr atomic.Value // error from the last broker ping (errBox)
	fatal     atomic.Value // errBox: set when the loop died

	closeOnce sync.Once
	stop      context.CancelFunc // ends Run (set by Run)
}

// fail records a fatal error (/livez turns unhealthy) and stops Run.
func (s *Service) fail(err error) {
	s.log.Error().Err(err).Msg("fatal: stopping the service")
	s.fatal.Store(errBox{err})
	if s.stop != nil {
		s.stop()
	}
}

type errBox struct{ err error }

// Open prepares a service: opens the store, starts the embedded broker when
// configured, connects the Kafka clients and creates topics. It does not
// consume; call Run.
func Open(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, log: log, Metrics: metrics.New(), topics: topicsOf(cfg)}
	s.brokerErr.Store(errBox{})
	s.fatal.Store(errBox{})
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	var err error
	if s.store, err = mvstate.Open(ctx, cfg.State.Dir, mvstate.Options{}); err != nil {
		return nil, err
	}
	if s.kafka, err = OpenKafka(ctx, cfg, log); err != nil {
		return nil, err
	}
	opened = true
	return s, nil
}

func topicsOf(cfg *config.Config) pipeline.Topics {
	return pipeline.Topics{Input: cfg.Kafka.Topics.Input, Catalog: cfg.Kafka.Topics.Catalog,
		EditLog: cfg.Kafka.Topics.EditLog, DLQ: cfg.Kafka.Topics.DLQ}
}

// Kafka is the Kafka side of the service: the embedded broker (when
// kafka.brokers is "embedded"), an admin client and a producer.
type Kafka struct {
	Broker   *embedded.Broker // nil unless embedded
	Brokers  []string
	Admin    *kafkaio.Admin
	Producer *kafkaio.Producer
	cfg      *config.Config
}

// OpenKafka starts the embedded broker when configured (its data under
// state.dir/kafka), connects the clients, creates the topics when
// kafka.create_topics is on and checks that the edit log has one partition.
func OpenKafka(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Kafka, error) {
	k := &Kafka{cfg: cfg, Brokers: cfg.BrokerList()}
	opened := false
	defer func() {
		if !opened {
			k.Close()
		}
	}()
	var err error
	if cfg.Embedded() {
		k.Broker, err = embedded.Start(ctx, embedded.Config{Addr: cfg.Kafka.EmbeddedAddr,
			DataDir: filepath.Join(cfg.State.Dir, "kafka")})
		if err != nil {
			return nil, fmt.Errorf("service: embedded broker: %w", err)
		}
		k.Brokers = []string{k.Broker.Addr()}
		log.Info().Str("addr", k.Broker.Addr()).Msg("embedded Kafka-protocol broker started")
	}
	if k.Admin, err = kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: k.Brokers, ClientID: cfg.Kafka.ClientID}); err != nil {
		return nil, err
	}
	if cfg.Kafka.CreateTopics {
		if err = k.Admin.EnsureTopics(ctx, TopicSpecs(cfg)); err != nil {
			return nil, fmt.Errorf("service: create topics: %w", err)
		}
	}
	// Zero partitions means metadata has not caught up with a topic just
	// created; only more than one is an error.
	if parts, perr := k.Admin.Partitions(ctx, cfg.Kafka.Topics.EditLog); perr == nil && len(parts) > 1 {
		return nil, fmt.Errorf("service: edit-log topic %q has %d partitions; the journal needs exactly 1 (a total order)", cfg.Kafka.Topics.EditLog, len(parts))
	}
	k.Producer, err = kafkaio.NewProducer(ProducerConfig(cfg, k.Brokers, log))
	if err != nil {
		return nil, err
	}
	opened = true
	return k, nil
}

// Close releases the clients and stops the embedded broker.
func (k *Kafka) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if k.Producer != nil {
		_ = k.Producer.Close(ctx)
	}
	if k.Admin != nil {
		_ = k.Admin.Close()
	}
	if k.Broker != nil {
		k.Broker.Close()
	}
}

// FetcherConfig is the reader configuration of the clients.
func (k *Kafka) FetcherConfig(log zerolog.Logger) kafkaio.FetcherConfig {
	return FetcherConfig(k.cfg, k.Brokers, log)
}

// ProducerConfig is the producer every part of mvrepair builds from cfg
// (the service, `consumer produce`, the load benchmark's baseline).
func ProducerConfig(cfg *config.Config, brokers []string, log zerolog.Logger) kafkaio.ProducerConfig {
	w := cfg.Kafka.Writer
	return kafkaio.ProducerConfig{Brokers: brokers, ClientID: cfg.Kafka.ClientID, BatchTimeout: w.BatchTimeout,
		BatchSize: w.BatchSize, WriteTimeout: w.WriteTimeout, Compression: w.Compression, Logger: log}
}

// FetcherConfig is the reader configuration every part of mvrepair builds
// from cfg.
func FetcherConfig(cfg *config.Config, brokers []string, log zerolog.Logger) kafkaio.FetcherConfig {
	r := cfg.Kafka.Reader
	return kafkaio.FetcherConfig{Brokers: brokers, ClientID: cfg.Kafka.ClientID, MaxWait: r.MaxWait,
		MaxBytes: r.MaxBytes, QueueCapacity: r.QueueCapacity, Logger: log}
}

// EditLogSource is the edit-log topic as a rebuild source.
func (k *Kafka) EditLogSource(log zerolog.Logger) recovery.Source {
	topic := k.cfg.Kafka.Topics.EditLog
	fcfg := k.FetcherConfig(log)
	return recovery.Source{Topic: topic,
		Open: func(ctx context.Context, start map[int]int64) (recovery.Tail, error) {
			return kafkaio.NewTopicTail(ctx, fcfg, topic, start)
		},
		HWM: func(ctx context.Context) (map[int]int64, error) { return k.highWatermarks(ctx, topic) }}
}

func (k *Kafka) highWatermarks(ctx context.Context, topic string) (map[int]int64, error) {
	offs, err := k.Admin.ListOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(offs))
	for p, o := range offs {
		out[p] = o.Last
	}
	return out, nil
}

// TopicSpecs are the topics the service creates: input and catalog topics
// and the DLQ with kafka.partitions; the edit log with one partition (the
// journal is one total order) and the configured retention.
func TopicSpecs(cfg *config.Config) []kafkaio.TopicSpec {
	k := cfg.Kafka
	return []kafkaio.TopicSpec{
		{Name: k.Topics.Input, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.Topics.Catalog, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.Topics.EditLog, Partitions: 1, ReplicationFactor: k.ReplicationFactor,
			Configs: map[string]string{"retention.ms": fmt.Sprint(k.EditLogRetentionMs), "cleanup.policy": "delete"}},
		{Name: k.Topics.DLQ, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
	}
}

// Store returns the state store.
func (s *Service) Store() *mvstate.Store { return s.store }

// Brokers returns the bootstrap brokers in use (the embedded one's address
// when embedded).
func (s *Service) Brokers() []string { return s.kafka.Brokers }

// Topics returns the topic names in use.
func (s *Service) Topics() pipeline.Topics { return s.topics }

// Admin returns the admin client.
func (s *Service) Admin() *kafkaio.Admin { return s.kafka.Admin }

// Producer returns the producer.
func (s *Service) Producer() *kafkaio.Producer { return s.kafka.Producer }

// Active reports whether this instance is the writer now.
func (s *Service) Active() bool { return s.active.Load() }

// Close releases everything Open acquired. It is safe to call twice.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		if s.store != nil {
			_ = s.store.Close()
		}
		if s.kafka != nil {
			s.kafka.Close()
		}
	})
}

// Live is the /livez check: the process is healthy (its loop has not died).
func (s *Service) Live() error {
	if b := s.fatal.Load().(errBox); b.err != nil {
		return b.err
	}
	return nil
}

// Ready is the /readyz check: store open, broker reachable, group joined.
func (s *Service) Ready() error {
	if err := s.Live(); err != nil {
		return err
	}
	if b := s.brokerErr.Load().(errBox); b.err != nil {
		return fmt.Errorf("broker unreachable: %w", b.err)
	}
	if !s.joined.Load() {
		return errors.New("consumer group not joined yet")
	}
	return nil
}

func (s *Service) follower() *pipeline.Follower {
	src := s.kafka.EditLogSource(s.log)
	return &pipeline.Follower{Store: s.store, Topic: s.topics.EditLog, Log: s.log.With().Str("role", "follower").Logger(),
		Obs: followerObs{s.Metrics},
		Open: func(ctx context.Context, start map[int]int64) (pipeline.Tail, error) {
			return kafkaio.NewTopicTail(ctx, s.kafka.FetcherConfig(s.log), s.topics.EditLog, start)
		},
		HWM: src.HWM}
}

// RestoreIfEmpty rebuilds an empty store from the edit log (DESIGN.md §7: a
// lost state dir is not a disaster), with the same checks as
// `consumer rebuild`. It reports how many records it applied.
func (s *Service) RestoreIfEmpty(ctx context.Context) (int, error) {
	if s.store.JournalID() != 0 || s.store.Len() != 0 || len(s.store.Offsets()) != 0 {
		return 0, nil
	}
	rep, err := recovery.Rebuild(ctx, s.store, s.kafka.EditLogSource(s.log), false)
	if err != nil {
		return 0, fmt.Errorf("service: restore from edit log: %w", err)
	}
	if rep.Applied > 0 {
		s.log.Info().Int("records", rep.Applied).Int64("journal_id", rep.JournalID).Int("mvs", rep.MVs).
			Int("fenced", len(rep.Fenced)).Msg("empty state dir restored from the edit log")
	}
	return rep.Applied, nil
}

func (s *Service) writer(dryRun bool) *pipeline.Writer {
	c := s.cfg
	return &pipeline.Writer{
		Proc: &pipeline.Processor{Store: s.store, Topics: s.topics, Log: s.log, Obs: procObs{s.Metrics}, DryRun: dryRun},
		Pub:  s.kafka.Producer,
		Cfg: pipeline.WriterConfig{MaxEvents: c.Batch.MaxEvents, MaxWait: c.Batch.MaxWait,
			FinishTimeout: c.ShutdownTimeout,
			Retry: pipeline.RetryPolicy{InitialInterval: c.Retry.InitialInterval, MaxInterval: c.Retry.MaxInterval,
				Multiplier: c.Retry.Multiplier, MaxElapsedTime: c.Retry.MaxElapsedTime}},
		Log: s.log,
		Obs: writerObs{s.Metrics},
	}
}

// Run joins the group and serves until ctx ends, then shuts down gracefully:
// the batch in flight is finished, published and committed, and the member
// leaves the group. It returns nil after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	if err := s.restoreAtStart(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	name := s.cfg.Kafka.InstanceName
	if name == "" {
		name, _ = os.Hostname()
	}
	group, err := kafkaio.NewGroup(kafkaio.GroupConfig{Brokers: s.kafka.Brokers, GroupID: s.cfg.Kafka.GroupID,
		Topics: []string{s.topics.Input, s.topics.Catalog}, ClientID: s.cfg.Kafka.ClientID, InstanceName: name,
		Balancer: s.cfg.Kafka.Balancer, SessionTimeout: s.cfg.Kafka.SessionTimeout,
		HeartbeatInterval: s.cfg.Kafka.HeartbeatInterval, RebalanceTimeout: s.cfg.Kafka.RebalanceTimeout,
		Logger: s.log})
	if err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() { defer bgWG.Done(); s.watch(bg) }()

	var genWG sync.WaitGroup
	w := s.writer(s.cfg.DryRun)
	// A fatal error (the store or the handler is inconsistent) stops the
	// service rather than letting the member rejoin and fail again.
	ctx, s.stop = context.WithCancel(ctx)
	defer s.stop()
	loopErr := make(chan error, 1)
	go func() {
		delay := s.cfg.Retry.InitialInterval
		for {
			gen, err := group.Next(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, kafkaio.ErrGroupClosed) {
					loopErr <- nil
					return
				}
				// kafka-go rejoins by itself (e.g. after an eviction:
				// unknown member id); keep asking for the next generation.
				s.joined.Store(false)
				s.log.Warn().Err(err).Dur("retry_in", delay).Msg("consumer group: no generation; rejoining")
				select {
				case <-ctx.Done():
					loopErr <- nil
					return
				case <-time.After(delay):
				}
				delay = min(2*delay, s.cfg.Retry.MaxInterval)
				continue
			}
			delay = s.cfg.Retry.InitialInterval
			s.joined.Store(true)
			s.Metrics.SetActive(gen.Active())
			s.active.Store(gen.Active())
			genWG.Add(1)
			if gen.Active() {
				s.log.Info().Int64("generation", gen.ID()).Str("member", gen.MemberID()).Msg("active: consuming input")
				gen.Run(func(gctx context.Context) { defer genWG.Done(); s.runActive(gctx, gen, w) })
			} else {
				s.log.Info().Int64("generation", gen.ID()).Msg("standby: following the edit log")
				gen.Run(func(gctx context.Context) { defer genWG.Done(); s.runStandby(gctx) })
			}
		}
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
	stopBG()
	bgWG.Wait()
	select {
	case <-loopErr:
	case <-time.After(time.Second):
	}
	if b := s.fatal.Load().(errBox); b.err != nil {
		return b.err
	}
	return err
}

// restoreAtStart runs RestoreIfEmpty, retrying transient broker errors until
// ctx ends: on a real cluster a topic created a moment ago answers
// NotLeaderForPartition for a while, and a broker may be restarting. Only a
// permanent error (say, a gap in the edit log) stops the service.
func (s *Service) restoreAtStart(ctx context.Context) error {
	delay := s.cfg.Retry.InitialInterval
	for {
		_, err := s.RestoreIfEmpty(ctx)
		if ctx.Err() != nil {
			return nil // stopped while restoring: a clean shutdown; the next start goes on
		}
		if err == nil || !kafkaio.IsTransient(err) {
			return err
		}
		s.log.Warn().Err(err).Dur("retry_in", delay).Msg("restore from the edit log failed; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, s.cfg.Retry.MaxInterval)
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// runActive is the writer role for one generation: restore barrier, outbox
// leftovers, then batches until the generation ends.
func (s *Service) runActive(ctx context.Context, gen *kafkaio.Generation, w *pipeline.Writer) {
	epoch := max(gen.ID(), s.store.Epoch()+1)
	s.Metrics.SetEpoch(epoch)
	log := s.log.With().Int64("epoch", epoch).Logger()
	delay := s.cfg.Retry.InitialInterval
	for ctx.Err() == nil {
		err := s.activeOnce(ctx, gen, w, epoch, log)
		if err == nil || errors.Is(err, pipeline.ErrStopped) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, kafkaio.ErrFenced) {
			log.Warn().Err(err).Msg("lost the writer role; waiting for the next generation")
			return
		}
		if errors.Is(err, mvstate.ErrNotLocked) || errors.Is(err, pipeline.ErrInconsistent) || pipeline.IsForked(err) {
			s.fail(err)
			return
		}
		log.Error().Err(err).Dur("retry_in", delay).Msg("writer pipeline failed; restarting it")
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, s.cfg.Retry.MaxInterval)
	}
}

func (s *Service) activeOnce(ctx context.Context, gen *kafkaio.Generation, w *pipeline.Writer, epoch int64, log zerolog.Logger) error {
	f := s.follower()
	st, err := f.CatchUp(ctx)
	if pipeline.IsForked(err) {
		return fmt.Errorf("the edit log was forked by a newer writer past this store (rebuild it: consumer rebuild --from-edit-log): %w", err)
	}
	if err != nil {
		return err
	}
	if st.Applied > 0 {
		log.Info().Int("records", st.Applied).Int64("journal_id", s.store.JournalID()).Msg("restore barrier applied edit-log records")
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
	fetcher, err := kafkaio.NewFetcher(ctx, s.kafka.FetcherConfig(s.log), start)
	if err != nil {
		return err
	}
	defer fetcher.Close()
	return w.Run(ctx, fetcher, gen, epoch)
}

// runStandby is the follower role for one generation.
func (s *Service) runStandby(ctx context.Context) {
	for ctx.Err() == nil {
		_, err := s.follower().Follow(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		if pipeline.IsForked(err) {
			s.fail(fmt.Errorf("standby state forked past the edit log (rebuild it: consumer rebuild --from-edit-log): %w", editlog.ErrForked))
			return
		}
		s.log.Warn().Err(err).Msg("following the edit log failed; retrying")
		select {
		case <-ctx.Done():
		case <-time.After(s.cfg.Retry.MaxInterval):
		}
	}
}

// watch pings the broker for /readyz and measures consumer lag.
func (s *Service) watch(ctx context.Context) {
	t := time.NewTicker(min(s.cfg.Metrics.LagInterval, 5*time.Second))
	defer t.Stop()
	lastLag := time.Time{}
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.kafka.Admin.Ping(pctx)
		cancel()
		s.brokerErr.Store(errBox{err})
		if err == nil && time.Since(lastLag) >= s.cfg.Metrics.LagInterval {
			lastLag = time.Now()
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			lag, err := kafkaio.Lag(lctx, s.kafka.Admin, s.cfg.Kafka.GroupID, []string{s.topics.Input, s.topics.Catalog})
			cancel()
			if err == nil {
				for topic, parts := range lag {
					for p, l := range parts {
						s.Metrics.SetConsumerLag(topic, p, l)
					}
				}
			}
		}
		s.Metrics.SetJournalID(s.store.JournalID())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
