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
	tables map[string]int
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
	now := p.now()
	st := p.Store.State()
	rep := &Report{Role: RoleWriter, DryRun: p.DryRun, Size: len(msgs)}
	offsets := nextOffsets(msgs)

	// Catalog records first, so that events of a batch see the catalog
	// changes of the same batch (each partition keeps its order).
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ca, cb := msgs[a].Topic == p.Topics.Catalog, msgs[b].Topic == p.Topics.Catalog
		switch {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})

	var inputs []handler.Input
	var inMsg []int // msgs index of each input
	var dead []store.OutboxMessage
	results := make([]EventResult, 0, len(msgs))
	resultOf := map[int]int{} // msgs index → results index
	addResult := func(i int, r EventResult) {
		resultOf[i] = len(results)
		results = append(results, r)
	}
	deadLetter := func(i int, reason events.Reason, text string, attempts int) {
		m, dl := deadLetter(p.Topics.DLQ, msgs[i], reason, text, attempts, now, p.Limits.DLQ)
		dead = append(dead, m)
		rep.DeadLetters = append(rep.DeadLetters, dl)
		if r, ok := resultOf[i]; ok {
			results[r].Outcome = OutcomeDLQ
			results[r].Repaired, results[r].Skips = 0, nil
		} else {
			addResult(i, EventResult{Source: sourceOf(msgs[i]), Outcome: OutcomeDLQ})
		}
	}
	for _, i := range order {
		m := msgs[i]
		if m.Skip {
			continue
		}
		if m.Offset < st.AppliedOffset(m.Topic, m.Partition) {
			addResult(i, EventResult{Source: sourceOf(m), Outcome: OutcomeDuplicate})
			continue
		}
		ev, err := events.Decode(m.Value)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				de = &events.DecodeError{Reason: events.ReasonInvalidEvent, Msg: err.Error()}
			}
			deadLetter(i, de.Reason, de.Error(), 1)
			continue
		}
		src := sourceOf(m)
		src.EventID = ev.ID()
		if m.Topic == p.Topics.Input {
			p.notePartition(rep, events.Key(ev), m.Partition)
		}
		inputs = append(inputs, handler.Input{Event: ev, Source: src})
		inMsg = append(inMsg, i)
		addResult(i, EventResult{Source: src, Kind: ev.Kind()})
	}

	// Decide. A record too large for the edit log is dead-lettered with the
	// one input that made it and the rest decided again; a record several
	// inputs made asks for a smaller batch.
	var res handler.Result
	var encoded [][]byte
	for {
		res = handler.Process(st, inputs, handler.Options{NextJournalID: st.JournalID() + 1, Epoch: epoch, Now: now.UnixMilli()})
		encoded = encoded[:0]
		big := -1
		// One buffer for the batch's records (each a full slice of it: the
		// outbox keeps them until they are published).
		buf := make([]byte, 0, 768*len(res.Records))
		for k, r := range res.Records {
			from := len(buf)
			buf = editlog.AppendRecord(buf, r)
			b := buf[from:len(buf):len(buf)]
			encoded = append(encoded, b)
			if big < 0 && p.Limits.EditLog > 0 && recordSize(r, b) > p.Limits.EditLog {
				big = k
			}
		}
		if big < 0 {
			break
		}
		r := res.Records[big]
		var from []int
		for k := range res.Outcomes {
			if slices.Contains(res.Outcomes[k].Records, r.JournalID) {
				from = append(from, k)
			}
		}
		if len(from) != 1 {
			return nil, fmt.Errorf("%w: record %s of MV %s would be %d bytes (the edit log accepts %d) and %d inputs made it",
				ErrSplit, r.Op, r.MV.Key(), recordSize(r, encoded[big]), p.Limits.EditLog, len(from))
		}
		k := from[0]
		deadLetter(inMsg[k], ReasonRecordTooLarge, fmt.Sprintf("its edit-log record (%s of MV %s) would be %d bytes; the edit-log topic %s accepts %d (max.message.bytes)",
			r.Op, r.MV.Key(), recordSize(r, encoded[big]), p.Topics.EditLog, p.Limits.EditLog), 1)
		inputs = slices.Delete(inputs, k, k+1)
		inMsg = slices.Delete(inMsg, k, k+1)
	}
	for k := range res.Outcomes {
		o := &res.Outcomes[k]
		i := inMsg[k]
		if o.DLQ != nil {
			deadLetter(i, o.DLQ.Reason, o.DLQ.Error(), 1)
			continue
		}
		r := &results[resultOf[i]]
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
	rep.Events = results
	rep.Records = res.Records
	if p.DryRun {
		rep.Took = time.Since(start)
		return &Committed{Report: rep, Offsets: offsets}, nil
	}
	changes := append([]mvstate.OffsetChange(nil), extra.Offsets...)
	for topic, parts := range offsets {
		for part, next := range parts {
			changes = append(changes, mvstate.OffsetChange{TopicPartition: mvstate.TopicPartition{Topic: topic, Partition: part}, Next: next})
		}
	}
	cres, err := p.Store.Commit(ctx, store.Batch{Records: res.Records, Encoded: encoded, Mode: editlog.Strict,
		PublishTo: p.Topics.EditLog, DeadLetters: dead, Offsets: changes, Ack: extra.Ack})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit batch: %w", err)
	}
	rep.Took, rep.Bytes = time.Since(start), cres.Bytes
	return &Committed{Report: rep, Outbox: cres.Outbox, Offsets: offsets}, nil
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
	changes := append([]mvstate.OffsetChange(nil), extra.Offsets...)
	for topic, parts := range offsets {
		for part, next := range parts {
			changes = append(changes, mvstate.OffsetChange{TopicPartition: mvstate.TopicPartition{Topic: topic, Partition: part}, Next: next})
		}
	}
	cres, err := p.Store.Commit(ctx, store.Batch{DeadLetters: dead, Offsets: changes, Ack: extra.Ack})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit dead letters: %w", err)
	}
	rep.Bytes = cres.Bytes
	return &Committed{Report: rep, Outbox: cres.Outbox, Offsets: offsets}, nil
}

// notePartition remembers that table's events arrive on partition and
// reports a table whose events moved to another partition.
func (p *Processor) notePartition(rep *Report, table string, partition int) {
	if table == "" {
		return
	}
	if p.tables == nil {
		p.tables = map[string]int{}
	}
	if prev, ok := p.tables[table]; ok && prev != partition {
		rep.PartitionMoves = append(rep.PartitionMoves, PartitionMove{Table: table, From: prev, To: partition})
	}
	p.tables[table] = partition
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
