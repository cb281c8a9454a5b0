package loadgen

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report for people: the machine and settings, each
// case in detail, then one summary table of every case.
func (r *Report) WriteTable(w io.Writer) {
	r.writeHeader(w)
	for i := range r.Cases {
		r.Cases[i].write(w)
	}
	r.WriteSummary(w)
}

func (r *Report) writeHeader(w io.Writer) {
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "mvrepair load generator\n")
	fmt.Fprintf(w, "  machine:  %d CPUs (GOMAXPROCS %d), %s, %s %s/%s\n", m.NumCPU, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.OS, m.Arch)
	if m.LoadAvgStart != "" {
		fmt.Fprintf(w, "  loadavg:  %s at start, %s at end (other work on the machine skews the figures)\n", m.LoadAvgStart, m.LoadAvgEnd)
	}
	fmt.Fprintf(w, "  broker:   %s\n", s.Broker)
	if len(s.Transports) > 0 {
		fmt.Fprintf(w, "  transports: each case over %s, one after the other, each on its own embedded broker\n", strings.Join(s.Transports, ", "))
	}
	if s.Security != "" {
		fmt.Fprintf(w, "  security: %s (kafka.tls.*, kafka.sasl.*)\n", s.Security)
	}
	quick := ""
	if s.Quick {
		quick = " (--quick: a smoke run, the figures mean little)"
	}
	fmt.Fprintf(w, "  load:     %d rounds of N=%d events, latency at %d events/s for %gs per pipeline%s\n", s.Rounds, s.Events, s.Rate, s.DurationSeconds, quick)
	fmt.Fprintf(w, "  settings: batch.max_events=%d batch.max_wait=%s writer.batch_timeout=%s writer.batch_size=%d reader.max_wait=%s log.level=%s\n",
		s.BatchMaxEvents, s.BatchMaxWait, s.WriterBatchTimeout, s.WriterBatchSize, s.ReaderMaxWait, s.ServiceLogLevel)
}

