package itest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/testkit"
)

// checkpoints returns the checkpoints a service has written
// (mvrepair_checkpoints_total).
func checkpoints(t *testing.T, in *testkit.Instance) int {
	v, _ := testkit.Gauge(t, in.Svc.Metrics, "mvrepair_checkpoints_total")
	return int(v)
}

func TestCheckpoint_journalStaysBoundedAndARestoreFromTheCheckpointEqualsTheLiveState(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("checkpoints")
	cfg.Checkpoint.MaxRecords = 40
	cfg.Checkpoint.Interval = time.Hour
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 6, 20, 12)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 3000, 0)

	in := e.StartService(cfg, "run-1")
	e.Publish(catalog...)
	e.WaitApplied(in.State, tp.Catalog) // the MVs exist before their first compaction
	// Over several seconds, in many batches: the writer asks every 100 ms
	// whether a checkpoint is due, so several are written on the way.
	if err := e.PublishPaced(input, 50, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.WaitCaughtUp(cfg)
	e.Eventually(testkit.WaitLong, func() error {
		if n := checkpoints(t, in); n < 4 {
			return fmt.Errorf("%d checkpoints written, want several", n)
		}
		return nil
	})
	in.Stop()
	live := testkit.ExportOf(t, in.State())
	jid := in.State().JournalID()
	testkit.SameText(t, "state after the first run", testkit.MVsOf(t, live), testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), catalog, input))

	// The journal is bounded: each checkpoint truncated the edit log below
	// the one before it, so it holds the records since the checkpoint
	// before the latest (a restore can fall back to it).
	offs, err := e.Admin.ListOffsets(testkit.Ctx(t, testkit.WaitLong), tp.EditLog)
	if err != nil {
		t.Fatal(err)
	}
	var markers []editlog.Checkpoint
	for _, m := range e.ReadTopic(tp.Snapshots) {
		if string(m.Key) == editlog.CheckpointKey {
			c, err := editlog.DecodeCheckpoint(m.Value)
			if err != nil {
				t.Fatalf("checkpoint marker at offset %d: %v", m.Offset, err)
			}
			markers = append(markers, c)
		}
	}
	t.Logf("edit log: offsets %d..%d of %d journal ids; %d checkpoints", offs[0].First, offs[0].Last, jid, len(markers))
	if len(markers) < 4 {
		t.Fatalf("%d checkpoint markers on the snapshot topic", len(markers))
	}
	if want := markers[len(markers)-2].EditLogOffset; offs[0].First != want {
		t.Errorf("the edit log starts at offset %d, want %d (the checkpoint before the latest)", offs[0].First, want)
	}

	// A restore from the latest checkpoint and the tail equals the live
	// state, byte for byte.
	var rep *recovery.Report
	testkit.SameText(t, "restore from the checkpoint vs live", testkit.ExportOf(t, e.RestoreFromKafka(cfg, &rep)), live)
	if rep.Checkpoint == nil {
		t.Fatal("the restore did not start from a checkpoint")
	}
	t.Logf("restore: checkpoint at journal id %d, %d MV records, %d edit-log records", rep.Checkpoint.JournalID, rep.Snapshots, rep.Records)

	// A lost state dir is restored the same way, and the service carries on.
	if err := os.RemoveAll(cfg.State.Dir); err != nil {
		t.Fatal(err)
	}
	in = e.StartService(cfg, "run-2")
	e.Eventually(testkit.WaitLong, in.Svc.Ready)
	testkit.SameText(t, "state restored into an empty state dir vs live", testkit.ExportOf(t, in.State()), live)
	more := w.stream(t, tp.Input, 300, 0)
	e.Publish(more...)
	e.WaitCaughtUp(cfg)
	in.Stop()
	testkit.SameText(t, "state", testkit.MVsOf(t, testkit.ExportOf(t, in.State())),
		testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), catalog, append(input, more...)))
	testkit.SameText(t, "restore after more records vs live", testkit.ExportOf(t, e.RestoreFromKafka(cfg, nil)), testkit.ExportOf(t, in.State()))
}

func TestCheckpoint_failoverBetweenCheckpointsKeepsRestoresEqual(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("cp-failover")
	cfg.Checkpoint.MaxRecords = 30
	cfg.Checkpoint.Interval = time.Hour
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 5, 15, 10)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 2000, 0)
	cfgB := *cfg
	cfgB.State.Dir = cfg.State.Dir + "-b"
	cfgB.Kafka.InstanceName += "-b"

	a := e.StartService(cfg, "a")
	e.Publish(catalog...)
	e.WaitApplied(a.State, tp.Catalog)
	b := e.StartService(&cfgB, "b") // a standby
	if err := e.PublishPaced(input[:1000], 50, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.WaitCaughtUp(cfg)
	e.Eventually(testkit.WaitLong, func() error {
		if n := checkpoints(t, a); n < 2 {
			return fmt.Errorf("%d checkpoints by the first writer", n)
		}
		return nil
	})
	// The writer goes; the standby takes over between two checkpoints and
	// goes on from the first writer's latest one.
	a.Stop()
	if err := e.PublishPaced(input[1000:], 50, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.WaitCaughtUp(cfg)
	e.Eventually(testkit.WaitLong, func() error {
		if n := checkpoints(t, b); n < 2 {
			return fmt.Errorf("%d checkpoints by the new writer", n)
		}
		return nil
	})
	b.Stop()
	live := testkit.ExportOf(t, b.State())
	testkit.SameText(t, "state", testkit.MVsOf(t, live), testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), catalog, input))
	testkit.SameText(t, "restore from the checkpoint after a failover vs live", testkit.ExportOf(t, e.RestoreFromKafka(cfg, nil)), live)
}
