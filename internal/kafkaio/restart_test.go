package kafkaio

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/embedded"
)

// restartableBroker starts an embedded broker with a data dir and returns its
// address and functions that stop it and start it again on that address.
func restartableBroker(t *testing.T, topics ...embedded.Topic) (addr string, stop, start func()) {
	t.Helper()
	dir := t.TempDir()
	ctx := testCtx(t, 10*time.Second)
	b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: dir, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr = b.Addr()
	stop = func() { b.Close() }
	start = func() {
		t.Helper()
		nb, err := embedded.Start(ctx, embedded.Config{Addr: addr, DataDir: dir})
		if err != nil {
			t.Fatalf("restart broker: %v", err)
		}
		b = nb
	}
	return addr, stop, start
}

// A request made while the broker is down must not leave an error behind
// that outlives the outage (kafka-go caches a new pool's failed metadata
// request until its next refresh, up to MetadataTTL = 6s later).
func TestAdmin_recovers_as_soon_as_the_broker_is_back(t *testing.T) {
	addr, stop, start := restartableBroker(t, embedded.Topic{Name: "t", Partitions: 2})
	admin := newTestAdmin(t, addr)
	ctx := testCtx(t, 20*time.Second)
	if _, err := admin.Partitions(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	stop()
	for range 3 {
		short, cancel := context.WithTimeout(ctx, time.Second)
		if err := admin.Ping(short); err == nil {
			t.Fatal("ping succeeded while the broker is down")
		}
		_, _ = admin.Partitions(short, "t")
		cancel()
	}
	start()
	back := time.Now()
	waitFor(t, 10*time.Second, "admin requests to succeed", func() bool {
		_, err := admin.Partitions(ctx, "t")
		return err == nil
	})
	if took := time.Since(back); took > 2*time.Second {
		t.Errorf("the admin client needed %v after the broker came back", took)
	}
}

// A generation's commits go over its one coordinator connection: once the
// broker dropped it, Commit reports ErrFenced at once instead of an error
// that callers would retry for nothing.
func TestGeneration_Commit_over_a_dropped_coordinator_connection_is_fenced(t *testing.T) {
	addr, stop, start := restartableBroker(t, embedded.Topic{Name: "in", Partitions: 2})
	g := newTestGroup(t, fastGroupConfig(addr, "g-restart", "a", "in"))
	gen := nextActiveGen(t, g, 10*time.Second)
	commit := make(chan struct{})
	result := make(chan error, 1)
	gen.Run(func(context.Context) {
		<-commit
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		result <- gen.Commit(ctx, map[string]map[int]int64{"in": {0: 1}})
	})
	stop()
	start()
	close(commit)
	select {
	case err := <-result:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("commit over the dropped connection: %v, want ErrFenced", err)
		}
		t.Logf("commit: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("commit did not return")
	}
}
