package itest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
)

// TestServiceChild is the service in a child process for the crash tests;
// it is skipped unless a crash test started it.
func TestServiceChild(t *testing.T) {
	raw := os.Getenv(childConfigEnv)
	if raw == "" {
		t.Skip("the service in a child process; started by the crash tests")
	}
	runChild(t, raw)
}

func topicsOf(cfg *config.Config) pipeline.Topics {
	k := cfg.Kafka.Topics
	return pipeline.Topics{Input: k.Input, Catalog: k.Catalog, EditLog: k.EditLog, DLQ: k.DLQ}
}

// waitCommitted waits until the group committed every record of topic.
func (e *env) waitCommitted(cfg *config.Config, topic string) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error {
		c, err := e.admin.CommittedOffsets(context.Background(), cfg.Kafka.GroupID, []string{topic})
		if err != nil {
			return err
		}
		offs, err := e.admin.ListOffsets(context.Background(), topic)
		if err != nil {
			return err
		}
		for p, o := range offs {
			if o.Last > 0 && c[topic][p] != o.Last {
				return fmt.Errorf("%s/%d: committed %d of %d", topic, p, c[topic][p], o.Last)
			}
		}
		return nil
	})
}

// inputLag is the number of input records not committed yet (best effort,
// for the log).
func (e *env) inputLag(cfg *config.Config) int64 {
	topic := cfg.Kafka.Topics.Input
	c, err := e.admin.CommittedOffsets(context.Background(), cfg.Kafka.GroupID, []string{topic})
	if err != nil {
		return -1
	}
	offs, err := e.admin.ListOffsets(context.Background(), topic)
	if err != nil {
		return -1
	}
	var lag int64
	for p, o := range offs {
		lag += o.Last - max(c[topic][p], 0)
	}
	return lag
}

// checkFinalState verifies a stopped service's state dir and the topics
// against the crash-free outcome of catalog and input: the same MVs, an edit
// log with no gap whose redeliveries are byte-identical and which rebuilds
// the same state, every bad record dead-lettered, every record committed.
func (e *env) checkFinalState(cfg *config.Config, catalog, input []kafkaio.Message) {
	t := e.t
	t.Helper()
	tp := cfg.Kafka.Topics
	if err := e.caughtUp(cfg); err != nil {
		t.Fatalf("committed offsets are not the high watermarks: %v", err)
	}
	st := openStore(t, cfg.State.Dir)
	got := exportOf(t, st)
	sameText(t, "final state vs a crash-free run", mvsOf(t, got), expectedMVs(t, topicsOf(cfg), catalog, input))
	j := checkEditLog(t, e.readTopic(tp.EditLog))
	if int64(len(j.records)) != st.JournalID() {
		t.Fatalf("edit log has journal ids 1..%d, the store %d", len(j.records), st.JournalID())
	}
	sameText(t, "state rebuilt from the edit log vs final state", exportOf(t, rebuild(t, j)), got)
	checkDeadLettered(t, e.readTopic(tp.Input), e.readTopic(tp.DLQ))
	t.Logf("edit log: %d records, %d distinct journal ids (%d redelivered)", j.total, len(j.records), j.total-len(j.records))
}

func TestPipeline_sigkillUnderLoadLosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("sigkill")
	e.ensureTopics(cfg)
	tp := cfg.Kafka.Topics
	rng := newRand(t)
	w := newWorkload(rng, 4, 20, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 1500, 101)
	e.publish(catalog...)

	// Even rounds end with a SIGKILL from the test at a random moment. In
	// odd ones the child kills itself at a local commit: just after it,
	// while the batch is published (the outbox must publish it after the
	// restart), or just before it (the input must be consumed again).
	const kills = 4
	rounds := kills + 1
	per := (len(input) + rounds - 1) / rounds
	for r := range rounds {
		selfKill := r < kills && r%2 == 1
		ccfg, env := cfg, []string(nil)
		if selfKill {
			mode := "after"
			if r%4 == 3 {
				mode = "before"
			}
			env = append(env, childKillAtCommitEnv+"="+mode)
			slow := *cfg
			slow.Kafka.Writer.BatchTimeout = 100 * time.Millisecond // each publish takes that long
			ccfg = &slow
		}
		c := e.startChild(ccfg, fmt.Sprintf("child-%d", r), env...)
		e.waitMember(cfg, c)
		if r == 0 {
			// The MVs exist before the first compaction is handled.
			e.waitCommitted(cfg, tp.Catalog)
		}
		part := input[min(r*per, len(input)):min((r+1)*per, len(input))]
		produced := make(chan error, 1)
		go func() { produced <- e.publishPaced(part, 20, 15*time.Millisecond) }()
		if r == rounds-1 {
			if err := <-produced; err != nil {
				t.Fatal(err)
			}
			e.waitCaughtUp(cfg)
			c.terminate(cfg.ShutdownTimeout + 5*time.Second)
			break
		}
		if selfKill {
			c.waitKilled(waitLong)
			t.Logf("kill %d: the child killed itself at a local commit (%s)", r+1, env[0])
			if err := <-produced; err != nil {
				t.Fatal(err)
			}
			continue
		}
		// A random moment of the round: starting up, catching up, mid-batch,
		// between commit and publish, idle...
		time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
		// kfake never expires a member killed while its JoinGroup is
		// pending: kill only while the group is Stable with this child.
		e.waitMember(cfg, c)
		lag := e.inputLag(cfg)
		c.kill()
		t.Logf("kill %d: SIGKILL with %d input records not committed yet", r+1, lag)
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
	}
	e.checkFinalState(cfg, catalog, input)
}

