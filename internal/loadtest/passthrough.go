package loadtest

import (
	"context"
	"errors"
	"fmt"
	"github.com/rs/zerolog"
	"sync"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

// passThrough is the baseline pipeline: consume → produce → commit, with the
// service's group, fetcher, batching and producer settings and no repair
// logic (no decoding, no state, no journal).
type passThrough struct {
	r     *runner
	group *kafkaio.Group
	pub   *kafkaio.Producer

	mu        sync.Mutex
	next      map[int]int64 // committed next offsets of the input topic
	tActive   time.Time
	tFirst    time.Time
	cpuFirst  time.Duration
	firstN    int
	batches   int
	published int64
	watches   []*watch
	err       error
	cancel    context.CancelFunc
	done      chan struct{}
}

// watch fires with the time of the first commit at which every partition of
// target was committed.
type watch struct {
	target map[int]int64
	at     chan time.Time
}

func (r *runner) startPassThrough(ctx context.Context) (*passThrough, error) {
	c := r.cfg
	gc := service.GroupConfig(c, r.brokers, zerolog.Nop())
	gc.GroupID, gc.Topics, gc.InstanceName = r.blGroup, []string{c.Kafka.Topics.Input}, "load-passthrough"
	group, err := kafkaio.NewGroup(gc)
	if err != nil {
		return nil, err
	}
	pub, err := r.newProducer()
	if err != nil {
		_ = group.Close()
		return nil, err
	}
	pt := &passThrough{r: r, group: group, pub: pub, next: map[int]int64{}, done: make(chan struct{})}
	ctx, pt.cancel = context.WithCancel(ctx)
	go pt.loop(ctx)
	return pt, nil
}

// watchFor returns a channel that receives the commit time once every
// partition reached target.
func (pt *passThrough) watchFor(target map[int]int64) <-chan time.Time {
	w := &watch{target: target, at: make(chan time.Time, 1)}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if reached(pt.next, target) {
		w.at <- time.Now()
		return w.at
	}
	pt.watches = append(pt.watches, w)
	return w.at
}

func (pt *passThrough) fail(err error) {
	pt.mu.Lock()
	if pt.err == nil {
		pt.err = err
	}
	pt.mu.Unlock()
}

func (pt *passThrough) failure() error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.err
}

func (pt *passThrough) loop(ctx context.Context) {
	defer close(pt.done)
	for ctx.Err() == nil {
		gen, err := pt.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkaio.ErrGroupClosed) {
				return
			}
			_ = sleep(ctx, 100*time.Millisecond)
			continue
		}
		if !gen.Active() {
			continue
		}
		pt.mu.Lock()
		if pt.tActive.IsZero() {
			pt.tActive = time.Now()
		}
		pt.mu.Unlock()
		ended := make(chan struct{})
		gen.Run(func(gctx context.Context) {
			defer close(ended)
			if err := pt.generation(gctx, gen); err != nil && gctx.Err() == nil {
				pt.fail(err)
			}
		})
		<-ended
	}
}

func (pt *passThrough) generation(ctx context.Context, gen *kafkaio.Generation) error {
	r := pt.r
	input := r.cfg.Kafka.Topics.Input
	f, err := kafkaio.NewFetcher(ctx, r.fetcherConfig(), gen.Assignments())
	if err != nil {
		return err
	}
	defer f.Close()
	maxEvents, maxWait := r.cfg.Batch.MaxEvents, r.cfg.Batch.MaxWait
	for ctx.Err() == nil {
		// The same batching as the service, idle-poll included.
		batch, err := pipeline.Collect(ctx, f, maxEvents, maxWait, 500*time.Millisecond, nil)
		if len(batch) == 0 {
			if err != nil && ctx.Err() == nil && !errors.Is(err, pipeline.ErrIdle) {
				return err
			}
			continue
		}
		pt.mu.Lock()
		if pt.tFirst.IsZero() {
			pt.tFirst, pt.firstN, pt.cpuFirst = time.Now(), len(batch), processCPU()
		}
		pt.mu.Unlock()
		out := make([]kafkaio.Message, len(batch))
		offsets := map[int]int64{}
		for i, m := range batch {
			out[i] = kafkaio.Message{Topic: r.outTopic, Key: m.Key, Value: m.Value}
			if m.Offset+1 > offsets[m.Partition] {
				offsets[m.Partition] = m.Offset + 1
			}
		}
		if err := retry(ctx, func() error { return pt.pub.Publish(ctx, out...) }); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if err := retry(ctx, func() error {
			return gen.Commit(ctx, map[string]map[int]int64{input: offsets})
		}); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		now := time.Now()
		pt.mu.Lock()
		pt.batches++
		pt.published += int64(len(out))
		for p, o := range offsets {
			pt.next[p] = max(pt.next[p], o)
		}
		keep := pt.watches[:0]
		for _, w := range pt.watches {
			if reached(pt.next, w.target) {
				w.at <- now
			} else {
				keep = append(keep, w)
			}
		}
		pt.watches = keep
		pt.mu.Unlock()
	}
	return nil
}

