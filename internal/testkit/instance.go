package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Instance is a service started in this process with Run.
type Instance struct {
	t        *testing.T
	Svc      *service.Service
	Reports  *Reports
	cancel   context.CancelFunc
	done     chan struct{}
	err      error       // Run's result, once done is closed
	stopping atomic.Bool // the test asked Run to return
	closed   bool
}

// exitedEarly reports Run returning before the test stopped it.
func (in *Instance) exitedEarly() error {
	select {
	case <-in.done:
		if !in.stopping.Load() {
			return fmt.Errorf("the service's Run returned on its own: %v", in.err)
		}
	default:
	}
	return nil
}

// State is the live state of the instance's store.
func (in *Instance) State() *mvstate.State { return in.Svc.Store().State() }

// StartService opens a service on cfg and runs it in the background, its
// reports collected in Instance.Reports.
func (e *Env) StartService(cfg *config.Config, name string, opts ...service.Options) *Instance {
	t := e.T
	t.Helper()
	reps := &Reports{}
	opt := service.Options{}
	if len(opts) > 0 {
		opt = opts[0]
	}
	opt.Hooks = append(opt.Hooks, reps)
	svc, err := service.Open(Ctx(t, WaitLong), cfg, e.Logger(name, cfg.Log.Level), opt)
	if err != nil {
		t.Fatalf("open service: %v", err)
	}
	in := e.Run(svc)
	in.Reports = reps
	return in
}

// Run starts Run on an opened service.
func (e *Env) Run(svc *service.Service) *Instance {
	t := e.T
	rctx, cancel := context.WithCancel(context.Background())
	in := &Instance{t: t, Svc: svc, cancel: cancel, done: make(chan struct{})}
	e.mu.Lock()
	e.instances = append(e.instances, in)
	e.mu.Unlock()
	go func() {
		in.err = svc.Run(rctx)
		close(in.done)
	}()
	t.Cleanup(func() {
		if !in.closed {
			in.stopping.Store(true)
			in.cancel()
			select {
			case <-in.done:
			case <-time.After(30 * time.Second):
			}
			in.Svc.Close()
		}
	})
	return in
}

