// Package metrics holds the service's Prometheus series (docs/design.md §6):
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
	"slices"
	"strconv"
	"strings"
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
	// OutcomeDuplicate: the record's offset was applied by an earlier commit
	// (a redelivery).
	OutcomeDuplicate Outcome = "duplicate"
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

	stalled          *prometheus.GaugeVec
	ready            prometheus.Gauge
	forks            prometheus.Counter
	tableSpread      prometheus.Counter
	followerLag      prometheus.Gauge
	stateMVs         prometheus.Gauge
	stateEntries     prometheus.Gauge
	localLogBytes    prometheus.Counter
	restoring        prometheus.Gauge
	restoreEntries   prometheus.Gauge
	checkpoints      prometheus.Counter
	checkpointJID    prometheus.Gauge
	checkpointAge    prometheus.Gauge
	editLogFirst     prometheus.Gauge
	checkpointFailed prometheus.Counter
}

// latencyBuckets spans 0.5ms to about 16s.
func latencyBuckets() []float64 { return prometheus.ExponentialBuckets(0.0005, 2, 16) }

// New returns the series registered on a fresh registry, together with the
// Go runtime and process collectors.
func New() *Metrics {
	m, _ := build()
	return m
}

// Family describes one mvrepair_* metric family that [New] registers.
type Family struct {
	// Name is the full name, e.g. "mvrepair_events_total". The series of a
	// histogram are named Name+"_bucket", Name+"_sum" and Name+"_count".
	Name string
	// Type is "counter", "gauge" or "histogram".
	Type string
	// Labels are the variable label names, in declaration order (a
	// histogram's series also carry "le" on Name+"_bucket").
	Labels []string
	// Help is the family's help text.
	Help string
}

// Families returns every mvrepair_* family [New] registers, sorted by name:
// the names that alert rules and dashboards may use (deploy/prometheus,
// deploy/grafana; internal/deploytest checks them against this list). The Go
// runtime and process collectors' go_* and process_* families are not
// listed.
func Families() []Family {
	_, fams := build()
	slices.SortFunc(fams, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return fams
}

// Names returns the names of the families of [Families], sorted.
func Names() []string {
	fams := Families()
	names := make([]string, len(fams))
	for i, f := range fams {
		names[i] = f.Name
	}
	return names
}

// declared builds the collectors of New and records each family as it is
// declared, so that Families cannot drift from what is registered.
type declared struct{ fams []Family }

func (d *declared) add(name, typ, help string, labels []string) string {
	d.fams = append(d.fams, Family{Name: Namespace + "_" + name, Type: typ, Labels: slices.Clone(labels), Help: help})
	return name
}

func (d *declared) counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: d.add(name, "counter", help, nil), Help: help})
}

func (d *declared) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: d.add(name, "counter", help, labels), Help: help}, labels)
}

func (d *declared) gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: d.add(name, "gauge", help, nil), Help: help})
}

func (d *declared) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: d.add(name, "gauge", help, labels), Help: help}, labels)
}

func (d *declared) histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: d.add(name, "histogram", help, nil), Help: help, Buckets: buckets})
}

