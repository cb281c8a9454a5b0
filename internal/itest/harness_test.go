package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Deadlines. A correct run meets each condition in well under a second or
// two; the margins are for -race on a loaded 2-core machine and for a real
// broker (whose minimum session timeout is 6s).
const (
	waitLong  = 60 * time.Second
	waitShort = 20 * time.Second
)

// eventually polls cond every 20ms until it returns nil, and fails the test
// with cond's last error once timeout has passed.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCtx is a context bounded by d and cancelled when the test ends.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// externalBrokers returns KAFKA_BROKERS split on commas (nil when unset).
func externalBrokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// env is one test's broker and clients.
type env struct {
	t        *testing.T
	id       string
	brokers  []string
	external bool

	// The embedded broker (nil when external), its address and data dir so
	// that it can be restarted in place.
	broker     *embedded.Broker
	brokerAddr string
	brokerDir  string

	admin     *kafkaio.Admin
	producer  *kafkaio.Producer
	logDir    string
	instances []*instance // in-process services started by the test
}

// newEnv returns the brokers of one test: a fresh embedded broker with a data
// dir, or the KAFKA_BROKERS cluster.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, id: randomID(), logDir: t.TempDir()}
	t.Cleanup(e.dumpLogsOnFailure)
	if ext := externalBrokers(); len(ext) > 0 {
		e.brokers, e.external = ext, true
	} else {
		e.brokerDir = t.TempDir()
		ctx := testCtx(t, 10*time.Second)
		b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: e.brokerDir})
		if err != nil {
			t.Fatalf("start embedded broker: %v", err)
		}
		e.broker, e.brokerAddr = b, b.Addr()
		e.brokers = []string{b.Addr()}
		t.Cleanup(func() { e.broker.Close() })
	}
	var err error
	if e.admin, err = kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: e.brokers, ClientID: "itest-admin"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Close() })
	return e
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// restartBroker closes the embedded broker, keeps it down for downtime and
// starts it again on the same address and data dir.
func (e *env) restartBroker(downtime time.Duration) {
	t := e.t
	t.Helper()
	if e.broker == nil {
		t.Fatal("restartBroker needs the embedded broker")
	}
	e.broker.Close()
	time.Sleep(downtime) // the outage itself, not a wait for a condition
	eventually(t, waitShort, func() error {
		b, err := embedded.Start(context.Background(), embedded.Config{Addr: e.brokerAddr, DataDir: e.brokerDir})
		if err != nil {
			return err
		}
		e.broker = b
		return nil
	})
}

// config returns a service configuration of its own topics and group on the
// test's brokers, tuned for fast tests.
func (e *env) config(name string) *config.Config {
	t := e.t
	t.Helper()
	c := config.Default()
	id := name + "-" + e.id
	c.Log.Level = logLevel()
	c.State.Dir = filepath.Join(t.TempDir(), "state")
	c.Kafka.Brokers = strings.Join(e.brokers, ",")
	c.Kafka.ClientID = "itest"
	c.Kafka.GroupID = "itest-" + id
	c.Kafka.InstanceName = "itest-" + id
	c.Kafka.Partitions = 3
	c.Kafka.ReplicationFactor = 1
	c.Kafka.Topics = config.Topics{
		Input:   "itest-" + id + "-input",
		Catalog: "itest-" + id + "-catalog",
		EditLog: "itest-" + id + "-edit-log",
		DLQ:     "itest-" + id + "-dlq",
	}
	if e.external {
		c.Kafka.SessionTimeout = e.minSessionTimeout()
		c.Kafka.HeartbeatInterval = c.Kafka.SessionTimeout / 10
		c.Kafka.RebalanceTimeout = 10 * time.Second
	} else {
		// The embedded broker accepts session timeouts from 1s.
		c.Kafka.SessionTimeout = 2 * time.Second
		c.Kafka.HeartbeatInterval = 200 * time.Millisecond
		c.Kafka.RebalanceTimeout = 5 * time.Second
	}
	c.Kafka.Reader.MaxWait = 50 * time.Millisecond
	c.Batch.MaxEvents = 500
	c.Batch.MaxWait = 5 * time.Millisecond
	c.Retry = config.Retry{InitialInterval: 20 * time.Millisecond, MaxInterval: 500 * time.Millisecond,
		Multiplier: 2, MaxElapsedTime: 4 * time.Second}
	c.HTTP.Addr = "127.0.0.1:0"
	c.ShutdownTimeout = 10 * time.Second
	c.Metrics.LagInterval = time.Second
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return &c
}

