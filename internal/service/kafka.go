package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/recovery"
)

// Kafka is the Kafka side of the service: the embedded broker (when
// kafka.brokers is "embedded"), an admin client and a producer, and the
// topics' size limits read at start.
type Kafka struct {
	Broker   *embedded.Broker // nil unless embedded
	Brokers  []string
	Admin    *kafkaio.Admin
	Producer *kafkaio.Producer
	// Limits are the largest records the edit-log and DLQ topics accept.
	Limits pipeline.Limits
	cfg    *config.Config
	log    zerolog.Logger
}

// OpenKafka starts the embedded broker when configured (its data under
// state.dir/kafka), waits up to kafka.connect_timeout for the brokers,
// creates the topics when kafka.create_topics is on, checks them (the edit
// log: one partition, not compacted; the snapshot topic: compacted) and
// reads their size limits. Its errors are one line naming the cause and
// the fix.
func OpenKafka(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Kafka, error) {
	k := &Kafka{cfg: cfg, Brokers: cfg.BrokerList(), log: log}
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
			return nil, fmt.Errorf("embedded broker on %s: %w (another broker or mvrepair uses it? set kafka.embedded_addr, e.g. MVREPAIR_KAFKA_EMBEDDED_ADDR=127.0.0.1:0)",
				cfg.Kafka.EmbeddedAddr, err)
		}
		k.Brokers = []string{k.Broker.Addr()}
		log.Info().Str("addr", k.Broker.Addr()).Msg("embedded Kafka-protocol broker started")
	}
	if k.Admin, err = kafkaio.NewAdmin(AdminConfig(cfg, k.Brokers)); err != nil {
		return nil, err
	}
	if err := k.waitForBrokers(ctx); err != nil {
		return nil, err
	}
	if cfg.Kafka.CreateTopics {
		if err = k.Admin.EnsureTopics(ctx, TopicSpecs(cfg)); err != nil {
			return nil, fmt.Errorf("create topics: %w (or create them beforehand and set kafka.create_topics=false)", err)
		}
	}
	if err := k.checkTopics(ctx); err != nil {
		return nil, err
	}
	pc := ProducerConfig(cfg, k.Brokers, log)
	pc.MaxMessageBytes = max(k.Limits.EditLog, k.Limits.DLQ, 1<<20)
	if k.Producer, err = kafkaio.NewProducer(pc); err != nil {
		return nil, err
	}
	opened = true
	return k, nil
}

