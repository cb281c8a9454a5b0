package faulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/testkit"
)

// brokerDown is how long a killed broker stays down before it is
// restarted (a real broker then takes seconds more to start).
const brokerDown = 5 * time.Second

func TestBrokerKill9AndRestart_readyzTurns503AndTheWriterResumesWithNothingLost(t *testing.T) {
	e := testkit.NewEnv(t)
	br := e.Broker(false)
	cfg := faultConfig(e, "broker-kill")
	s := newScene(t, e, cfg)
	// A broker that is away refuses nothing: the writer waits for it.
	s.forbidden = append(s.forbidden, "the broker refuses the outbox")
	o := s.outage(br.Kill, brokerDown, br.Restart, "broker unreachable", "consumer group not joined")
	s.finish()
	report(t, e, cfg, "broker-kill9", "detect_ms", o.detect(), "down_ms", o.clearing.Sub(o.injected),
		"broker_start_ms", o.cleared.Sub(o.clearing), "ready_ms", o.ready(), "applying_ms", o.applyingAfter())
}

func TestBrokerFrozenPastTheSessionTimeout_readyzTurns503AndTheWriterResumesWithNothingLost(t *testing.T) {
	e := testkit.NewEnv(t)
	br := e.Broker(true)
	cfg := faultConfig(e, "broker-pause")
	s := newScene(t, e, cfg)
	// A broker that is away refuses nothing: the writer waits for it.
	s.forbidden = append(s.forbidden, "the broker refuses the outbox")
	// Long past the session timeout: the group's members have all expired
	// when the broker thaws.
	hold := max(10*time.Second, 3*cfg.Kafka.SessionTimeout)
	o := s.outage(br.Pause, hold, br.Resume, "broker unreachable", "consumer group not joined")
	s.finish()
	report(t, e, cfg, "broker-pause", "detect_ms", o.detect(), "paused_ms", o.clearing.Sub(o.injected),
		"ready_ms", o.ready(), "applying_ms", o.applyingAfter())
}

func TestStateDiskFull_readyzTurns503NothingIsDeadLetteredAndTheWriterResumesWhenFreed(t *testing.T) {
	mnt := testkit.MountTmpfs(t, "8m")
	e := testkit.NewEnv(t)
	cfg := faultConfig(e, "disk-full")
	cfg.State.Dir = filepath.Join(mnt, "state")
	s := newScene(t, e, cfg)
	var filler string
	// Full for longer than the stall timeout and the retry budget together:
	// a writer that gave up on the batch would dead-letter valid events.
	hold := cfg.Health.StallTimeout + cfg.Retry.MaxElapsedTime + 2*time.Second
	o := s.outage(func() { filler = testkit.FillDisk(t, mnt) }, hold, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}, "no space left on device")
	// The stall is logged when it starts and when it ends, not every
	// second it lasts.
	back := waitLogLine(t, e.LogPath(s.c.Name), "no longer stalled", o.clearing, s.c.Exited)
	stalls := 0
	for _, l := range logLines(t, e.LogPath(s.c.Name), "stalled: not ready until it makes progress again") {
		if l.at.After(o.injected) && l.at.Before(back.at) {
			stalls++
		}
	}
	if stalls != 1 {
		t.Errorf("the writer logged the stall %d times during one full disk, want once (and once that it ended)", stalls)
	}
	s.finish()
	report(t, e, cfg, "disk-full", "detect_ms", o.detect(), "full_ms", o.clearing.Sub(o.injected),
		"ready_ms", o.ready(), "applying_ms", o.applyingAfter())
}