// Stop cancels Run, which must return nil within the shutdown budget, and
// closes the service (its state stays readable in memory).
func (in *Instance) Stop() {
	t := in.t
	t.Helper()
	if err := in.exitedEarly(); err != nil {
		t.Fatal(err)
	}
	in.stopping.Store(true)
	in.cancel()
	select {
	case <-in.done:
		in.closed = true
		in.Svc.Close()
		if in.err != nil {
			t.Fatalf("Run returned %v after a clean stop", in.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

// WaitApplied waits until the state (read anew each time: a standby's
// store is replaced when it rebuilds) applied every record of topic up to
// its current high watermarks.
func (e *Env) WaitApplied(state func() *mvstate.State, topic string) {
	e.T.Helper()
	hwm := e.HWM(topic)
	e.Eventually(WaitLong, func() error {
		st := state()
		for p, hw := range hwm {
			if hw > 0 && st.AppliedOffset(topic, p) < hw {
				return fmt.Errorf("%s/%d: applied up to %d of %d", topic, p, st.AppliedOffset(topic, p), hw)
			}
		}
		return nil
	})
}

// Child process.

// Environment of a child: its configuration (JSON) and the file it writes
// its HTTP address to.
const (
	childConfigEnv = "MVREPAIR_TESTKIT_CHILD_CONFIG"
	childHTTPEnv   = "MVREPAIR_TESTKIT_CHILD_HTTP_FILE"
	// KillAtCommitEnv makes the child SIGKILL itself around a local commit
	// (see RunChild): "before" or "after".
	KillAtCommitEnv = "MVREPAIR_TESTKIT_KILL_AT_COMMIT"
)

// Child is the service running in a child process: the test binary re-run
// with -test.run=^TestServiceChild$, whose test calls RunChild. Every
// package using children declares
//
//	func TestServiceChild(t *testing.T) { testkit.RunChild(t) }
type Child struct {
	t        *testing.T
	Name     string
	cmd      *exec.Cmd
	logPath  string
	httpFile string
	done     chan struct{}
	err      error // from Wait, once done is closed
}

// StartChild runs the service on cfg in a child process whose client id and
// instance name are name (the group shows which child is a member). env are
// extra NAME=value variables.
func (e *Env) StartChild(cfg *config.Config, name string, env ...string) *Child {
	t := e.T
	t.Helper()
	c := *cfg
	c.Kafka.ClientID, c.Kafka.InstanceName = name, name
	raw, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	ch := &Child{t: t, Name: name, logPath: e.LogPath(name), httpFile: filepath.Join(t.TempDir(), "http"), done: make(chan struct{})}
	logf, err := os.Create(ch.logPath)
	if err != nil {
		t.Fatal(err)
	}
	ch.cmd = exec.Command(os.Args[0], "-test.run=^TestServiceChild$", "-test.count=1", "-test.timeout=10m")
	ch.cmd.Env = append(os.Environ(), childConfigEnv+"="+string(raw), childHTTPEnv+"="+ch.httpFile)
	if c.Kafka.SASL.Password.IsSet() { // the JSON holds only "***"
		ch.cmd.Env = append(ch.cmd.Env, config.PasswordEnv+"="+c.Kafka.SASL.Password.Reveal())
	}
	ch.cmd.Env = append(ch.cmd.Env, env...)
	ch.cmd.Stdout, ch.cmd.Stderr = logf, logf
	if err := ch.cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	go func() {
		ch.err = ch.cmd.Wait()
		_ = logf.Close()
		close(ch.done)
	}()
	t.Cleanup(func() {
		select {
		case <-ch.done:
		default:
			_ = ch.cmd.Process.Signal(syscall.SIGCONT)
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
		if b, err := os.ReadFile(ch.logPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("child %s reported a data race (see its log)", name)
		}
	})
	return ch
}

// HTTP returns the child's HTTP address, waiting until it listens.
func (c *Child) HTTP() string {
	c.t.Helper()
	var addr string
	Eventually(c.t, WaitLong, func() error {
		if err := c.Exited(); err != nil {
			c.t.Fatal(err)
		}
		b, err := os.ReadFile(c.httpFile)
		if err != nil || len(b) == 0 {
			return errors.New("the child is not listening yet")
		}
		addr = string(b)
		return nil
	})
	return addr
}

// WaitKilled waits for the child to die of SIGKILL (sent by itself).
func (c *Child) WaitKilled(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s did not kill itself within %v", c.Name, timeout)
	}
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.t.Fatalf("%s exited with %v, want killed by SIGKILL", c.Name, c.err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Child) Kill() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// Resume thaws a child frozen with SIGSTOP (SIGCONT).
func (c *Child) Resume() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("SIGCONT %s: %v", c.Name, err)
	}
}

// Terminate sends SIGTERM and returns how long the child took to exit; it
// fails the test unless the child exits with status 0 within limit.
func (c *Child) Terminate(limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", c.Name, err)
	}
	select {
	case <-c.done:
	case <-time.After(limit):
		c.t.Fatalf("%s did not exit within %v of SIGTERM", c.Name, limit)
	}
	took := time.Since(start)
	if c.err != nil {
		c.t.Fatalf("%s exited with %v after SIGTERM (want status 0)", c.Name, c.err)
	}
	return took
}

// Exited reports whether the child died on its own.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("child %s exited unexpectedly: %v", c.Name, c.err)
	default:
		return nil
	}
}

// WaitMember waits until the child is the group's only member and the group
// is Stable: the child is the active writer, and on kfake it is safe to
// kill (kfake never expires a member killed while its JoinGroup is pending).
func (e *Env) WaitMember(cfg *config.Config, c *Child) {
	e.T.Helper()
	Eventually(e.T, WaitLong, func() error {
		if err := c.Exited(); err != nil {
			return err
		}
		return e.GroupMember(cfg.Kafka.GroupID, c.Name)
	})
}

