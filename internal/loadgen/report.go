package loadgen

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
)

// Report is what a run measured. Its JSON form is `loadgen --json`.
type Report struct {
	Machine  Machine      `json:"machine"`
	Settings Settings     `json:"settings"`
	Cases    []CaseReport `json:"cases"`
}

// CaseReport is what one case measured.
type CaseReport struct {
	Case Case `json:"case"`
	// Transport is the embedded broker's listener (Options.Transports); ""
	// when the configuration's was used.
	Transport string `json:"transport,omitempty"`
	// Error is why the case did not finish ("" when it did).
	Error string `json:"error,omitempty"`
	// Seconds is the case's wall time (setup, seeding and every phase).
	Seconds float64 `json:"seconds"`
	// LoadAvgStart is /proc/loadavg's 1, 5 and 15 minute averages when the
	// case started: other work on the machine.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	// EventsPerInputPartition is the first backlog's spread over the input
	// topic.
	EventsPerInputPartition []int64 `json:"events_per_input_partition"`
	// Rounds are the paired throughput measurements, one backlog each.
	Rounds []Round `json:"rounds"`
	// Repair is consume → repair → journal → commit over the backlogs: the
	// median rate of the rounds, counts summed.
	Repair Throughput `json:"repair"`
	// PassThrough is consume → produce → commit over the same backlogs.
	PassThrough Throughput `json:"pass_through"`
	// Ratio is the median of the rounds' ratios of repair to pass-through
	// events/s; RatioMin and RatioMax are their range.
	Ratio    float64 `json:"ratio"`
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
	// Checkpoints compares the rounds with checkpoints to those without
	// (Options.CheckpointEvery; nil when off).
	Checkpoints *CheckpointFigures `json:"checkpoints,omitempty"`
	// RepairBatches are the service's batches in the throughput rounds.
	RepairBatches      BatchFigures `json:"repair_batches"`
	RepairLatency      Latency      `json:"repair_latency"`
	PassThroughLatency Latency      `json:"pass_through_latency"`
	// P99Ratio is RepairLatency.P99Ms / PassThroughLatency.P99Ms.
	P99Ratio float64 `json:"p99_ratio"`
	// LatencyBatches are the service's batches in the latency phase.
	LatencyBatches BatchFigures `json:"latency_batches"`
	Targets        []Target     `json:"targets"`
	// Notes are problems seen during the case (unverified results, missing
	// latency samples, retries).
	Notes      []string `json:"notes,omitempty"`
	CPUProfile string   `json:"cpu_profile,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's 1, 5 and 15 minute
	// averages when the run started and ended: other work on the machine.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

// Settings are the run's load and pipeline settings (the shapes are in
// each case).
type Settings struct {
	Broker              string  `json:"broker"`
	Events              int     `json:"events"`
	Rounds              int     `json:"rounds"`
	Rate                int     `json:"rate"`
	DurationSeconds     float64 `json:"duration_seconds"`
	Quick               bool    `json:"quick,omitempty"`
	BatchMaxEvents      int     `json:"batch_max_events"`
	BatchMaxWait        string  `json:"batch_max_wait"`
	WriterBatchTimeout  string  `json:"writer_batch_timeout"`
	WriterBatchSize     int     `json:"writer_batch_size"`
	Compression         string  `json:"compression"`
	ReaderMaxWait       string  `json:"reader_max_wait"`
	ReaderQueueCapacity int     `json:"reader_queue_capacity"`
	SnapshotBytes       int64   `json:"state_snapshot_bytes"`
	CheckpointRecords   int64   `json:"checkpoint_max_records"`
	TailMaxWait         string  `json:"tail_max_wait"`
	ServiceLogLevel     string  `json:"service_log_level"`
	SkipLatency         bool    `json:"skip_latency,omitempty"`
	// Transports are Options.Transports: each case ran once per transport.
	Transports []string `json:"transports,omitempty"`
	// Security is the configuration's TLS/SASL towards real brokers
	// ("plaintext", "TLS", "SASL_SSL SCRAM-SHA-512", ...); empty with
	// transports or on the embedded broker.
	Security string `json:"security,omitempty"`
}

// Throughput is one pipeline's run over a pre-produced backlog, or its
// rounds combined.
type Throughput struct {
	Events int `json:"events"`
	// EventsPerSec is measured from the first batch (the repair service's
	// first local commit, the baseline's first collected batch) until the
	// last event's output is on its topic and its offset committed; the
	// first batch's events are not counted. Group join excluded.
	EventsPerSec float64 `json:"events_per_sec"`
	// MinEventsPerSec and MaxEventsPerSec are the range over the rounds.
	MinEventsPerSec float64 `json:"min_events_per_sec,omitempty"`
	MaxEventsPerSec float64 `json:"max_events_per_sec,omitempty"`
	Seconds         float64 `json:"seconds"`
	// FromStartPerSec counts from the start (service.Run, or the baseline's
	// NewGroup): group join and first fetch included.
	FromStartPerSec float64 `json:"from_start_events_per_sec"`
	// FirstBatchSeconds is the time from the start to the first batch.
	FirstBatchSeconds float64 `json:"first_batch_seconds"`
	FirstBatchEvents  int     `json:"first_batch_events"`
	Batches           int     `json:"batches"`
	AvgBatch          float64 `json:"avg_batch"`
	OffsetCommits     int     `json:"offset_commits"`
	// Records published (edit-log records acknowledged, or pass-through
	// copies).
	Records int64 `json:"records"`
	// CPUSeconds is the CPU time this process used in the window (the
	// pipeline, the load generator's tails and, when embedded, the
	// broker); CPUUtilization divides it by window × CPUs.
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUUtilization float64 `json:"cpu_utilization"`
	// CPUMicrosPerEvent is CPUSeconds per event counted: less sensitive to
	// other work on the machine than events/s.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	// Verified: every event repaired every MV of its table, nothing skipped
	// or dead-lettered, and the final state holds the expected versions
	// (always true for the baseline, which has nothing to check).
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`
}

