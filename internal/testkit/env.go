package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/service"
)

// ExternalBrokers returns KAFKA_BROKERS split on commas (nil when unset).
func ExternalBrokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Env is one test's broker and clients.
type Env struct {
	T        *testing.T
	ID       string
	Brokers  []string
	External bool

	// The embedded broker (nil when external), its address and data dir so
	// that it can be restarted in place.
	broker     *embedded.Broker
	brokerAddr string
	brokerDir  string

	Admin     *kafkaio.Admin
	producer  *kafkaio.Producer
	base      config.Config // brokers and security every config starts from
	LogDir    string
	mu        sync.Mutex
	instances []*Instance
}

// NewEnv returns the brokers of one test: a fresh embedded broker with a
// data dir, or the KAFKA_BROKERS cluster.
func NewEnv(t *testing.T) *Env {
	t.Helper()
	e := &Env{T: t, ID: RandomID(), LogDir: t.TempDir()}
	t.Cleanup(e.dumpLogsOnFailure)
	if ext := ExternalBrokers(); len(ext) > 0 {
		e.Brokers, e.External = ext, true
	} else {
		e.brokerDir = t.TempDir()
		b, err := embedded.Start(Ctx(t, 10*time.Second), embedded.Config{Addr: "127.0.0.1:0", DataDir: e.brokerDir})
		if err != nil {
			t.Fatalf("start embedded broker: %v", err)
		}
		e.broker, e.brokerAddr = b, b.Addr()
		e.Brokers = []string{b.Addr()}
		t.Cleanup(func() { e.broker.Close() })
	}
	e.base = config.Default()
	e.base.Kafka.Brokers = strings.Join(e.Brokers, ",")
	if err := applySecurity(&e.base); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.Admin, err = kafkaio.NewAdmin(service.AdminConfig(&e.base, e.Brokers)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Admin.Close() })
	return e
}

// applySecurity sets the TLS/SASL keys of cfg from KAFKA_SECURITY_PROTOCOL
// and its companions (a secured CI broker).
func applySecurity(cfg *config.Config) error {
	proto := strings.ToUpper(os.Getenv("KAFKA_SECURITY_PROTOCOL"))
	switch proto {
	case "", "PLAINTEXT":
		return nil
	case "SSL", "SASL_SSL", "SASL_PLAINTEXT":
	default:
		return fmt.Errorf("testkit: KAFKA_SECURITY_PROTOCOL=%s is not one of PLAINTEXT, SSL, SASL_SSL, SASL_PLAINTEXT", proto)
	}
	k := &cfg.Kafka
	if proto != "SASL_PLAINTEXT" {
		k.TLS.Enabled = true
		k.TLS.CAFile = os.Getenv("KAFKA_TLS_CA_FILE")
		k.TLS.CertFile = os.Getenv("KAFKA_TLS_CERT_FILE")
		k.TLS.KeyFile = os.Getenv("KAFKA_TLS_KEY_FILE")
	}
	if strings.HasPrefix(proto, "SASL") {
		k.SASL.Mechanism = os.Getenv("KAFKA_SASL_MECHANISM")
		k.SASL.Username = os.Getenv("KAFKA_SASL_USERNAME")
		k.SASL.Password = config.Secret(os.Getenv("KAFKA_SASL_PASSWORD"))
	}
	return nil
}

// RandomID returns 8 random hex digits (unique topic and group names).
func RandomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Rand returns a random source seeded by ITEST_SEED or the clock; the seed
// is logged so that a failing run can be repeated.
func Rand(t testing.TB) *mrand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ITEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ITEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set ITEST_SEED=%d to repeat)", seed, seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// RestartBroker closes the embedded broker, keeps it down for downtime and
// starts it again on the same address and data dir.
func (e *Env) RestartBroker(downtime time.Duration) {
	t := e.T
	t.Helper()
	if e.broker == nil {
		t.Fatal("RestartBroker needs the embedded broker")
	}
	e.broker.Close()
	time.Sleep(downtime) // the outage itself, not a wait for a condition
	Eventually(t, WaitShort, func() error {
		b, err := embedded.Start(context.Background(), embedded.Config{Addr: e.brokerAddr, DataDir: e.brokerDir})
		if err != nil {
			return err
		}
		e.broker = b
		return nil
	})
}

