package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Fetcher yields input records in per-partition order.
type Fetcher interface {
	// Fetch blocks for the next record.
	Fetch(ctx context.Context) (kafkaio.Message, error)
	// TryFetch returns a record if one is ready.
	TryFetch() (kafkaio.Message, bool)
}

// Publisher writes messages and returns once all are acknowledged.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkaio.Message) error
}

// Committer commits the group's next offsets (a generation).
type Committer interface {
	Commit(ctx context.Context, offsets map[string]map[int]int64) error
}

// RetryPolicy is the exponential backoff of transient failures.
type RetryPolicy struct {
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	// MaxElapsedTime bounds one operation's retries; it must stay below the
	// group's rebalance timeout so a stuck batch cannot hold a rebalance.
	MaxElapsedTime time.Duration
}

func (p RetryPolicy) backoff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.InitialInterval
	b.MaxInterval = p.MaxInterval
	b.Multiplier = p.Multiplier
	b.MaxElapsedTime = p.MaxElapsedTime
	b.Reset()
	return backoff.WithContext(b, ctx)
}

// WriterConfig tunes the writer loop.
type WriterConfig struct {
	MaxEvents int
	MaxWait   time.Duration
	Retry     RetryPolicy
	// FinishTimeout bounds finishing an in-flight batch (publish and commit)
	// after the loop was asked to stop.
	FinishTimeout time.Duration
	// MaxPublish is the most messages per Publish call (default 500), so
	// that one call is one request per partition.
	MaxPublish int
}

// WriterObserver receives the writer's timings (metrics).
type WriterObserver interface {
	Publish(n int, d time.Duration)
	Retry(op string)
	Commit()
}

type nopWriterObserver struct{}

func (nopWriterObserver) Publish(int, time.Duration) {}
func (nopWriterObserver) Retry(string)               {}
func (nopWriterObserver) Commit()                    {}

// Writer is the active member's loop. It is not safe for concurrent use.
type Writer struct {
	Proc *Processor
	Pub  Publisher
	Cfg  WriterConfig
	Log  zerolog.Logger
	Obs  WriterObserver

	acked     atomic.Uint64            // last outbox seq acknowledged by the broker (set by the sink)
	deleted   uint64                   // last outbox seq known deleted from the store
	committed map[string]map[int]int64 // next offsets committed to the group
}

// ErrStopped is returned by Run when its context ended; work in flight was
// finished first.
var ErrStopped = errors.New("pipeline: stopped")

func (w *Writer) obs() WriterObserver {
	if w.Obs == nil {
		return nopWriterObserver{}
	}
	return w.Obs
}

// PublishLeftovers publishes every outbox message a previous run committed
// locally but may not have published (crash between commit and publish).
// Duplicates are harmless: readers drop repeated journal ids.
func (w *Writer) PublishLeftovers(ctx context.Context) (int, error) {
	if w.Proc.DryRun {
		return 0, nil
	}
	msgs, err := w.Proc.Store.Outbox(ctx)
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := w.publish(ctx, msgs); err != nil {
		return 0, err
	}
	last := msgs[len(msgs)-1].Seq
	w.acked.Store(last)
	// Delete them now, so a crash before the next batch does not publish
	// them once more.
	err = w.Proc.Store.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error { tx.AckOutbox(last); return nil }})
	if err == nil {
		w.deleted = last
	}
	return len(msgs), err
}

// SyncOffsets commits to the group the applied offsets the store holds for
// the assigned partitions, where they are ahead of what the group has: the
// batches behind them are durable and (after PublishLeftovers) published. It
// returns the offsets the fetcher should start from.
func (w *Writer) SyncOffsets(ctx context.Context, c Committer, assigned map[string][]kafkaio.Assignment) (map[string][]kafkaio.Assignment, error) {
	w.committed = nil // a new generation: forget what the last one committed
	start := map[string][]kafkaio.Assignment{}
	ahead := map[string]map[int]int64{}
	for topic, as := range assigned {
		for _, a := range as {
			off := a.Offset
			if applied := w.Proc.Store.AppliedOffset(topic, a.Partition); applied >= 0 && (off < 0 || applied > off) {
				off = applied
				if ahead[topic] == nil {
					ahead[topic] = map[int]int64{}
				}
				ahead[topic][a.Partition] = applied
			}
			start[topic] = append(start[topic], kafkaio.Assignment{Partition: a.Partition, Offset: off})
			if a.Offset >= 0 { // what the group has committed (negative: nothing yet)
				w.noteCommitted(topic, a.Partition, a.Offset)
			}
		}
	}
	if len(ahead) > 0 && !w.Proc.DryRun {
		if err := w.commit(ctx, c, ahead); err != nil {
			return nil, err
		}
	}
	return start, nil
}