// sessionProbe remembers, for the package's run, the shortest session
// timeout the external cluster accepts.
var sessionProbe struct {
	once sync.Once
	d    time.Duration
}

// minSessionTimeout returns 2s when the external cluster accepts it (the CI
// broker sets group.min.session.timeout.ms=1000) and Apache Kafka's default
// minimum of 6s otherwise: a killed member holds its partitions for that long.
func (e *env) minSessionTimeout() time.Duration {
	t := e.t
	t.Helper()
	sessionProbe.once.Do(func() {
		sessionProbe.d = 6 * time.Second
		topic, group := "itest-probe-"+e.id, "itest-probe-"+e.id
		ctx := testCtx(t, waitLong)
		if err := e.admin.EnsureTopics(ctx, []kafkaio.TopicSpec{{Name: topic, Partitions: 1, ReplicationFactor: 1}}); err != nil {
			t.Fatalf("session timeout probe: %v", err)
		}
		g, err := kafkaio.NewGroup(kafkaio.GroupConfig{Brokers: e.brokers, GroupID: group, Topics: []string{topic},
			ClientID: "itest-probe", SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
			RebalanceTimeout: 2 * time.Second, JoinGroupBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		for ctx.Err() == nil {
			_, err := g.Next(ctx)
			if err == nil {
				sessionProbe.d = 2 * time.Second
				break
			}
			if strings.Contains(err.Error(), "[26]") { // Invalid Session Timeout
				break
			}
		}
		t.Logf("external cluster: session timeout %v", sessionProbe.d)
	})
	return sessionProbe.d
}

func logLevel() string {
	if l := os.Getenv("ITEST_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// ensureTopics creates the configuration's topics (as the service would) and
// the producer the test publishes with.
func (e *env) ensureTopics(cfg *config.Config) {
	t := e.t
	t.Helper()
	ctx := testCtx(t, waitLong)
	if err := e.admin.EnsureTopics(ctx, service.TopicSpecs(cfg)); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	if e.producer == nil {
		p, err := kafkaio.NewProducer(kafkaio.ProducerConfig{Brokers: e.brokers, ClientID: "itest-producer"})
		if err != nil {
			t.Fatal(err)
		}
		e.producer = p
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Close(ctx)
		})
	}
}

// publish writes msgs in order, retrying the whole set while the broker is
// not ready (a retry can duplicate records, which the tests tolerate).
func (e *env) publish(msgs ...kafkaio.Message) {
	e.t.Helper()
	if err := e.tryPublish(msgs...); err != nil {
		e.t.Fatalf("publish %d messages: %v", len(msgs), err)
	}
}

// tryPublish is publish for goroutines: it reports instead of failing.
func (e *env) tryPublish(msgs ...kafkaio.Message) error {
	deadline := time.Now().Add(waitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := e.producer.Publish(ctx, msgs...)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishPaced publishes msgs in chunks with a pause between them: a stream
// arriving while the service works.
func (e *env) publishPaced(msgs []kafkaio.Message, chunk int, pause time.Duration) error {
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := e.tryPublish(msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
		time.Sleep(pause)
	}
	return nil
}

// hwm returns the high watermark of every partition of topic.
func (e *env) hwm(topic string) map[int]int64 {
	t := e.t
	t.Helper()
	var out map[int]int64
	eventually(t, waitShort, func() error {
		offs, err := e.admin.ListOffsets(context.Background(), topic)
		if err != nil {
			return err
		}
		out = map[int]int64{}
		for p, o := range offs {
			out[p] = o.Last
		}
		return nil
	})
	return out
}

// committed returns the group's committed offsets of topic (-1: none).
func (e *env) committed(group, topic string) map[int]int64 {
	t := e.t
	t.Helper()
	var out map[int]int64
	eventually(t, waitShort, func() error {
		c, err := e.admin.CommittedOffsets(context.Background(), group, []string{topic})
		if err != nil {
			return err
		}
		out = c[topic]
		return nil
	})
	return out
}

// caughtUp reports nil once the group committed every record of the input
// and catalog topics. The writer commits input offsets only after the batch
// is durable locally and its edit-log and DLQ records are acknowledged, so
// this also means every journal record is on the edit-log topic.
func (e *env) caughtUp(cfg *config.Config) error {
	ctx := context.Background()
	topics := []string{cfg.Kafka.Topics.Input, cfg.Kafka.Topics.Catalog}
	committed, err := e.admin.CommittedOffsets(ctx, cfg.Kafka.GroupID, topics)
	if err != nil {
		return err
	}
	for _, topic := range topics {
		offs, err := e.admin.ListOffsets(ctx, topic)
		if err != nil {
			return err
		}
		for p, o := range offs {
			if o.Last > 0 && committed[topic][p] != o.Last {
				return fmt.Errorf("%s/%d: committed %d, high watermark %d", topic, p, committed[topic][p], o.Last)
			}
		}
	}
	return nil
}

func (e *env) waitCaughtUp(cfg *config.Config) {
	e.t.Helper()
	e.eventually(waitLong, func() error { return e.caughtUp(cfg) })
}

// groupMember returns nil once group is Stable with clientID as its only
// member.
func (e *env) groupMember(group, clientID string) error {
	info, err := e.admin.DescribeGroup(context.Background(), group)
	if err != nil {
		return err
	}
	if info.State != "Stable" || len(info.Members) != 1 || info.Members[0].ClientID != clientID {
		ids := make([]string, len(info.Members))
		for i, m := range info.Members {
			ids[i] = m.ClientID
		}
		return fmt.Errorf("group %s is %s with members %v, want Stable with only %s", group, info.State, ids, clientID)
	}
	return nil
}

// waitGroupEmpty waits until the group has no member (so that its offsets
// can be rewritten).
func (e *env) waitGroupEmpty(group string) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error {
		info, err := e.admin.DescribeGroup(context.Background(), group)
		if err != nil {
			return err
		}
		if info.State != "Empty" && info.State != "Dead" {
			return fmt.Errorf("group %s is %s with %d members", group, info.State, len(info.Members))
		}
		return nil
	})
}

// readTopic reads every record of topic up to the current high watermarks,
// in offset order per partition (partitions in ascending order).
func (e *env) readTopic(topic string) []kafkaio.Message {
	t := e.t
	t.Helper()
	hwm := e.hwm(topic)
	pending := 0
	for _, hw := range hwm {
		if hw > 0 {
			pending++
		}
	}
	byPart := map[int][]kafkaio.Message{}
	if pending > 0 {
		ctx := testCtx(t, waitLong)
		tail, err := kafkaio.NewTopicTail(ctx, kafkaio.FetcherConfig{Brokers: e.brokers, ClientID: "itest-reader",
			MaxWait: 50 * time.Millisecond}, topic, nil)
		if err != nil {
			t.Fatalf("tail %s: %v", topic, err)
		}
		defer tail.Close()
		for pending > 0 {
			m, err := tail.Fetch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("read %s: %v", topic, err)
				}
				continue // a transient read error is returned once; the partition keeps being read
			}
			if m.Offset >= hwm[m.Partition] {
				continue
			}
			byPart[m.Partition] = append(byPart[m.Partition], m)
			if m.Offset+1 == hwm[m.Partition] {
				pending--
			}
		}
	}
	var out []kafkaio.Message
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		out = append(out, byPart[p]...)
	}
	return out
}

