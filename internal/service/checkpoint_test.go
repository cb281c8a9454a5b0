package service

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/checkpoint"
)

func TestCheckpointPacer_pausesGrowAfterFailuresAndASuccessClearsThem(t *testing.T) {
	p := newCheckpointPacer()
	now := time.Unix(1000, 0)
	if !p.ready(now) {
		t.Fatal("a new pacer is not ready")
	}
	d1 := p.failed(now)
	if d1 != time.Second || p.ready(now.Add(d1-time.Millisecond)) || !p.ready(now.Add(d1)) {
		t.Fatalf("after one failure: pause %s (want 1s), ready too early or not after it", d1)
	}
	var d time.Duration
	for range 20 {
		d = p.failed(now)
	}
	if d != time.Minute {
		t.Fatalf("pause after 21 failures: %s, want the 1m cap", d)
	}
	p.succeeded()
	if !p.ready(now) || p.failed(now) != time.Second {
		t.Fatal("a success does not clear the pause and start the next one over at 1s")
	}
}

func TestCheckpointFailed_countsOnlyRealFailures(t *testing.T) {
	ctx := context.Background()
	done, cancel := context.WithCancel(ctx)
	cancel()
	boom := errors.New("snapshot topic refused the publish")
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{ctx, nil, false},
		{ctx, fmt.Errorf("wrapped: %w", checkpoint.ErrNotYet), false},
		{ctx, fmt.Errorf("wrapped: %w", checkpoint.ErrNotWriter), false},
		{done, boom, false}, // stopping
		{ctx, boom, true},
	} {
		if got := checkpointFailed(c.ctx, c.err); got != c.want {
			t.Errorf("checkpointFailed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
