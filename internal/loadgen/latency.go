package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// latencySpec describes one pipeline's side of the latency phase.
type latencySpec struct {
	name   string
	topic  string // the input topic its events are produced to
	prefix string // event id prefix of its events
	kBase  int64  // stream index of its first event
	// outTopic is tailed; ids reports the event ids a record of it names
	// (and the record's "at", or 0).
	outTopic string
	ids      func(m kafkaio.Message, fn func(id []byte, at int64))
	// expected is how many output records name event k (one per MV of its
	// table for the repair pipeline, one for pass-through).
	expected func(k int64) int32
	// alive reports a failure of the pipeline under test.
	alive func() error
}

// producers is the number of concurrent publishers of a latency phase.
// Events of one table always go through the same one, so per-key order is
// kept.
const producers = 6

// stragglers bounds the wait for the last events' output after producing.
const stragglers = 30 * time.Second

// latencySlices is the number of slices each pipeline's latency phase is
// cut into; the slices of the two pipelines alternate.
const latencySlices = 5

// sliceWait bounds the wait for one slice's output before the next slice.
const sliceWait = 5 * time.Second

// probe holds what a latency phase learns about each of its n events.
// Every slot is written by one goroutine and read after they ended.
type probe struct {
	n        int
	sent     []atomic.Int64 // produce time, unix ns
	acked    []atomic.Int64 // time Publish returned, unix ns
	seen     []atomic.Int32 // output records read naming the event
	recv     []atomic.Int64 // time the last expected record was read
	batchAt  []atomic.Int64 // the record's "at" (ms): when the writer's batch was decided
	want     []int32
	complete atomic.Int64 // events whose every expected record was read
	// produceSecs is the time spent producing (the slices' sum).
	produceSecs float64
}

func newProbe(sp latencySpec, n int) *probe {
	p := &probe{n: n, sent: make([]atomic.Int64, n), acked: make([]atomic.Int64, n), seen: make([]atomic.Int32, n),
		recv: make([]atomic.Int64, n), batchAt: make([]atomic.Int64, n), want: make([]int32, n)}
	for i := range p.want {
		p.want[i] = sp.expected(sp.kBase + int64(i))
	}
	return p
}

// latencyPhase measures both pipelines at Rate events/s for Duration each.
// Both run the whole time, each on its own input topic (the service on its
// input, the baseline on a copy topic of its own), and the load goes to one
// of them at a time, in alternating slices: the two see the same other work
// on the machine. Each slice waits for its output before the next starts.
func (r *runner) latencyPhase(ctx context.Context) error {
	n := int(float64(r.opt.Rate) * r.opt.Duration.Seconds())
	if n <= 0 {
		return nil
	}
	s, pt, err := r.startIdlePipelines(ctx)
	if s != nil {
		defer func() { _ = s.stop(r.cfg.ShutdownTimeout + 5*time.Second) }()
	}
	if pt != nil {
		defer pt.stop()
	}
	if err != nil {
		return err
	}
	sides := []*latencySide{
		{spec: latencySpec{name: "repair", topic: r.cfg.Kafka.Topics.Input, prefix: "lr-", kBase: int64(r.opt.Rounds) * int64(r.opt.Events),
			outTopic: r.cfg.Kafka.Topics.EditLog, ids: editLogCauses, alive: s.svc.Live,
			expected: func(k int64) int32 { return int32(r.wl.mvsOn[r.wl.tableOf(k)]) }}},
		{spec: latencySpec{name: "pass-through", topic: r.ptInput, prefix: "lp-", outTopic: r.outTopic, ids: eventIDOf, alive: pt.failure,
			expected: func(int64) int32 { return 1 }}},
	}
	for _, sd := range sides {
		sd.probe = newProbe(sd.spec, n)
		stop, err := r.tail(ctx, sd.spec, sd.probe)
		if err != nil {
			return err
		}
		defer stop()
		sd.stopTail = stop
	}
	// Let the tails' readers connect before the first event.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	from := s.rec.mark()
	r.progress("latency: %d events/s for %s per pipeline, in %d alternating slices each", r.opt.Rate, r.opt.Duration, latencySlices)
	if err := r.slices(ctx, sides, n); err != nil {
		return err
	}
	for _, sd := range sides {
		if err := sd.probe.waitFor(ctx, int64(n), stragglers, sd.spec.alive); err != nil {
			return err
		}
		sd.stopTail()
	}
	r.rep.RepairLatency, r.rep.PassThroughLatency = r.latencyOf(sides[0]), r.latencyOf(sides[1])
	ph := s.rec.between(from, s.rec.mark())
	r.rep.LatencyBatches = ph.figures()
	if note := ph.retryNote(); note != "" {
		r.rep.Notes = append(r.rep.Notes, "latency: "+note)
	}
	return nil
}