func TestWriterFrozenPastItsSession_standbyTakesOverAndTheThawedWriterRebuildsItsForkedStoreAndFollows(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := faultConfig(e, "writer-pause")
	tp := cfg.Kafka.Topics
	w := newWorkload(t)
	catalog := w.catalog(t, tp.Catalog)
	// a freezes itself right after a local commit of a batch, before it
	// publishes it, once the trigger file exists.
	trigger := filepath.Join(t.TempDir(), "freeze-now")
	cfgA, cfgB := withStateDir(t, cfg, "a"), withStateDir(t, cfg, "b")
	a := e.StartChild(cfgA, "a", testkit.PauseAtCommitEnv+"="+trigger)
	e.WaitActive(cfg, "a", 1, a)
	b := e.StartChild(cfgB, "b")
	e.WaitActive(cfg, "a", 2, a, b) // b is a standby
	both := func() error {
		if err := a.Exited(); err != nil {
			return err
		}
		return b.Exited()
	}
	e.Publish(catalog...)
	e.WaitCommitted(cfg, tp.Catalog)
	addrA, addrB := a.HTTP(), b.HTTP()
	pa, pb := startProbe(t, "a", addrA), startProbe(t, "b", addrB)
	pa.waitFirst(t, time.Time{}, testkit.WaitLong, "200", sample.ready, both)
	pb.waitFirst(t, time.Time{}, testkit.WaitLong, "200", sample.ready, both)
	ld := startLoad(t, e, w, tp.Input)
	waitApplying(e, cfg, both)
	e.WaitActive(cfg, "a", 2, a, b) // kfake expires only the members of a Stable group

	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var frozen time.Time
	testkit.Eventually(t, testkit.WaitShort, func() error {
		if err := both(); err != nil {
			t.Fatal(err)
		}
		stopped, err := a.Stopped()
		if err == nil && !stopped {
			err = fmt.Errorf("a is not frozen yet")
		}
		frozen = time.Now()
		return err
	})
	// A frozen process accepts connections and answers nothing.
	det := pa.waitFirst(t, frozen, detectWithin(cfg)+testkit.WaitShort, "answer other than 200", sample.unready, b.Exited)
	// The group expires a's session and b takes the input.
	e.WaitActive(cfg, "b", 1, b)
	takeover := time.Now()
	// b decides a's unpublished batch again and publishes it, under the
	// journal ids a holds.
	waitApplying(e, cfg, b.Exited)
	resumed := time.Now()
	a.Resume()
	frozenFor := resumed.Sub(frozen)

	// a rejoins by itself as a standby, finds its store forked past the
	// edit log, rebuilds it from Kafka and follows.
	e.WaitActive(cfg, "b", 2, a, b)
	rejoined := time.Now()
	restored := waitLogLine(t, e.LogPath("a"), "state restored from Kafka", resumed, both)
	var restoring logLine
	for _, l := range logLines(t, e.LogPath("a"), "restoring the state from Kafka into a new store") {
		if !l.at.Before(resumed.Truncate(time.Millisecond)) && !l.at.After(restored.at) {
			restoring = l
		}
	}
	if restoring.at.IsZero() {
		t.Fatal("a's log has no start of the restore before its end")
	}
	if why, _ := restoring.fields["why"].(string); why != "forked" {
		t.Errorf("a restored its store because %q, want forked", why)
	}
	// Log times are cut to the millisecond: a request sent a millisecond
	// after the start line was evaluated while restoring.
	pa.mustNotBeReady(t, restoring.at.Add(time.Millisecond), restored.at, "it rebuilt its forked store")
	back := pa.waitFirst(t, restored.at, testkit.WaitLong, "200 after the rebuild", sample.ready, both)
	testkit.Eventually(t, testkit.WaitShort, func() error {
		n, ok, err := metric(addrA, "mvrepair_forks_total")
		if err == nil && (!ok || n < 1) {
			err = fmt.Errorf("a's mvrepair_forks_total = %v (present %v), want 1", n, ok)
		}
		return err
	})
	var zombie []sample
	for _, s := range pa.all() {
		if s.ready() && s.sent.After(resumed) && s.got.Before(restoring.at) {
			zombie = append(zombie, s)
		}
	}

	input := ld.Stop()
	e.Eventually(testkit.WaitLong, func() error {
		if err := both(); err != nil {
			t.Fatal(err)
		}
		return e.CaughtUp(cfg)
	})
	// a follows b up to the end of the edit log.
	testkit.Eventually(t, testkit.WaitLong, func() error {
		ja, _, err := metric(addrA, "mvrepair_journal_id")
		if err != nil {
			return err
		}
		jb, _, err := metric(addrB, "mvrepair_journal_id")
		if err == nil && ja != jb {
			err = fmt.Errorf("a at journal id %v, b at %v", ja, jb)
		}
		return err
	})
	// b could work all along: it never said otherwise.
	for _, s := range pb.all() {
		if s.unready() {
			t.Errorf("b /readyz: %v (b was a working standby, then the writer)", s)
			break
		}
	}
	pa.Stop()
	pb.Stop()
	a.Terminate(cfg.ShutdownTimeout + 10*time.Second)
	b.Terminate(cfg.ShutdownTimeout + 10*time.Second)
	superseded := checkFinalStates(t, e, cfg, []string{cfgB.State.Dir, cfgA.State.Dir}, catalog, input)
	checkDLQ(t, e, cfg)
	t.Logf("a /readyz while frozen: %s", strings.Join(pa.reasons(frozen, resumed), "; "))
	t.Logf("a /readyz after the thaw, before its rebuild: 200×%d (it believed it still was the writer); until 200 again: %s",
		len(zombie), strings.Join(pa.reasons(resumed, back.got), "; "))
	report(t, e, cfg, "writer-pause", "detect_ms", det.got.Sub(frozen), "takeover_ms", takeover.Sub(frozen),
		"frozen_ms", frozenFor, "rejoin_ms", rejoined.Sub(resumed), "restored_ms", restored.at.Sub(resumed),
		"restore_ms", restored.at.Sub(restoring.at), "ready_ms", back.got.Sub(resumed), "superseded_records", superseded,
		"input_records", len(input))
}

