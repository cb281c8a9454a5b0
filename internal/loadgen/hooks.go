package loadgen

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mvrepair/mvrepair/internal/pipeline"
)

// recorder is the pipeline hook of a service under test: it keeps one
// entry per committed writer batch and counts publishes, offset commits and
// retries. The hooks run on the writer's goroutines, so they only append
// and count (the records' encoded bytes come with the report: the writer
// encoded them once).
type recorder struct {
	notify chan struct{} // a batch was recorded (capacity 1)

	mu      sync.Mutex
	batches []batchStat
	events  int64 // input records of every batch
	cum     counters
	// cpuFirst is the process CPU time at the first batch.
	cpuFirst time.Duration
}

// counters are the recorder's running totals (a mark holds a copy).
type counters struct {
	publishes      int
	published      int64 // edit-log records acknowledged
	publishTook    time.Duration
	offsetCommits  int
	lastCommitAt   time.Time
	retries        int
	retriesByOp    map[string]int
	lastRetryError string
}

// batchStat is one committed batch of the writer.
type batchStat struct {
	at          time.Time
	size        int
	took        time.Duration
	logBytes    int64
	records     int
	recordBytes int64
	repaired    int64
	skips       int64
	dlq         int64
	duplicates  int64
}

var (
	_ pipeline.BatchHook        = (*recorder)(nil)
	_ pipeline.PublishHook      = (*recorder)(nil)
	_ pipeline.RetryHook        = (*recorder)(nil)
	_ pipeline.OffsetCommitHook = (*recorder)(nil)
)

func newRecorder() *recorder {
	return &recorder{notify: make(chan struct{}, 1)}
}

// OnBatch records a writer batch (follower and dry-run reports are not the
// pipeline under test).
func (h *recorder) OnBatch(r *pipeline.Report) {
	if r.Role != pipeline.RoleWriter || r.DryRun {
		return
	}
	b := batchStat{at: time.Now(), size: r.Size, took: r.Took, logBytes: r.Bytes, records: len(r.Records),
		recordBytes: r.RecordBytes, dlq: int64(len(r.DeadLetters))}
	for i := range r.Events {
		e := &r.Events[i]
		b.repaired += int64(e.Repaired)
		b.skips += int64(len(e.Skips))
		if e.Outcome == pipeline.OutcomeDuplicate {
			b.duplicates++
		}
	}
	h.mu.Lock()
	if len(h.batches) == 0 {
		h.cpuFirst = processCPU()
	}
	h.batches = append(h.batches, b)
	h.events += int64(r.Size)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// OnPublish counts an acknowledged publish of the outbox.
func (h *recorder) OnPublish(_, records int, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cum.publishes++
	h.cum.published += int64(records)
	h.cum.publishTook += took
}

// OnOffsetCommit counts an input offset commit.
func (h *recorder) OnOffsetCommit() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cum.offsetCommits++
	h.cum.lastCommitAt = time.Now()
}

// OnRetry counts a failed attempt (the run's figures are suspect then).
func (h *recorder) OnRetry(op string, err error, _ int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cum.retries++
	if h.cum.retriesByOp == nil {
		h.cum.retriesByOp = map[string]int{}
	}
	h.cum.retriesByOp[op]++
	h.cum.lastRetryError = err.Error()
}

// mark is a position in the recorder: phases are the batches between two
// marks.
type mark struct {
	batch int
	counters
}

func (h *recorder) mark() mark {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cum
	c.retriesByOp = maps.Clone(c.retriesByOp)
	return mark{batch: len(h.batches), counters: c}
}

// eventCount returns the input records of every batch so far.
func (h *recorder) eventCount() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events
}

// first returns the first batch's time and size, and the process CPU time
// then (zero before any batch).
func (h *recorder) first() (at time.Time, size int, cpu time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) == 0 {
		return time.Time{}, 0, 0
	}
	return h.batches[0].at, h.batches[0].size, h.cpuFirst
}

