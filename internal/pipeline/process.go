// Package pipeline is the service's processing loop: it turns batches of
// fetched Kafka records into one local commit each (state changes, edit-log
// and dead-letter outbox, input offsets), publishes the outbox, and only then
// commits the input offsets to the group (docs/design.md §1, §5). It also
// runs the follower side: tailing the edit log into the local store.
//
// Order of effects for one batch (each step only after the previous one is
// durable):
//
//  1. skip records below the store's applied offsets; decode; decide
//     (handler.Process), catalog records first
//  2. one local commit (store.Commit): records applied with
//     editlog.ApplyBatch, outbox, offsets; then the report goes to the hooks
//  3. publish the outbox (edit log, DLQ), acknowledged by all in-sync replicas
//  4. commit the input offsets to the consumer group (forward only)
//  5. the next commit records the acknowledgement, so the outbox shrinks
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Topics names the topics the pipeline reads and writes.
type Topics struct {
	Input, Catalog, EditLog, DLQ string
}

// Limits are the largest records (bytes, as a broker counts them against a
// topic's max.message.bytes) the edit-log and dead-letter topics accept.
// Zero means no limit.
type Limits struct {
	EditLog, DLQ int
}

// ErrSplit means one edit-log record of the batch would exceed the edit-log
// topic's limit and several input records contributed to it: the batch must
// be decided in smaller parts (the writer splits it).
var ErrSplit = errors.New("pipeline: an edit-log record of the batch is too large; split the batch")

// Processor decides and commits batches of input records. It is used by one
// goroutine at a time (the active writer).
type Processor struct {
	Store  *store.Store
	Topics Topics
	Limits Limits
	// DryRun decides and reports but commits nothing.
	DryRun bool
	// Now returns the wall clock (tests pin it).
	Now func() time.Time

	// tables remembers the input partition each table's events came from
	// (per-table order needs one partition per table).
	tables map[tableRef]int
}

// Committed is one batch committed locally.
type Committed struct {
	Report *Report
	// Outbox holds the messages the commit promised to publish, in order.
	Outbox []store.OutboxMessage
	// Offsets are the next input offsets to commit to the group.
	Offsets map[string]map[int]int64
}

// LastSeq returns the outbox sequence of the batch's last message, or 0.
func (c *Committed) LastSeq() uint64 {
	if len(c.Outbox) == 0 {
		return 0
	}
	return c.Outbox[len(c.Outbox)-1].Seq
}

// Extra is what the sink hands to the next commit: the outbox acknowledged
// by the broker, and offsets to record (the edit log written so far, the
// offsets committed to the group).
type Extra struct {
	Ack     uint64
	Offsets []mvstate.OffsetChange
}

func (p *Processor) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Process decides and commits one batch. epoch is stamped on new records.
// On error nothing was committed and the batch may be processed again: an
// error wrapping store.ErrIO is an infrastructure fault (retry the same
// batch), ErrSplit asks for smaller batches.
func (p *Processor) Process(ctx context.Context, msgs []kafkaio.Message, epoch int64, extra Extra) (*Committed, error) {
	start := time.Now()
	b := p.newBatch(msgs)
	b.decode()
	res, encoded, err := b.decide(epoch)
	if err != nil {
		return nil, err
	}
	b.settle(res)
	rep := b.rep
	rep.Records = res.Records
	for _, e := range encoded {
		rep.RecordBytes += int64(len(e))
	}
	offsets := nextOffsets(msgs)
	if p.DryRun {
		rep.Took = time.Since(start)
		return &Committed{Report: rep, Offsets: offsets}, nil
	}
	cres, err := p.Store.Commit(ctx, store.Batch{Records: res.Records, Encoded: encoded, Mode: editlog.Strict,
		PublishTo: p.Topics.EditLog, DeadLetters: b.dead, Offsets: offsetChanges(extra, offsets), Ack: extra.Ack})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit batch: %w", err)
	}
	rep.Took, rep.Bytes = time.Since(start), cres.Bytes
	return &Committed{Report: rep, Outbox: cres.Outbox, Offsets: offsets}, nil
}

// batch is one Process call's work.
type batch struct {
	p    *Processor
	msgs []kafkaio.Message
	now  time.Time
	st   *mvstate.State
	rep  *Report

	inputs   []handler.Input
	inMsg    []int // msgs index of each input
	dead     []store.OutboxMessage
	results  []EventResult
	resultOf []int // msgs index → results index (-1: none yet)
}

func (p *Processor) newBatch(msgs []kafkaio.Message) *batch {
	b := &batch{p: p, msgs: msgs, now: p.now(), st: p.Store.State(),
		rep:     &Report{Role: RoleWriter, DryRun: p.DryRun, Size: len(msgs)},
		results: make([]EventResult, 0, len(msgs)), resultOf: make([]int, len(msgs)),
		inputs: make([]handler.Input, 0, len(msgs)), inMsg: make([]int, 0, len(msgs))}
	for i := range b.resultOf {
		b.resultOf[i] = -1
	}
	return b
}

