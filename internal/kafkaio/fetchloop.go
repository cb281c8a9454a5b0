package kafkaio

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
	"github.com/segmentio/kafka-go/protocol/metadata"
)

// errStopPartition ends a partition's fetch loop (after its error was
// delivered).
var errStopPartition = errors.New("kafkaio: partition stopped")

// errRetry marks a condition the loop retries like a transient error.
var errRetry = errors.New("kafkaio: retry")

// partitionFetch is the fetch loop of one partition. Only its goroutine
// touches it.
type partitionFetch struct {
	f         *Fetcher
	net       *netConfig
	topic     string
	partition int

	// offset is the next offset to fetch; OffsetFirst or OffsetLast until
	// resolved.
	offset int64
	// lastSent is the offset of the last message (record or placeholder)
	// delivered, -1 before the first.
	lastSent int64
	// pendingSkip is the last offset of a run of skipped records not yet
	// covered by a placeholder, -1 if none.
	pendingSkip int64

	bo       *backoff.ExponentialBackOff
	attempts int  // consecutive failed attempts
	failing  bool // a failure episode was reported (troubleStart)
	reported bool // a permanent error was delivered in this episode
}

func newPartitionFetch(f *Fetcher, nc *netConfig, topic string, partition int, offset int64) *partitionFetch {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = fetchBackoffMin
	bo.MaxInterval = fetchBackoffMax
	bo.MaxElapsedTime = 0 // retry until the fetcher stops
	bo.Reset()
	return &partitionFetch{f: f, net: nc, topic: topic, partition: partition, offset: offset,
		lastSent: -1, pendingSkip: -1, bo: bo}
}

// run fetches until the fetcher stops or the partition is stopped.
func (p *partitionFetch) run() {
	ctx := p.f.ctx
	for ctx.Err() == nil {
		var err error
		if p.offset < 0 {
			err = p.resolveStart(ctx)
		} else {
			err = p.fetchOnce(ctx)
		}
		switch {
		case ctx.Err() != nil, errors.Is(err, errStopPartition):
			return
		case err == nil:
			p.recovered()
		default:
			if !p.failed(ctx, err) {
				return
			}
		}
	}
}

// failed handles a failed attempt: it reports the episode, delivers errors
// the caller must see, and waits out the backoff. It returns false when the
// fetcher stopped meanwhile.
func (p *partitionFetch) failed(ctx context.Context, err error) bool {
	err = p.net.classify(err)
	at := fmt.Sprint(p.offset)
	switch p.offset {
	case OffsetFirst:
		at = "first"
	case OffsetLast:
		at = "last"
	}
	err = fmt.Errorf("kafkaio: fetch %s/%d at offset %s: %w", p.topic, p.partition, at, err)
	p.attempts++
	transient := fetchTransient(err)
	debug := func(msg string) {
		p.f.log.Debug().Err(err).Str("topic", p.topic).Int("partition", p.partition).Int("attempt", p.attempts).Msg(msg)
	}
	switch {
	case transient && p.attempts == 1:
		// A single failure (one stale pooled connection after a broker
		// restart) is retried quietly.
		debug("kafka fetch failed; retrying")
	case !p.failing:
		p.failing = true
		p.f.troubleStart(p.topic, p.partition, err)
	default:
		debug("kafka fetch still failing")
	}
	if !transient && !p.reported {
		p.reported = true
		if !p.flushSkip() || !p.f.send(fetchItem{err: err}) {
			return false
		}
	}
	if staleRouting(err) {
		p.f.flushMetadata()
	}
	return sleepCtx(ctx, p.bo.NextBackOff())
}

// recovered ends a failure episode after a successful attempt.
func (p *partitionFetch) recovered() {
	if p.attempts == 0 {
		return
	}
	if p.failing {
		p.f.troubleEnd(p.topic, p.partition)
	}
	p.attempts, p.failing, p.reported = 0, false, false
	p.bo.Reset()
}

