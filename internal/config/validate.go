package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds of batch.max_events.
const (
	MinBatchEvents = 1
	MaxBatchEvents = 100000
)

// Validate checks every key and the rules between keys. It reports all
// problems at once (errors.Join of [*KeyError]s), each naming its key, e.g.
// "config: batch.max_events: must be between 1 and 100000 (got 0)".
func (c *Config) Validate() error {
	var v validator

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")

	v.nonEmpty("state.dir", c.State.Dir)
	if c.State.SnapshotBytes < 1<<20 {
		v.fail("state.snapshot_bytes", "must be at least 1048576 (1 MiB) (got %d)", c.State.SnapshotBytes)
	}

	v.kafka(c)

	v.between("batch.max_events", int64(c.Batch.MaxEvents), MinBatchEvents, MaxBatchEvents)
	v.positive("batch.max_wait", c.Batch.MaxWait)

	v.retry(&c.Retry, c.Kafka.RebalanceTimeout)

	if c.Checkpoint.Interval < 0 {
		v.fail("checkpoint.interval", "must be 0 (off) or a positive duration (got %s)", formatDuration(c.Checkpoint.Interval))
	}
	if c.Checkpoint.MaxRecords < 0 {
		v.fail("checkpoint.max_records", "must be 0 (off) or positive (got %d)", c.Checkpoint.MaxRecords)
	}
	v.positive("health.stall_timeout", c.Health.StallTimeout)

	if !validHostPort(c.HTTP.Addr, 0) {
		v.fail("http.addr", "must be [host]:port (got %q)", c.HTTP.Addr)
	}
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	v.positive("metrics.lag_interval", c.Metrics.LagInterval)

	return errors.Join(v.errs...)
}

// kafka checks the kafka.* keys.
func (v *validator) kafka(c *Config) {
	k := &c.Kafka
	v.brokers(c)
	v.validateSecurity(c)
	if !validHostPort(k.EmbeddedAddr, 0) {
		v.fail("kafka.embedded_addr", "must be host:port (got %q)", k.EmbeddedAddr)
	}
	v.nonEmpty("kafka.client_id", k.ClientID)
	v.nonEmpty("kafka.group_id", k.GroupID)
	v.oneOf("kafka.balancer", k.Balancer, BalancerSingleActive, BalancerRange)
	v.atLeast("kafka.partitions", int64(k.Partitions), 1)
	v.between("kafka.replication_factor", int64(k.ReplicationFactor), 1, 32767)
	v.positive("kafka.session_timeout", k.SessionTimeout)
	v.positive("kafka.heartbeat_interval", k.HeartbeatInterval)
	v.positive("kafka.rebalance_timeout", k.RebalanceTimeout)
	if k.HeartbeatInterval > 0 && k.SessionTimeout > 0 && k.HeartbeatInterval >= k.SessionTimeout {
		v.fail("kafka.heartbeat_interval", "must be less than kafka.session_timeout (%s >= %s)",
			formatDuration(k.HeartbeatInterval), formatDuration(k.SessionTimeout))
	}
	v.positive("kafka.connect_timeout", k.ConnectTimeout)
	v.topics(k.Topics)
	if k.EditLogRetentionMs != -1 && k.EditLogRetentionMs <= 0 {
		v.fail("kafka.edit_log_retention_ms", "must be -1 (keep forever) or positive (got %d)", k.EditLogRetentionMs)
	}
	v.between("kafka.edit_log_max_message_bytes", int64(k.EditLogMaxBytes), 1<<20, 1<<30)
	v.clients(k)
}