func TestCorruptStoreFile_isFoundOnRestartAndRestoredFromKafkaBeforeReadyWithNothingLost(t *testing.T) {
	for _, damage := range []string{testkit.DamageFlip, testkit.DamageValue, testkit.DamageTruncated} {
		t.Run(strings.ReplaceAll(damage, " ", "_"), func(t *testing.T) {
			e := testkit.NewEnv(t)
			cfg := e.Config("corrupt")
			cfg.State.SnapshotBytes = 32 << 10 // snapshots and several log files
			e.EnsureTopics(cfg)
			tp := cfg.Kafka.Topics
			s := newScene(t, e, cfg)
			testkit.Eventually(t, testkit.WaitLong, func() error {
				if n := s.load.Sent(); n < 400 {
					return fmt.Errorf("%d input records sent", n)
				}
				return nil
			})
			input := s.load.Stop()
			e.WaitCaughtUp(cfg)
			s.probe.Stop()
			s.c.Terminate(cfg.ShutdownTimeout + 10*time.Second)
			damaged := testkit.DamageStore(t, cfg.State.Dir, damage)
			t.Logf("damaged %s", damaged)

			// The input goes on while the service is down and restores.
			ld := startLoad(t, e, s.w, tp.Input)
			started := time.Now()
			c := e.StartChild(cfg, "writer-2")
			p := startProbe(t, "writer-2", c.HTTP())
			found := waitLogLine(t, e.LogPath("writer-2"), "THE LOCAL STORE IS CORRUPT", started, c.Exited)
			restored := waitLogLine(t, e.LogPath("writer-2"), "state restored from Kafka", started, c.Exited)
			back := p.waitFirst(t, started, testkit.WaitLong, "200", sample.ready, c.Exited)
			p.mustNotBeReady(t, started, restored.at, "restoring the state from Kafka")
			first := p.all()[0]
			if first.code != 503 {
				t.Errorf("first /readyz answer after the start: %v, want 503", first)
			}
			applying := waitApplying(e, cfg, c.Exited)
			input = append(input, ld.Stop()...)
			e.Eventually(testkit.WaitLong, func() error {
				if err := c.Exited(); err != nil {
					t.Fatal(err)
				}
				return e.CaughtUp(cfg)
			})
			p.waitFirst(t, time.Now(), testkit.WaitShort, "200 once caught up", sample.ready, c.Exited)
			t.Logf("/readyz after the start: %s; first answer %v", p.counts(started), first)
			p.Stop()
			c.Terminate(cfg.ShutdownTimeout + 10*time.Second)
			if aside, _ := filepath.Glob(filepath.Join(cfg.State.Dir, "store.old-*")); len(aside) == 0 {
				t.Error("the damaged store was not kept aside")
			}
			e.CheckFinalState(cfg, s.catalog, input)
			checkDLQ(t, e, cfg)
			took, _ := restored.fields["took"].(float64)
			report(t, e, cfg, "corrupt-store", "damage", strings.ReplaceAll(damage, " ", "_"),
				"detect_ms", found.at.Sub(started), "first_answer_ms", first.got.Sub(started),
				"restore_ms", time.Duration(took*float64(time.Millisecond)), "ready_ms", back.got.Sub(started),
				"applying_ms", applying.Sub(started))
		})
	}
}
