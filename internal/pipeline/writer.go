package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/health"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/retry"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Fetcher yields input records in per-partition order.
type Fetcher interface {
	// Fetch blocks for the next record.
	Fetch(ctx context.Context) (kafkaio.Message, error)
	// TryFetch returns a record if one is ready.
	TryFetch() (kafkaio.Message, bool)
}

// Publisher writes messages and returns once all are acknowledged, with
// msgs[i].Offset set to where each was written.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkaio.Message) error
}

// Committer commits the group's next offsets (a generation).
type Committer interface {
	Commit(ctx context.Context, offsets map[string]map[int]int64) error
}

// WriterConfig tunes the writer loop.
type WriterConfig struct {
	MaxEvents int
	// MaxWait is the longest a record waits for its batch to fill, counted
	// from when it was fetched.
	MaxWait time.Duration
	// Retry is the backoff of failing operations. Infrastructure faults (a
	// full disk, a broker down) are retried until they clear; its
	// MaxElapsedTime bounds only the offset commits, which must give up
	// before the group's rebalance timeout.
	Retry retry.Policy
	// FinishTimeout bounds finishing the batches in flight after the loop
	// was asked to stop.
	FinishTimeout time.Duration
	// MaxPublish is the most messages per Publish call (default 500).
	MaxPublish int
}

// Writer is the active member's loop. It is not safe for concurrent use.
type Writer struct {
	Proc  *Processor
	Pub   Publisher
	Cfg   WriterConfig
	Log   zerolog.Logger
	Hooks Hooks
	// Commit and Publish report to the stall watchdog (nil: none).
	CommitHealth, PublishHealth *health.Component
	// InputHealth is stalled while an input partition cannot be read from
	// where the store stands (its applied offset is beyond the topic's
	// end); the other partitions keep flowing, so commits do not clear it.
	InputHealth *health.Component

	acked     atomic.Uint64 // last outbox seq acknowledged by the broker (set by the sink)
	inFlight  atomic.Int32  // batches handed to the sink, not finished
	committed map[string]map[int]int64

	mu          sync.Mutex // guards pending: what the sink learned for the next commit
	ackWritten  uint64
	pendingOffs map[mvstate.TopicPartition]int64

	// Published remembers where this process's writers published edit-log
	// records (share one across the writers of a process, so that a new
	// generation's checkpoint finds the records its predecessor published);
	// nil: the writer keeps its own.
	Published *PublishedLog
	// fence is an offset this generation committed, for Fence.
	fence   atomic.Pointer[fenceMark]
	fenceMu sync.Mutex // held by a group commit with its fence update, and by Fence
	pubOnce sync.Once
}

// PublishedLog remembers the edit-log offsets of the most recently
// published records (the last 4,096), for checkpoints, which name the
// offset of the record they are taken at. Safe for concurrent use.
type PublishedLog struct {
	mu   sync.Mutex
	ring [4096]struct{ jid, off int64 }
	n    int
	last int64 // highest journal id acknowledged
}

func (p *PublishedLog) add(jid, off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ring[p.n%len(p.ring)] = struct{ jid, off int64 }{jid, off}
	p.n++
	p.last = max(p.last, jid)
}

// published returns the writer's PublishedLog (creating its own if none
// was given).
func (w *Writer) published() *PublishedLog {
	w.pubOnce.Do(func() {
		if w.Published == nil {
			w.Published = &PublishedLog{}
		}
	})
	return w.Published
}

// EditLogOffset returns the edit-log offset at which this writer (or one
// sharing its PublishedLog) published the record with journal id jid, if
// it did so recently.
func (w *Writer) EditLogOffset(jid int64) (int64, bool) {
	p := w.published()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := p.n - 1; i >= 0 && i >= p.n-len(p.ring); i-- {
		if e := p.ring[i%len(p.ring)]; e.jid == jid {
			return e.off, true
		}
	}
	return 0, false
}