// Run processes batches until ctx ends (returns ErrStopped after finishing
// the batches in flight) or an operation fails past its retries.
//
// Two stages overlap: this goroutine decides and commits batch N+1 locally
// while a sink goroutine publishes batch N's outbox and then commits its
// input offsets. The sink handles batches strictly in order, so the outbox is
// published in journal order and offsets are committed forward, each only
// after its batch is durable and published. At most two batches are ahead of
// the group's committed offsets.
func (w *Writer) Run(ctx context.Context, f Fetcher, c Committer, epoch int64) error {
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	jobs := make(chan *Outcome, 1)
	var sinkErr error
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		for out := range jobs {
			if sinkErr != nil {
				continue // drain; the batches stay in the outbox
			}
			if err := w.finish(ctx, out, c); err != nil {
				sinkErr = err
				stopRun()
			}
		}
	}()
	stop := func(err error) error {
		close(jobs)
		<-sinkDone
		if sinkErr != nil {
			return sinkErr
		}
		if err != nil {
			return err
		}
		w.flushAcks(context.WithoutCancel(ctx))
		return ErrStopped
	}
	for {
		batch, err := Collect(runCtx, f, w.Cfg.MaxEvents, w.Cfg.MaxWait, idleAfter)
		if len(batch) == 0 {
			if runCtx.Err() != nil {
				return stop(nil)
			}
			if errors.Is(err, ErrIdle) {
				w.flushAcks(runCtx)
			}
			continue
		}
		out, err := w.processBatch(ctx, batch, epoch)
		if err != nil {
			return stop(err)
		}
		jobs <- out
		if runCtx.Err() != nil {
			return stop(nil)
		}
	}
}

// processBatch decides and commits one batch locally, finishing even if ctx
// ends meanwhile (bounded by FinishTimeout).
func (w *Writer) processBatch(ctx context.Context, batch []kafkaio.Message, epoch int64) (*Outcome, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.finishTimeout())
	defer cancel()
	ackedBefore := w.acked.Load()
	out, err := w.process(fctx, batch, epoch)
	if err != nil {
		return nil, err
	}
	w.deleted = max(w.deleted, ackedBefore)
	return out, nil
}

// finish publishes one committed batch's outbox and commits its offsets
// (the sink stage), bounded by FinishTimeout once ctx has ended.
func (w *Writer) finish(ctx context.Context, out *Outcome, c Committer) error {
	if w.Proc.DryRun {
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.finishTimeout())
	defer cancel()
	if len(out.Outbox) > 0 {
		if err := w.publish(fctx, out.Outbox); err != nil {
			return err
		}
		w.acked.Store(out.LastSeq())
	}
	return w.commit(fctx, c, out.Offsets)
}

func (w *Writer) finishTimeout() time.Duration {
	if w.Cfg.FinishTimeout > 0 {
		return w.Cfg.FinishTimeout
	}
	return 30 * time.Second
}

// idleAfter is how long the writer waits for input before it deletes the
// acknowledged outbox messages in a commit of their own.
const idleAfter = 500 * time.Millisecond

// ErrIdle is returned by Collect when nothing arrived within its idle time.
var ErrIdle = errors.New("pipeline: idle")

// flushAcks deletes acknowledged outbox messages when no batch will do it.
func (w *Writer) flushAcks(ctx context.Context) {
	acked := w.acked.Load()
	if acked <= w.deleted || w.Proc.DryRun {
		return
	}
	if err := w.Proc.Store.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error { tx.AckOutbox(acked); return nil }}); err == nil {
		w.deleted = acked
	}
}

// Collect gathers one batch from f: it waits up to idle for a first record
// (then returns ErrIdle), and after it up to maxWait for more, stopping at
// maxEvents. When ctx ends it returns what it has, with ctx's error. The
// writer, the follower and the load benchmark's pass-through baseline all
// batch with it.
func Collect(ctx context.Context, f Fetcher, maxEvents int, maxWait, idle time.Duration) ([]kafkaio.Message, error) {
	ictx, cancel := context.WithTimeout(ctx, idle)
	first, err := f.Fetch(ictx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			return nil, ErrIdle
		}
		return nil, err
	}
	batch := make([]kafkaio.Message, 1, maxEvents)
	batch[0] = first
	deadline := time.Now().Add(maxWait)
	for len(batch) < maxEvents {
		if m, ok := f.TryFetch(); ok {
			batch = append(batch, m)
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := f.Fetch(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return batch, ctx.Err()
			}
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process commits the batch locally, retrying transient failures; records
// that keep failing are isolated and dead-lettered (retries_exhausted).
func (w *Writer) process(ctx context.Context, batch []kafkaio.Message, epoch int64) (*Outcome, error) {
	var out *Outcome
	attempts := 0
	op := func() error {
		attempts++
		o, err := w.Proc.Process(ctx, batch, epoch, w.acked.Load())
		if err != nil {
			if ctx.Err() != nil {
				return backoff.Permanent(err)
			}
			w.obs().Retry("commit")
			w.Log.Warn().Err(err).Int("attempt", attempts).Int("events", len(batch)).Msg("batch commit failed; retrying")
			return err
		}
		out = o
		return nil
	}
	err := backoff.Retry(op, w.Cfg.Retry.backoff(ctx))
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil || len(batch) == 0 {
		return nil, fmt.Errorf("pipeline: batch not committed: %w", err)
	}
	// Isolate: one record at a time; the ones that still fail go to the DLQ.
	w.Log.Error().Err(err).Int("events", len(batch)).Msg("batch keeps failing; processing its records one by one")
	merged := &Outcome{Offsets: map[string]map[int]int64{}}
	for _, m := range batch {
		one := []kafkaio.Message{m}
		var o *Outcome
		perr := backoff.Retry(func() error {
			var err error
			o, err = w.Proc.Process(ctx, one, epoch, w.acked.Load())
			if err != nil && ctx.Err() != nil {
				return backoff.Permanent(err)
			}
			return err
		}, w.Cfg.Retry.backoff(ctx))
		if perr != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("pipeline: batch not committed: %w", perr)
			}
			if o, err = w.Proc.DeadLetter(ctx, one, perr, attempts+1, w.acked.Load()); err != nil {
				return nil, err
			}
		}
		merge(merged, o)
	}
	return merged, nil
}