// clients checks the kafka.writer.* and kafka.reader.* keys.
func (v *validator) clients(k *Kafka) {
	v.positive("kafka.writer.batch_timeout", k.Writer.BatchTimeout)
	v.atLeast("kafka.writer.batch_size", int64(k.Writer.BatchSize), 1)
	v.positive("kafka.writer.write_timeout", k.Writer.WriteTimeout)
	v.oneOf("kafka.writer.compression", k.Writer.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	// The fetcher gives each request max_wait plus a margin before it times
	// out (internal/kafkaio), so any value works that the protocol can
	// carry: whole milliseconds (below 1ms the broker would answer at once
	// and idle partitions would be polled in a busy loop).
	if k.Reader.MaxWait < time.Millisecond {
		v.fail("kafka.reader.max_wait", "must be at least 1ms (got %s)", formatDuration(k.Reader.MaxWait))
	}
	v.atLeast("kafka.reader.max_bytes", int64(k.Reader.MaxBytes), 1)
	v.atLeast("kafka.reader.queue_capacity", int64(k.Reader.QueueCapacity), 1)
}

// retry checks the retry.* keys; retries must end before a rebalance
// times out.
func (v *validator) retry(r *Retry, rebalanceTimeout time.Duration) {
	v.positive("retry.initial_interval", r.InitialInterval)
	v.positive("retry.max_interval", r.MaxInterval)
	if r.InitialInterval > 0 && r.MaxInterval > 0 && r.MaxInterval < r.InitialInterval {
		v.fail("retry.max_interval", "must be at least retry.initial_interval (%s < %s)",
			formatDuration(r.MaxInterval), formatDuration(r.InitialInterval))
	}
	if r.Multiplier < 1 {
		v.fail("retry.multiplier", "must be at least 1 (got %g)", r.Multiplier)
	}
	v.positive("retry.max_elapsed_time", r.MaxElapsedTime)
	if r.MaxElapsedTime > 0 && rebalanceTimeout > 0 && r.MaxElapsedTime >= rebalanceTimeout {
		v.fail("retry.max_elapsed_time", "must be less than kafka.rebalance_timeout, or a stuck batch outlives the rebalance (%s >= %s)",
			formatDuration(r.MaxElapsedTime), formatDuration(rebalanceTimeout))
	}
}

// validator collects KeyErrors.
type validator struct{ errs []error }

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &KeyError{Key: key, Err: fmt.Errorf(format, args...)})
}

func (v *validator) nonEmpty(key, s string) {
	if strings.TrimSpace(s) == "" {
		v.fail(key, "must not be empty")
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.fail(key, "must be one of %s (got %q)", strings.Join(allowed, "|"), s)
	}
}

func (v *validator) atLeast(key string, n, lo int64) {
	if n < lo {
		v.fail(key, "must be at least %d (got %d)", lo, n)
	}
}

func (v *validator) between(key string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.fail(key, "must be between %d and %d (got %d)", lo, hi, n)
	}
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.fail(key, "must be a positive duration (got %s)", formatDuration(d))
	}
}

func (v *validator) brokers(c *Config) {
	const key = "kafka.brokers"
	if c.Embedded() {
		return
	}
	list := splitList(c.Kafka.Brokers)
	if len(list) == 0 {
		v.fail(key, "must list at least one host:port, or be %q", EmbeddedBrokers)
		return
	}
	for _, b := range list {
		switch {
		case strings.EqualFold(b, EmbeddedBrokers):
			v.fail(key, "%q cannot be combined with other brokers (got %q)", EmbeddedBrokers, c.Kafka.Brokers)
		case !validHostPort(b, 1):
			v.fail(key, "%q is not host:port", b)
		}
	}
}

func (v *validator) topics(t Topics) {
	keys := []string{"kafka.topics.input", "kafka.topics.catalog", "kafka.topics.edit_log", "kafka.topics.dlq", "kafka.topics.snapshots"}
	names := t.All()
	for i, name := range names {
		if err := checkTopicName(name); err != nil {
			v.fail(keys[i], "%v", err)
			continue
		}
		for j := range i {
			if names[j] == name {
				v.fail(keys[i], "must differ from %s (both are %q)", keys[j], name)
			}
		}
	}
}

// checkTopicName applies Kafka's topic name rules.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid topic name", name)
	case len(name) > 249:
		return fmt.Errorf("must be at most 249 characters (got %d)", len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has a character other than [a-zA-Z0-9._-]", name)
		}
	}
	return nil
}
