package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
)

// TestMain lets this test binary be the child of Restore (it re-executes
// its own executable).
func TestMain(m *testing.M) {
	if child, err := RunRestoreChild(context.Background(), os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRestore_timesARestoreFromTheCheckpointInAChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and two child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Restore(ctx, RestoreOptions{MVs: 30, Partitions: 20, HistoryX: 2, SnapshotRounds: 2, Tail: 45, Runs: 2,
		Config: config.Default(), Progress: &progress})
	if err != nil {
		t.Fatalf("Restore: %v\n%s", err, progress.String())
	}
	if rep.Entries != 600 || rep.HistoryRecords == 0 || rep.HistoryBytes < 2*rep.SnapshotBytes || len(rep.Runs) != 2 {
		t.Fatalf("report %+v: want 600 entries, a history of at least twice the snapshots' %d bytes, 2 runs", rep, rep.SnapshotBytes)
	}
	if len(rep.NoHistoryRuns) != 2 || rep.HistoryRatio != rep.MedianSeconds/rep.NoHistoryMedianSeconds {
		t.Fatalf("no-history baseline: %d runs, ratio %v (medians %v / %v)", len(rep.NoHistoryRuns), rep.HistoryRatio,
			rep.MedianSeconds, rep.NoHistoryMedianSeconds)
	}
	for i, r := range append(rep.Runs, rep.NoHistoryRuns...) {
		// The child checked the state it restored (MVs, entries, tail);
		// here: it started from the checkpoint and measured itself.
		if !r.FromCheckpoint || r.TailApplied != 45 || r.Entries != 600 || r.MVs != 30 {
			t.Errorf("run %d: %+v, want a restore from the checkpoint applying the 45 tail records", i+1, r)
		}
		if r.Seconds <= 0 || r.PeakRSSBytes < r.RSSBytes || r.RSSBytes <= 0 || r.HeapBytes <= 0 {
			t.Errorf("run %d: measurements %+v", i+1, r)
		}
	}
}

func TestRestore_aTailLongerThanTheStateOfOnePartitionMVs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a child process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 10 tail records over 3 MVs of one partition each: every partition
	// moves on more than once (the child checks all 10 applied).
	rep, err := Restore(ctx, RestoreOptions{MVs: 3, Partitions: 1, Tail: 10, Config: config.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Runs[0]; r.TailApplied != 10 || r.Entries != 3 {
		t.Fatalf("run %+v, want 10 tail records applied to 3 entries", r)
	}
}

func TestRestore_refusesAnEmptyShape(t *testing.T) {
	for _, o := range []RestoreOptions{{MVs: 0, Partitions: 1}, {MVs: 1, Partitions: 0}, {MVs: 1, Partitions: 1, HistoryX: -1},
		{MVs: 1, Partitions: 1, Runs: -3}, {MVs: 1, Partitions: 1, SnapshotRounds: -1}} {
		if _, err := Restore(t.Context(), o); err == nil {
			t.Errorf("Restore(%+v) accepted", o)
		}
	}
}

func TestRun_checkpointEvery_alternatesRoundsAndComparesThem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := Case{Name: "tiny", Title: "tiny", MVs: 8, Tables: 4, Partitions: 3, TopicPartitions: 2}
	var progress bytes.Buffer
	// Small batches (each folds into at most 8 records) so that a round
	// has many and lasts past the checkpointer's poll.
	rep, err := Run(ctx, Options{Cases: []Case{c}, Events: 4000, Batch: 20, Rounds: 1, SkipLatency: true, CheckpointEvery: 20,
		Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	cr := rep.Cases[0]
	if len(cr.Rounds) != 4 {
		t.Fatalf("%d rounds, want 4 (a multiple of 4 with --checkpoint-every)", len(cr.Rounds))
	}
	// Two rounds of each kind, one of them with the repair pipeline first.
	firstWith, firstWithout := 0, 0
	for i, rd := range cr.Rounds {
		if rd.Checkpoints != (i < 2) {
			t.Errorf("round %d: checkpoints=%v", i+1, rd.Checkpoints)
		}
		if rd.Checkpoints && rd.SnapshotRecords == 0 {
			t.Errorf("round %d wrote no snapshot records with a checkpoint every 20 records", i+1)
		}
		if !rd.Checkpoints && rd.SnapshotRecords != 0 {
			t.Errorf("round %d wrote %d snapshot records with checkpoints off", i+1, rd.SnapshotRecords)
		}
		if rd.RepairFirst && rd.Checkpoints {
			firstWith++
		}
		if rd.RepairFirst && !rd.Checkpoints {
			firstWithout++
		}
		if !rd.Repair.Verified {
			t.Errorf("round %d: %s", i+1, rd.Repair.VerifyError)
		}
	}
	if firstWith != 1 || firstWithout != 1 {
		t.Errorf("repair first in %d rounds with checkpoints and %d without, want 1 and 1", firstWith, firstWithout)
	}
	cp := cr.Checkpoints
	if cp == nil || cp.Every != 20 || cp.RatioWith <= 0 || cp.RatioWithout <= 0 || cp.Relative != cp.RatioWith/cp.RatioWithout {
		t.Fatalf("checkpoint figures %+v", cp)
	}
	found := false
	for _, tg := range cr.Targets {
		found = found || tg.Name == "throughput with checkpoints / without"
	}
	if !found {
		t.Errorf("no checkpoint target in %+v", cr.Targets)
	}
}

func TestRestoreJob_carriesNoSettingAndTheChildLoadsThemAgain(t *testing.T) {
	t.Setenv("MVREPAIR_KAFKA_BROKERS", "configured:9092") // as the parent loaded it
	t.Setenv("MVREPAIR_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("MVREPAIR_KAFKA_SASL_USERNAME", "loadgen")
	t.Setenv(config.PasswordEnv, "s3cret-pw")
	job := restoreJob{Brokers: "broker:9092", ReplicationFactor: 1, Topics: config.Topics{Input: "i", Catalog: "c",
		EditLog: "e", DLQ: "d", Snapshots: "s"}, StateDir: t.TempDir()}
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("s3cret")) || bytes.Contains(b, []byte("SCRAM")) {
		t.Fatalf("the child's job carries settings: %s", b)
	}
	cfg, err := job.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.Password.Reveal() != "s3cret-pw" || cfg.Kafka.Brokers != "broker:9092" || cfg.Kafka.Topics.Snapshots != "s" ||
		cfg.State.Dir != job.StateDir || cfg.Kafka.ReplicationFactor != 1 {
		t.Fatalf("the child's configuration lost the environment's password or the run's overrides: %+v", cfg.Kafka)
	}
}

func TestRunRestoreChild_onlyInAChildAndABadJobIsAnError(t *testing.T) {
	var out bytes.Buffer
	if child, err := RunRestoreChild(t.Context(), &out); child || err != nil {
		t.Fatalf("outside a child: child=%v err=%v", child, err)
	}
	t.Setenv(restoreChildEnv, "{not json")
	if child, err := RunRestoreChild(t.Context(), &out); !child || err == nil || out.Len() != 0 {
		t.Fatalf("a child with a bad job: child=%v err=%v, printed %q", child, err, out.String())
	}
	// A job the child cannot carry out (no broker there) fails with the
	// child's own message, not a hang.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	t.Setenv(restoreChildEnv, "")
	t.Setenv("MVREPAIR_KAFKA_CONNECT_TIMEOUT", "1s") // the child's configuration comes from the environment
	_, err := runRestoreChild(ctx, restoreJob{Brokers: "127.0.0.1:1", ReplicationFactor: 1, StateDir: t.TempDir(),
		Topics: config.Topics{Input: "i", Catalog: "c", EditLog: "e", DLQ: "d", Snapshots: "s"}})
	if err == nil || !strings.Contains(err.Error(), "restore child") {
		t.Fatalf("runRestoreChild against no broker: %v", err)
	}
}
