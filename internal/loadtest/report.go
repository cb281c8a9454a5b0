package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
)

// Report is what a run measured. Its JSON form is `consumer load --json`.
type Report struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	// Repair is consume → repair → journal → commit over the backlog.
	Repair Throughput `json:"repair"`
	// PassThrough is consume → produce → commit over the same backlog.
	PassThrough Throughput `json:"pass_through"`
	// Ratio is Repair.EventsPerSec / PassThrough.EventsPerSec.
	Ratio              float64  `json:"ratio"`
	RepairLatency      Latency  `json:"repair_latency"`
	PassThroughLatency Latency  `json:"pass_through_latency"`
	Targets            []Target `json:"targets"`
	// Notes are problems seen during the run (unverified results, missing
	// latency samples).
	Notes []string `json:"notes,omitempty"`
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

// Settings are the workload and the pipeline settings of the run.
type Settings struct {
	Broker              string  `json:"broker"`
	Events              int     `json:"events"`
	Rate                int     `json:"rate"`
	DurationSeconds     float64 `json:"duration_seconds"`
	MVs                 int     `json:"mvs"`
	Tables              int     `json:"tables"`
	Partitions          int     `json:"partitions"`
	TopicPartitions     int     `json:"topic_partitions"`
	BatchMaxEvents      int     `json:"batch_max_events"`
	BatchMaxWait        string  `json:"batch_max_wait"`
	WriterBatchTimeout  string  `json:"writer_batch_timeout"`
	WriterBatchSize     int     `json:"writer_batch_size"`
	Compression         string  `json:"compression"`
	ReaderMaxWait       string  `json:"reader_max_wait"`
	ReaderQueueCapacity int     `json:"reader_queue_capacity"`
	TailMaxWait         string  `json:"tail_max_wait"`
	ServiceLogLevel     string  `json:"service_log_level"`
}

// Throughput is one pipeline's run over the pre-produced backlog.
type Throughput struct {
	Events int `json:"events"`
	// EventsPerSec is measured from the first batch (the repair service's
	// first local commit, the baseline's first collected batch) until the
	// last event's output is on its topic and its offset committed; the
	// first batch's events are not counted. Group join excluded.
	EventsPerSec float64 `json:"events_per_sec"`
	Seconds      float64 `json:"seconds"`
	// FromActivePerSec counts from the moment the member got its partitions.
	FromActivePerSec float64 `json:"from_active_events_per_sec"`
	// FromStartPerSec counts from the start (service.Run / NewGroup): group
	// join included.
	FromStartPerSec  float64 `json:"from_start_events_per_sec"`
	JoinSeconds      float64 `json:"join_seconds"`
	FirstBatchEvents int     `json:"first_batch_events"`
	// TailSeconds is the time from the last local commit being seen to the
	// end (publish and offset commit of the last batch, plus polling).
	TailSeconds float64 `json:"tail_seconds,omitempty"`
	Batches     int     `json:"batches"`
	AvgBatch    float64 `json:"avg_batch"`
	Commits     int     `json:"offset_commits"`
	// Records published (edit-log records, or pass-through copies).
	Records int64 `json:"records"`
	// Repair figures from the service's metrics.
	Repairs           int64   `json:"repairs,omitempty"`
	Skips             int64   `json:"skips,omitempty"`
	DLQ               int64   `json:"dlq,omitempty"`
	ProcessMsPerBatch float64 `json:"process_ms_per_batch,omitempty"`
	PublishMsPerBatch float64 `json:"publish_ms_per_batch,omitempty"`
	OtherMsPerBatch   float64 `json:"other_ms_per_batch,omitempty"`
	// CPUSeconds is the CPU time this process used in the window (the
	// pipeline, the load generator's polling and, when embedded, the
	// broker); CPUUtilization divides it by window × CPUs.
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUUtilization float64 `json:"cpu_utilization"`
	// Verified: every event repaired every MV of its table, nothing skipped
	// or dead-lettered, and the final state holds the expected versions.
	Verified bool `json:"verified"`
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
	// The service's batches during the phase (repair only).
	Batches           int     `json:"batches,omitempty"`
	AvgBatch          float64 `json:"avg_batch,omitempty"`
	ProcessMsPerBatch float64 `json:"process_ms_per_batch,omitempty"`
	PublishMsPerBatch float64 `json:"publish_ms_per_batch,omitempty"`
}