// write prints one case in detail.
func (c *CaseReport) write(w io.Writer) {
	k := c.Case
	fmt.Fprintf(w, "\n== %s: %s (%.0fs, load average %s at its start)\n", caseName(k.Name, c.Transport), k.Title, c.Seconds, c.LoadAvgStart)
	fmt.Fprintf(w, "  shape: %d MVs on %d tables x %d recorded partitions; input topic of %d partitions, backlog per partition %v\n",
		k.MVs, k.Tables, k.Partitions, k.TopicPartitions, c.EventsPerInputPartition)
	if c.Error != "" {
		fmt.Fprintf(w, "  FAILED: %s\n", c.Error)
	}
	c.writeThroughput(w)
	c.writeBatches(w, "throughput rounds", c.RepairBatches)
	c.writeLatency(w)
	if len(c.Targets) > 0 {
		fmt.Fprintf(w, "  Targets\n")
		for _, t := range c.Targets {
			fmt.Fprintf(w, "    %s  %-40s want %-24s got %s\n", verdict(t.Pass), t.Name, t.Want, t.Got)
		}
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if c.CPUProfile != "" {
		fmt.Fprintf(w, "  cpu profile of the repair throughput phase: %s\n", c.CPUProfile)
	}
}

func (c *CaseReport) writeThroughput(w io.Writer) {
	if len(c.Rounds) == 0 {
		return
	}
	fmt.Fprintf(w, "  Throughput: %d rounds of %d events, each consumed by both pipelines (the order alternates)\n", len(c.Rounds), c.Rounds[0].Repair.Events)
	fmt.Fprintf(w, "    %-40s %10s %17s %12s %8s %9s %9s\n", "", "events/s", "(range)", "CPU µs/event", "batches", "avg batch", "CPU used")
	row := func(name string, t Throughput) {
		fmt.Fprintf(w, "    %-40s %10.0f %17s %12.1f %8d %9.0f %8.0f%%\n", name, t.EventsPerSec,
			fmt.Sprintf("(%.0f-%.0f)", t.MinEventsPerSec, t.MaxEventsPerSec), t.CPUMicrosPerEvent, t.Batches, t.AvgBatch, 100*t.CPUUtilization)
	}
	row("repair (consume→repair→journal→commit)", c.Repair)
	row("pass-through (consume→produce→commit)", c.PassThrough)
	var rs []string
	for i, rd := range c.Rounds {
		first := "pass-through first"
		if rd.RepairFirst {
			first = "repair first"
		}
		rs = append(rs, fmt.Sprintf("round %d (%s): %.0f / %.0f = %.2f", i+1, first, rd.Repair.EventsPerSec, rd.PassThrough.EventsPerSec, rd.Ratio))
	}
	fmt.Fprintf(w, "    ratio repair / pass-through: %.2f, the median of the rounds' ratios\n", c.Ratio)
	for _, r := range rs {
		fmt.Fprintf(w, "      %s\n", r)
	}
	fmt.Fprintf(w, "    events/s from the first batch to the last offset commit, per round (median shown); from the start of Run, group join included: %.0f / %.0f\n",
		c.Repair.FromStartPerSec, c.PassThrough.FromStartPerSec)
	fmt.Fprintf(w, "    CPU: this process's (pipeline, broker, load generator) per event counted; repair: %d edit-log records published, verified=%t\n",
		c.Repair.Records, c.Repair.Verified)
}

// writeBatches prints the service's batches of a phase.
func (c *CaseReport) writeBatches(w io.Writer, phase string, b BatchFigures) {
	if b.Batches == 0 {
		return
	}
	fmt.Fprintf(w, "  Repair batches, %s: %d of %.0f events, %.1f edit-log records each\n", phase, b.Batches, b.AvgEvents, b.RecordsPerBatch)
	t := b.TookMs
	fmt.Fprintf(w, "    process + local commit: mean %.2f, p50 %.2f, p90 %.2f, p99 %.2f, max %.2f ms per batch (%.2f ms per 1000 events); publish %.2f ms per batch\n",
		t.Mean, t.P50, t.P90, t.P99, t.Max, b.TookMsPer1000Events, b.PublishMsPerBatch)
	fmt.Fprintf(w, "    local log: %.0f bytes per commit for %.0f bytes of edit-log records (%.2fx)\n",
		b.LogBytesPerCommit, b.RecordBytesPerCommit, b.LogBytesRatio)
	fmt.Fprintf(w, "    %d entries repaired, %d skips, %d DLQ, %d duplicates, %d offset commits, %d retries\n",
		b.Repaired, b.Skips, b.DLQ, b.Duplicates, b.OffsetCommits, b.Retries)
}

func (c *CaseReport) writeLatency(w io.Writer) {
	r, p := c.RepairLatency, c.PassThroughLatency
	if r.Produced == 0 && p.Produced == 0 {
		return
	}
	fmt.Fprintf(w, "  Latency at %d events/s for %s each, in %d alternating slices, ms %7s %7s %7s %7s %7s %8s\n", r.Rate,
		time.Duration(r.Seconds*float64(time.Second)), latencySlices, "p50", "p90", "p99", "max", "mean", "events")
	row := func(name string, l Latency) {
		fmt.Fprintf(w, "    %-63s %7.1f %7.1f %7.1f %7.1f %7.1f %8d\n", name, l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs, l.MeanMs, l.Measured)
	}
	row("repair (produce → edit-log record read)", r)
	row("pass-through (produce → output read)", p)
	fmt.Fprintf(w, "    p99 repair / pass-through: %.2f\n", c.P99Ratio)
	fmt.Fprintf(w, "    of which: Publish until acked p50/p99 %.1f/%.1f ms (repair), %.1f/%.1f ms (pass-through); repair produce → batch decided (record \"at\") p50/p99 %.0f/%.0f ms\n",
		r.ProduceAckP50Ms, r.ProduceAckP99Ms, p.ProduceAckP50Ms, p.ProduceAckP99Ms, r.ToBatchP50Ms, r.ToBatchP99Ms)
	c.writeBatches(w, "latency phase", c.LatencyBatches)
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

// WriteSummary prints one row per case.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\nSummary (every case; ratios against the pass-through baseline of the same case)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tMVs/tables/parts/input parts\trepair ev/s\tpass ev/s\tratio (range)\tCPU µs/ev repair/pass\trepair p50/p90/p99 ms\tpass p50/p90/p99 ms\tp99 ratio\trecords/batch\tprocess+commit ms/1000 ev\tlog/record bytes\ttargets met\t")
	for _, c := range r.Cases {
		k := c.Case
		shape := fmt.Sprintf("%d/%d/%d/%d", k.MVs, k.Tables, k.Partitions, k.TopicPartitions)
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", caseName(k.Name, c.Transport), shape)
			continue
		}
		b := c.RepairBatches
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.2f (%.2f-%.2f)\t%.1f/%.1f\t%s\t%s\t%.2f\t%.1f\t%.2f\t%.2f\t%d of %d\t\n",
			caseName(k.Name, c.Transport), shape, c.Repair.EventsPerSec, c.PassThrough.EventsPerSec, c.Ratio, c.RatioMin, c.RatioMax,
			c.Repair.CPUMicrosPerEvent, c.PassThrough.CPUMicrosPerEvent,
			pcts(c.RepairLatency), pcts(c.PassThroughLatency), c.P99Ratio,
			b.RecordsPerBatch, b.TookMsPer1000Events, b.LogBytesRatio, c.passed(), len(c.Targets))
	}
	_ = tw.Flush()
	var missed []string
	for _, c := range r.Cases {
		for _, t := range c.Targets {
			if !t.Pass {
				missed = append(missed, fmt.Sprintf("%s: %s (want %s, got %s)", caseName(c.Case.Name, c.Transport), t.Name, t.Want, t.Got))
			}
		}
	}
	for _, m := range missed {
		fmt.Fprintf(w, "  missed  %s\n", m)
	}
	for _, c := range r.Cases {
		if c.Error != "" {
			fmt.Fprintf(w, "  FAILED  %s: %s\n", caseName(c.Case.Name, c.Transport), c.Error)
		}
	}
	r.writeTransports(w)
}