func (b *batch) addResult(i int, r EventResult) {
	b.resultOf[i] = len(b.results)
	b.results = append(b.results, r)
}

// deadLetter queues msgs[i] for the DLQ with reason.
func (b *batch) deadLetter(i int, reason events.Reason, text string) {
	m, dl := deadLetter(b.p.Topics.DLQ, b.msgs[i], reason, text, 1, b.now, b.p.Limits.DLQ)
	b.dead = append(b.dead, m)
	b.rep.DeadLetters = append(b.rep.DeadLetters, dl)
	if r := b.resultOf[i]; r >= 0 {
		b.results[r].Outcome = OutcomeDLQ
		b.results[r].Repaired, b.results[r].Skips = 0, nil
	} else {
		b.addResult(i, EventResult{Source: sourceOf(b.msgs[i]), Outcome: OutcomeDLQ})
	}
}

// catalogFirst returns the indexes of msgs with the catalog's records
// first, so that the events of a batch see the catalog changes of the same
// batch (each partition keeps its order).
func (b *batch) catalogFirst() []int {
	order := make([]int, 0, len(b.msgs))
	for i := range b.msgs {
		if b.msgs[i].Topic == b.p.Topics.Catalog {
			order = append(order, i)
		}
	}
	for i := range b.msgs {
		if b.msgs[i].Topic != b.p.Topics.Catalog {
			order = append(order, i)
		}
	}
	return order
}

// decode turns the batch's records into handler inputs: records below the
// store's applied offsets are duplicates, undecodable ones dead letters.
func (b *batch) decode() {
	applied := map[mvstate.TopicPartition]int64{}
	for _, i := range b.catalogFirst() {
		m := b.msgs[i]
		if m.Skip {
			continue
		}
		tp := mvstate.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		off, ok := applied[tp]
		if !ok {
			off = b.st.AppliedOffset(m.Topic, m.Partition)
			applied[tp] = off
		}
		if m.Offset < off {
			b.addResult(i, EventResult{Source: sourceOf(m), Outcome: OutcomeDuplicate})
			continue
		}
		ev, err := decodeMessage(m)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				de = &events.DecodeError{Reason: events.ReasonInvalidEvent, Msg: err.Error()}
			}
			b.deadLetter(i, de.Reason, de.Error())
			continue
		}
		src := sourceOf(m)
		src.EventID = ev.ID()
		if m.Topic == b.p.Topics.Input {
			b.p.notePartition(b.rep, ev, m.Partition)
		}
		b.inputs = append(b.inputs, handler.Input{Event: ev, Source: src})
		b.inMsg = append(b.inMsg, i)
		b.addResult(i, EventResult{Source: src, Kind: ev.Kind()})
	}
}

// decide runs the repair rules over the inputs and encodes the records. A
// record too large for the edit log is dead-lettered with the one input
// that made it and the rest decided again; a record several inputs made
// asks for a smaller batch (ErrSplit).
func (b *batch) decide(epoch int64) (handler.Result, [][]byte, error) {
	p := b.p
	for {
		res := handler.Process(b.st, b.inputs, handler.Options{NextJournalID: b.st.JournalID() + 1, Epoch: epoch, Now: b.now.UnixMilli()})
		encoded := make([][]byte, 0, len(res.Records))
		big := -1
		// One buffer for the batch's records (each a full slice of it: the
		// outbox keeps them until they are published).
		buf := make([]byte, 0, 768*len(res.Records))
		for k, r := range res.Records {
			from := len(buf)
			buf = editlog.AppendRecord(buf, r)
			encoded = append(encoded, buf[from:len(buf):len(buf)])
			if big < 0 && p.Limits.EditLog > 0 && recordSize(r, encoded[k]) > p.Limits.EditLog {
				big = k
			}
		}
		if big < 0 {
			return res, encoded, nil
		}
		r := res.Records[big]
		var from []int
		for k := range res.Outcomes {
			if slices.Contains(res.Outcomes[k].Records, r.JournalID) {
				from = append(from, k)
			}
		}
		if len(from) != 1 {
			return res, nil, fmt.Errorf("%w: record %s of MV %s would be %d bytes (the edit log accepts %d) and %d inputs made it",
				ErrSplit, r.Op, r.MV.Key(), recordSize(r, encoded[big]), p.Limits.EditLog, len(from))
		}
		k := from[0]
		b.deadLetter(b.inMsg[k], ReasonRecordTooLarge, fmt.Sprintf("its edit-log record (%s of MV %s) would be %d bytes; the edit-log topic %s accepts %d (max.message.bytes)",
			r.Op, r.MV.Key(), recordSize(r, encoded[big]), p.Topics.EditLog, p.Limits.EditLog))
		b.inputs = slices.Delete(b.inputs, k, k+1)
		b.inMsg = slices.Delete(b.inMsg, k, k+1)
	}
}

