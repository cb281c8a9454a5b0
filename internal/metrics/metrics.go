// Package metrics holds the service's Prometheus series (DESIGN.md §6):
// events by kind and outcome, repairs and skips by reason, batch size and
// latency, edit-log publish latency, retries, dead letters, consumer lag per
// partition, offset commits, and the journal, epoch and role of the instance.
//
// Every series is named mvrepair_* and registered on the Metrics value's own
// registry, never on prometheus.DefaultRegisterer, so that several instances
// can live in one test process. A nil *Metrics is a valid no-op, for code
// under test that does not care about metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every series name.
const Namespace = "mvrepair"

// Outcome is what happened to one input event.
type Outcome string

// The event outcomes.
const (
	// OutcomeApplied: the event changed the state.
	OutcomeApplied Outcome = "applied"
	// OutcomeSkipped: a repair rule declined every change (see skips_total).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeNoop: the event was valid and already reflected in the state
	// (a replay, a drop of an unknown MV, an identical upsert).
	OutcomeNoop Outcome = "noop"
	// OutcomeDLQ: the event was dead-lettered (see dlq_total).
	OutcomeDLQ Outcome = "dlq"
)

// Metrics is the set of series. Create it with [New]; its methods are safe
// for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	events           *prometheus.CounterVec
	repairs          prometheus.Counter
	skips            *prometheus.CounterVec
	batchSize        prometheus.Histogram
	batchDuration    prometheus.Histogram
	publishDuration  prometheus.Histogram
	editLogRecords   prometheus.Counter
	retries          *prometheus.CounterVec
	dlq              *prometheus.CounterVec
	consumerLag      *prometheus.GaugeVec
	commits          prometheus.Counter
	journalID        prometheus.Gauge
	epoch            prometheus.Gauge
	role             prometheus.Gauge
	followersApplied prometheus.Counter
}

// latencyBuckets spans 0.5ms to about 16s.
func latencyBuckets() []float64 { return prometheus.ExponentialBuckets(0.0005, 2, 16) }

// New returns the series registered on a fresh registry, together with the
// Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "events_total",
			Help: "Input events handled, by kind and outcome (applied, skipped, noop, dlq).",
		}, []string{"kind", "outcome"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "repairs_total",
			Help: "Partition entries whose recorded version was moved forward.",
		}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "skips_total",
			Help: "Partition entries or events a repair rule declined, by reason.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "batch_size",
			Help:    "Events per batch (one local commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 18), // 1 .. 131072
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "batch_duration_seconds",
			Help:    "Time to decide and durably commit one batch locally (decode to local commit; publishing is editlog_publish_duration_seconds).",
			Buckets: latencyBuckets(),
		}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "editlog_publish_duration_seconds",
			Help:    "Time to publish one batch of edit-log records.",
			Buckets: latencyBuckets(),
		}),
		editLogRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "editlog_records_total",
			Help: "Edit-log records published.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "retries_total",
			Help: "Retries of transient failures, by operation.",
		}, []string{"op"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "dlq_total",
			Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "consumer_lag",
			Help: "Records between the committed offset and the high watermark, per owned partition.",
		}, []string{"topic", "partition"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "commits_total",
			Help: "Input offset commits to the consumer group.",
		}),
		journalID: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "journal_id",
			Help: "Journal id of the last edit-log record applied to the local state.",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "epoch",
			Help: "Highest writer epoch (group generation) seen.",
		}),
		role: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "role",
			Help: "1 while this instance is the active writer, 0 while it is a standby.",
		}),
		followersApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "followers_applied_total",
			Help: "Edit-log records applied in follower mode.",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.events, m.repairs, m.skips, m.batchSize, m.batchDuration, m.publishDuration,
		m.editLogRecords, m.retries, m.dlq, m.consumerLag, m.commits, m.journalID,
		m.epoch, m.role, m.followersApplied,
	)
	return m
}

// Registry returns the registry the series live on, to gather them or to
// register more collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return prometheus.NewRegistry()
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	reg := m.Registry()
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// Event counts one input event of the given kind with its outcome.
func (m *Metrics) Event(kind string, outcome Outcome) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(kind, string(outcome)).Inc()
}

// Repairs counts n partition entries moved forward.
func (m *Metrics) Repairs(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.repairs.Add(float64(n))
}

// Skip counts one skipped partition entry or event for reason.
func (m *Metrics) Skip(reason string) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(reason).Inc()
}

// ObserveBatch records one batch's size and handling time.
func (m *Metrics) ObserveBatch(size int, d time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(size))
	m.batchDuration.Observe(d.Seconds())
}

// EditLogPublished records one edit-log publish of n records that took d.
func (m *Metrics) EditLogPublished(n int, d time.Duration) {
	if m == nil {
		return
	}
	m.publishDuration.Observe(d.Seconds())
	if n > 0 {
		m.editLogRecords.Add(float64(n))
	}
}

// Retry counts one retry of operation op (e.g. "publish", "commit").
func (m *Metrics) Retry(op string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(op).Inc()
}

// DLQ counts one record dead-lettered for reason. It does not count the
// event in events_total: call [Metrics.Event] with [OutcomeDLQ] for that.
func (m *Metrics) DLQ(reason string) {
	if m == nil {
		return
	}
	m.dlq.WithLabelValues(reason).Inc()
}

// SetConsumerLag sets the lag of one partition.
func (m *Metrics) SetConsumerLag(topic string, partition int, lag int64) {
	if m == nil {
		return
	}
	m.consumerLag.WithLabelValues(topic, strconv.Itoa(partition)).Set(float64(lag))
}

// DeleteConsumerLag forgets the lag of one partition, when it is revoked.
func (m *Metrics) DeleteConsumerLag(topic string, partition int) {
	if m == nil {
		return
	}
	m.consumerLag.DeleteLabelValues(topic, strconv.Itoa(partition))
}

// ResetConsumerLag forgets the lag of every partition, when this instance
// loses its partitions (a standby reports no lag rather than a stale one).
func (m *Metrics) ResetConsumerLag() {
	if m == nil {
		return
	}
	m.consumerLag.Reset()
}

// Commit counts one input offset commit.
func (m *Metrics) Commit() {
	if m == nil {
		return
	}
	m.commits.Inc()
}

// SetJournalID records the journal id of the last applied edit-log record.
func (m *Metrics) SetJournalID(id int64) {
	if m == nil {
		return
	}
	m.journalID.Set(float64(id))
}

// SetEpoch records the highest writer epoch seen.
func (m *Metrics) SetEpoch(epoch int64) {
	if m == nil {
		return
	}
	m.epoch.Set(float64(epoch))
}

// SetActive records the role: true for the active writer, false for a
// standby.
func (m *Metrics) SetActive(active bool) {
	if m == nil {
		return
	}
	if active {
		m.role.Set(1)
	} else {
		m.role.Set(0)
	}
}

// FollowerApplied counts n edit-log records applied in follower mode.
func (m *Metrics) FollowerApplied(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.followersApplied.Add(float64(n))
}