func TestPipeline_sigtermMidStreamLosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("sigterm")
	e.ensureTopics(cfg)
	tp := cfg.Kafka.Topics
	rng := newRand(t)
	w := newWorkload(rng, 3, 15, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 800, 97)
	e.publish(catalog...)

	c := e.startChild(cfg, "child-0")
	e.waitMember(cfg, c)
	e.waitCommitted(cfg, tp.Catalog)
	cut := len(input) * 2 / 3
	produced := make(chan error, 1)
	go func() { produced <- e.publishPaced(input[:cut], 20, 10*time.Millisecond) }()
	// Mid-stream: once the child works through the stream, at a random moment.
	eventually(t, waitLong, func() error {
		for _, off := range e.committed(cfg.Kafka.GroupID, tp.Input) {
			if off > 0 {
				return nil
			}
		}
		return fmt.Errorf("no input committed yet")
	})
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	lag := e.inputLag(cfg)
	took := c.terminate(cfg.ShutdownTimeout)
	t.Logf("SIGTERM with %d input records not committed: exited 0 after %v", lag, took)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	// A graceful stop finished its batch: the group's offsets are exactly
	// what the store applied, and the acknowledged outbox was deleted.
	st := openStore(t, cfg.State.Dir)
	committed := e.committed(cfg.Kafka.GroupID, tp.Input)
	for p, c := range committed {
		if a := st.AppliedOffset(tp.Input, p); a != c && !(a < 0 && c < 0) {
			t.Errorf("%s/%d: applied %d, committed %d after a graceful stop", tp.Input, p, a, c)
		}
	}
	if msgs, err := st.Outbox(context.Background()); err != nil || len(msgs) > 0 {
		t.Errorf("outbox holds %d messages after a graceful stop (err %v)", len(msgs), err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	c = e.startChild(cfg, "child-1")
	e.waitMember(cfg, c)
	e.publish(input[cut:]...)
	e.waitCaughtUp(cfg)
	c.terminate(cfg.ShutdownTimeout)
	e.checkFinalState(cfg, catalog, input)
}

func TestPipeline_survivesBrokerRestart(t *testing.T) {
	if len(externalBrokers()) > 0 {
		t.Skip("stops and restarts the broker: embedded broker only")
	}
	e := newEnv(t)
	cfg := e.config("broker-restart")
	// The production retry budget: a writer that keeps retrying what cannot
	// succeed (say, commits over the dead generation's coordinator
	// connection) stalls for all of it.
	cfg.Kafka.RebalanceTimeout = 30 * time.Second
	cfg.Retry.MaxElapsedTime = 20 * time.Second
	e.ensureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 3, 15, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 800, 89)

	in := e.startService(cfg, "service")
	st := in.svc.Store()
	e.publish(catalog...)
	e.waitApplied(st, tp.Catalog)
	journal0 := st.JournalID()
	produced := make(chan error, 1)
	go func() { produced <- e.publishPaced(input, 20, 10*time.Millisecond) }()
	e.eventually(waitLong, func() error {
		if st.JournalID() == journal0 {
			return fmt.Errorf("no compaction applied yet")
		}
		return nil
	})
	e.restartBroker(time.Second)
	back := time.Now()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(cfg)
	if took := time.Since(back); took > cfg.Retry.MaxElapsedTime/2 {
		t.Errorf("caught up %v after the broker came back: the service waited out its retries instead of reconnecting", took)
	}
	in.stop()
	e.checkFinalState(cfg, catalog, input)
}
