package faulttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/testkit"
)

// scene is a fault test with one service, the writer, in a child process:
// the catalog applied, /readyz polled, input streaming.
type scene struct {
	t       *testing.T
	e       *testkit.Env
	cfg     *config.Config
	w       *workload
	catalog []kafkaio.Message
	c       *testkit.Child
	addr    string
	probe   *probe
	load    *load
	// forbidden are log messages the writer must not log (checked by
	// finish): what would send an operator after a problem that is not
	// there.
	forbidden []string
	// recovered is when the writer was seen committing input again after
	// the last fault (zero: no fault yet): from then on /readyz must stay
	// 200 (checked by finish). Not from the first 200 after the fault: a
	// writer thawed with the broker still believes it is a member, and
	// learns otherwise only from the broker's next answer.
	recovered time.Time
}

// newScene starts the writer on cfg (topics created), applies the catalog,
// starts polling /readyz and the input stream, and returns once the writer
// applies input and /readyz says ready.
func newScene(t *testing.T, e *testkit.Env, cfg *config.Config) *scene {
	t.Helper()
	s := &scene{t: t, e: e, cfg: cfg, w: newWorkload(t), forbidden: []string{"fatal: stopping the service"}}
	tp := cfg.Kafka.Topics
	s.catalog = s.w.catalog(t, tp.Catalog)
	s.c = e.StartChild(cfg, "writer")
	e.WaitMember(cfg, s.c)
	e.Publish(s.catalog...)
	// The MVs exist before the first compaction is decided (two topics,
	// no order between them).
	e.WaitCommitted(cfg, tp.Catalog)
	s.addr = s.c.HTTP()
	s.probe = startProbe(t, "writer", s.addr)
	s.probe.waitFirst(t, time.Time{}, testkit.WaitLong, "200", sample.ready, s.c.Exited)
	s.load = startLoad(t, e, s.w, tp.Input)
	waitApplying(e, cfg, s.c.Exited)
	// A steady stream before the fault, not its first records.
	testkit.Eventually(t, testkit.WaitLong, func() error {
		if n := s.load.Sent(); n < warmup {
			return fmt.Errorf("%d input records sent, waiting for %d", n, warmup)
		}
		return nil
	})
	return s
}

// warmup is how many input records the writer gets before a fault: two
// seconds of the stream.
const warmup = 2 * loadChunk * int(time.Second/loadEvery)

// outage is what one fault measured.
type outage struct {
	injected, clearing, cleared time.Time
	detected, readyAgain        sample
	applying                    time.Time
}

// detect is the time from the fault to the first answer that was not 200.
func (o outage) detect() time.Duration { return o.detected.got.Sub(o.injected) }

// ready is the time from the end of the fault to the first 200 (negative:
// the service was ready before the broker's own start-up check passed).
func (o outage) ready() time.Duration { return o.readyAgain.got.Sub(o.cleared) }

// applying is the time from the end of the fault to the first input
// offset committed after it.
func (o outage) applyingAfter() time.Duration { return o.applying.Sub(o.cleared) }

// outage injects a fault under the input stream, waits for /readyz to
// answer 503 with one of reasons in its body (within detectWithin), holds the fault
// until hold has passed since it began, clears it and waits until /readyz
// answers 200 and the writer commits input again. /readyz must not answer
// 200 from the first 503 until the fault is cleared.
func (s *scene) outage(inject func(), hold time.Duration, clear func(), reasons ...string) outage {
	t := s.t
	t.Helper()
	var o outage
	o.injected = time.Now()
	inject()
	o.detected = s.probe.waitFirst(t, o.injected, detectWithin(s.cfg)+testkit.WaitShort, "answer other than 200", sample.unready, s.c.Exited)
	if d := o.detect(); d > detectWithin(s.cfg) {
		t.Errorf("/readyz turned unready %v after the fault, want within %v", d.Round(time.Millisecond), detectWithin(s.cfg))
	}
	if o.detected.code != 503 || !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(o.detected.body, r) }) {
		t.Errorf("/readyz during the fault: %v; want 503 naming one of %q", o.detected, reasons)
	}
	t.Logf("fault detected: %v", o.detected)
	time.Sleep(time.Until(o.injected.Add(hold))) // the fault lasting: its duration, not a wait for a condition
	o.clearing = time.Now()
	s.probe.mustNotBeReady(t, o.detected.sent, o.clearing, "the fault lasted")
	t.Logf("/readyz answers during the fault: %s", strings.Join(s.probe.reasons(o.injected, o.clearing), "; "))
	clear()
	o.cleared = time.Now()
	o.readyAgain = s.probe.waitFirst(t, o.clearing, testkit.WaitLong, "200", sample.ready, s.c.Exited)
	o.applying = waitApplying(s.e, s.cfg, s.c.Exited)
	s.recovered = o.applying
	t.Logf("/readyz from the end of the fault to applying again: %s", strings.Join(s.probe.reasons(o.clearing, o.applying), "; "))
	return o
}

// finish stops the input, waits until the writer committed all of it and
// says ready, stops it with SIGTERM and checks the outcome: the state of a
// crash-free run, an edit log without gaps that rebuilds it, nothing but
// the malformed input on the DLQ.
func (s *scene) finish() {
	t := s.t
	t.Helper()
	input := s.load.Stop()
	s.e.Eventually(testkit.WaitLong, func() error {
		if err := s.c.Exited(); err != nil {
			t.Fatal(err)
		}
		return s.e.CaughtUp(s.cfg)
	})
	s.probe.waitFirst(t, time.Now(), testkit.WaitShort, "200 once caught up", sample.ready, s.c.Exited)
	s.probe.Stop()
	if !s.recovered.IsZero() {
		// Applying again means recovered: no relapse into 503 (say, a
		// moving partition leader taken for a refusal).
		for _, smp := range s.probe.all() {
			if smp.sent.After(s.recovered) && smp.unready() {
				t.Errorf("the writer applied input again after the fault, then /readyz said %v", smp)
				break
			}
		}
	}
	s.c.Terminate(s.cfg.ShutdownTimeout + 10*time.Second)
	for _, f := range s.forbidden {
		if ls := logLines(t, s.e.LogPath(s.c.Name), f); len(ls) > 0 {
			t.Errorf("the writer logged %q %d times (first at %s: %v)", f, len(ls), ls[0].at.Format("15:04:05.000"), ls[0].fields["error"])
		}
	}
	t.Logf("%d input records (%d malformed)", len(input), len(input)/badEvery)
	s.e.CheckFinalState(s.cfg, s.catalog, input)
	checkDLQ(t, s.e, s.cfg)
}
