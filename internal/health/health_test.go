package health_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/health"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestWatchdog_transientFailureStallsOnlyAfterTheTimeout(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	w := health.New(10*time.Second, c.now)
	wr := w.Component("writer")
	wr.Failing(errors.New("local commit failing: no space left on device"), false)
	c.add(9 * time.Second)
	if err := w.Check(); err != nil {
		t.Fatalf("stalled before the timeout: %v", err)
	}
	c.add(2 * time.Second)
	err := w.Check()
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "writer stalled for 11s") {
		t.Fatalf("Check = %v, want the writer stalled with the disk reason", err)
	}
	if !w.Stalled()["writer"] {
		t.Fatal("Stalled does not report the writer")
	}
	wr.Progress()
	if err := w.Check(); err != nil {
		t.Fatalf("still stalled after progress: %v", err)
	}
}

func TestWatchdog_permanentFailureStallsAtOnce(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	w := health.New(time.Minute, c.now)
	w.Component("writer").Failing(errors.New("input offsets beyond the topic's end"), true)
	if err := w.Check(); err == nil || !strings.Contains(err.Error(), "beyond the topic") {
		t.Fatalf("Check = %v, want a stall at once", err)
	}
}

func TestWatchdog_pendingWorkWithoutProgressStalls(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	w := health.New(5*time.Second, c.now)
	f := w.Component("follower")
	c.add(time.Hour) // idle for long: no work, no stall
	if err := w.Check(); err != nil {
		t.Fatalf("idle component stalled: %v", err)
	}
	f.Pending(true)
	c.add(4 * time.Second)
	if err := w.Check(); err != nil {
		t.Fatalf("stalled early: %v", err)
	}
	c.add(2 * time.Second)
	if err := w.Check(); err == nil || !strings.Contains(err.Error(), "no progress for 6s") {
		t.Fatalf("Check = %v, want a stall for pending work", err)
	}
	f.Reset()
	if err := w.Check(); err != nil {
		t.Fatalf("stalled after Reset: %v", err)
	}
}
