package itest

import (
	"fmt"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/testkit"
)

// TestServiceChild is the service in a child process for the crash tests;
// it is skipped unless a crash test started it.
func TestServiceChild(t *testing.T) { testkit.RunChild(t) }

func TestPipeline_sigkillUnderLoadLosesNothing(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("sigkill")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	rng := newRand(t)
	w := newWorkload(rng, 4, 20, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 1500, 101)
	e.Publish(catalog...)

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
			env = append(env, testkit.KillAtCommitEnv+"="+mode)
			slow := *cfg
			slow.Kafka.Writer.BatchTimeout = 100 * time.Millisecond // each publish takes that long
			ccfg = &slow
		}
		c := e.StartChild(ccfg, fmt.Sprintf("child-%d", r), env...)
		e.WaitMember(cfg, c)
		if r == 0 {
			// The MVs exist before the first compaction is handled.
			e.WaitCommitted(cfg, tp.Catalog)
		}
		part := input[min(r*per, len(input)):min((r+1)*per, len(input))]
		produced := make(chan error, 1)
		go func() { produced <- e.PublishPaced(part, 20, 15*time.Millisecond) }()
		if r == rounds-1 {
			if err := <-produced; err != nil {
				t.Fatal(err)
			}
			e.WaitCaughtUp(cfg)
			c.Terminate(cfg.ShutdownTimeout + 5*time.Second)
			break
		}
		if selfKill {
			c.WaitKilled(testkit.WaitLong)
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
		e.WaitMember(cfg, c)
		lag := e.InputLag(cfg)
		c.Kill()
		t.Logf("kill %d: SIGKILL with %d input records not committed yet", r+1, lag)
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
	}
	e.CheckFinalState(cfg, catalog, input)
}

func TestPipeline_sigtermMidStreamLosesNothing(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("sigterm")
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	rng := newRand(t)
	w := newWorkload(rng, 3, 15, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 800, 97)
	e.Publish(catalog...)

	c := e.StartChild(cfg, "child-0")
	e.WaitMember(cfg, c)
	e.WaitCommitted(cfg, tp.Catalog)
	cut := len(input) * 2 / 3
	produced := make(chan error, 1)
	go func() { produced <- e.PublishPaced(input[:cut], 20, 10*time.Millisecond) }()
	// Mid-stream: once the child works through the stream, at a random moment.
	testkit.Eventually(t, testkit.WaitLong, func() error {
		for _, off := range e.Committed(cfg.Kafka.GroupID, tp.Input) {
			if off > 0 {
				return nil
			}
		}
		return fmt.Errorf("no input committed yet")
	})
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	lag := e.InputLag(cfg)
	took := c.Terminate(cfg.ShutdownTimeout)
	t.Logf("SIGTERM with %d input records not committed: exited 0 after %v", lag, took)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	// A graceful stop finished its batch: the group's offsets are exactly
	// what the store applied, and the acknowledged outbox was deleted.
	ds := testkit.OpenDurable(t, cfg.State.Dir)
	committed := e.Committed(cfg.Kafka.GroupID, tp.Input)
	for p, c := range committed {
		if a := ds.State().AppliedOffset(tp.Input, p); a != c && !(a < 0 && c < 0) {
			t.Errorf("%s/%d: applied %d, committed %d after a graceful stop", tp.Input, p, a, c)
		}
	}
	if msgs := ds.Outbox(); len(msgs) > 0 {
		t.Errorf("outbox holds %d messages after a graceful stop", len(msgs))
	}

	c = e.StartChild(cfg, "child-1")
	e.WaitMember(cfg, c)
	e.Publish(input[cut:]...)
	e.WaitCaughtUp(cfg)
	c.Terminate(cfg.ShutdownTimeout)
	e.CheckFinalState(cfg, catalog, input)
}

func TestPipeline_survivesBrokerRestart(t *testing.T) {
	if len(testkit.ExternalBrokers()) > 0 {
		t.Skip("stops and restarts the broker: embedded broker only")
	}
	e := testkit.NewEnv(t)
	cfg := e.Config("broker-restart")
	// The production retry budget: a writer that keeps retrying what cannot
	// succeed (say, commits over the dead generation's coordinator
	// connection) stalls for all of it.
	cfg.Kafka.RebalanceTimeout = 30 * time.Second
	cfg.Retry.MaxElapsedTime = 20 * time.Second
	e.EnsureTopics(cfg)
	tp := cfg.Kafka.Topics
	w := newWorkload(newRand(t), 3, 15, 3)
	catalog := w.catalog(t, tp.Catalog)
	input := w.stream(t, tp.Input, 800, 89)

	in := e.StartService(cfg, "service")
	st := in.State()
	e.Publish(catalog...)
	e.WaitApplied(in.State, tp.Catalog)
	journal0 := st.JournalID()
	produced := make(chan error, 1)
	go func() { produced <- e.PublishPaced(input, 20, 10*time.Millisecond) }()
	e.Eventually(testkit.WaitLong, func() error {
		if st.JournalID() == journal0 {
			return fmt.Errorf("no compaction applied yet")
		}
		return nil
	})
	e.RestartBroker(time.Second)
	back := time.Now()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.WaitCaughtUp(cfg)
	if took := time.Since(back); took > cfg.Retry.MaxElapsedTime/2 {
		t.Errorf("caught up %v after the broker came back: the service waited out its retries instead of reconnecting", took)
	}
	in.Stop()
	e.CheckFinalState(cfg, catalog, input)
}
