package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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
	// outTopic is tailed; ids reports the event ids a record of it names.
	outTopic string
	ids      func(m kafkaio.Message, fn func(id []byte, at int64))
	// expected is how many output records name event k (one per MV of its
	// table for the repair pipeline, one for pass-through).
	expected func(k int64) int32
	// alive reports a failure of the pipeline under test.
	alive func() error
	// stats, when set, returns the pipeline's cumulative batch figures.
	stats func() batchStats
}

// batchStats are cumulative batch figures of the service's metrics.
type batchStats struct {
	batches, events, processSecs, publishSecs float64
}

// producers is the number of concurrent publishers of a latency phase.
// Events of one table always go through the same one, so per-key order is
// kept.
const producers = 6

// latency produces Rate events/s for Duration, tails outTopic and returns
// the produce → read latency percentiles.
func (r *runner) latency(ctx context.Context, sp latencySpec) (Latency, error) {
	rate, dur := r.opt.Rate, r.opt.Duration
	n := int(float64(rate) * dur.Seconds())
	lat := Latency{Rate: rate, Seconds: dur.Seconds()}
	if n <= 0 {
		return lat, nil
	}
	sent := make([]atomic.Int64, n)    // produce time, unix ns
	seen := make([]atomic.Int32, n)    // records read naming the event
	recv := make([]atomic.Int64, n)    // time the last expected record was read
	acked := make([]atomic.Int64, n)   // time Publish returned, unix ns
	batchAt := make([]atomic.Int64, n) // the record's "at" (ms): when the writer's batch was decided
	want := make([]int32, n)
	for i := range want {
		want[i] = sp.expected(sp.kBase + int64(i))
	}
	var complete atomic.Int64

	// Tail the output topic from its current end.
	start, err := r.hwm(ctx, sp.outTopic)
	if err != nil {
		return lat, err
	}
	fcfg := r.fetcherConfig()
	fcfg.MaxWait = r.opt.TailMaxWait
	tctx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	tail, err := kafkaio.NewTopicTail(tctx, fcfg, sp.outTopic, start)
	if err != nil {
		return lat, err
	}
	defer tail.Close()
	var tailWG sync.WaitGroup
	tailWG.Add(1)
	go func() {
		defer tailWG.Done()
		prefix := []byte(sp.prefix)
		for {
			m, err := tail.Fetch(tctx)
			if err != nil {
				if tctx.Err() != nil {
					return
				}
				continue
			}
			now := time.Now().UnixNano()
			sp.ids(m, func(id []byte, at int64) {
				rest, ok := bytes.CutPrefix(id, prefix)
				if !ok {
					return
				}
				i, err := strconv.Atoi(string(rest))
				if err != nil || i < 0 || i >= n {
					return
				}
				if at > 0 {
					batchAt[i].CompareAndSwap(0, at)
				}
				if seen[i].Add(1) == want[i] {
					recv[i].Store(now)
					complete.Add(1)
				}
			})
		}
	}()
	// Let the tail's readers connect before the first event.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return lat, err
	}

	var before batchStats
	if sp.stats != nil {
		before = sp.stats()
	}
	r.progress("%s latency: producing %d events/s for %s", sp.name, rate, dur)
	input := r.cfg.Kafka.Topics.Input
	chans := make([]chan int, producers)
	for i := range chans {
		chans[i] = make(chan int, n)
	}
	var pubMu sync.Mutex
	var pubErr error
	setErr := func(err error) {
		pubMu.Lock()
		if pubErr == nil {
			pubErr = err
		}
		pubMu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range chans {
		wg.Add(1)
		go func(ch chan int) {
			defer wg.Done()
			for i := range ch {
				batch := []int{i}
			drain:
				for len(batch) < 256 {
					select {
					case j, ok := <-ch:
						if !ok {
							break drain
						}
						batch = append(batch, j)
					default:
						break drain
					}
				}
				msgs := make([]kafkaio.Message, len(batch))
				for x, j := range batch {
					m, err := r.wl.message(input, sp.kBase+int64(j), sp.prefix+strconv.Itoa(j))
					if err != nil {
						setErr(err)
						return
					}
					msgs[x] = m
				}
				now := time.Now().UnixNano()
				for _, j := range batch {
					sent[j].Store(now)
				}
				if err := r.producer.Publish(ctx, msgs...); err != nil {
					setErr(err)
				}
				done := time.Now().UnixNano()
				for _, j := range batch {
					acked[j].Store(done)
				}
			}
		}(chans[w])
	}
	pStart := time.Now()
	tick := time.NewTicker(time.Millisecond)
	next := 0
	for next < n && ctx.Err() == nil {
		<-tick.C
		due := min(n, int(time.Since(pStart).Seconds()*float64(rate)))
		for ; next < due; next++ {
			k := sp.kBase + int64(next)
			chans[r.wl.tableOf(k)%producers] <- next
		}
	}
	tick.Stop()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	produceSecs := time.Since(pStart).Seconds()
	if err := ctx.Err(); err != nil {
		return lat, err
	}
	if pubErr != nil {
		return lat, fmt.Errorf("%s latency: produce: %w", sp.name, pubErr)
	}
	// Wait for the stragglers.
	deadline := time.Now().Add(30 * time.Second)
	for complete.Load() < int64(n) && time.Now().Before(deadline) {
		if err := sp.alive(); err != nil {
			return lat, err
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return lat, err
		}
	}
	stopTail()
	tailWG.Wait()
	if sp.stats != nil {
		after := sp.stats()
		if b := after.batches - before.batches; b > 0 {
			lat.Batches = int(b)
			lat.AvgBatch = (after.events - before.events) / b
			lat.ProcessMsPerBatch = 1000 * (after.processSecs - before.processSecs) / b
			lat.PublishMsPerBatch = 1000 * (after.publishSecs - before.publishSecs) / b
		}
	}

	ds := make([]time.Duration, 0, n)
	var ack, toBatch []time.Duration
	for i := 0; i < n; i++ {
		s := sent[i].Load()
		if rcv := recv[i].Load(); s > 0 && rcv > 0 {
			ds = append(ds, time.Duration(rcv-s))
		}
		if a := acked[i].Load(); s > 0 && a > 0 {
			ack = append(ack, time.Duration(a-s))
		}
		if at := batchAt[i].Load(); s > 0 && at > 0 {
			toBatch = append(toBatch, time.Duration(at*int64(time.Millisecond)-s))
		}
	}
	lat.Produced = n
	lat.Measured = len(ds)
	lat.Missing = n - len(ds)
	lat.AchievedRate = float64(n) / produceSecs
	fillPercentiles(&lat, ds)
	var part Latency
	fillPercentiles(&part, ack)
	lat.ProduceAckP50Ms, lat.ProduceAckP99Ms = part.P50Ms, part.P99Ms
	if len(toBatch) > 0 {
		part = Latency{}
		fillPercentiles(&part, toBatch)
		lat.ToBatchP50Ms, lat.ToBatchP99Ms = part.P50Ms, part.P99Ms
	}
	if lat.Missing > 0 {
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("%s latency: %d of %d events never fully reached %s within 30s",
			sp.name, lat.Missing, n, sp.outTopic))
	}
	r.progress("%s latency: p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms over %d events (%.0f events/s achieved)",
		sp.name, lat.P50Ms, lat.P90Ms, lat.P99Ms, lat.MaxMs, lat.Measured, lat.AchievedRate)
	return lat, nil
}

// fillPercentiles sets the nearest-rank percentiles of ds.
func fillPercentiles(l *Latency, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	l.P50Ms, l.P90Ms, l.P99Ms = pct(0.50), pct(0.90), pct(0.99)
	l.MaxMs = ms(ds[len(ds)-1])
	l.MeanMs = ms(sum / time.Duration(len(ds)))
}