// Target is one pass/fail goal of DESIGN.md §8's benchmarks.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// The targets.
const (
	TargetThroughput = 100000 // events/s with repairs
	TargetRatio      = 0.5    // repair / pass-through
	TargetP99Ms      = 50.0   // at TargetRate
	TargetRate       = 5000
)

func targets(r *Report, opt Options) []Target {
	out := []Target{
		{Name: "repair throughput", Want: fmt.Sprintf(">= %d events/s", TargetThroughput),
			Got: fmt.Sprintf("%.0f events/s", r.Repair.EventsPerSec), Pass: r.Repair.EventsPerSec >= TargetThroughput && r.Repair.Verified},
		{Name: "repair / pass-through", Want: fmt.Sprintf(">= %.2f", TargetRatio),
			Got: fmt.Sprintf("%.2f", r.Ratio), Pass: r.Ratio >= TargetRatio},
	}
	if !opt.SkipLatency {
		l := r.RepairLatency
		out = append(out, Target{Name: fmt.Sprintf("repair p99 latency at %d events/s", l.Rate),
			Want: fmt.Sprintf("< %.0f ms (at %d events/s)", TargetP99Ms, TargetRate),
			Got:  fmt.Sprintf("%.1f ms", l.P99Ms), Pass: l.Measured > 0 && l.Missing == 0 && l.P99Ms < TargetP99Ms && l.Rate >= TargetRate})
	}
	return out
}

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

