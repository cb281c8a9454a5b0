package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/embedded"
)

// startBroker starts an in-memory embedded broker (kfake over TCP on a random
// port) with the given topics ("name:partitions") and returns its address.
func startBroker(t *testing.T, topics ...string) string {
	t.Helper()
	cfg := embedded.Config{Addr: "127.0.0.1:0"}
	for _, spec := range topics {
		name, parts, _ := strings.Cut(spec, ":")
		n := 1
		if parts != "" {
			if _, err := fmt.Sscan(parts, &n); err != nil {
				t.Fatalf("bad topic spec %q", spec)
			}
		}
		cfg.Topics = append(cfg.Topics, embedded.Topic{Name: name, Partitions: n})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// testCtx returns a context bounded by d and cancelled at test end.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newTestAdmin(t *testing.T, addr string) *Admin {
	t.Helper()
	a, err := NewAdmin(AdminConfig{Brokers: []string{addr}, ClientID: "test-admin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func newTestProducer(t *testing.T, addr string) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerConfig{Brokers: []string{addr}, ClientID: "test-producer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// fastGroupConfig returns group settings short enough for tests (the
// embedded broker accepts session timeouts down to 1s).
func fastGroupConfig(addr, group, instance string, topics ...string) GroupConfig {
	return GroupConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topics:            topics,
		ClientID:          "test-" + instance,
		InstanceName:      instance,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
	}
}

func newTestGroup(t *testing.T, cfg GroupConfig) *Group {
	t.Helper()
	g, err := NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// nextGen returns the next generation of g, retrying join errors until d.
func nextGen(t *testing.T, g *Group, d time.Duration) *Generation {
	t.Helper()
	ctx := testCtx(t, d)
	for {
		gen, err := g.Next(ctx)
		if err == nil {
			return gen
		}
		if ctx.Err() != nil {
			t.Fatalf("no generation within %v: %v", d, err)
		}
		t.Logf("next: %v (retrying)", err)
	}
}

// nextActiveGen calls Next until g gets an active generation.
func nextActiveGen(t *testing.T, g *Group, d time.Duration) *Generation {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		gen := nextGen(t, g, time.Until(deadline))
		if gen.Active() {
			return gen
		}
	}
}

func countPartitions(as map[string][]Assignment) int {
	n := 0
	for _, l := range as {
		n += len(l)
	}
	return n
}

// publishN publishes n messages to topic with key fmt.Sprintf(keyFmt, i%keys)
// and value "i".
func publishN(t *testing.T, ctx context.Context, p *Producer, topic string, n, keys int) {
	t.Helper()
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%keys), Value: fmt.Appendf(nil, "%d", i)}
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// testBrokers returns the brokers of a test: KAFKA_BROKERS (comma
// separated) when set, else a fresh embedded broker (kfake over TCP), and
// whether they are external.
func testBrokers(t *testing.T) ([]string, bool) {
	t.Helper()
	var ext []string
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			ext = append(ext, b)
		}
	}
	if len(ext) > 0 {
		return ext, true
	}
	return []string{startBroker(t)}, false
}

// newTopic creates a topic with a name unique to the test and returns it.
func newTopic(t *testing.T, ctx context.Context, brokers []string, partitions int, configs map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%x", strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name())), rand.Uint32())
	a, err := NewAdmin(AdminConfig{Brokers: brokers, ClientID: "test-topics"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.EnsureTopics(ctx, []TopicSpec{{Name: name, Partitions: partitions, ReplicationFactor: 1, Configs: configs}}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// fetchFor collects what f delivers until nothing comes for quiet.
func fetchFor(t *testing.T, ctx context.Context, f *Fetcher, quiet time.Duration) []Message {
	t.Helper()
	var out []Message
	for {
		qctx, cancel := context.WithTimeout(ctx, quiet)
		m, err := f.Fetch(qctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return out
			}
			t.Fatalf("fetch: %v", err)
		}
		out = append(out, m)
	}
}
