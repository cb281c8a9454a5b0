package hatest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
)

// cluster is a broker plus a per-test set of topics and a group, shared by
// the instances of one test. With KAFKA_BROKERS set it uses that broker.
type cluster struct {
	brokers []string
	broker  *embedded.Broker
	cfg     config.Config // template for instances
	admin   *kafkaio.Admin
	prod    *kafkaio.Producer
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{}
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		c.brokers = strings.Split(env, ",")
	} else {
		b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		c.broker, c.brokers = b, []string{b.Addr()}
	}
	id := fmt.Sprintf("%s-%x", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), rand.Uint32())
	cfg := config.Default()
	cfg.Kafka.Brokers = strings.Join(c.brokers, ",")
	cfg.Kafka.GroupID = "g-" + id
	cfg.Kafka.Topics.Input = "in-" + id
	cfg.Kafka.Topics.Catalog = "cat-" + id
	cfg.Kafka.Topics.EditLog = "log-" + id
	cfg.Kafka.Topics.DLQ = "dlq-" + id
	cfg.Kafka.Partitions = 3
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.HeartbeatInterval = 500 * time.Millisecond
	cfg.Kafka.RebalanceTimeout = 10 * time.Second
	cfg.Retry.MaxElapsedTime = 5 * time.Second
	cfg.Batch.MaxWait = 5 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Metrics.LagInterval = time.Second
	cfg.Log.Format = "json"
	cfg.Log.Level = "info"
	cfg.HTTP.Addr = "127.0.0.1:0"
	c.cfg = cfg
	k, err := service.OpenKafka(ctx, &cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	c.admin, c.prod = k.Admin, k.Producer
	return c
}

// instance is one service process (a child re-exec of the test binary).
type instance struct {
	name string
	dir  string
	cmd  *exec.Cmd
	http string // the child's HTTP address
	done chan struct{}
	mu   sync.Mutex
	logs []string
}

const childEnv = "MVREPAIR_HATEST_CHILD"

// start runs an instance with the cluster's config and its own state dir.
func (c *cluster) start(t *testing.T, name, dir string) *instance {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.cfg
	cfg.State.Dir = dir
	cfg.Kafka.InstanceName = name
	b, _ := json.Marshal(cfg)
	in := &instance{name: name, dir: dir, done: make(chan struct{})}
	in.cmd = exec.Command(exe, "-test.run=^TestHAChild$")
	in.cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	if cfg.Kafka.SASL.Password.IsSet() { // the JSON holds only "***"
		in.cmd.Env = append(in.cmd.Env, config.PasswordEnv+"="+cfg.Kafka.SASL.Password.Reveal())
	}
	out, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd.Stderr = in.cmd.Stdout
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(in.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "HTTP_ADDR="); ok {
				addr <- a
			}
			in.mu.Lock()
			in.logs = append(in.logs, line)
			in.mu.Unlock()
		}
		_ = in.cmd.Wait()
	}()
	select {
	case in.http = <-addr:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		t.Fatalf("instance %s did not start: %s", name, in.tail())
	}
	t.Cleanup(func() { in.kill() })
	return in
}

func (in *instance) tail() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, l := range in.logs {
		if strings.Contains(l, "WARNING: DATA RACE") {
			return strings.Join(in.logs[i:min(len(in.logs), i+80)], "\n")
		}
	}
	n := len(in.logs)
	return strings.Join(in.logs[max(0, n-30):], "\n")
}

func (in *instance) kill() {
	select {
	case <-in.done:
		return
	default:
	}
	_ = in.cmd.Process.Kill()
	<-in.done
}

// stop sends SIGTERM and waits for a clean exit.
func (in *instance) stop(t *testing.T, within time.Duration) {
	t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(within):
		t.Fatalf("instance %s did not stop within %s: %s", in.name, within, in.tail())
	}
	if code := in.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("instance %s exited %d: %s", in.name, code, in.tail())
	}
}

// TestHAChild is the child process body; it does nothing in a normal run.
func TestHAChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("child process of the HA tests only")
	}
	var cfg config.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Println("bad child config:", err)
		os.Exit(3)
	}
	if cfg.Kafka.SASL.Password.IsSet() { // redacted in the JSON: the parent passes it beside
		cfg.Kafka.SASL.Password = config.Secret(os.Getenv(config.PasswordEnv))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := zerolog.New(os.Stdout).Level(zerolog.InfoLevel).With().Timestamp().Str("instance", cfg.Kafka.InstanceName).Logger()
	svc, err := service.Open(ctx, &cfg, log)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(4)
	}
	srv := httpserver.New(cfg.HTTP.Addr, httpserver.Deps{Health: svc, MVs: service.MVReader{Store: svc.Store()}})
	if err := srv.Start(ctx); err != nil {
		fmt.Println("http:", err)
		os.Exit(5)
	}
	fmt.Println("HTTP_ADDR=" + srv.Addr())
	err = svc.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	svc.Close()
	if err != nil {
		fmt.Println("run:", err)
		os.Exit(6)
	}
	os.Exit(0)
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// activeMember returns the instance name holding the input partitions, once
// the group is Stable.
func (c *cluster) activeMember(ctx context.Context) (string, int, error) {
	info, err := c.admin.DescribeGroup(ctx, c.cfg.Kafka.GroupID)
	if err != nil {
		return "", 0, err
	}
	if info.State != "Stable" {
		return "", len(info.Members), fmt.Errorf("group is %s", info.State)
	}
	for _, m := range info.Members {
		if len(m.Partitions[c.cfg.Kafka.Topics.Input]) > 0 && m.Instance != nil {
			return m.Instance.Name, len(info.Members), nil
		}
	}
	return "", len(info.Members), fmt.Errorf("no member holds %s", c.cfg.Kafka.Topics.Input)
}

func (c *cluster) hwm(ctx context.Context, topic string) (int64, error) {
	offs, err := c.admin.ListOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range offs {
		n += o.Last
	}
	return n, nil
}

// committed reports whether the group committed every input record.
func (c *cluster) allCommitted(ctx context.Context) error {
	for _, topic := range []string{c.cfg.Kafka.Topics.Input, c.cfg.Kafka.Topics.Catalog} {
		offs, err := c.admin.ListOffsets(ctx, topic)
		if err != nil {
			return err
		}
		com, err := c.admin.CommittedOffsets(ctx, c.cfg.Kafka.GroupID, []string{topic})
		if err != nil {
			return err
		}
		for p, o := range offs {
			if o.Last > 0 && com[topic][p] < o.Last {
				return fmt.Errorf("%s/%d committed %d of %d", topic, p, com[topic][p], o.Last)
			}
		}
	}
	return nil
}

// waitRole waits until the group is Stable with members members and active
// is the writer; on failure it shows in's log.
func (c *cluster) waitRole(t *testing.T, in *instance, active string, members int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 30*time.Second, fmt.Sprintf("%s active with %d member(s)", active, members), func() error {
		name, n, err := c.activeMember(ctx)
		if err == nil && (name != active || n != members) {
			err = fmt.Errorf("%d members, active %q", n, name)
		}
		if err != nil {
			return fmt.Errorf("%w\nlog of %s:\n%s", err, in.name, in.tail())
		}
		return nil
	})
}
