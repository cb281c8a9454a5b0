package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

// passThrough is the baseline pipeline: consume → produce → commit, with the
// service's group, fetcher, batching and producer settings and the writer's
// overlap of collecting with publishing, and no repair logic (no decoding,
// no state, no journal).
type passThrough struct {
	r     *runner
	group *kafkaio.Group
	pub   *kafkaio.Producer

	mu        sync.Mutex
	next      map[int]int64 // committed next offsets of the input topic
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
	gc.GroupID, gc.Topics, gc.InstanceName = r.blGroup, []string{c.Kafka.Topics.Input}, "loadgen-passthrough"
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

// generation consumes the generation's partitions the way the service's
// writer does (pipeline.Writer.Run): batches are collected like the
// writer's, and a sink goroutine publishes each batch and then commits its
// offsets, in order, while the next batch is collected; collecting waits
// for more records only while the sink is busy. Only the repair work is
// missing.
func (pt *passThrough) generation(ctx context.Context, gen *kafkaio.Generation) error {
	r := pt.r
	f, err := kafkaio.NewFetcher(ctx, r.fetcherConfig(), gen.Assignments())
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan []kafkaio.Message, 1)
	var inFlight atomic.Int32
	var sinkErr error
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		for batch := range jobs {
			if sinkErr == nil {
				if sinkErr = pt.forward(ctx, gen, batch); sinkErr != nil {
					cancel()
				}
			}
			inFlight.Add(-1)
		}
	}()
	err = pt.collect(ctx, f, jobs, func() bool { return inFlight.Load() > 0 }, &inFlight)
	close(jobs)
	<-sinkDone
	if sinkErr != nil {
		return sinkErr
	}
	return err
}

// collect batches records like the writer and hands them to the sink
// until ctx ends.
func (pt *passThrough) collect(ctx context.Context, f *kafkaio.Fetcher, jobs chan<- []kafkaio.Message, busy func() bool, inFlight *atomic.Int32) error {
	maxEvents, maxWait := pt.r.cfg.Batch.MaxEvents, pt.r.cfg.Batch.MaxWait
	for ctx.Err() == nil {
		batch, err := pipeline.Collect(ctx, f, maxEvents, maxWait, 500*time.Millisecond, busy)
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
		inFlight.Add(1)
		jobs <- batch
	}
	return nil
}

// forward publishes a batch to the output topic and commits its offsets.
func (pt *passThrough) forward(ctx context.Context, gen *kafkaio.Generation, batch []kafkaio.Message) error {
	out := make([]kafkaio.Message, len(batch))
	offsets := map[int]int64{}
	for i, m := range batch {
		out[i] = kafkaio.Message{Topic: pt.r.outTopic, Key: m.Key, Value: m.Value}
		if m.Offset+1 > offsets[m.Partition] {
			offsets[m.Partition] = m.Offset + 1
		}
	}
	if err := retry(ctx, func() error { return pt.pub.Publish(ctx, out...) }); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := retry(ctx, func() error {
		return gen.Commit(ctx, map[string]map[int]int64{pt.r.cfg.Kafka.Topics.Input: offsets})
	}); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	pt.committed(offsets, len(out))
	return nil
}

// committed records a committed batch and fires the watches it satisfies.
func (pt *passThrough) committed(offsets map[int]int64, n int) {
	now := time.Now()
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.batches++
	pt.published += int64(n)
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
	r.progress("pass-through: consuming the same %d events", r.opt.Events)
	tRun := time.Now()
	pt, err := r.startPassThrough(ctx)
	if err != nil {
		return err
	}
	defer pt.stop()
	if err := r.passThroughThroughput(ctx, pt, tRun, h1); err != nil {
		return err
	}
	if r.opt.SkipLatency {
		return nil
	}
	// Catch up with the events the repair latency phase appended.
	if _, err := pt.wait(ctx, h2, 2*time.Minute); err != nil {
		return fmt.Errorf("catching up: %w", err)
	}
	lat, err := r.latency(ctx, latencySpec{
		name: "pass-through", prefix: "lp-", kBase: total(h2), outTopic: r.outTopic,
		ids:      eventIDOf,
		expected: func(int64) int32 { return 1 },
		alive:    pt.failure,
	})
	if err != nil {
		return err
	}
	r.rep.PassThroughLatency = lat
	return nil
}

// passThroughThroughput times the baseline until it has committed the
// backlog h1.
func (r *runner) passThroughThroughput(ctx context.Context, pt *passThrough, tRun time.Time, h1 map[int]int64) error {
	N := int64(r.opt.Events)
	tEnd, err := pt.wait(ctx, h1, phaseTimeout(N))
	if err != nil {
		return err
	}
	cpuEnd := processCPU()
	pt.mu.Lock()
	tFirst, firstN, batches, cpuFirst := pt.tFirst, pt.firstN, pt.batches, pt.cpuFirst
	pt.mu.Unlock()
	tp := throughput(N, tRun, tFirst, tEnd, firstN, cpuEnd-cpuFirst)
	tp.Batches, tp.OffsetCommits, tp.Records, tp.Verified = batches, batches, N, true
	if batches > 0 {
		tp.AvgBatch = float64(N) / float64(batches)
	}
	r.rep.PassThrough = tp
	r.progress("pass-through: %.0f events/s from the first batch (%.0f from the start); %d batches of %.0f",
		tp.EventsPerSec, tp.FromStartPerSec, tp.Batches, tp.AvgBatch)
	return nil
}

// wait returns the time of the commit at which every partition reached
// target.
func (pt *passThrough) wait(ctx context.Context, target map[int]int64, timeout time.Duration) (time.Time, error) {
	at := pt.watchFor(target)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case t := <-at:
			return t, nil
		case <-check.C:
			if err := pt.failure(); err != nil {
				return time.Time{}, err
			}
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%w: pass-through did not consume %d events within %s", ErrTimeout, total(target), timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