// BatchFigures summarise the service's batches in a phase, from the
// pipeline's reports.
type BatchFigures struct {
	Batches   int     `json:"batches"`
	Events    int64   `json:"events"`
	AvgEvents float64 `json:"avg_events"`
	// Records are the edit-log records the batches journaled.
	Records         int64   `json:"records"`
	RecordsPerBatch float64 `json:"records_per_batch"`
	// TookMs is process + local commit per batch (pipeline.Report.Took).
	TookMs Percentiles `json:"took_ms"`
	// TookMsPer1000Events is the sum of Took per 1000 events.
	TookMsPer1000Events float64 `json:"took_ms_per_1000_events"`
	// PublishMsPerBatch is the time publishing the outbox took (acknowledged
	// by the broker), divided by the batches.
	PublishMsPerBatch float64 `json:"publish_ms_per_batch"`
	Publishes         int     `json:"publishes"`
	OffsetCommits     int     `json:"offset_commits"`
	Retries           int     `json:"retries"`
	// LogBytes is what the local log wrote for the batches
	// (pipeline.Report.Bytes); RecordBytes the encoded size of the edit-log
	// records they journal; LogBytesRatio the first over the second.
	LogBytes             int64   `json:"log_bytes"`
	RecordBytes          int64   `json:"record_bytes"`
	LogBytesPerCommit    float64 `json:"log_bytes_per_commit"`
	RecordBytesPerCommit float64 `json:"record_bytes_per_commit"`
	LogBytesRatio        float64 `json:"log_bytes_ratio"`
	Repaired             int64   `json:"repaired"`
	Skips                int64   `json:"skips"`
	DLQ                  int64   `json:"dlq"`
	Duplicates           int64   `json:"duplicates"`
}