// PublishedThrough returns the highest journal id this writer (or one
// sharing its PublishedLog) has had acknowledged by the broker.
func (w *Writer) PublishedThrough() int64 {
	p := w.published()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// ErrStopped is returned by Run when its context ended; work in flight was
// finished first.
var ErrStopped = errors.New("pipeline: stopped")

// GroupMarkTopic is the name under which the store records the offsets this
// writer committed to the consumer group for topic (not a Kafka topic): at
// takeover they tell a rewind made with Kafka's own tools from the normal
// gap a crash leaves between the store and the group.
func GroupMarkTopic(topic string) string { return "group:" + topic }

// extra takes what the sink learned since the last commit.
func (w *Writer) extra() Extra {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := Extra{Ack: w.acked.Load()}
	for tp, next := range w.pendingOffs {
		e.Offsets = append(e.Offsets, mvstate.OffsetChange{TopicPartition: tp, Next: next})
	}
	return e
}

// committedExtra clears what a commit recorded.
func (w *Writer) committedExtra(e Extra) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ackWritten = max(w.ackWritten, e.Ack)
	for _, o := range e.Offsets {
		if w.pendingOffs[o.TopicPartition] == o.Next {
			delete(w.pendingOffs, o.TopicPartition)
		}
	}
}

func (w *Writer) note(tp mvstate.TopicPartition, next int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pendingOffs == nil {
		w.pendingOffs = map[mvstate.TopicPartition]int64{}
	}
	if next > w.pendingOffs[tp] {
		w.pendingOffs[tp] = next
	}
}

// PublishLeftovers publishes every outbox message a previous run committed
// locally but may not have published (crash between commit and publish).
// Duplicates are harmless: readers drop repeated journal ids.
func (w *Writer) PublishLeftovers(ctx context.Context) (int, error) {
	if w.Proc.DryRun {
		return 0, nil
	}
	msgs := w.Proc.Store.Outbox()
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := w.publish(ctx, msgs); err != nil {
		return 0, err
	}
	w.acked.Store(msgs[len(msgs)-1].Seq)
	// Record it now, so that a crash before the next batch does not
	// publish them once more.
	w.flushAcks(ctx)
	return len(msgs), nil
}

