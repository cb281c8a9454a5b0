package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/loadgen"
)

// execute runs the command with args and returns its stdout, stderr and
// error.
func execute(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRoot()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func exitCode(err error) int { return cli.Code(err) }

// TestQuick_runsEveryCaseAndReportsEveryFigure is the smoke run of the tool:
// every default case, in one invocation, on embedded brokers. It checks
// that each case's report is complete and its repair run verified, not
// that any target is met.
func TestQuick_runsEveryCaseAndReportsEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and the service per case")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Setenv("MVREPAIR_LOG_LEVEL", "warn") // config from the environment, as for the consumer
	file := filepath.Join(t.TempDir(), "report.json")
	out, stderr, err := execute(t, ctx, "--quick", "--json", "--rate", "500", "--json-file", file)
	if err != nil {
		t.Fatalf("loadgen --quick: %v\nstderr:\n%s", err, stderr)
	}
	if saved, err := os.ReadFile(file); err != nil || string(saved) != out {
		t.Errorf("--json-file holds %d bytes (%v), want the %d bytes printed", len(saved), err, len(out))
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.Settings.ServiceLogLevel != "warn" || !rep.Settings.Quick || rep.Settings.Rate != 500 {
		t.Errorf("settings = %+v, want log level warn from MVREPAIR_LOG_LEVEL, quick, rate 500", rep.Settings)
	}
	var names []string
	for _, c := range rep.Cases {
		names = append(names, c.Case.Name)
		checkCase(t, c, rep.Settings.Events, rep.Settings.Rounds)
	}
	if got, want := strings.Join(names, ","), strings.Join(loadgen.CaseNames(), ","); got != want {
		t.Errorf("cases %s, want %s", got, want)
	}
	for _, c := range loadgen.CaseNames() {
		if !strings.Contains(stderr, "loadgen: "+c+": done in") {
			t.Errorf("no progress line for case %s:\n%s", c, stderr)
		}
	}
}

// checkCase checks that one case's report has every figure.
func checkCase(t *testing.T, c loadgen.CaseReport, n, rounds int) {
	t.Helper()
	name := c.Case.Name
	if len(c.Rounds) != rounds || rounds < 2 {
		t.Errorf("%s: %d rounds, want %d (at least 2)", name, len(c.Rounds), rounds)
	}
	for i, rd := range c.Rounds {
		if !rd.Repair.Verified || rd.Repair.Events != n || rd.PassThrough.Events != n || rd.Ratio <= 0 || rd.RepairFirst != (i%2 == 0) {
			t.Errorf("%s: round %d: %+v", name, i+1, rd)
		}
	}
	if c.Error != "" || len(c.Notes) > 0 {
		t.Errorf("%s: error %q, notes %q", name, c.Error, c.Notes)
	}
	if !c.Repair.Verified {
		t.Errorf("%s: repair run not verified: %s", name, c.Repair.VerifyError)
	}
	var backlog int64
	for _, e := range c.EventsPerInputPartition {
		if e == 0 {
			t.Errorf("%s: an input partition got no events: %v", name, c.EventsPerInputPartition)
		}
		backlog += e
	}
	if len(c.EventsPerInputPartition) != c.Case.TopicPartitions || backlog != int64(n) {
		t.Errorf("%s: backlog per partition %v, want %d partitions, %d events", name, c.EventsPerInputPartition, c.Case.TopicPartitions, n)
	}
	for what, tp := range map[string]loadgen.Throughput{"repair": c.Repair, "pass-through": c.PassThrough} {
		if tp.EventsPerSec <= 0 || tp.FromStartPerSec <= 0 || tp.Batches <= 0 || tp.AvgBatch <= 0 || tp.Records <= 0 || tp.Seconds <= 0 ||
			tp.CPUMicrosPerEvent <= 0 || tp.Events != n*rounds || tp.MinEventsPerSec > tp.EventsPerSec || tp.MaxEventsPerSec < tp.EventsPerSec {
			t.Errorf("%s: %s throughput incomplete: %+v", name, what, tp)
		}
	}
	if c.Ratio <= 0 || c.RatioMin > c.Ratio || c.RatioMax < c.Ratio || c.P99Ratio <= 0 {
		t.Errorf("%s: ratio %v (%v-%v), p99 ratio %v", name, c.Ratio, c.RatioMin, c.RatioMax, c.P99Ratio)
	}
	b := c.RepairBatches
	if b.Batches != c.Repair.Batches || b.Events != int64(n*rounds) || b.RecordsPerBatch <= 0 || b.TookMs.Mean <= 0 ||
		b.TookMsPer1000Events <= 0 || b.LogBytesPerCommit <= 0 || b.RecordBytesPerCommit <= 0 || b.LogBytesRatio < 1 {
		t.Errorf("%s: batch figures incomplete: %+v", name, b)
	}
	for what, l := range map[string]loadgen.Latency{"repair": c.RepairLatency, "pass-through": c.PassThroughLatency} {
		if l.Produced == 0 || l.Measured != l.Produced || l.Missing != 0 {
			t.Errorf("%s: %s latency: produced %d measured %d missing %d", name, what, l.Produced, l.Measured, l.Missing)
		}
		if !(0 < l.P50Ms && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.MaxMs) {
			t.Errorf("%s: %s latency percentiles out of order: %+v", name, what, l)
		}
	}
	if c.LatencyBatches.Batches == 0 || c.LatencyBatches.Events != int64(c.RepairLatency.Produced) {
		t.Errorf("%s: latency-phase batches %+v, want the %d events of the phase", name, c.LatencyBatches, c.RepairLatency.Produced)
	}
	if len(c.Targets) == 0 {
		t.Errorf("%s: no targets", name)
	}
}

func TestUsage_errorsExitWithStatus2(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--case", "sprad"}, `unknown case "sprad"`},
		{[]string{"spread"}, "did you mean --case spread?"},
		{[]string{"config.yaml"}, "did you mean --config config.yaml?"},
		{[]string{"--events", "-5"}, "--events must not be negative"},
		{[]string{"--evnts", "5"}, "unknown flag: --evnts"},
		{[]string{"--rate", "fast"}, `invalid argument "fast"`},
		{[]string{"restore", "--mvs", "0"}, "--mvs and --partitions must be positive"},
		{[]string{"restore", "--runs", "-3"}, "--runs not negative"},
	} {
		_, _, err := execute(t, context.Background(), c.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("loadgen %v: exit %d, %v; want exit 2 and %q", c.args, exitCode(err), err, c.want)
		}
	}
}