// retry runs fn up to 5 times with a short backoff.
func retry(ctx context.Context, fn func() error) error {
	var err error
	delay := 50 * time.Millisecond
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil || ctx.Err() != nil {
			return err
		}
		if sleep(ctx, delay) != nil {
			return err
		}
		delay *= 2
	}
	return err
}

func (pt *passThrough) stop() {
	pt.cancel()
	closed := make(chan struct{})
	go func() { _ = pt.group.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
	}
	select {
	case <-pt.done:
	case <-time.After(5 * time.Second):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = pt.pub.Close(ctx)
}

// passThroughPhases runs the baseline over the same backlog h1 (throughput),
// lets it catch up to h2 (the repair latency phase's events), then at a
// fixed rate (latency).
func (r *runner) passThroughPhases(ctx context.Context, h1, h2 map[int]int64) error {
	N := int64(r.opt.Events)
	r.progress("pass-through: consuming the same %d events", N)
	tRun := time.Now()
	pt, err := r.startPassThrough(ctx)
	if err != nil {
		return err
	}
	defer pt.stop()
	var tEnd time.Time
	var cpuEnd time.Duration
	deadline := time.NewTimer(10*time.Minute + time.Duration(N)*time.Millisecond)
	defer deadline.Stop()
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	at := pt.watchFor(h1)
wait:
	for {
		select {
		case tEnd = <-at:
			cpuEnd = processCPU()
			break wait
		case <-check.C:
			if err := pt.failure(); err != nil {
				return err
			}
		case <-deadline.C:
			return fmt.Errorf("%w: pass-through did not consume %d events", errTimeout, N)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pt.mu.Lock()
	tActive, tFirst, firstN, batches, cpuFirst := pt.tActive, pt.tFirst, int64(pt.firstN), pt.batches, pt.cpuFirst
	pt.mu.Unlock()
	tp := Throughput{
		Events:           r.opt.Events,
		FirstBatchEvents: int(firstN),
		Seconds:          tEnd.Sub(tFirst).Seconds(),
		EventsPerSec:     float64(N-firstN) / tEnd.Sub(tFirst).Seconds(),
		FromActivePerSec: float64(N) / tEnd.Sub(tActive).Seconds(),
		FromStartPerSec:  float64(N) / tEnd.Sub(tRun).Seconds(),
		JoinSeconds:      tActive.Sub(tRun).Seconds(),
		Batches:          batches,
		Commits:          batches,
		Records:          N,
		Verified:         true,
		CPUSeconds:       (cpuEnd - cpuFirst).Seconds(),
	}
	tp.CPUUtilization = tp.CPUSeconds / (tp.Seconds * float64(r.report.Machine.NumCPU))
	if batches > 0 {
		tp.AvgBatch = float64(N) / float64(batches)
	}
	r.report.PassThrough = tp
	r.progress("pass-through: %.0f events/s from the first batch (%.0f from start incl. %.2fs group join); %d batches of %.0f",
		tp.EventsPerSec, tp.FromStartPerSec, tp.JoinSeconds, tp.Batches, tp.AvgBatch)
	if r.opt.SkipLatency {
		return nil
	}
	// Catch up with the events the repair latency phase appended.
	select {
	case <-pt.watchFor(h2):
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%w: pass-through did not catch up", errTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	var kBase int64
	for _, h := range h2 {
		kBase += h
	}
	lat, err := r.latency(ctx, latencySpec{
		name: "pass-through", prefix: "lp-", kBase: kBase, outTopic: r.outTopic,
		ids:      eventIDOf,
		expected: func(int64) int32 { return 1 },
		alive:    pt.failure,
	})
	if err != nil {
		return err
	}
	r.report.PassThroughLatency = lat
	return nil
}