// latencySide is one pipeline in the latency phase.
type latencySide struct {
	spec     latencySpec
	probe    *probe
	stopTail func()
}

// startIdlePipelines starts the service and the baseline on their input
// topics and waits until both hold their partitions.
func (r *runner) startIdlePipelines(ctx context.Context) (*svcRun, *passThrough, error) {
	s, err := r.openService(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.start(ctx)
	pt, err := r.startPassThrough(ctx, r.ptInput, r.blGroup+"-latency")
	if err != nil {
		return s, nil, err
	}
	if err := pt.waitActive(ctx); err != nil {
		return s, pt, err
	}
	deadline := time.Now().Add(time.Minute)
	for !s.svc.Active() {
		if err := s.svc.Live(); err != nil {
			return s, pt, err
		}
		if time.Now().After(deadline) {
			return s, pt, fmt.Errorf("%w: the service did not become the writer within a minute", ErrTimeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return s, pt, err
		}
	}
	return s, pt, nil
}

// slices produces each side's n events in latencySlices slices, the sides
// taking turns.
func (r *runner) slices(ctx context.Context, sides []*latencySide, n int) error {
	for j := 0; j < latencySlices; j++ {
		lo, hi := j*n/latencySlices, (j+1)*n/latencySlices
		for _, sd := range sides {
			secs, err := r.producePaced(ctx, sd.spec, sd.probe, lo, hi)
			sd.probe.produceSecs += secs
			if err != nil {
				return err
			}
			// The slice's output before the other side's load; a slow
			// straggler is waited for at the end.
			if err := sd.probe.waitFor(ctx, int64(hi), sliceWait, sd.spec.alive); err != nil {
				return err
			}
		}
	}
	return nil
}

// latencyOf summarises one side and notes missing events.
func (r *runner) latencyOf(sd *latencySide) Latency {
	lat := sd.probe.summary(Latency{Rate: r.opt.Rate, Seconds: r.opt.Duration.Seconds()})
	if lat.Missing > 0 {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("%s latency: %d of %d events never fully reached %s within %s",
			sd.spec.name, lat.Missing, lat.Produced, sd.spec.outTopic, stragglers))
	}
	r.progress("%s latency: p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms over %d events (%.0f events/s achieved)",
		sd.spec.name, lat.P50Ms, lat.P90Ms, lat.P99Ms, lat.MaxMs, lat.Measured, lat.AchievedRate)
	return lat
}

// tail reads outTopic from its current end and records, for every record,
// the events it names. The returned stop ends the tail and waits for it.
func (r *runner) tail(ctx context.Context, sp latencySpec, p *probe) (stop func(), err error) {
	start, err := r.admin.HighWatermarks(ctx, sp.outTopic)
	if err != nil {
		return nil, err
	}
	fcfg := r.fetcherConfig()
	fcfg.MaxWait = r.opt.TailMaxWait
	tctx, cancel := context.WithCancel(ctx)
	t, err := kafkaio.NewTopicTail(tctx, fcfg, sp.outTopic, start)
	if err != nil {
		cancel()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		prefix := []byte(sp.prefix)
		for {
			m, err := t.Fetch(tctx)
			if err != nil {
				if tctx.Err() != nil {
					return
				}
				continue
			}
			now := time.Now().UnixNano()
			sp.ids(m, func(id []byte, at int64) { p.read(prefix, id, at, now) })
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			_ = t.Close()
		})
	}, nil
}

// read notes that a record naming event id was read at now (unix ns).
func (p *probe) read(prefix, id []byte, at, now int64) {
	rest, ok := bytes.CutPrefix(id, prefix)
	if !ok {
		return
	}
	i, err := strconv.Atoi(string(rest))
	if err != nil || i < 0 || i >= p.n {
		return
	}
	if at > 0 {
		p.batchAt[i].CompareAndSwap(0, at)
	}
	if p.seen[i].Add(1) == p.want[i] {
		p.recv[i].Store(now)
		p.complete.Add(1)
	}
}