// SyncOffsets commits to the group the applied offsets the store holds for
// the assigned partitions, where they are ahead of what the group has: the
// batches behind them are durable and (after PublishLeftovers) published.
// It returns the offsets the fetcher should start from. A group offset
// below what this service last committed was rewound by someone else (a
// Kafka tool): the store's applied offsets still win (docs/design.md §5.2),
// and a warning says how to replay instead.
func (w *Writer) SyncOffsets(ctx context.Context, c Committer, assigned map[string][]kafkaio.Assignment) (map[string][]kafkaio.Assignment, error) {
	w.committed = nil // a new generation: forget what the last one committed
	w.fence.Store(nil)
	st := w.Proc.Store.State()
	start := map[string][]kafkaio.Assignment{}
	ahead := map[string]map[int]int64{}
	for topic, as := range assigned {
		for _, a := range as {
			off := a.Offset
			applied := st.AppliedOffset(topic, a.Partition)
			if mark := st.AppliedOffset(GroupMarkTopic(topic), a.Partition); a.Offset >= 0 && mark > a.Offset && applied > a.Offset {
				w.Log.Warn().Str("topic", topic).Int("partition", a.Partition).Int64("group_offset", a.Offset).
					Int64("applied_offset", applied).Int64("last_committed_by_mvrepair", mark).
					Str("replay", fmt.Sprintf("consumer replay --topic %s --partition %d --from-offset %d", topic, a.Partition, a.Offset)).
					Msg("the group's offset was moved back by another tool; the store's applied offset wins (events below it were applied). To re-process from there, stop the service and use the replay command")
			}
			if applied >= 0 && (off < 0 || applied > off) {
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
// the batches in flight) or an operation fails for good.
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
	jobs := make(chan *Committed, 1)
	var sinkErr error
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		for out := range jobs {
			if sinkErr == nil {
				if err := w.finish(ctx, out, c); err != nil {
					sinkErr = err
					stopRun()
				}
			}
			w.inFlight.Add(-1)
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
	busy := func() bool { return w.inFlight.Load() > 0 }
	for {
		batch, err := Collect(runCtx, f, w.Cfg.MaxEvents, w.Cfg.MaxWait, idleAfter, busy)
		if len(batch) == 0 {
			if runCtx.Err() != nil {
				return stop(nil)
			}
			if errors.Is(err, ErrIdle) {
				w.flushAcks(runCtx)
			} else if err != nil {
				w.noteFetchError(err)
			}
			continue
		}
		if err != nil && runCtx.Err() == nil {
			w.noteFetchError(err) // a partition's error behind the batch's records
		}
		if w.CommitHealth != nil {
			w.CommitHealth.Pending(true)
		}
		outs, err := w.processBatch(runCtx, batch, epoch)
		for _, out := range outs {
			w.Hooks.batch(out.Report)
			w.inFlight.Add(1)
			jobs <- out
		}
		if err != nil {
			if runCtx.Err() != nil {
				return stop(nil) // stopped during a retry: the rest of the batch was not committed
			}
			return stop(err)
		}
		if w.CommitHealth != nil {
			w.CommitHealth.Pending(false)
		}
		if runCtx.Err() != nil {
			return stop(nil)
		}
	}
}

// noteFetchError reports a fetch error: offsets out of range stall the
// writer loudly (the input cannot be read from where the store says it
// stands), others are logged.
func (w *Writer) noteFetchError(err error) {
	var oor *kafkaio.OffsetOutOfRangeError
	if errors.As(err, &oor) && oor.Offset > oor.HighWatermark {
		err = fmt.Errorf("the store applied %s[%d] up to offset %d but the topic ends at %d (topic recreated, broker data lost, or another cluster?): "+
			"to read the topic from its start run `consumer replay --topic %s --partition %d --from-offset %d` with the service stopped",
			oor.Topic, oor.Partition, oor.Offset, oor.HighWatermark, oor.Topic, oor.Partition, oor.LogStart)
		if w.InputHealth != nil {
			w.InputHealth.Failing(err, true)
		}
		w.Log.Error().Err(err).Str("topic", oor.Topic).Int("partition", oor.Partition).Int64("offset", oor.Offset).
			Int64("high_watermark", oor.HighWatermark).Msg("input offsets out of range: this partition is not read")
		return
	}
	if errors.As(err, &oor) {
		w.Log.Warn().Err(err).Str("topic", oor.Topic).Int("partition", oor.Partition).Int64("offset", oor.Offset).
			Int64("log_start", oor.LogStart).Msg("records below the topic's log start were deleted by retention before they were processed; reading from the log start")
		return
	}
	w.Log.Warn().Err(err).Msg("fetch failed; retrying")
}

// processBatch commits one batch locally. Infrastructure faults are
// retried until they clear (or ctx ends); a batch whose edit-log record
// would be too large is split; a batch that fails for a reason of its own is
// isolated record by record, and the records that still fail are
// dead-lettered.
func (w *Writer) processBatch(ctx context.Context, batch []kafkaio.Message, epoch int64) ([]*Committed, error) {
	out, err := w.commitRetrying(ctx, func(e Extra) (*Committed, error) { return w.Proc.Process(ctx, batch, epoch, e) })
	switch {
	case err == nil:
		return []*Committed{out}, nil
	case errors.Is(err, ErrSplit) && len(batch) > 1:
		half := len(batch) / 2
		a, err := w.processBatch(ctx, batch[:half], epoch)
		if err != nil {
			return nil, err
		}
		b, err := w.processBatch(ctx, batch[half:], epoch)
		return append(a, b...), err
	case ctx.Err() != nil || IsFatal(err):
		return nil, err
	}
	// The batch fails by its content: find the records at fault.
	w.Log.Error().Err(err).Int("events", len(batch)).Msg("batch cannot be committed; processing its records one by one")
	var outs []*Committed
	for _, m := range batch {
		one := []kafkaio.Message{m}
		o, err := w.commitRetrying(ctx, func(e Extra) (*Committed, error) { return w.Proc.Process(ctx, one, epoch, e) })
		if err != nil && ctx.Err() == nil && !IsFatal(err) {
			w.Log.Error().Err(err).Str("topic", m.Topic).Int("partition", m.Partition).Int64("offset", m.Offset).
				Msg("record cannot be committed; dead-lettering it")
			o, err = w.commitRetrying(ctx, func(e Extra) (*Committed, error) {
				return w.Proc.DeadLetterAll(ctx, one, ReasonRetriesExhausted, err, 2, e)
			})
		}
		if err != nil {
			return outs, err
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// commitRetrying runs one commit attempt after another while it fails on
// an infrastructure fault (the disk), reporting to the watchdog; it returns
// any other error at once.
func (w *Writer) commitRetrying(ctx context.Context, attempt func(Extra) (*Committed, error)) (*Committed, error) {
	var out *Committed
	_, err := retry.Do(ctx, w.Cfg.Retry.Forever(), retry.Options{
		ShouldRetry: store.IsInfra,
		OnRetry: func(err error, n int, wait time.Duration) {
			if w.CommitHealth != nil {
				w.CommitHealth.Failing(fmt.Errorf("local commit failing: %w", err), false)
			}
			w.Hooks.retry("commit", err, n)
			logRetry(w.Log, "local commit failed; retrying (nothing is dead-lettered for a disk fault)", err, n, wait)
		}},
		func(context.Context) error {
			e := w.extra()
			o, err := attempt(e)
			if err == nil {
				w.committedExtra(e)
				out = o
			}
			return err
		})
	if err == nil && w.CommitHealth != nil {
		w.CommitHealth.Progress()
	}
	return out, err
}

// logRetry logs a retried failure: the first attempts at WARN, then every
// tenth, so that a long outage is visible without flooding the log.
func logRetry(log zerolog.Logger, msg string, err error, attempt int, wait time.Duration) {
	if attempt <= 3 || attempt%10 == 0 {
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg(msg)
	}
}

// finish publishes one committed batch's outbox and commits its offsets
// (the sink stage), bounded by FinishTimeout once ctx has ended.
func (w *Writer) finish(ctx context.Context, out *Committed, c Committer) error {
	if w.Proc.DryRun {
		return nil
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(w.finishTimeout(), cancel)
		context.AfterFunc(fctx, func() { t.Stop() })
	})
	defer stopTimer()
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

// idleAfter is how long the writer waits for input before it records the
// acknowledged outbox in a commit of its own.
const idleAfter = 500 * time.Millisecond

// ErrIdle is returned by Collect when nothing arrived within its idle time.
var ErrIdle = errors.New("pipeline: idle")

// flushAcks records the acknowledged outbox (and what the sink learned)
// when no batch will do it.
func (w *Writer) flushAcks(ctx context.Context) {
	if w.Proc.DryRun {
		return
	}
	e := w.extra()
	w.mu.Lock()
	nothing := e.Ack <= w.ackWritten && len(e.Offsets) == 0
	w.mu.Unlock()
	if nothing {
		return
	}
	if _, err := w.Proc.Store.Commit(ctx, store.Batch{Ack: e.Ack, Offsets: e.Offsets}); err == nil {
		w.committedExtra(e)
	}
}

// Collect gathers one batch from f: it waits up to idle for a first record
// (then returns ErrIdle), takes what is queued up to maxEvents, and waits
// for more only while busy reports that the writer's downstream is busy
// anyway, and at most until the oldest record has waited maxWait since it
// was fetched. With busy nil it waits the whole window. When ctx ends it
// returns what it has, with ctx's error; a fetch error after the first
// record returns the records so far with that error (handle both). The writer, the follower and the
// load tool's pass-through baseline batch with it.
func Collect(ctx context.Context, f Fetcher, maxEvents int, maxWait, idle time.Duration, busy func() bool) ([]kafkaio.Message, error) {
	ictx, cancel := context.WithTimeout(ctx, idle)
	first, err := f.Fetch(ictx)
	timedOut := ictx.Err() != nil // before cancel, which sets it
	cancel()
	if err != nil {
		if ctx.Err() == nil && timedOut {
			return nil, ErrIdle
		}
		return nil, err
	}
	batch := make([]kafkaio.Message, 1, maxEvents)
	batch[0] = first
	since := first.Received
	if since.IsZero() {
		since = time.Now()
	}
	deadline := since.Add(maxWait)
	for len(batch) < maxEvents {
		if m, ok := f.TryFetch(); ok {
			batch = append(batch, m)
			continue
		}
		if busy != nil && !busy() {
			break // nothing queued and nothing to wait for: go now
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := f.Fetch(wctx)
		waited := wctx.Err() != nil // before cancel, which sets it
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return batch, ctx.Err()
			}
			if waited {
				break // the batch's wait is over
			}
			return batch, err // a fetch error: the caller reports it and handles the batch
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// chunkEnd returns how many of msgs (at least one, at most max) one
// Publish call takes: no more bytes per topic than the topic accepts in one
// record batch (the producer's batch limit is the largest topic's; a batch
// of dead letters above the DLQ's max.message.bytes would be refused whole).
// Each message's size counts a batch header, so the sum is an upper bound.
func (w *Writer) chunkEnd(msgs []store.OutboxMessage, max int) int {
	limit := func(topic string) int {
		switch topic {
		case w.Proc.Topics.EditLog:
			return w.Proc.Limits.EditLog
		case w.Proc.Topics.DLQ:
			return w.Proc.Limits.DLQ
		}
		return 0
	}
	sums := map[string]int{}
	for i, m := range msgs {
		if i == max {
			return i
		}
		lim := limit(m.Topic)
		size := outboxSize(m)
		if i > 0 && lim > 0 && sums[m.Topic]+size > lim {
			return i
		}
		sums[m.Topic] += size
	}
	return len(msgs)
}

// publish writes outbox messages in order, in chunks, retrying each chunk as
// a whole (duplicates are fine, gaps are not). A transient failure (broker
// unreachable) is retried until it clears; a refusal that cannot clear by
// itself (a record too large for the topic, an unknown topic, denied
// access) stalls the writer loudly: not ready, an ERROR line naming the
// cause and the fix, and slow retries until an operator fixes it. A dead
// letter the DLQ topic refuses as too large is replaced by its
// record_too_large form.
func (w *Writer) publish(ctx context.Context, msgs []store.OutboxMessage) error {
	max := w.Cfg.MaxPublish
	if max <= 0 {
		max = 500
	}
	for len(msgs) > 0 {
		n := w.chunkEnd(msgs, max)
		chunk := make([]kafkaio.Message, n)
		records := 0
		for i, m := range msgs[:n] {
			chunk[i] = toKafka(m)
			if m.JournalID > 0 {
				records++
			}
		}
		start := time.Now()
		policy := w.Cfg.Retry.Forever()
		_, err := retry.Do(ctx, policy, retry.Options{
			OnRetry: func(err error, attempt int, wait time.Duration) {
				w.Hooks.retry("publish", err, attempt)
				permanent := !kafkaio.IsTransient(err)
				if permanent {
					w.shrinkDeadLetters(chunk, err)
				}
				reason := fmt.Errorf("publishing to %s failing: %w", chunk[0].Topic, err)
				if permanent && errors.Is(err, kafkaio.ErrMessageTooLarge) {
					reason = fmt.Errorf("%w (raise max.message.bytes of the topic, or the broker's message.max.bytes, above the record's size)", reason)
				}
				if w.PublishHealth != nil {
					w.PublishHealth.Failing(reason, permanent)
				}
				if permanent && (attempt <= 3 || attempt%10 == 0) {
					w.Log.Error().Err(reason).Int("attempt", attempt).Dur("retry_in", wait).Msg("the broker refuses the outbox: the writer is stalled until this is fixed")
				} else if !permanent {
					logRetry(w.Log, "publish failed; retrying", err, attempt, wait)
				}
			}},
			func(ctx context.Context) error { return w.Pub.Publish(ctx, chunk...) })
		if err != nil {
			return fmt.Errorf("pipeline: publish outbox: %w", err)
		}
		if w.PublishHealth != nil {
			w.PublishHealth.Progress()
		}
		for i := range n {
			if msgs[i].JournalID > 0 && chunk[i].Offset >= 0 {
				w.published().add(msgs[i].JournalID, chunk[i].Offset)
			}
		}
		// Remember where the edit log is: the next commit records it, so a
		// restore barrier starts from there.
		for i := n - 1; i >= 0; i-- {
			if msgs[i].JournalID > 0 && chunk[i].Offset >= 0 {
				w.note(mvstate.TopicPartition{Topic: chunk[i].Topic, Partition: chunk[i].Partition}, chunk[i].Offset+1)
				break
			}
		}
		w.Hooks.publish(n, records, time.Since(start))
		msgs = msgs[n:]
	}
	return nil
}

// shrinkDeadLetters replaces, after a publish refused as too large, every
// dead letter of chunk by its record_too_large form (empty value, the DLQ
// headers and source-size): the broker's limit is lower than the one the
// batch was checked against.
func (w *Writer) shrinkDeadLetters(chunk []kafkaio.Message, err error) {
	if !errors.Is(err, kafkaio.ErrMessageTooLarge) {
		return
	}
	added := AddedHeaders()
	for i, m := range chunk {
		if m.Topic != w.Proc.Topics.DLQ || m.Value == nil || len(m.Value) == 0 {
			continue
		}
		var hs []kafkaio.Header
		for _, h := range m.Headers {
			if !slices.Contains(added, h.Key) {
				continue // the original's own: the letter no longer carries its value
			}
			if h.Key == HeaderDLQReason {
				h.Value = []byte(ReasonRecordTooLarge)
			}
			hs = append(hs, h)
		}
		hs = append(hs, kafkaio.Header{Key: HeaderSourceSize, Value: []byte(strconv.Itoa(len(m.Value)))})
		chunk[i] = kafkaio.Message{Topic: m.Topic, Key: m.Key, Value: []byte{}, Headers: hs}
	}
}

// commit commits offsets to the group, forward only. A fenced generation
// ends the role; other failures are retried within the policy's elapsed
// time (below the rebalance timeout).
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
	_, err := retry.Do(ctx, w.Cfg.Retry, retry.Options{
		ShouldRetry: func(err error) bool { return !errors.Is(err, kafkaio.ErrFenced) },
		OnRetry: func(err error, attempt int, wait time.Duration) {
			w.Hooks.retry("offset_commit", err, attempt)
			logRetry(w.Log, "offset commit failed; retrying", err, attempt, wait)
		}},
		func(ctx context.Context) error {
			// Under fenceMu with the mark's update: a concurrent Fence
			// re-commits the newest mark, never an older offset over a newer.
			w.fenceMu.Lock()
			defer w.fenceMu.Unlock()
			if err := c.Commit(ctx, fwd); err != nil {
				return err
			}
			for t, po := range fwd {
				for p, o := range po {
					w.noteCommitted(t, p, o)
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("pipeline: commit offsets: %w", err)
	}
	for t, po := range fwd {
		for p, o := range po {
			w.note(mvstate.TopicPartition{Topic: GroupMarkTopic(t), Partition: p}, o)
		}
	}
	w.Hooks.offsetCommit()
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
		if o >= 0 {
			w.fence.Store(&fenceMark{topic: topic, partition: p, offset: o})
		}
	}
}

// IsFatal reports whether err means the service must stop: a bug (the
// state refused a change the handler decided, a change outside its lock
// set) or a journal forked past this store. Everything else is retried or
// ends only the current role.
func IsFatal(err error) bool {
	return errors.Is(err, editlog.ErrInconsistent) || errors.Is(err, mvstate.ErrNotLocked) ||
		errors.Is(err, editlog.ErrForked) || errors.Is(err, store.ErrCorrupt)
}