// fetchTransient reports whether the loop retries err without telling the
// caller: network failures and timeouts (IsTransient), and the errors of a
// stale view of the cluster, which a metadata refresh repairs.
func fetchTransient(err error) bool {
	return errors.Is(err, errRetry) || staleRouting(err) || IsTransient(err)
}

// staleRouting reports whether err means the partition's leader as known to
// the connection pool is wrong or unknown.
func staleRouting(err error) bool {
	var ferr *fetch.Error // kafka-go could not route the request
	if errors.As(err, &ferr) {
		return true
	}
	for _, code := range []kafka.Error{
		kafka.NotLeaderForPartition, kafka.LeaderNotAvailable, kafka.UnknownTopicOrPartition,
		kafka.BrokerNotAvailable, kafka.ReplicaNotAvailable, kafka.KafkaStorageError,
		kafka.FencedLeaderEpoch, kafka.UnknownLeaderEpoch,
	} {
		if errors.Is(err, code) {
			return true
		}
	}
	return false
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// resolveStart turns OffsetFirst / OffsetLast into an offset.
func (p *partitionFetch) resolveStart(ctx context.Context) error {
	var off int64
	var err error
	if p.offset == OffsetLast {
		// The last stable offset with read_committed, as the Java client.
		off, err = p.listOffset(ctx, OffsetLast, p.f.isolation)
	} else {
		off, err = p.listOffset(ctx, OffsetFirst, 0)
	}
	if err != nil {
		return err
	}
	p.offset = off
	return nil
}

// listOffset asks the partition leader for an offset: ts is OffsetFirst
// (the log start) or OffsetLast (the high watermark, or the last stable
// offset with isolation 1).
func (p *partitionFetch) listOffset(ctx context.Context, ts int64, isolation int8) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, fetchRequestTimeout)
	defer cancel()
	m, err := p.f.transport.RoundTrip(rctx, p.f.addr, &listoffsets.Request{
		ReplicaID:      -1,
		IsolationLevel: isolation,
		Topics: []listoffsets.RequestTopic{{
			Topic: p.topic,
			Partitions: []listoffsets.RequestPartition{{
				Partition: int32(p.partition), CurrentLeaderEpoch: -1, Timestamp: ts,
			}},
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	res, ok := m.(*listoffsets.Response)
	if !ok {
		return 0, fmt.Errorf("list offsets: unexpected response %T", m)
	}
	for _, t := range res.Topics {
		for _, rp := range t.Partitions {
			if t.Topic != p.topic || int(rp.Partition) != p.partition {
				continue
			}
			switch {
			case rp.ErrorCode == -1: // kafka-go's placeholder for a failed sub-request
				return 0, fmt.Errorf("list offsets: %w", errSubRequest)
			case rp.ErrorCode != 0:
				return 0, fmt.Errorf("list offsets: %w", kafka.Error(rp.ErrorCode))
			}
			return rp.Offset, nil
		}
	}
	return 0, errors.New("list offsets: no answer for the partition")
}

// fetchOnce sends one fetch request and delivers its records.
func (p *partitionFetch) fetchOnce(ctx context.Context) error {
	cfg := &p.f.cfg
	// The deadline is comfortably above MaxWait, for which the broker holds
	// the request when it has nothing to return: an idle partition never
	// times out.
	rctx, cancel := context.WithTimeout(ctx, cfg.MaxWait+fetchRequestTimeout)
	defer cancel()
	m, err := p.f.transport.RoundTrip(rctx, p.f.addr, &fetch.Request{
		ReplicaID:   -1,
		MaxWaitTime: int32(cfg.MaxWait / time.Millisecond),
		MinBytes:    int32(cfg.MinBytes),
		// The request holds one partition, so PartitionMaxBytes bounds the
		// response (a first batch larger than it is returned whole either
		// way). The response limit is left wide open because kfake (the
		// embedded broker) drops the aborted-transaction list of a partition
		// whose batches fill the response limit, which would let aborted
		// records through; a partition limit it handles correctly.
		MaxBytes:       math.MaxInt32,
		IsolationLevel: p.f.isolation,
		SessionID:      0,
		SessionEpoch:   -1, // a full fetch, no fetch session
		Topics: []fetch.RequestTopic{{
			Topic: p.topic,
			Partitions: []fetch.RequestPartition{{
				Partition:          int32(p.partition),
				CurrentLeaderEpoch: -1,
				FetchOffset:        p.offset,
				LogStartOffset:     -1,
				PartitionMaxBytes:  int32(cfg.MaxBytes),
			}},
		}},
	})
	if err != nil {
		var ferr *fetch.Error
		if errors.As(err, &ferr) {
			// kafka-go could not route the request: its pool has no usable
			// metadata. A pool whose metadata requests fail (broker down,
			// TLS or SASL refused) keeps the real error for Metadata
			// requests, which it answers from its cache.
			if _, merr := p.f.transport.RoundTrip(rctx, p.f.addr, &metadata.Request{TopicNames: []string{p.topic}}); merr != nil {
				return fmt.Errorf("%w (%v)", merr, err)
			}
		}
		return err
	}
	res, ok := m.(*fetch.Response)
	if !ok {
		return fmt.Errorf("unexpected response %T", m)
	}
	if res.ErrorCode != 0 {
		return kafka.Error(res.ErrorCode)
	}
	var part *fetch.ResponsePartition
	for i := range res.Topics {
		for j := range res.Topics[i].Partitions {
			if res.Topics[i].Topic == p.topic && int(res.Topics[i].Partitions[j].Partition) == p.partition {
				part = &res.Topics[i].Partitions[j]
			}
		}
	}
	if part == nil {
		return fmt.Errorf("%w: no answer for the partition", errRetry)
	}
	switch code := kafka.Error(part.ErrorCode); {
	case part.ErrorCode == 0:
	case errors.Is(code, kafka.OffsetOutOfRange):
		return p.outOfRange(ctx)
	default:
		return code
	}
	if err := p.deliver(part); err != nil {
		return err
	}
	if res.ThrottleTimeMs > 0 {
		sleepCtx(ctx, min(time.Duration(res.ThrottleTimeMs)*time.Millisecond, maxThrottle))
	}
	return nil
}

// outOfRange handles OFFSET_OUT_OF_RANGE: it delivers the typed error and
// moves to the log start (ResetBelowLogStart) or stops the partition.
func (p *partitionFetch) outOfRange(ctx context.Context) error {
	first, err := p.listOffset(ctx, OffsetFirst, 0)
	if err != nil {
		return err
	}
	last, err := p.listOffset(ctx, OffsetLast, 0)
	if err != nil {
		return err
	}
	oor := &OffsetOutOfRangeError{Topic: p.topic, Partition: p.partition, Offset: p.offset, LogStart: first, HighWatermark: last}
	switch {
	case p.offset < first:
		if !p.flushSkip() || !p.f.send(fetchItem{err: oor}) {
			return errStopPartition
		}
		if p.f.cfg.ResetBelowLogStart {
			p.f.log.Debug().Str("topic", p.topic).Int("partition", p.partition).Int64("from", p.offset).Int64("to", first).
				Msg("offset below the log start; continuing at the log start")
			p.offset = first
			return nil
		}
		return errStopPartition
	case p.offset > last:
		if p.flushSkip() {
			p.f.send(fetchItem{err: oor})
		}
		return errStopPartition
	default:
		// In range again (the log moved between the fetch and the listing).
		return fmt.Errorf("%w: offset %d out of range, then within [%d, %d]", errRetry, p.offset, first, last)
	}
}

// deliver queues the records of one fetch response, dropping control
// batches and (with read_committed) the batches of aborted transactions, and
// advances the fetch offset past everything it saw.
//
// The aborted-transaction rule is the Java consumer's: walking the batches
// in order, an aborted transaction (producer id, first offset) from the
// response becomes active when a batch at or past its first offset comes; a
// transactional batch of an active producer is dropped; the producer's abort
// marker (a control batch) ends it. The first offset of a transaction is
// always the base offset of one of its producer's batches, so comparing base
// offsets is enough (kafka-go does not expose a batch's last offset).
func (p *partitionFetch) deliver(part *fetch.ResponsePartition) error {
	fetchOffset := p.offset
	readCommitted := p.f.isolation == 1
	w := &responseWalk{p: p, fetchOffset: fetchOffset, next: fetchOffset, lastBase: -1}
	if readCommitted {
		w.aborted = newAbortedTxns(part.AbortedTransactions)
	}
	var batches []protocol.RecordReader
	switch rs := part.RecordSet.Records.(type) {
	case nil:
	case *protocol.RecordStream:
		batches = rs.Records
	default:
		batches = []protocol.RecordReader{rs}
	}
	for _, batch := range batches {
		if err := w.batch(batch); err != nil {
			return err
		}
	}
	next := w.next
	if len(batches) > 0 && next == fetchOffset {
		// Only batches with no record at or past the fetch offset: records
		// removed by compaction leave empty batches whose end kafka-go does
		// not expose. Step past what can be seen so the loop progresses, and
		// let the consumer's position follow (a placeholder).
		next = max(fetchOffset+1, w.lastBase+1)
		p.skip(next - 1)
	}
	p.offset = max(p.offset, next)

	// Placeholders are held back while more fetches follow at once, so one
	// covers a whole run; once the partition is caught up the run ends.
	end := part.HighWatermark
	if readCommitted && part.LastStableOffset >= 0 {
		end = part.LastStableOffset
	}
	if next >= end || len(batches) == 0 {
		if !p.flushSkip() {
			return p.f.ctx.Err()
		}
	}
	return nil
}

// responseWalk is deliver's walk over the batches of one response.
type responseWalk struct {
	p *partitionFetch
	// fetchOffset is the offset fetched: records below it were delivered
	// by an earlier response.
	fetchOffset int64
	// next is past the last record at or after fetchOffset seen.
	next int64
	// lastBase is the highest base offset of a batch seen, -1 before one.
	lastBase int64
	// aborted is the response's aborted transactions with read_committed;
	// nil with read_uncommitted.
	aborted *abortedTxns
}

// batch delivers the records of one batch: none of a control batch (its
// abort marker ends its producer's aborted transaction), none of a
// transactional batch of an aborted transaction, all of the others.
func (w *responseWalk) batch(batch protocol.RecordReader) error {
	switch b := batch.(type) {
	case *protocol.ControlBatch:
		w.lastBase = max(w.lastBase, b.BaseOffset)
		if w.aborted != nil && b.ProducerID >= 0 {
			w.aborted.activate(b.BaseOffset)
		}
		abortMarker := false
		err := eachRecord(b, func(r *protocol.Record) error {
			if isAbortMarker(r) {
				abortMarker = true
			}
			if r.Offset >= w.fetchOffset {
				w.p.skip(r.Offset)
				w.next = max(w.next, r.Offset+1)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if abortMarker && w.aborted != nil {
			delete(w.aborted.active, b.ProducerID)
		}
		return nil
	case *protocol.RecordBatch:
		w.lastBase = max(w.lastBase, b.BaseOffset)
		if w.aborted != nil && b.ProducerID >= 0 {
			w.aborted.activate(b.BaseOffset)
		}
		drop := w.aborted != nil && b.Attributes.Transactional() && w.aborted.active[b.ProducerID]
		return w.records(b, drop)
	default: // a v0/v1 message set: no transactions
		return w.records(b, false)
	}
}

// records delivers (or with drop skips) the records of a batch at or after
// the fetch offset.
func (w *responseWalk) records(b protocol.RecordReader, drop bool) error {
	return eachRecord(b, func(r *protocol.Record) error {
		if r.Offset < w.fetchOffset {
			return nil
		}
		w.next = max(w.next, r.Offset+1)
		if drop {
			w.p.skip(r.Offset)
			return nil
		}
		return w.p.record(r)
	})
}

// abortedTxns are the aborted transactions of a fetch response as the
// walk over its batches meets them.
type abortedTxns struct {
	pending []fetch.ResponseTransaction // not yet active, by first offset
	active  map[int64]bool              // producer ids of active aborted transactions
}

func newAbortedTxns(txns []fetch.ResponseTransaction) *abortedTxns {
	pending := slices.Clone(txns)
	slices.SortFunc(pending, func(a, b fetch.ResponseTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return &abortedTxns{pending: pending, active: map[int64]bool{}}
}

// activate makes the transactions that start at or before upTo active.
func (a *abortedTxns) activate(upTo int64) {
	for len(a.pending) > 0 && a.pending[0].FirstOffset <= upTo {
		a.active[a.pending[0].ProducerID] = true
		a.pending = a.pending[1:]
	}
}

// skip records that the record at offset is not delivered.
func (p *partitionFetch) skip(offset int64) {
	if offset > p.pendingSkip {
		p.pendingSkip = offset
	}
	p.offset = max(p.offset, offset+1)
}

// flushSkip delivers the placeholder of the pending run of skipped records,
// if any; false when the fetcher stopped first.
func (p *partitionFetch) flushSkip() bool {
	if p.pendingSkip < 0 || p.pendingSkip <= p.lastSent {
		p.pendingSkip = -1
		return true
	}
	msg := Message{Topic: p.topic, Partition: p.partition, Offset: p.pendingSkip, Skip: true, Received: time.Now()}
	if !p.f.send(fetchItem{msg: msg}) {
		return false
	}
	p.lastSent, p.pendingSkip = msg.Offset, -1
	return true
}

// record delivers one record (after the placeholder of the skipped run
// before it).
func (p *partitionFetch) record(r *protocol.Record) error {
	if !p.flushSkip() {
		return p.f.ctx.Err()
	}
	key, err := protocol.ReadAll(r.Key)
	if err != nil {
		return fmt.Errorf("read key at offset %d: %w", r.Offset, err)
	}
	value, err := protocol.ReadAll(r.Value)
	if err != nil {
		return fmt.Errorf("read value at offset %d: %w", r.Offset, err)
	}
	msg := Message{Topic: p.topic, Partition: p.partition, Offset: r.Offset, Key: key, Value: value, Time: r.Time, Received: time.Now()}
	if p.f.cfg.Decode != nil {
		msg.Decoded = p.f.cfg.Decode(p.topic, value)
	}
	if len(r.Headers) > 0 {
		msg.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			msg.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	if !p.f.send(fetchItem{msg: msg}) {
		return p.f.ctx.Err()
	}
	// The offset advances with each delivered record, so a failure later in
	// the response does not deliver it twice.
	p.lastSent = r.Offset
	p.offset = max(p.offset, r.Offset+1)
	return nil
}

// eachRecord calls fn for every record of a batch, then releases the
// record's key and value.
func eachRecord(b protocol.RecordReader, fn func(*protocol.Record) error) error {
	for {
		r, err := b.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read record: %w", err)
		}
		err = fn(r)
		if r.Key != nil {
			r.Key.Close()
		}
		if r.Value != nil {
			r.Value.Close()
		}
		if err != nil {
			return err
		}
	}
}

// isAbortMarker reports whether a control record is an abort marker (key:
// version int16, type int16 = 0; a commit marker has type 1).
func isAbortMarker(r *protocol.Record) bool {
	if r.Key == nil {
		return false
	}
	k, err := protocol.ReadAll(r.Key)
	if err != nil || len(k) < 4 {
		return false
	}
	return binary.BigEndian.Uint16(k[2:4]) == 0
}