// producePaced produces events [lo, hi) of the side at Rate through the
// publishers and returns how long producing took.
func (r *runner) producePaced(ctx context.Context, sp latencySpec, p *probe, lo, hi int) (float64, error) {
	chans := make([]chan int, producers)
	for i := range chans {
		chans[i] = make(chan int, hi-lo)
	}
	var errMu sync.Mutex
	var pubErr error
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.publisher(ctx, sp, p, ch); err != nil {
				errMu.Lock()
				pubErr = cmp.Or(pubErr, err)
				errMu.Unlock()
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for next := lo; next < hi && ctx.Err() == nil; {
		<-tick.C
		due := min(hi, lo+int(time.Since(start).Seconds()*float64(r.opt.Rate)))
		for ; next < due; next++ {
			chans[r.wl.tableOf(sp.kBase+int64(next))%producers] <- next
		}
	}
	tick.Stop()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return secs, err
	}
	if pubErr != nil {
		return secs, fmt.Errorf("%s latency: produce: %w", sp.name, pubErr)
	}
	return secs, nil
}

// publisher publishes the events sent on ch, as many per call as are
// queued (up to 256), and records their produce and acknowledgement times.
// It drains ch even after an error.
func (r *runner) publisher(ctx context.Context, sp latencySpec, p *probe, ch chan int) error {
	var failed error
	for i := range ch {
		if failed != nil {
			continue
		}
		batch := drain(ch, []int{i}, 256)
		msgs := make([]kafkaio.Message, len(batch))
		for x, j := range batch {
			m, err := r.wl.message(sp.topic, sp.kBase+int64(j), sp.prefix+strconv.Itoa(j))
			if err != nil {
				failed = err
				break
			}
			msgs[x] = m
		}
		if failed != nil {
			continue
		}
		now := time.Now().UnixNano()
		for _, j := range batch {
			p.sent[j].Store(now)
		}
		if err := r.producer.Publish(ctx, msgs...); err != nil {
			failed = err
			continue
		}
		done := time.Now().UnixNano()
		for _, j := range batch {
			p.acked[j].Store(done)
		}
	}
	return failed
}

// drain appends what ch holds now to batch, up to limit elements.
func drain(ch chan int, batch []int, limit int) []int {
	for len(batch) < limit {
		select {
		case j, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// waitFor waits up to timeout until count events are complete (it returns
// nil when they are not: summary counts them as missing).
func (p *probe) waitFor(ctx context.Context, count int64, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	for p.complete.Load() < count && time.Now().Before(deadline) {
		if err := alive(); err != nil {
			return err
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// summary fills lat's percentiles from the probe.
func (p *probe) summary(lat Latency) Latency {
	ds := make([]time.Duration, 0, p.n)
	var ack, toBatch []time.Duration
	for i := 0; i < p.n; i++ {
		s := p.sent[i].Load()
		if s == 0 {
			continue
		}
		if rcv := p.recv[i].Load(); rcv > 0 {
			ds = append(ds, time.Duration(rcv-s))
		}
		if a := p.acked[i].Load(); a > 0 {
			ack = append(ack, time.Duration(a-s))
		}
		if at := p.batchAt[i].Load(); at > 0 {
			toBatch = append(toBatch, time.Duration(at*int64(time.Millisecond)-s))
		}
	}
	lat.Produced = p.n
	lat.Measured = len(ds)
	lat.Missing = p.n - len(ds)
	if p.produceSecs > 0 {
		lat.AchievedRate = float64(p.n) / p.produceSecs
	}
	var all, a, b Percentiles
	all.fill(ds)
	a.fill(ack)
	b.fill(toBatch)
	lat.P50Ms, lat.P90Ms, lat.P99Ms, lat.MaxMs, lat.MeanMs = all.P50, all.P90, all.P99, all.Max, all.Mean
	lat.ProduceAckP50Ms, lat.ProduceAckP99Ms = a.P50, a.P99
	lat.ToBatchP50Ms, lat.ToBatchP99Ms = b.P50, b.P99
	return lat
}