func settingsOf(opt Options, cfg *config.Config, embedded bool) Settings {
	broker := "embedded kfake, in-process (shares the CPUs with the pipeline), data dir, no fsync"
	if !embedded {
		broker = cfg.Kafka.Brokers
	}
	k := cfg.Kafka
	return Settings{Broker: broker, Events: opt.Events, Rate: opt.Rate, DurationSeconds: opt.Duration.Seconds(),
		MVs: opt.MVs, Tables: opt.Tables, Partitions: opt.Partitions, TopicPartitions: opt.TopicPartitions,
		BatchMaxEvents: cfg.Batch.MaxEvents, BatchMaxWait: cfg.Batch.MaxWait.String(),
		WriterBatchTimeout: k.Writer.BatchTimeout.String(), WriterBatchSize: k.Writer.BatchSize, Compression: k.Writer.Compression,
		ReaderMaxWait: k.Reader.MaxWait.String(), ReaderQueueCapacity: k.Reader.QueueCapacity,
		TailMaxWait: opt.TailMaxWait.String(), ServiceLogLevel: cfg.Log.Level}
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "mvrepair load benchmark\n")
	fmt.Fprintf(w, "  machine:  %d CPUs (GOMAXPROCS %d), %s, %s %s/%s\n", m.NumCPU, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.OS, m.Arch)
	if m.LoadAvgStart != "" {
		fmt.Fprintf(w, "  loadavg:  %s at start, %s at end (other work on the machine skews the figures)\n", m.LoadAvgStart, m.LoadAvgEnd)
	}
	fmt.Fprintf(w, "  broker:   %s\n", s.Broker)
	fmt.Fprintf(w, "  workload: N=%d events, %d MVs over %d tables x %d recorded partitions, kafka.partitions=%d\n",
		s.Events, s.MVs, s.Tables, s.Partitions, s.TopicPartitions)
	fmt.Fprintf(w, "  settings: batch.max_events=%d batch.max_wait=%s writer.batch_timeout=%s writer.batch_size=%d reader.max_wait=%s log.level=%s\n\n",
		s.BatchMaxEvents, s.BatchMaxWait, s.WriterBatchTimeout, s.WriterBatchSize, s.ReaderMaxWait, s.ServiceLogLevel)

	fmt.Fprintf(w, "Throughput over a pre-produced backlog   %12s %10s %12s %8s %9s %9s\n", "events/s", "window", "incl. join", "batches", "avg batch", "CPU used")
	row := func(name string, t Throughput) {
		fmt.Fprintf(w, "  %-38s %12.0f %9.2fs %12.0f %8d %9.0f %8.0f%%\n", name, t.EventsPerSec, t.Seconds, t.FromStartPerSec, t.Batches, t.AvgBatch, 100*t.CPUUtilization)
	}
	row("repair (consume→repair→journal→commit)", r.Repair)
	row("pass-through (consume→produce→commit)", r.PassThrough)
	fmt.Fprintf(w, "  ratio repair / pass-through: %.2f\n", r.Ratio)
	rp := r.Repair
	fmt.Fprintf(w, "  events/s from the first batch to the last offset commit; \"incl. join\" from the start of Run / NewGroup (group join: repair %.0fms, pass-through %.0fms)\n",
		1000*rp.JoinSeconds, 1000*r.PassThrough.JoinSeconds)
	fmt.Fprintf(w, "  repair: %d edit-log records, %d entries repaired, %d skips, %d DLQ, verified=%t; per batch: process+local commit %.2fms, publish %.2fms, rest (fetch, offset commit) %.2fms\n\n",
		rp.Records, rp.Repairs, rp.Skips, rp.DLQ, rp.Verified, rp.ProcessMsPerBatch, rp.PublishMsPerBatch, rp.OtherMsPerBatch)

	if r.RepairLatency.Produced > 0 || r.PassThroughLatency.Produced > 0 {
		l := r.RepairLatency
		fmt.Fprintf(w, "Latency at %d events/s for %s, ms          %7s %7s %7s %7s %7s %8s\n", l.Rate,
			time.Duration(l.Seconds*float64(time.Second)), "p50", "p90", "p99", "max", "mean", "events")
		lrow := func(name string, l Latency) {
			fmt.Fprintf(w, "  %-38s %7.1f %7.1f %7.1f %7.1f %7.1f %8d\n", name, l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs, l.MeanMs, l.Measured)
		}
		lrow("repair (produce → edit-log record read)", r.RepairLatency)
		lrow("pass-through (produce → output read)", r.PassThroughLatency)
		fmt.Fprintf(w, "  produce time = handed to Producer.Publish; read time = fetched by a tail with max_wait=%s (its fetch delay is included)\n",
			s.TailMaxWait)
		fmt.Fprintf(w, "  of which: Publish until acked p50/p99 %.1f/%.1fms (repair), %.1f/%.1fms (pass-through); repair produce → batch decided (record \"at\") p50/p99 %.0f/%.0fms\n\n",
			r.RepairLatency.ProduceAckP50Ms, r.RepairLatency.ProduceAckP99Ms, r.PassThroughLatency.ProduceAckP50Ms, r.PassThroughLatency.ProduceAckP99Ms,
			r.RepairLatency.ToBatchP50Ms, r.RepairLatency.ToBatchP99Ms)
		if l := r.RepairLatency; l.Batches > 0 {
			fmt.Fprintf(w, "  repair batches in the phase: %d of %.0f events on average; per batch: process+local commit %.2fms, publish %.2fms\n\n",
				l.Batches, l.AvgBatch, l.ProcessMsPerBatch, l.PublishMsPerBatch)
		}
	}
	fmt.Fprintf(w, "Targets\n")
	for _, t := range r.Targets {
		verdict := "FAIL"
		if t.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "  %s  %-40s want %-28s got %s\n", verdict, t.Name, t.Want, t.Got)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