// RunChild is the body of TestServiceChild: the service with its HTTP
// server until SIGTERM. It skips when the test binary was not started as a
// child.
func RunChild(t *testing.T) {
	raw := os.Getenv(childConfigEnv)
	if raw == "" {
		t.Skip("the service in a child process; started by the tests through testkit.StartChild")
	}
	var cfg config.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("child config: %v", err)
	}
	if pw := os.Getenv(config.PasswordEnv); pw != "" {
		cfg.Kafka.SASL.Password = config.Secret(pw)
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var opt service.Options
	if mode := os.Getenv(KillAtCommitEnv); mode != "" {
		opt.WrapFile = killAroundCommit(t, mode)
	}
	if trigger := os.Getenv(PauseAtCommitEnv); trigger != "" {
		opt.WrapFile = pauseAtCommit(trigger)
	}
	svc, err := service.Open(ctx, &cfg, log, opt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer svc.Close()
	reader := service.MVReader{Svc: svc}
	srv := httpserver.New(cfg.HTTP.Addr, httpserver.Deps{Health: svc, Metrics: svc.Metrics.Handler(), MVs: reader, State: reader})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv(childHTTPEnv); f != "" {
		if err := os.WriteFile(f, []byte(srv.Addr()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runErr := svc.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if runErr != nil {
		t.Fatalf("run: %v", runErr)
	}
	log.Info().Msg("child stopped cleanly")
}

// killAroundCommit wraps the store's log files so that the process SIGKILLs
// itself at a local commit once a few have gone through: mode "before"
// dies inside the write of the entry (the batch never becomes durable);
// "after" dies 20-60ms after the entry is durable, while the batch is being
// published (the outbox must publish it after the restart).
func killAroundCommit(t *testing.T, mode string) func(store.File) store.File {
	if mode != "before" && mode != "after" {
		t.Fatalf("%s=%q: want before or after", KillAtCommitEnv, mode)
	}
	var writes atomic.Int64
	const at = 4 // the catalog and the first batches commit first
	return func(f store.File) store.File {
		return &killFile{File: f, mode: mode, writes: &writes, at: at}
	}
}

type killFile struct {
	store.File
	mode   string
	writes *atomic.Int64
	at     int64
	fired  atomic.Bool
}

func kill() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

func (k *killFile) Write(p []byte) (int, error) {
	n := k.writes.Add(1)
	if n == k.at && k.mode == "before" {
		kill()
		time.Sleep(time.Second) // the signal is asynchronous: never reach the disk
	}
	return k.File.Write(p)
}

func (k *killFile) Sync() error {
	err := k.File.Sync()
	if k.mode == "after" && k.writes.Load() >= k.at && k.fired.CompareAndSwap(false, true) {
		go func() {
			time.Sleep(time.Duration(20+mrand.IntN(40)) * time.Millisecond)
			kill()
		}()
	}
	return err
}

// Reports collects the reports of an in-process service's batches.
type Reports struct {
	mu      sync.Mutex
	reports []*pipeline.Report
}

// OnBatch implements pipeline.BatchHook.
func (r *Reports) OnBatch(rep *pipeline.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
}

// All returns the reports so far.
func (r *Reports) All() []*pipeline.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pipeline.Report(nil), r.reports...)
}

// Outcomes counts the writer's input records by outcome.
func (r *Reports) Outcomes() map[pipeline.Outcome]int {
	out := map[pipeline.Outcome]int{}
	for _, rep := range r.All() {
		for _, e := range rep.Events {
			out[e.Outcome]++
		}
	}
	return out
}

// DeadLetters counts dead letters by reason.
func (r *Reports) DeadLetters() map[string]int {
	out := map[string]int{}
	for _, rep := range r.All() {
		for _, d := range rep.DeadLetters {
			out[string(d.Reason)]++
		}
	}
	return out
}

// Skips counts skips by reason.
func (r *Reports) Skips() map[string]int {
	out := map[string]int{}
	for _, rep := range r.All() {
		for _, e := range rep.Events {
			for _, s := range e.Skips {
				out[string(s.Reason)]++
			}
		}
	}
	return out
}

// Repairs counts the partition entries repaired.
func (r *Reports) Repairs() int {
	n := 0
	for _, rep := range r.All() {
		n += rep.Repaired()
	}
	return n
}

// String summarises the reports (for failure messages).
func (r *Reports) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "outcomes %v, skips %v, dead letters %v", r.Outcomes(), r.Skips(), r.DeadLetters())
	return b.String()
}
