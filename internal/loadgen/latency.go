package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// latencySpec describes one latency phase.
type latencySpec struct {
	name   string
	prefix string // event id prefix of this phase's events
	kBase  int64  // stream index of the phase's first event
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
}

func newProbe(sp latencySpec, n int) *probe {
	p := &probe{n: n, sent: make([]atomic.Int64, n), acked: make([]atomic.Int64, n), seen: make([]atomic.Int32, n),
		recv: make([]atomic.Int64, n), batchAt: make([]atomic.Int64, n), want: make([]int32, n)}
	for i := range p.want {
		p.want[i] = sp.expected(sp.kBase + int64(i))
	}
	return p
}

// latency produces Rate events/s for Duration, tails outTopic and returns
// the produce → read latency percentiles.
func (r *runner) latency(ctx context.Context, sp latencySpec) (Latency, error) {
	rate, dur := r.opt.Rate, r.opt.Duration
	n := int(float64(rate) * dur.Seconds())
	lat := Latency{Rate: rate, Seconds: dur.Seconds()}
	if n <= 0 {
		return lat, nil
	}
	p := newProbe(sp, n)
	stopTail, err := r.tail(ctx, sp, p)
	if err != nil {
		return lat, err
	}
	defer stopTail()
	// Let the tail's readers connect before the first event.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return lat, err
	}
	r.progress("%s latency: producing %d events/s for %s", sp.name, rate, dur)
	produceSecs, err := r.producePaced(ctx, sp, p)
	if err != nil {
		return lat, err
	}
	if err := p.wait(ctx, sp.alive); err != nil {
		return lat, err
	}
	stopTail()
	lat = p.summary(lat, produceSecs)
	if lat.Missing > 0 {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("%s latency: %d of %d events never fully reached %s within %s",
			sp.name, lat.Missing, n, sp.outTopic, stragglers))
	}
	r.progress("%s latency: p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms over %d events (%.0f events/s achieved)",
		sp.name, lat.P50Ms, lat.P90Ms, lat.P99Ms, lat.MaxMs, lat.Measured, lat.AchievedRate)
	return lat, nil
}

// tail reads outTopic from its current end and records, for every record,
// the events it names. The returned stop ends the tail and waits for it.
func (r *runner) tail(ctx context.Context, sp latencySpec, p *probe) (stop func(), err error) {
	start, err := r.hwm(ctx, sp.outTopic)
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

// producePaced produces the phase's events at Rate through the publishers
// and returns how long producing took.
func (r *runner) producePaced(ctx context.Context, sp latencySpec, p *probe) (float64, error) {
	chans := make([]chan int, producers)
	for i := range chans {
		chans[i] = make(chan int, p.n)
	}
	var errMu sync.Mutex
	var pubErr error
	setErr := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if pubErr == nil {
			pubErr = err
		}
	}
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.publisher(ctx, sp, p, ch); err != nil {
				setErr(err)
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for next := 0; next < p.n && ctx.Err() == nil; {
		<-tick.C
		due := min(p.n, int(time.Since(start).Seconds()*float64(r.opt.Rate)))
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
	input := r.cfg.Kafka.Topics.Input
	var failed error
	for i := range ch {
		if failed != nil {
			continue
		}
		batch := drain(ch, []int{i}, 256)
		msgs := make([]kafkaio.Message, len(batch))
		for x, j := range batch {
			m, err := r.wl.message(input, sp.kBase+int64(j), sp.prefix+strconv.Itoa(j))
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

// wait waits up to stragglers for every event's output.
func (p *probe) wait(ctx context.Context, alive func() error) error {
	deadline := time.Now().Add(stragglers)
	for p.complete.Load() < int64(p.n) && time.Now().Before(deadline) {
		if err := alive(); err != nil {
			return err
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// summary fills lat's percentiles from the probe.
func (p *probe) summary(lat Latency, produceSecs float64) Latency {
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
	if produceSecs > 0 {
		lat.AchievedRate = float64(p.n) / produceSecs
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