// waitForBrokers pings until a broker answers, for at most
// kafka.connect_timeout.
func (k *Kafka) waitForBrokers(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, k.cfg.Kafka.ConnectTimeout)
	defer cancel()
	delay := 100 * time.Millisecond
	var last error
	for {
		pctx, pcancel := context.WithTimeout(wctx, 5*time.Second)
		last = k.Admin.Ping(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		if !kafkaio.IsTransient(last) && ctx.Err() == nil && !errors.Is(last, context.DeadlineExceeded) {
			break // refused for good: say so at once
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			hint := "check kafka.brokers / MVREPAIR_KAFKA_BROKERS, or raise kafka.connect_timeout"
			if errors.Is(last, io.ErrUnexpectedEOF) || errors.Is(last, io.EOF) {
				// The broker answered and then hung up: a listener that
				// wants SASL (or TLS) this client does not speak.
				hint = "the broker closed the connection: does its listener expect SASL or TLS? check kafka.sasl.mechanism and kafka.tls.enabled against the listener's security protocol"
			}
			return fmt.Errorf("no Kafka broker of %s answered within %s: %w (%s)",
				strings.Join(k.Brokers, ","), k.cfg.Kafka.ConnectTimeout, last, hint)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
	return fmt.Errorf("the Kafka brokers %s refuse the connection: %w", strings.Join(k.Brokers, ","), last)
}

// checkTopics checks the existing topics and reads their size limits.
func (k *Kafka) checkTopics(ctx context.Context) error {
	t := k.cfg.Kafka.Topics
	el := t.EditLog
	parts, err := k.Admin.Partitions(ctx, el)
	if err != nil {
		return fmt.Errorf("edit-log topic: %w (create it with one partition, or set kafka.create_topics=true)", err)
	}
	if len(parts) > 1 {
		return fmt.Errorf("edit-log topic %q has %d partitions; the journal needs exactly 1 (a total order): recreate it with one partition, or point kafka.topics.edit_log at another topic",
			el, len(parts))
	}
	cfgs, err := k.Admin.TopicConfigs(ctx, el)
	if err != nil {
		return fmt.Errorf("edit-log topic: %w", err)
	}
	if strings.Contains(cfgs["cleanup.policy"], "compact") {
		return fmt.Errorf("edit-log topic %q has cleanup.policy=%s: compaction would delete journal records and break every rebuild; set cleanup.policy=delete on it, or use another topic",
			el, cfgs["cleanup.policy"])
	}
	k.Limits.EditLog = atoi(cfgs["max.message.bytes"], 1<<20)
	if k.Limits.EditLog < 4<<20 {
		k.log.Warn().Str("topic", el).Int("max_message_bytes", k.Limits.EditLog).
			Msg("the edit-log topic accepts small records only: a catalog record of an MV with many partitions will be dead-lettered as record_too_large; raise max.message.bytes of the topic (16 MiB is a sound value)")
	}
	if r, err := strconv.ParseInt(cfgs["retention.ms"], 10, 64); err == nil && r > 0 {
		if ci := k.cfg.Checkpoint.Interval; ci == 0 || time.Duration(r)*time.Millisecond < 2*ci {
			k.log.Warn().Str("topic", el).Int64("retention_ms", r).Dur("checkpoint_interval", ci).
				Msg("the edit log's retention is shorter than two checkpoint intervals: records not yet covered by a checkpoint can expire, and restores would then fail; use retention.ms=-1 (checkpoints truncate the journal) or a longer retention")
		}
	}
	dcfgs, err := k.Admin.TopicConfigs(ctx, t.DLQ)
	if err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	k.Limits.DLQ = atoi(dcfgs["max.message.bytes"], 1<<20)
	scfgs, err := k.Admin.TopicConfigs(ctx, t.Snapshots)
	if err != nil {
		return fmt.Errorf("snapshot topic: %w (create it compacted with one partition, or set kafka.create_topics=true)", err)
	}
	if !strings.Contains(scfgs["cleanup.policy"], "compact") {
		return fmt.Errorf("snapshot topic %q has cleanup.policy=%s: it must be compacted (cleanup.policy=compact), or restores read every checkpoint ever written",
			t.Snapshots, scfgs["cleanup.policy"])
	}
	return nil
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}

// Close releases the clients and stops the embedded broker.
func (k *Kafka) Close() { CloseClients(k.Producer, k.Admin, k.Broker) }

// CloseClients closes those of a producer (giving it 5 s to flush), an
// admin client and an embedded broker that are not nil, in that order.
func CloseClients(p *kafkaio.Producer, a *kafkaio.Admin, b *embedded.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p != nil {
		_ = p.Close(ctx)
	}
	if a != nil {
		_ = a.Close()
	}
	if b != nil {
		b.Close()
	}
}

// FetcherConfig is the reader configuration of the clients.
func (k *Kafka) FetcherConfig(log zerolog.Logger) kafkaio.FetcherConfig {
	return FetcherConfig(k.cfg, k.Brokers, log)
}

// The client configurations below are the one place that maps the config
// to every Kafka client mvrepair builds (the service's group, fetchers,
// producer and admin, the CLI commands, the load tool): the same brokers,
// client id and security everywhere.

// Security maps the kafka.tls.* and kafka.sasl.* keys (validated at load)
// to the clients' security settings; the password is read here (from
// kafka.sasl.password or kafka.sasl.password_file) and never logged.
func Security(cfg *config.Config) kafkaio.Security {
	var sec kafkaio.Security
	if t := cfg.Kafka.TLS; t.Enabled {
		sec.TLS = &kafkaio.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	if cfg.SASLEnabled() {
		pw, _ := cfg.SASLPassword() // readable: checked by validation
		sec.SASL = &kafkaio.SASLConfig{Mechanism: cfg.Kafka.SASL.Mechanism, Username: cfg.Kafka.SASL.Username, Password: pw}
	}
	return sec
}

// AdminConfig is the admin client of cfg.
func AdminConfig(cfg *config.Config, brokers []string) kafkaio.AdminConfig {
	return kafkaio.AdminConfig{Brokers: brokers, ClientID: cfg.Kafka.ClientID, Security: Security(cfg)}
}

// ProducerConfig is the producer of cfg.
func ProducerConfig(cfg *config.Config, brokers []string, log zerolog.Logger) kafkaio.ProducerConfig {
	w := cfg.Kafka.Writer
	return kafkaio.ProducerConfig{Brokers: brokers, ClientID: cfg.Kafka.ClientID, BatchTimeout: w.BatchTimeout,
		BatchSize: w.BatchSize, WriteTimeout: w.WriteTimeout, Compression: w.Compression, Logger: log,
		MaxMessageBytes: cfg.Kafka.EditLogMaxBytes, Security: Security(cfg)}
}

// FetcherConfig is the reader of the input topics of cfg: read_committed by
// default, and records lost to retention are skipped with a warning (they
// cannot be had any more).
func FetcherConfig(cfg *config.Config, brokers []string, log zerolog.Logger) kafkaio.FetcherConfig {
	r := cfg.Kafka.Reader
	return kafkaio.FetcherConfig{Brokers: brokers, ClientID: cfg.Kafka.ClientID, MaxWait: r.MaxWait,
		MaxBytes: r.MaxBytes, QueueCapacity: r.QueueCapacity, Logger: log, IsolationLevel: cfg.Kafka.IsolationLevel,
		ResetBelowLogStart: true, Security: Security(cfg)}
}

// GroupConfig is the consumer group of cfg.
func GroupConfig(cfg *config.Config, brokers []string, log zerolog.Logger) kafkaio.GroupConfig {
	k := cfg.Kafka
	return kafkaio.GroupConfig{Brokers: brokers, GroupID: k.GroupID, Topics: []string{k.Topics.Input, k.Topics.Catalog},
		ClientID: k.ClientID, InstanceName: cfg.InstanceName(), Balancer: k.Balancer, SessionTimeout: k.SessionTimeout,
		HeartbeatInterval: k.HeartbeatInterval, RebalanceTimeout: k.RebalanceTimeout, Logger: log, Security: Security(cfg)}
}

// EditLogSource is the edit-log topic as a rebuild source.
func (k *Kafka) EditLogSource(log zerolog.Logger) recovery.Source {
	topic := k.cfg.Kafka.Topics.EditLog
	return recovery.Source{Topic: topic, Open: k.tailOpener(topic, log),
		HWM: func(ctx context.Context) (map[int]int64, error) { return k.Admin.HighWatermarks(ctx, topic) }}
}

// SnapshotSource is the snapshot topic as a restore source.
func (k *Kafka) SnapshotSource(log zerolog.Logger) recovery.Source {
	topic := k.cfg.Kafka.Topics.Snapshots
	return recovery.Source{Topic: topic, Open: k.tailOpener(topic, log),
		HWM: func(ctx context.Context) (map[int]int64, error) { return k.Admin.HighWatermarks(ctx, topic) }}
}

func (k *Kafka) tailOpener(topic string, log zerolog.Logger) pipeline.TailOpener {
	fcfg := k.FetcherConfig(log)
	// The edit log and the snapshot topic are read whole: a position below
	// the log start means records are missing, which readers must hear of.
	fcfg.ResetBelowLogStart = false
	return func(ctx context.Context, start map[int]int64) (pipeline.Tail, error) {
		return kafkaio.NewTopicTail(ctx, fcfg, topic, start)
	}
}

// TopicSpecs are the topics the service creates: input and catalog topics
// and the DLQ with kafka.partitions; the edit log with one partition (the
// journal is one total order), the configured retention and a record limit
// large enough for big MVs; the snapshot topic compacted with one partition.
func TopicSpecs(cfg *config.Config) []kafkaio.TopicSpec {
	k := cfg.Kafka
	return []kafkaio.TopicSpec{
		{Name: k.Topics.Input, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.Topics.Catalog, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.Topics.EditLog, Partitions: 1, ReplicationFactor: k.ReplicationFactor,
			Configs: map[string]string{"retention.ms": fmt.Sprint(k.EditLogRetentionMs), "cleanup.policy": "delete",
				"max.message.bytes": strconv.Itoa(k.EditLogMaxBytes)}},
		{Name: k.Topics.DLQ, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.Topics.Snapshots, Partitions: 1, ReplicationFactor: k.ReplicationFactor,
			Configs: map[string]string{"cleanup.policy": "compact", "max.message.bytes": strconv.Itoa(k.EditLogMaxBytes),
				"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"}},
	}
}