// Latency is one pipeline's produce → read latency at a fixed rate.
type Latency struct {
	Rate         int     `json:"rate"`
	Seconds      float64 `json:"seconds"`
	Produced     int     `json:"produced"`
	Measured     int     `json:"measured"`
	Missing      int     `json:"missing"`
	AchievedRate float64 `json:"achieved_rate"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	MeanMs       float64 `json:"mean_ms"`
	// ProduceAck is the produce call itself (Publish until acknowledged).
	ProduceAckP50Ms float64 `json:"produce_ack_p50_ms"`
	ProduceAckP99Ms float64 `json:"produce_ack_p99_ms"`
	// ToBatch (repair only) is produce → the writer's batch being decided
	// (the edit-log record's "at", millisecond resolution): fetch and
	// batch.max_wait. The rest of the latency is process, local commit,
	// publish, and the tail's fetch.
	ToBatchP50Ms float64 `json:"to_batch_p50_ms,omitempty"`
	ToBatchP99Ms float64 `json:"to_batch_p99_ms,omitempty"`
}

// Percentiles of durations, in ms (nearest rank).
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// fill sets the percentiles of ds (sorting it); none for an empty ds.
func (p *Percentiles) fill(ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	p.P50, p.P90, p.P99 = pct(0.50), pct(0.90), pct(0.99)
	p.Max = ms(ds[len(ds)-1])
	p.Mean = ms(sum / time.Duration(len(ds)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Target is one goal of a case, as measured.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// finish derives the ratios and the targets.
func (c *CaseReport) finish(opt Options) {
	var ratios []float64
	for _, rd := range c.Rounds {
		ratios = append(ratios, rd.Ratio)
	}
	if len(ratios) > 0 {
		c.Ratio, c.RatioMin, c.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	} else if c.PassThrough.EventsPerSec > 0 {
		c.Ratio = c.Repair.EventsPerSec / c.PassThrough.EventsPerSec
		c.RatioMin, c.RatioMax = c.Ratio, c.Ratio
	}
	if c.PassThroughLatency.P99Ms > 0 {
		c.P99Ratio = c.RepairLatency.P99Ms / c.PassThroughLatency.P99Ms
	}
	c.Targets = c.targets(opt)
}

// targets evaluates the case's goals.
func (c *CaseReport) targets(opt Options) []Target {
	g := c.Case.Goals
	var out []Target
	if g.MinRatio > 0 {
		out = append(out, Target{Name: "repair / pass-through events/s", Want: fmt.Sprintf(">= %.2f", g.MinRatio),
			Got:  fmt.Sprintf("%.2f (median of %d rounds, %.2f-%.2f)", c.Ratio, max(len(c.Rounds), 1), c.RatioMin, c.RatioMax),
			Pass: c.Repair.Verified && c.Ratio >= g.MinRatio})
	}
	if g.MaxP99Ratio > 0 && !opt.SkipLatency {
		r, p := c.RepairLatency, c.PassThroughLatency
		out = append(out, Target{Name: "repair p99 / pass-through p99",
			Want: fmt.Sprintf("<= %.2f at %d events/s", g.MaxP99Ratio, max(g.P99RateAtLeast, 1)),
			Got:  fmt.Sprintf("%.2f (%.1f / %.1f ms at %d events/s)", c.P99Ratio, r.P99Ms, p.P99Ms, r.Rate),
			Pass: r.Measured > 0 && r.Missing == 0 && p.Measured > 0 && p.Missing == 0 && r.Rate >= g.P99RateAtLeast &&
				c.P99Ratio <= g.MaxP99Ratio})
	}
	b := c.RepairBatches
	if g.MaxProcessMsPer1000 > 0 {
		out = append(out, Target{Name: "process + local commit per 1000 events", Want: fmt.Sprintf("<= %.1f ms", g.MaxProcessMsPer1000),
			Got:  fmt.Sprintf("%.2f ms (batches of %.0f events, %.0f records)", b.TookMsPer1000Events, b.AvgEvents, b.RecordsPerBatch),
			Pass: b.Batches > 0 && b.TookMsPer1000Events <= g.MaxProcessMsPer1000})
	}
	if g.MaxLogBytesRatio > 0 {
		out = append(out, Target{Name: "local log bytes / edit-log record bytes", Want: fmt.Sprintf("<= %.2f", g.MaxLogBytesRatio),
			Got:  fmt.Sprintf("%.2f (%.0f / %.0f bytes per commit)", b.LogBytesRatio, b.LogBytesPerCommit, b.RecordBytesPerCommit),
			Pass: b.RecordBytes > 0 && b.LogBytesRatio <= g.MaxLogBytesRatio})
	}
	if cp := c.Checkpoints; cp != nil {
		out = append(out, Target{Name: "throughput with checkpoints / without", Want: fmt.Sprintf(">= %.2f", MinCheckpointRelative),
			Got: fmt.Sprintf("%.2f (ratio to pass-through %.2f with a checkpoint every %d records, %.2f without; %d snapshot records written)",
				cp.Relative, cp.RatioWith, cp.Every, cp.RatioWithout, cp.SnapshotRecords),
			Pass: c.Repair.Verified && cp.SnapshotRecords > 0 && cp.Relative >= MinCheckpointRelative})
	}
	return out
}

// MinCheckpointRelative is the target of the writer's throughput while
// checkpoints are written, relative to without (docs/design.md §5.10).
const MinCheckpointRelative = 0.9

// oneLine is the case's result in a progress line.
func (c *CaseReport) oneLine() string {
	return fmt.Sprintf("done in %.0fs: repair %.0f events/s, pass-through %.0f, ratio %.2f; p99 %.1f vs %.1f ms; targets met %d of %d",
		c.Seconds, c.Repair.EventsPerSec, c.PassThrough.EventsPerSec, c.Ratio, c.RepairLatency.P99Ms, c.PassThroughLatency.P99Ms,
		c.passed(), len(c.Targets))
}

func (c *CaseReport) passed() int {
	n := 0
	for _, t := range c.Targets {
		if t.Pass {
			n++
		}
	}
	return n
}

func numCPU() int { return runtime.NumCPU() }

func machine() Machine {
	return Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, LoadAvgStart: loadAvg()}
}

// cpuModel reads /proc/cpuinfo (Linux); "unknown" elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// securityOf describes the configuration's connection to real brokers.
func securityOf(opt Options, cfg *config.Config) string {
	if len(opt.Brokers) == 0 {
		return ""
	}
	out := "plaintext"
	if cfg.Kafka.TLS.Enabled {
		out = "TLS"
	}
	if cfg.SASLEnabled() {
		out = "SASL " + cfg.Kafka.SASL.Mechanism + " over " + out
	}
	return out
}

func settingsOf(opt Options, cfg *config.Config) Settings {
	broker := "embedded kfake per case, in-process (shares the CPUs with the pipeline), data dir, no fsync"
	if len(opt.Brokers) > 0 {
		broker = strings.Join(opt.Brokers, ",")
	}
	batch, wait := cfg.Batch.MaxEvents, cfg.Batch.MaxWait
	if opt.Batch > 0 {
		batch = opt.Batch
	}
	if opt.BatchWait > 0 {
		wait = opt.BatchWait
	}
	k := cfg.Kafka
	return Settings{Broker: broker, Events: opt.Events, Rounds: opt.Rounds, Rate: opt.Rate, DurationSeconds: opt.Duration.Seconds(), Quick: opt.Quick,
		BatchMaxEvents: batch, BatchMaxWait: wait.String(),
		WriterBatchTimeout: k.Writer.BatchTimeout.String(), WriterBatchSize: k.Writer.BatchSize, Compression: k.Writer.Compression,
		ReaderMaxWait: k.Reader.MaxWait.String(), ReaderQueueCapacity: k.Reader.QueueCapacity,
		SnapshotBytes: cfg.State.SnapshotBytes, CheckpointRecords: cfg.Checkpoint.MaxRecords,
		TailMaxWait: opt.TailMaxWait.String(), ServiceLogLevel: cfg.Log.Level, SkipLatency: opt.SkipLatency,
		Transports: opt.Transports, Security: securityOf(opt, cfg)}
}