// writeTransports compares each case's transports with its first one: the
// cost of TLS (and SASL) for both pipelines.
func (r *Report) writeTransports(w io.Writer) {
	if len(r.Settings.Transports) < 2 {
		return
	}
	fmt.Fprintf(w, "\nTransports (each case against its first transport, %s; the runs were one after the other, so the machine's other work moves these ratios)\n", r.Settings.Transports[0])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\trepair ev/s ratio\tpass ev/s ratio\tCPU µs/ev repair ratio\tCPU µs/ev pass ratio\trepair p99 ms\tpass p99 ms\t")
	base := map[string]*CaseReport{}
	for i := range r.Cases {
		c := &r.Cases[i]
		if c.Error != "" {
			continue
		}
		b := base[c.Case.Name]
		if b == nil {
			base[c.Case.Name] = c
			continue
		}
		fmt.Fprintf(tw, "%s vs %s\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f vs %.1f\t%.1f vs %.1f\t\n", caseName(c.Case.Name, c.Transport), b.Transport,
			ratio(c.Repair.EventsPerSec, b.Repair.EventsPerSec), ratio(c.PassThrough.EventsPerSec, b.PassThrough.EventsPerSec),
			ratio(c.Repair.CPUMicrosPerEvent, b.Repair.CPUMicrosPerEvent), ratio(c.PassThrough.CPUMicrosPerEvent, b.PassThrough.CPUMicrosPerEvent),
			c.RepairLatency.P99Ms, b.RepairLatency.P99Ms, c.PassThroughLatency.P99Ms, b.PassThroughLatency.P99Ms)
	}
	_ = tw.Flush()
}

// ratio is a / b, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func pcts(l Latency) string {
	if l.Measured == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f/%.1f", l.P50Ms, l.P90Ms, l.P99Ms)
}