// lastBatchAt returns the time the last batch was recorded.
func (h *recorder) lastBatchAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) == 0 {
		return time.Time{}
	}
	return h.batches[len(h.batches)-1].at
}

// lastCommitAt returns the time of the last offset commit.
func (h *recorder) lastCommitAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cum.lastCommitAt
}

// phase is what the service did between two marks: its batches and the
// counters' increase.
type phase struct {
	batches []batchStat
	counters
}

// between returns the phase between two marks.
func (h *recorder) between(from, to mark) phase {
	h.mu.Lock()
	bs := slices.Clone(h.batches[from.batch:to.batch])
	h.mu.Unlock()
	return phase{batches: bs, counters: to.counters.minus(from.counters)}
}

// minus returns the increase from o to c.
func (c counters) minus(o counters) counters {
	d := counters{publishes: c.publishes - o.publishes, published: c.published - o.published,
		publishTook: c.publishTook - o.publishTook, offsetCommits: c.offsetCommits - o.offsetCommits,
		lastCommitAt: c.lastCommitAt, retries: c.retries - o.retries}
	if d.retries > 0 {
		d.lastRetryError = c.lastRetryError
		d.retriesByOp = map[string]int{}
		for op, n := range c.retriesByOp {
			if n > o.retriesByOp[op] {
				d.retriesByOp[op] = n - o.retriesByOp[op]
			}
		}
	}
	return d
}

// add appends phase q to p.
func (p *phase) add(q phase) {
	p.batches = append(p.batches, q.batches...)
	p.publishes += q.publishes
	p.published += q.published
	p.publishTook += q.publishTook
	p.offsetCommits += q.offsetCommits
	p.retries += q.retries
	for op, n := range q.retriesByOp {
		if p.retriesByOp == nil {
			p.retriesByOp = map[string]int{}
		}
		p.retriesByOp[op] += n
	}
	if q.lastRetryError != "" {
		p.lastRetryError = q.lastRetryError
	}
}

// figures summarises the phase's batches.
func (p phase) figures() BatchFigures {
	bs := p.batches
	f := BatchFigures{Batches: len(bs), Publishes: p.publishes, OffsetCommits: p.offsetCommits, Retries: p.retries}
	if len(bs) == 0 {
		return f
	}
	tooks := make([]time.Duration, 0, len(bs))
	var tookSum time.Duration
	for _, b := range bs {
		f.Events += int64(b.size)
		f.Records += int64(b.records)
		f.LogBytes += b.logBytes
		f.RecordBytes += b.recordBytes
		f.Repaired += b.repaired
		f.Skips += b.skips
		f.DLQ += b.dlq
		f.Duplicates += b.duplicates
		tooks = append(tooks, b.took)
		tookSum += b.took
	}
	n := float64(len(bs))
	f.AvgEvents = float64(f.Events) / n
	f.RecordsPerBatch = float64(f.Records) / n
	f.TookMs.fill(tooks)
	if f.Events > 0 {
		f.TookMsPer1000Events = ms(tookSum) * 1000 / float64(f.Events)
	}
	f.PublishMsPerBatch = ms(p.publishTook) / n
	f.LogBytesPerCommit = float64(f.LogBytes) / n
	f.RecordBytesPerCommit = float64(f.RecordBytes) / n
	if f.RecordBytes > 0 {
		f.LogBytesRatio = float64(f.LogBytes) / float64(f.RecordBytes)
	}
	return f
}

// retryNote describes the phase's retries, or "".
func (p phase) retryNote() string {
	if p.retries == 0 {
		return ""
	}
	var ops []string
	for op, n := range p.retriesByOp {
		ops = append(ops, op+"×"+itoa(int64(n)))
	}
	slices.Sort(ops)
	return "the service retried (" + strings.Join(ops, ", ") + "; last error: " + p.lastRetryError + "): the figures include the retries"
}