func TestConfig_errorsExitWithStatus2(t *testing.T) {
	t.Setenv("MVREPAIR_BATCH_MAX_EVENTS", "0")
	_, _, err := execute(t, context.Background(), "--case", "easy")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "batch.max_events") {
		t.Errorf("exit %d, %v; want exit 2 naming batch.max_events", exitCode(err), err)
	}
}

func TestConfig_unknownVariableIsAWarning(t *testing.T) {
	t.Setenv("MVREPAIR_KAFKA_BROKER", "x:1")
	_, stderr, err := execute(t, context.Background(), "--case", "nope")
	if exitCode(err) != 2 || !strings.Contains(stderr, "loadgen: warning:") || !strings.Contains(stderr, "MVREPAIR_KAFKA_BROKERS") {
		t.Errorf("exit %d, %v, stderr %q; want the warning with the suggestion, then the usage error", exitCode(err), err, stderr)
	}
}

func TestFailedCase_reportedThenExitStatus1(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nothing listens there: the case fails at its first broker call.
	out, _, err := execute(t, ctx, "--case", "easy", "--brokers", "127.0.0.1:1", "-q")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "case easy failed") {
		t.Errorf("exit %d, %v; want exit 1, case easy failed", exitCode(err), err)
	}
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, "Summary (every case") || !strings.Contains(out, "easy: setup:") {
		t.Errorf("the report of the failed run lacks the failure or the summary:\n%s", out)
	}
}