func merge(dst, src *Outcome) {
	dst.Outbox = append(dst.Outbox, src.Outbox...)
	dst.Records = append(dst.Records, src.Records...)
	dst.Outcomes = append(dst.Outcomes, src.Outcomes...)
	dst.DLQ += src.DLQ
	for t, po := range src.Offsets {
		if dst.Offsets[t] == nil {
			dst.Offsets[t] = map[int]int64{}
		}
		for p, o := range po {
			if o > dst.Offsets[t][p] {
				dst.Offsets[t][p] = o
			}
		}
	}
}

// publish writes outbox messages in order, in chunks, retrying each chunk as
// a whole (duplicates are fine, gaps are not).
func (w *Writer) publish(ctx context.Context, msgs []mvstate.OutboxMessage) error {
	max := w.Cfg.MaxPublish
	if max <= 0 {
		max = 500
	}
	for len(msgs) > 0 {
		n := min(max, len(msgs))
		chunk := make([]kafkaio.Message, n)
		for i, m := range msgs[:n] {
			chunk[i] = toKafka(m)
		}
		start := time.Now()
		err := backoff.Retry(func() error {
			err := w.Pub.Publish(ctx, chunk...)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return backoff.Permanent(err)
			}
			w.obs().Retry("publish")
			w.Log.Warn().Err(err).Int("messages", n).Msg("publish failed; retrying")
			return err
		}, w.Cfg.Retry.backoff(ctx))
		if err != nil {
			return fmt.Errorf("pipeline: publish outbox: %w", err)
		}
		w.obs().Publish(n, time.Since(start))
		msgs = msgs[n:]
	}
	return nil
}

// commit commits offsets to the group, forward only.
func (w *Writer) commit(ctx context.Context, c Committer, offsets map[string]map[int]int64) error {
	fwd := map[string]map[int]int64{}
	for t, po := range offsets {
		for p, o := range po {
			if o > w.committedOffset(t, p) {
				if fwd[t] == nil {
					fwd[t] = map[int]int64{}
				}
				fwd[t][p] = o
			}
		}
	}
	if len(fwd) == 0 {
		return nil
	}
	err := backoff.Retry(func() error {
		err := c.Commit(ctx, fwd)
		if err == nil {
			return nil
		}
		if errors.Is(err, kafkaio.ErrFenced) || ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		w.obs().Retry("offset_commit")
		w.Log.Warn().Err(err).Msg("offset commit failed; retrying")
		return err
	}, w.Cfg.Retry.backoff(ctx))
	if err != nil {
		return fmt.Errorf("pipeline: commit offsets: %w", err)
	}
	for t, po := range fwd {
		for p, o := range po {
			w.noteCommitted(t, p, o)
		}
	}
	w.obs().Commit()
	return nil
}

func (w *Writer) committedOffset(topic string, p int) int64 {
	if po, ok := w.committed[topic]; ok {
		if o, ok := po[p]; ok {
			return o
		}
	}
	return -1
}

func (w *Writer) noteCommitted(topic string, p int, o int64) {
	if w.committed == nil {
		w.committed = map[string]map[int]int64{}
	}
	if w.committed[topic] == nil {
		w.committed[topic] = map[int]int64{}
	}
	if cur, ok := w.committed[topic][p]; !ok || o > cur {
		w.committed[topic][p] = o
	}
}

func toKafka(m mvstate.OutboxMessage) kafkaio.Message {
	hs := make([]kafkaio.Header, 0, len(m.Headers))
	for _, k := range m.HeaderOrder {
		if v, ok := m.Headers[k]; ok {
			hs = append(hs, kafkaio.Header{Key: k, Value: []byte(v)})
		}
	}
	return kafkaio.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: hs}
}