// logger returns a logger writing to a file of the test's log dir; the files
// are printed when the test fails.
func (e *env) logger(name, level string) zerolog.Logger {
	t := e.t
	t.Helper()
	f, err := os.Create(filepath.Join(e.logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	log, err := logging.New(f, level, logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// dumpLogsOnFailure prints the tail of every log file of a failed test.
func (e *env) dumpLogsOnFailure() {
	if !e.t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(e.logDir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 150 {
			lines = lines[len(lines)-80:]
		}
		e.t.Logf("--- last %d lines of %s ---\n%s", len(lines), filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// instance is an in-process service started with Run.
type instance struct {
	t        *testing.T
	svc      *service.Service
	cancel   context.CancelFunc
	done     chan struct{}
	err      error       // Run's result, once done is closed
	stopping atomic.Bool // the test asked Run to return
	closed   bool
}

// exitedEarly reports Run returning before the test stopped it.
func (in *instance) exitedEarly() error {
	select {
	case <-in.done:
		if !in.stopping.Load() {
			return fmt.Errorf("the service's Run returned on its own: %v", in.err)
		}
	default:
	}
	return nil
}

// eventually is the package's eventually, failing at once if one of the
// test's in-process services stopped on its own.
func (e *env) eventually(timeout time.Duration, cond func() error) {
	e.t.Helper()
	eventually(e.t, timeout, func() error {
		for _, in := range e.instances {
			if err := in.exitedEarly(); err != nil {
				e.t.Fatal(err)
			}
		}
		return cond()
	})
}

// startService opens a service on cfg and runs it in the background.
func (e *env) startService(cfg *config.Config, name string) *instance {
	t := e.t
	t.Helper()
	ctx := testCtx(t, waitLong)
	svc, err := service.Open(ctx, cfg, e.logger(name, cfg.Log.Level))
	if err != nil {
		t.Fatalf("open service: %v", err)
	}
	return e.run(svc)
}

// run starts Run on an opened service.
func (e *env) run(svc *service.Service) *instance {
	t := e.t
	rctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, svc: svc, cancel: cancel, done: make(chan struct{})}
	e.instances = append(e.instances, in)
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
			in.svc.Close()
		}
	})
	return in
}

// stop cancels Run, which must return nil within the shutdown budget, and
// closes the service (its store stays readable in memory).
func (in *instance) stop() {
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
		in.svc.Close()
		if in.err != nil {
			t.Fatalf("Run returned %v after a clean stop", in.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

// waitApplied waits until the instance's store applied every record of topic
// up to its current high watermarks.
func (e *env) waitApplied(st *mvstate.Store, topic string) {
	e.t.Helper()
	hwm := e.hwm(topic)
	e.eventually(waitLong, func() error {
		for p, hw := range hwm {
			if hw > 0 && st.AppliedOffset(topic, p) < hw {
				return fmt.Errorf("%s/%d: applied up to %d of %d", topic, p, st.AppliedOffset(topic, p), hw)
			}
		}
		return nil
	})
}

// The service in a child process.

// childConfigEnv carries the child's configuration (JSON) from the parent.
const childConfigEnv = "MVREPAIR_ITEST_CHILD_CONFIG"

// child is the service running in a child process.
type child struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // from Wait, once done is closed
}

// childKillAtCommitEnv makes the child SIGKILL itself at a local commit,
// just "before" or just "after" it (see killAroundCommit).
const childKillAtCommitEnv = "MVREPAIR_ITEST_CHILD_KILL_AT_COMMIT"

// startChild runs the service on cfg in a child process whose client id and
// instance name are name (the group shows which child is a member). env are
// extra NAME=value variables.
func (e *env) startChild(cfg *config.Config, name string, env ...string) *child {
	t := e.t
	t.Helper()
	c := *cfg
	c.Kafka.ClientID, c.Kafka.InstanceName = name, name
	raw, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, name: name, logPath: filepath.Join(e.logDir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(ch.logPath)
	if err != nil {
		t.Fatal(err)
	}
	ch.cmd = exec.Command(os.Args[0], "-test.run=^TestServiceChild$", "-test.count=1", "-test.timeout=10m")
	ch.cmd.Env = append(append(os.Environ(), childConfigEnv+"="+string(raw)), env...)
	if c.Kafka.SASL.Password.IsSet() { // the JSON holds only "***"
		ch.cmd.Env = append(ch.cmd.Env, config.PasswordEnv+"="+c.Kafka.SASL.Password.Reveal())
	}
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
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
		if b, err := os.ReadFile(ch.logPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("child %s reported a data race (see its log)", name)
		}
	})
	return ch
}

// waitKilled waits for the child to die of SIGKILL (sent by itself).
func (c *child) waitKilled(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("%s did not kill itself within %v", c.name, timeout)
	}
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.t.Fatalf("%s exited with %v, want killed by SIGKILL", c.name, c.err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
}

// terminate sends SIGTERM and returns how long the child took to exit; it
// fails the test unless the child exits with status 0 within limit.
func (c *child) terminate(limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", c.name, err)
	}
	select {
	case <-c.done:
	case <-time.After(limit):
		c.t.Fatalf("%s did not exit within %v of SIGTERM", c.name, limit)
	}
	took := time.Since(start)
	if c.err != nil {
		c.t.Fatalf("%s exited with %v after SIGTERM (want status 0)", c.name, c.err)
	}
	return took
}

// exited reports whether the child died on its own.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("child %s exited unexpectedly: %v", c.name, c.err)
	default:
		return nil
	}
}

// waitMember waits until the child is the group's only member and the group
// is Stable: the child is the active writer, and on kfake it is safe to kill.
func (e *env) waitMember(cfg *config.Config, c *child) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error {
		if err := c.exited(); err != nil {
			return err
		}
		return e.groupMember(cfg.Kafka.GroupID, c.name)
	})
}