// settle records each input's outcome in the report.
func (b *batch) settle(res handler.Result) {
	for k := range res.Outcomes {
		o := &res.Outcomes[k]
		i := b.inMsg[k]
		if o.DLQ != nil {
			b.deadLetter(i, o.DLQ.Reason, o.DLQ.Error())
			continue
		}
		r := &b.results[b.resultOf[i]]
		r.Repaired, r.Skips = o.Repaired, o.Skips
		switch {
		case o.Applied():
			r.Outcome = OutcomeApplied
		case len(o.Skips) > 0:
			r.Outcome = OutcomeSkipped
		default:
			r.Outcome = OutcomeNoop
		}
	}
	b.rep.Events = b.results
}

// offsetChanges are the applied offsets a commit records: what the sink
// handed over, and the batch's next input offsets.
func offsetChanges(extra Extra, offsets map[string]map[int]int64) []mvstate.OffsetChange {
	changes := append([]mvstate.OffsetChange(nil), extra.Offsets...)
	for topic, parts := range offsets {
		for part, next := range parts {
			changes = append(changes, mvstate.OffsetChange{TopicPartition: mvstate.TopicPartition{Topic: topic, Partition: part}, Next: next})
		}
	}
	return changes
}

// DeadLetterAll commits the given records straight to the dead-letter topic
// with reason (after their commit kept failing for a reason of their own),
// recording their offsets as applied.
func (p *Processor) DeadLetterAll(ctx context.Context, msgs []kafkaio.Message, reason events.Reason, cause error, attempts int, extra Extra) (*Committed, error) {
	now := p.now()
	rep := &Report{Role: RoleWriter, DryRun: p.DryRun, Size: len(msgs)}
	var dead []store.OutboxMessage
	for _, m := range msgs {
		om, dl := deadLetter(p.Topics.DLQ, m, reason, cause.Error(), attempts, now, p.Limits.DLQ)
		dead = append(dead, om)
		rep.DeadLetters = append(rep.DeadLetters, dl)
		rep.Events = append(rep.Events, EventResult{Source: sourceOf(m), Outcome: OutcomeDLQ})
	}
	offsets := nextOffsets(msgs)
	if p.DryRun {
		return &Committed{Report: rep, Offsets: offsets}, nil
	}
	cres, err := p.Store.Commit(ctx, store.Batch{DeadLetters: dead, Offsets: offsetChanges(extra, offsets), Ack: extra.Ack})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit dead letters: %w", err)
	}
	rep.Bytes = cres.Bytes
	return &Committed{Report: rep, Outbox: cres.Outbox, Offsets: offsets}, nil
}

// decoded is an input record's value decoded on its fetch goroutine
// (Predecode).
type decoded struct {
	ev  events.Event
	err error
}

// Predecode is the fetchers' kafkaio.FetcherConfig.Decode for the writer's
// input and catalog topics: events are decoded as they arrive, beside the
// writer's work on the previous batch, not at the start of their own
// batch (decoding is pure: the result is the same).
func Predecode(_ string, value []byte) any {
	ev, err := events.Decode(value)
	return &decoded{ev: ev, err: err}
}

// decodeMessage returns m's event, decoded by Predecode or now.
func decodeMessage(m kafkaio.Message) (events.Event, error) {
	if d, ok := m.Decoded.(*decoded); ok {
		return d.ev, d.err
	}
	return events.Decode(m.Value)
}

// notePartition remembers that the events of ev's table arrive on
// partition and reports a table whose events moved to another partition.
func (p *Processor) notePartition(rep *Report, ev events.Event, partition int) {
	var t tableRef
	if pvc, ok := ev.(*events.PartitionVersionChanged); ok {
		t = tableRef{db: pvc.DBID, table: pvc.TableID} // no string to build per event
	} else if t.name = events.Key(ev); t.name == "" {
		return
	}
	if p.tables == nil {
		p.tables = map[tableRef]int{}
	}
	if prev, ok := p.tables[t]; ok && prev != partition {
		rep.PartitionMoves = append(rep.PartitionMoves, PartitionMove{Table: events.Key(ev), From: prev, To: partition})
	}
	p.tables[t] = partition
}

// tableRef names a table: by ids (native tables) or by its event key.
type tableRef struct {
	db, table int64
	name      string
}

// nextOffsets returns, per topic and partition, the offset after the last
// message of msgs (skip placeholders included).
func nextOffsets(msgs []kafkaio.Message) map[string]map[int]int64 {
	out := map[string]map[int]int64{}
	for _, m := range msgs {
		po := out[m.Topic]
		if po == nil {
			po = map[int]int64{}
			out[m.Topic] = po
		}
		if m.Offset+1 > po[m.Partition] {
			po[m.Partition] = m.Offset + 1
		}
	}
	return out
}

func sourceOf(m kafkaio.Message) editlog.Cause {
	return editlog.Cause{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
}

// recordSize is the size an edit-log record takes against the topic's
// limit: key, value and the journal-id header.
func recordSize(r *editlog.Record, value []byte) int {
	return kafkaio.RecordSize(kafkaio.Message{Key: []byte(r.Key()), Value: value,
		Headers: []kafkaio.Header{{Key: editlog.HeaderJournalID, Value: []byte(strconv.FormatInt(r.JournalID, 10))}}})
}