// build returns the series registered on a fresh registry and the families
// declared.
func build() (*Metrics, []Family) {
	d := &declared{}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		events:  d.counterVec("events_total", "Input events handled, by kind and outcome (applied, skipped, noop, dlq).", "kind", "outcome"),
		repairs: d.counter("repairs_total", "Partition entries whose recorded version was moved forward."),
		skips:   d.counterVec("skips_total", "Partition entries or events a repair rule declined, by reason.", "reason"),
		batchSize: d.histogram("batch_size", "Events per batch (one local commit).",
			prometheus.ExponentialBuckets(1, 2, 18)), // 1 .. 131072
		batchDuration: d.histogram("batch_duration_seconds",
			"Time to decide and durably commit one batch locally (decode to local commit; publishing is editlog_publish_duration_seconds).",
			latencyBuckets()),
		publishDuration: d.histogram("editlog_publish_duration_seconds", "Time to publish one batch of edit-log records.", latencyBuckets()),
		editLogRecords:  d.counter("editlog_records_total", "Edit-log records published."),
		retries:         d.counterVec("retries_total", "Retries of transient failures, by operation.", "op"),
		dlq:             d.counterVec("dlq_total", "Records sent to the dead-letter topic, by reason.", "reason"),
		consumerLag: d.gaugeVec("consumer_lag", "Records between the committed offset and the high watermark, per owned partition.",
			"topic", "partition"),
		commits:          d.counter("commits_total", "Input offset commits to the consumer group."),
		journalID:        d.gauge("journal_id", "Journal id of the last edit-log record applied to the local state."),
		epoch:            d.gauge("epoch", "Highest writer epoch (group generation) seen."),
		role:             d.gauge("role", "1 while this instance is the active writer, 0 while it is a standby."),
		followersApplied: d.counter("followers_applied_total", "Edit-log records applied in follower mode."),
		stalled: d.gaugeVec("stalled",
			"1 while a component (writer, publisher, follower) makes no progress or keeps failing past health.stall_timeout (the reason is in /readyz and the log).",
			"component"),
		ready: d.gauge("ready", "1 while /readyz answers 200."),
		forks: d.counter("forks_total",
			"Times this instance's store was found forked past the edit log (a newer writer started below it) and rebuilt."),
		tableSpread: d.counter("table_partition_moves_total",
			"Times one table's events arrived on another input partition than before (producers not partitioning by the Java default partitioner break per-table order)."),
		followerLag: d.gauge("follower_lag_records",
			"Edit-log records this standby has not applied yet (high watermark minus applied position)."),
		stateMVs:         d.gauge("state_mvs", "MVs in the local state."),
		stateEntries:     d.gauge("state_partition_entries", "Partition entries in the local state, native and external."),
		localLogBytes:    d.counter("local_log_bytes_total", "Bytes appended to the local store's log (one entry per commit)."),
		restoring:        d.gauge("restoring", "1 while the state is being restored from Kafka (not ready meanwhile)."),
		restoreEntries:   d.gauge("restore_entries", "Partition entries loaded by the restore in progress."),
		checkpoints:      d.counter("checkpoints_total", "Checkpoints written to the snapshot topic by this instance."),
		checkpointFailed: d.counter("checkpoint_failures_total", "Checkpoints that failed (tried again after a pause of 1 s doubling up to 1 min)."),
		checkpointJID:    d.gauge("checkpoint_journal_id", "Journal id of the latest durable checkpoint."),
		checkpointAge:    d.gauge("checkpoint_timestamp_seconds", "Time (Unix seconds) the latest durable checkpoint was written."),
		editLogFirst: d.gauge("editlog_first_offset",
			"The edit log's first retained offset (it moves up as checkpoints truncate the journal)."),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.events, m.repairs, m.skips, m.batchSize, m.batchDuration, m.publishDuration,
		m.editLogRecords, m.retries, m.dlq, m.consumerLag, m.commits, m.journalID,
		m.epoch, m.role, m.followersApplied,
		m.stalled, m.ready, m.forks, m.tableSpread, m.followerLag, m.stateMVs, m.stateEntries,
		m.localLogBytes, m.restoring, m.restoreEntries, m.checkpoints, m.checkpointFailed,
		m.checkpointJID, m.checkpointAge, m.editLogFirst,
	)
	return m, d.fams
}

// SetStalled records whether component is stalled.
func (m *Metrics) SetStalled(component string, stalled bool) {
	if m == nil {
		return
	}
	m.stalled.WithLabelValues(component).Set(b2f(stalled))
}

// SetReady records the readiness /readyz reports.
func (m *Metrics) SetReady(ready bool) {
	if m == nil {
		return
	}
	m.ready.Set(b2f(ready))
}

// Fork counts one fork found (and a rebuild started).
func (m *Metrics) Fork() {
	if m == nil {
		return
	}
	m.forks.Inc()
}

// TablePartitionMove counts one table whose events moved to another input
// partition.
func (m *Metrics) TablePartitionMove() {
	if m == nil {
		return
	}
	m.tableSpread.Inc()
}

// SetFollowerLag records the records a standby has yet to apply.
func (m *Metrics) SetFollowerLag(n int64) {
	if m == nil {
		return
	}
	m.followerLag.Set(float64(max(n, 0)))
}

// SetState records the size of the local state.
func (m *Metrics) SetState(mvs, entries int) {
	if m == nil {
		return
	}
	m.stateMVs.Set(float64(mvs))
	m.stateEntries.Set(float64(entries))
}

// LocalLog counts bytes appended to the local log.
func (m *Metrics) LocalLog(bytes int64) {
	if m == nil || bytes <= 0 {
		return
	}
	m.localLogBytes.Add(float64(bytes))
}

// SetRestoring records whether a restore runs, and how far it is.
func (m *Metrics) SetRestoring(active bool, entries int64) {
	if m == nil {
		return
	}
	m.restoring.Set(b2f(active))
	m.restoreEntries.Set(float64(entries))
}

// Checkpoint records a durable checkpoint at journal id jid.
func (m *Metrics) Checkpoint(jid int64, at time.Time) {
	if m == nil {
		return
	}
	m.checkpoints.Inc()
	m.checkpointJID.Set(float64(jid))
	m.checkpointAge.Set(float64(at.Unix()))
}

// CheckpointFailed counts a failed checkpoint.
func (m *Metrics) CheckpointFailed() {
	if m == nil {
		return
	}
	m.checkpointFailed.Inc()
}

// SetEditLogFirst records the edit log's first retained offset.
func (m *Metrics) SetEditLogFirst(off int64) {
	if m == nil {
		return
	}
	m.editLogFirst.Set(float64(off))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
