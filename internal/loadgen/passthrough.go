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
	r      *runner
	topic  string // the input topic it consumes
	group  *kafkaio.Group
	pub    *kafkaio.Producer
	active atomic.Bool // a generation holds the partitions and fetches

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

// startPassThrough starts the baseline's group on topic: it consumes from
// the group's committed offsets (the start of the topic at first).
func (r *runner) startPassThrough(ctx context.Context, topic, groupID string) (*passThrough, error) {
	gc := service.GroupConfig(r.cfg, r.brokers, zerolog.Nop())
	gc.GroupID, gc.Topics, gc.InstanceName = groupID, []string{topic}, "loadgen-passthrough"
	group, err := kafkaio.NewGroup(gc)
	if err != nil {
		return nil, err
	}
	pub, err := r.newProducer()
	if err != nil {
		_ = group.Close()
		return nil, err
	}
	pt := &passThrough{r: r, topic: topic, group: group, pub: pub, next: map[int]int64{}, done: make(chan struct{})}
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
	pt.active.Store(true)
	defer pt.active.Store(false)
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
		// A fetch error behind the batch's records: the batch goes on (as
		// the writer's does), and the fetcher retries that partition.
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
		return gen.Commit(ctx, map[string]map[int]int64{pt.topic: offsets})
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

// passRound times the baseline over one backlog: from the group's
// committed offsets until it has committed hwm (n events).
func (r *runner) passRound(ctx context.Context, round int, hwm map[int]int64, n int64) (Throughput, error) {
	tRun := time.Now()
	pt, err := r.startPassThrough(ctx, r.cfg.Kafka.Topics.Input, r.blGroup)
	if err != nil {
		return Throughput{}, err
	}
	defer pt.stop()
	tEnd, err := pt.wait(ctx, hwm, phaseTimeout(n))
	if err != nil {
		return Throughput{}, err
	}
	cpuEnd := processCPU()
	pt.mu.Lock()
	tFirst, firstN, batches, cpuFirst := pt.tFirst, pt.firstN, pt.batches, pt.cpuFirst
	pt.mu.Unlock()
	tp := throughput(n, tRun, tFirst, tEnd, firstN, cpuEnd-cpuFirst)
	tp.Batches, tp.OffsetCommits, tp.Records, tp.Verified = batches, batches, n, true
	if batches > 0 {
		tp.AvgBatch = float64(n) / float64(batches)
	}
	r.progress("round %d: pass-through %.0f events/s from the first batch (%.0f from the start); %d batches of %.0f",
		round, tp.EventsPerSec, tp.FromStartPerSec, tp.Batches, tp.AvgBatch)
	return tp, nil
}

// waitActive waits until the baseline holds its partitions.
func (pt *passThrough) waitActive(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for !pt.active.Load() {
		if err := pt.failure(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the pass-through group got no partitions within a minute", ErrTimeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
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
