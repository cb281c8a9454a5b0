package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mvrepair/mvrepair/internal/embedded"
)

// BrokerControlEnv names the program that controls the broker of
// KAFKA_BROKERS (scripts/kafka-broker.sh, run with the subcommands kill9,
// restart, pause and resume; MVREPAIR_KAFKA_DIR and the rest of its
// environment are passed on). Tests that crash, restart or freeze the
// broker run against an external broker only when it is set, and are
// skipped otherwise. Set it only for a package run alone against a broker
// of its own (the fault suite in CI): other packages' tests on the same
// broker would see the faults.
const BrokerControlEnv = "KAFKA_BROKER_CONTROL"

// brokerCommandTimeout bounds one control command: a restart of a real
// broker after a kill -9 waits for the controller to expire the dead
// broker's registration (broker.session.timeout.ms, 9s by default) before
// it serves again.
const brokerCommandTimeout = 3 * time.Minute

// Broker crashes, restarts, freezes and thaws the test's broker: the
// embedded one in this process, or the external one through
// BrokerControlEnv. Get it from Env.Broker.
type Broker struct {
	e      *Env
	script string // "" for the embedded broker

	mu     sync.Mutex
	down   bool // killed and not restarted yet
	paused bool
}

// Broker returns the control of the test's broker, or skips the test with
// the reason when the broker cannot be controlled: an external broker
// without BrokerControlEnv, or, when pause is set, the embedded broker
// (it runs in this process: it cannot be frozen without freezing the
// test). At the end of the test a paused broker is resumed and a killed one
// restarted, so that the next test finds it serving.
func (e *Env) Broker(pause bool) *Broker {
	t := e.T
	t.Helper()
	b := &Broker{e: e}
	switch {
	case e.External:
		b.script = os.Getenv(BrokerControlEnv)
		if b.script == "" {
			t.Skipf("needs control of the broker process: set %s=path/to/scripts/kafka-broker.sh (and MVREPAIR_KAFKA_DIR if the broker is not in its default dir) to run it against KAFKA_BROKERS", BrokerControlEnv)
		}
		if _, err := os.Stat(b.script); err != nil {
			t.Fatalf("%s: %v", BrokerControlEnv, err)
		}
	case pause:
		t.Skip("freezes the broker process (SIGSTOP): a real broker only (KAFKA_BROKERS and " + BrokerControlEnv + "); the embedded broker runs inside the test process")
	}
	t.Cleanup(func() {
		b.mu.Lock()
		paused, down := b.paused, b.down
		b.mu.Unlock()
		if paused {
			b.Resume()
		}
		if down {
			b.Restart()
		}
	})
	return b
}

// run runs the control script with cmd and returns its output.
func (b *Broker) run(cmd string) string {
	t := b.e.T
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerCommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", b.script, cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", b.script, cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Kill crashes the broker: SIGKILL of the external broker's process (its
// data dir is kept), a Close of the embedded one (whose data dir keeps
// what it holds). It returns once the broker is gone.
func (b *Broker) Kill() {
	b.e.T.Helper()
	if b.script == "" {
		b.e.broker.Close()
	} else {
		b.e.T.Logf("broker: %s", b.run("kill9"))
	}
	b.mu.Lock()
	b.down = true
	b.mu.Unlock()
}

// Restart starts the killed broker again on its data and address, and
// returns once it serves requests.
func (b *Broker) Restart() {
	t := b.e.T
	t.Helper()
	if b.script == "" {
		e := b.e
		Eventually(t, WaitShort, func() error {
			nb, err := embedded.Start(context.Background(), embedded.Config{Addr: e.brokerAddr, DataDir: e.brokerDir})
			if err != nil {
				return fmt.Errorf("restart the embedded broker: %w", err)
			}
			e.broker = nb
			return nil
		})
	} else {
		t.Logf("broker: %s", b.run("restart"))
	}
	b.mu.Lock()
	b.down = false
	b.mu.Unlock()
}

// Pause freezes the external broker (SIGSTOP): its connections stay open
// and nothing is answered.
func (b *Broker) Pause() {
	b.e.T.Helper()
	b.e.T.Logf("broker: %s", b.run("pause"))
	b.mu.Lock()
	b.paused = true
	b.mu.Unlock()
}

// Resume thaws the paused broker (SIGCONT).
func (b *Broker) Resume() {
	b.e.T.Helper()
	b.e.T.Logf("broker: %s", b.run("resume"))
	b.mu.Lock()
	b.paused = false
	b.mu.Unlock()
}