// Config returns a service configuration of its own topics and group on the
// test's brokers, tuned for fast tests.
func (e *Env) Config(name string) *config.Config {
	t := e.T
	t.Helper()
	c := e.base
	id := name + "-" + e.ID
	c.Log.Level = LogLevel()
	c.State.Dir = filepath.Join(t.TempDir(), "state")
	c.Kafka.ClientID = "itest"
	c.Kafka.GroupID = "itest-" + id
	c.Kafka.InstanceName = "itest-" + id
	c.Kafka.Partitions = 3
	c.Kafka.ReplicationFactor = 1
	c.Kafka.Topics = config.Topics{
		Input:     "itest-" + id + "-input",
		Catalog:   "itest-" + id + "-catalog",
		EditLog:   "itest-" + id + "-edit-log",
		DLQ:       "itest-" + id + "-dlq",
		Snapshots: "itest-" + id + "-snapshots",
	}
	if e.External {
		c.Kafka.SessionTimeout = e.minSessionTimeout()
		c.Kafka.HeartbeatInterval = c.Kafka.SessionTimeout / 10
		c.Kafka.RebalanceTimeout = 10 * time.Second
	} else {
		// The embedded broker accepts session timeouts from 1s.
		c.Kafka.SessionTimeout = 2 * time.Second
		c.Kafka.HeartbeatInterval = 200 * time.Millisecond
		c.Kafka.RebalanceTimeout = 5 * time.Second
	}
	c.Kafka.ConnectTimeout = 20 * time.Second
	c.Kafka.Reader.MaxWait = 50 * time.Millisecond
	c.Batch.MaxEvents = 500
	c.Batch.MaxWait = 5 * time.Millisecond
	c.Retry = config.Retry{InitialInterval: 20 * time.Millisecond, MaxInterval: 500 * time.Millisecond,
		Multiplier: 2, MaxElapsedTime: 4 * time.Second}
	c.HTTP.Addr = "127.0.0.1:0"
	c.ShutdownTimeout = 10 * time.Second
	c.Metrics.LagInterval = time.Second
	c.Health.StallTimeout = 5 * time.Second
	c.State.SnapshotBytes = 1 << 20
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
func (e *Env) minSessionTimeout() time.Duration {
	t := e.T
	t.Helper()
	sessionProbe.once.Do(func() {
		sessionProbe.d = 6 * time.Second
		topic, group := "itest-probe-"+e.ID, "itest-probe-"+e.ID
		ctx := Ctx(t, WaitLong)
		if err := e.Admin.EnsureTopics(ctx, []kafkaio.TopicSpec{{Name: topic, Partitions: 1, ReplicationFactor: 1}}); err != nil {
			t.Fatalf("session timeout probe: %v", err)
		}
		gc := service.GroupConfig(&e.base, e.Brokers, zerolog.Nop())
		gc.GroupID, gc.Topics, gc.ClientID = group, []string{topic}, "itest-probe"
		gc.SessionTimeout, gc.HeartbeatInterval, gc.RebalanceTimeout, gc.JoinGroupBackoff = 2*time.Second, 200*time.Millisecond, 2*time.Second, 100*time.Millisecond
		g, err := kafkaio.NewGroup(gc)
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

// LogLevel is the services' log level: ITEST_LOG_LEVEL or info.
func LogLevel() string {
	if l := os.Getenv("ITEST_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// EnsureTopics creates the configuration's topics (as the service would).
func (e *Env) EnsureTopics(cfg *config.Config) {
	t := e.T
	t.Helper()
	if err := e.Admin.EnsureTopics(Ctx(t, WaitLong), service.TopicSpecs(cfg)); err != nil {
		t.Fatalf("create topics: %v", err)
	}
}

// Producer returns the test's producer (created on first use).
func (e *Env) Producer() *kafkaio.Producer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.producer == nil {
		pc := service.ProducerConfig(&e.base, e.Brokers, zerolog.Nop())
		pc.ClientID = "itest-producer"
		p, err := kafkaio.NewProducer(pc)
		if err != nil {
			e.T.Fatal(err)
		}
		e.producer = p
		e.T.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Close(ctx)
		})
	}
	return e.producer
}

// Publish writes msgs in order, retrying the whole set while the broker is
// not ready (a retry can duplicate records, which the tests tolerate).
func (e *Env) Publish(msgs ...kafkaio.Message) {
	e.T.Helper()
	if err := e.TryPublish(msgs...); err != nil {
		e.T.Fatalf("publish %d messages: %v", len(msgs), err)
	}
}

// Placed publishes m and returns it with the partition and offset it was
// written to.
func (e *Env) Placed(m kafkaio.Message) kafkaio.Message {
	e.T.Helper()
	ms := []kafkaio.Message{m}
	e.Publish(ms...)
	return ms[0]
}

// TryPublish is Publish for goroutines: it reports instead of failing.
func (e *Env) TryPublish(msgs ...kafkaio.Message) error {
	p := e.Producer()
	deadline := time.Now().Add(WaitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := p.Publish(ctx, msgs...)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PublishPaced publishes msgs in chunks with a pause between them: a stream
// arriving while the service works.
func (e *Env) PublishPaced(msgs []kafkaio.Message, chunk int, pause time.Duration) error {
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := e.TryPublish(msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
		time.Sleep(pause)
	}
	return nil
}

// HWM returns the high watermark of every partition of topic.
func (e *Env) HWM(topic string) map[int]int64 {
	t := e.T
	t.Helper()
	var out map[int]int64
	Eventually(t, WaitShort, func() error {
		var err error
		out, err = e.Admin.HighWatermarks(context.Background(), topic)
		return err
	})
	return out
}

// Committed returns the group's committed offsets of topic (-1: none).
func (e *Env) Committed(group, topic string) map[int]int64 {
	t := e.T
	t.Helper()
	var out map[int]int64
	Eventually(t, WaitShort, func() error {
		c, err := e.Admin.CommittedOffsets(context.Background(), group, []string{topic})
		if err != nil {
			return err
		}
		out = c[topic]
		return nil
	})
	return out
}

// CaughtUp reports nil once the group committed every record of the input
// and catalog topics. The writer commits input offsets only after the batch
// is durable locally and its edit-log and DLQ records are acknowledged, so
// this also means every journal record is on the edit-log topic.
func (e *Env) CaughtUp(cfg *config.Config) error {
	ctx := context.Background()
	topics := []string{cfg.Kafka.Topics.Input, cfg.Kafka.Topics.Catalog}
	committed, err := e.Admin.CommittedOffsets(ctx, cfg.Kafka.GroupID, topics)
	if err != nil {
		return err
	}
	for _, topic := range topics {
		offs, err := e.Admin.ListOffsets(ctx, topic)
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

// WaitCaughtUp waits for CaughtUp.
func (e *Env) WaitCaughtUp(cfg *config.Config) {
	e.T.Helper()
	e.Eventually(WaitLong, func() error { return e.CaughtUp(cfg) })
}

// WaitCommitted waits until the group committed every record of topic.
func (e *Env) WaitCommitted(cfg *config.Config, topic string) {
	e.T.Helper()
	e.Eventually(WaitLong, func() error {
		c, err := e.Admin.CommittedOffsets(context.Background(), cfg.Kafka.GroupID, []string{topic})
		if err != nil {
			return err
		}
		offs, err := e.Admin.ListOffsets(context.Background(), topic)
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

// InputLag is the number of input records not committed yet (best effort,
// for the log).
func (e *Env) InputLag(cfg *config.Config) int64 {
	topic := cfg.Kafka.Topics.Input
	c, err := e.Admin.CommittedOffsets(context.Background(), cfg.Kafka.GroupID, []string{topic})
	if err != nil {
		return -1
	}
	offs, err := e.Admin.ListOffsets(context.Background(), topic)
	if err != nil {
		return -1
	}
	var lag int64
	for p, o := range offs {
		lag += o.Last - max(c[topic][p], 0)
	}
	return lag
}

// GroupMember returns nil once group is Stable with clientID as its only
// member.
func (e *Env) GroupMember(group, clientID string) error {
	info, err := e.Admin.DescribeGroup(context.Background(), group)
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

// WaitGroupEmpty waits until the group has no member (so that its offsets
// can be rewritten).
func (e *Env) WaitGroupEmpty(group string) {
	e.T.Helper()
	Eventually(e.T, WaitLong, func() error {
		info, err := e.Admin.DescribeGroup(context.Background(), group)
		if err != nil {
			return err
		}
		if info.State != "Empty" && info.State != "Dead" {
			return fmt.Errorf("group %s is %s with %d members", group, info.State, len(info.Members))
		}
		return nil
	})
}

// ReadTopic reads every record of topic up to the current high watermarks,
// in offset order per partition (partitions in ascending order).
func (e *Env) ReadTopic(topic string) []kafkaio.Message {
	t := e.T
	t.Helper()
	hwm := e.HWM(topic)
	pending := 0
	for _, hw := range hwm {
		if hw > 0 {
			pending++
		}
	}
	byPart := map[int][]kafkaio.Message{}
	if pending > 0 {
		ctx := Ctx(t, WaitLong)
		fc := service.FetcherConfig(&e.base, e.Brokers, zerolog.Nop())
		fc.ClientID, fc.MaxWait = "itest-reader", 50*time.Millisecond
		tail, err := kafkaio.NewTopicTail(ctx, fc, topic, nil)
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
			if !m.Skip {
				byPart[m.Partition] = append(byPart[m.Partition], m)
			}
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

// Logger returns a logger writing to a file of the test's log dir; the
// files are printed when the test fails.
func (e *Env) Logger(name, level string) zerolog.Logger {
	t := e.T
	t.Helper()
	f, err := os.Create(filepath.Join(e.LogDir, name+".log"))
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

// LogPath returns the path of a log file of the test.
func (e *Env) LogPath(name string) string { return filepath.Join(e.LogDir, name+".log") }

// dumpLogsOnFailure prints the tail of every log file of a failed test.
func (e *Env) dumpLogsOnFailure() {
	if !e.T.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(e.LogDir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 150 {
			lines = lines[len(lines)-80:]
		}
		e.T.Logf("--- last %d lines of %s ---\n%s", len(lines), filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// Eventually is the package's Eventually, failing at once if one of the
// test's in-process services or children stopped on its own.
func (e *Env) Eventually(timeout time.Duration, cond func() error) {
	e.T.Helper()
	Eventually(e.T, timeout, func() error {
		e.mu.Lock()
		ins := slices.Clone(e.instances)
		e.mu.Unlock()
		for _, in := range ins {
			if err := in.exitedEarly(); err != nil {
				e.T.Fatal(err)
			}
		}
		return cond()
	})
}