// runChild is the body of TestServiceChild: the service until SIGTERM.
func runChild(t *testing.T, raw string) {
	var cfg config.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("child config: %v", err)
	}
	if cfg.Kafka.SASL.Password.IsSet() { // redacted in the JSON: the parent passes it beside
		cfg.Kafka.SASL.Password = config.Secret(os.Getenv(config.PasswordEnv))
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signalContext()
	defer stop()
	svc, err := service.Open(ctx, &cfg, log)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer svc.Close()
	if v := os.Getenv(childKillAtCommitEnv); v != "" {
		killAroundCommit(t, svc, v)
	}
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	log.Info().Msg("child stopped cleanly")
}

// killAroundCommit makes the child SIGKILL itself at its first local commit
// after its writer completed a batch: the commit of the second batch (or,
// if the writer went idle, of the deletion of the published outbox). The
// store's commit hook runs just before the bbolt commit: mode "before" dies
// inside the hook, so the batch never becomes durable; "after" dies 20-60ms
// later, once the commit is durable and while the batch is being published
// (the parent slows publishing down with a long writer batch timeout).
func killAroundCommit(t *testing.T, svc *service.Service, mode string) {
	if mode != "before" && mode != "after" {
		t.Fatalf("%s=%q: want before or after", childKillAtCommitEnv, mode)
	}
	kill := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	batches := func() uint64 {
		fams, _ := svc.Metrics.Registry().Gather()
		for _, f := range fams {
			if f.GetName() == "mvrepair_batch_size" && len(f.GetMetric()) > 0 {
				return f.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	var fired atomic.Bool
	svc.Store().SetCommitHook(func() error {
		if fired.Load() || batches() == 0 {
			return nil
		}
		fired.Store(true)
		if mode == "before" {
			kill()
			time.Sleep(time.Second) // the signal is asynchronous: never reach the commit
			return nil
		}
		go func() {
			time.Sleep(time.Duration(20+mrand.IntN(40)) * time.Millisecond)
			kill()
		}()
		return nil
	})
}

// signalContext ends on SIGTERM or SIGINT (a graceful stop).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
