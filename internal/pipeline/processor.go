// Package pipeline is the service's processing loop: it turns batches of
// fetched Kafka records into one local commit each (state changes, edit-log
// and dead-letter outbox, input offsets), publishes the outbox, and only then
// commits the input offsets to the group (DESIGN.md §1, §5). It also runs the
// follower side: tailing the edit log into the local store.
//
// Order of effects for one batch (each step only after the previous one is
// durable):
//
//  1. decode + dedupe by applied offset, decide (handler.Process)
//  2. one bbolt commit: records applied (editlog.Apply), outbox, offsets
//  3. publish the outbox (edit log, DLQ), acknowledged by all in-sync replicas
//  4. commit the input offsets to the consumer group (forward only)
//  5. the next commit deletes the acknowledged outbox messages
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// DLQ header names (DESIGN.md §4).
const (
	HeaderDLQReason       = "dlq-reason"
	HeaderDLQError        = "dlq-error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
	HeaderAttempts        = "attempts"
	HeaderFailedAt        = "failed-at"
)

// Topics names the four topics.
type Topics struct {
	Input, Catalog, EditLog, DLQ string
}

// Observer receives what a batch did (metrics). All methods must be cheap.
type Observer interface {
	Event(kind, outcome string)
	Repairs(n int)
	Skip(reason string)
	DLQ(reason string)
	Batch(size int, d time.Duration)
	Records(n int, journalID int64)
}

type nopObserver struct{}

func (nopObserver) Event(string, string)     {}
func (nopObserver) Repairs(int)              {}
func (nopObserver) Skip(string)              {}
func (nopObserver) DLQ(string)               {}
func (nopObserver) Batch(int, time.Duration) {}
func (nopObserver) Records(int, int64)       {}

// Processor applies batches of input records to the store. It is used by one
// goroutine at a time (the active writer).
type Processor struct {
	Store  *mvstate.Store
	Topics Topics
	Log    zerolog.Logger
	Obs    Observer
	// DryRun decides and logs but commits nothing.
	DryRun bool
	// Now returns the wall clock (tests pin it).
	Now func() time.Time
}

// Outcome summarises one processed batch.
type Outcome struct {
	// Outbox holds the messages the commit promised to publish, in order.
	Outbox []mvstate.OutboxMessage
	// Offsets are the next input offsets to commit to the group.
	Offsets map[string]map[int]int64
	// Records are the edit-log records committed.
	Records  []*editlog.Record
	Outcomes []handler.Outcome
	// DLQ counts the dead-lettered inputs.
	DLQ int
}

// LastSeq returns the outbox sequence of the batch's last message, or 0.
func (o *Outcome) LastSeq() uint64 {
	if len(o.Outbox) == 0 {
		return 0
	}
	return o.Outbox[len(o.Outbox)-1].Seq
}

// dlqEntry is a dead-letter decision for one input record.
type dlqEntry struct {
	msg    kafkaio.Message
	reason events.Reason
	err    string
}

// ErrInconsistent means the handler produced a record the store would not
// apply: a bug, never a transient failure.
var ErrInconsistent = errors.New("pipeline: handler output does not apply to the store")

// Process decides and commits one batch. epoch is stamped on new records;
// ackThrough deletes the outbox messages already acknowledged by the broker.
// On error nothing was committed and the batch may be retried as a whole.
func (p *Processor) Process(ctx context.Context, msgs []kafkaio.Message, epoch int64, ackThrough uint64) (*Outcome, error) {
	start := time.Now()
	obs := p.obs()
	now := p.now()
	var inputs []handler.Input
	var dlq []dlqEntry
	offsets := map[string]map[int]int64{}
	for _, m := range msgs {
		if po := offsets[m.Topic]; po == nil {
			offsets[m.Topic] = map[int]int64{m.Partition: m.Offset + 1}
		} else if m.Offset+1 > po[m.Partition] {
			po[m.Partition] = m.Offset + 1
		}
		if m.Offset < p.Store.AppliedOffset(m.Topic, m.Partition) {
			obs.Event("unknown", "duplicate")
			obs.Skip(string(handler.SkipAlreadyApplied))
			continue
		}
		ev, err := events.Decode(m.Value)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				de = &events.DecodeError{Reason: events.ReasonInvalidEvent, Msg: err.Error()}
			}
			dlq = append(dlq, dlqEntry{msg: m, reason: de.Reason, err: de.Error()})
			continue
		}
		inputs = append(inputs, handler.Input{Event: ev, Source: editlog.Cause{
			EventID: ev.ID(), Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}})
	}
	res := handler.Process(p.Store, inputs, handler.Options{
		NextJournalID: p.Store.JournalID() + 1, Epoch: epoch, Now: now.UnixMilli()})
	for i := range res.Outcomes {
		if o := &res.Outcomes[i]; o.DLQ != nil {
			src := o.Input.Source
			dlq = append(dlq, dlqEntry{msg: findMsg(msgs, src), reason: o.DLQ.Reason, err: o.DLQ.Error()})
		}
	}
	out := &Outcome{Offsets: offsets, Records: res.Records, Outcomes: res.Outcomes, DLQ: len(dlq)}
	if p.DryRun {
		p.report(out, dlq, now)
		return out, nil
	}
	encoded := make([][]byte, len(res.Records))
	for i, r := range res.Records {
		// r.MarshalJSON, not editlog.Encode (json.Marshal): the bytes are the
		// same (MarshalJSON's output already comes from json.Marshal, compact
		// and HTML-escaped), but json.Marshal would scan and compact the whole
		// record once more: about a fifth of the writer's CPU time in the load
		// benchmark, 15.4 → 11.4 ms per 1000-event batch (docs/benchmarks.md).
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("pipeline: encode record %d: %w", r.JournalID, err)
		}
		encoded[i] = b
	}
	keys, structural := editlog.Touches(res.Records)
	err := p.Store.Commit(ctx, mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		out.Outbox = out.Outbox[:0]
		for i, r := range res.Records {
			got, err := editlog.Apply(tx, r)
			if err != nil {
				return err
			}
			if got != editlog.Applied {
				return fmt.Errorf("%w: record %d was %s", ErrInconsistent, r.JournalID, got)
			}
			m := mvstate.OutboxMessage{Topic: p.Topics.EditLog, Key: []byte(r.Key()), Value: encoded[i],
				Headers: map[string]string{editlog.HeaderJournalID: r.JournalHeader()}, HeaderOrder: []string{editlog.HeaderJournalID}}
			m.Seq = tx.AddOutbox(m)
			out.Outbox = append(out.Outbox, m)
		}
		for _, d := range dlq {
			m := dlqMessage(p.Topics.DLQ, d, 1, now)
			m.Seq = tx.AddOutbox(m)
			out.Outbox = append(out.Outbox, m)
		}
		for topic, po := range offsets {
			for part, next := range po {
				if err := tx.SetOffset(topic, part, next); err != nil {
					return err
				}
			}
		}
		tx.AckOutbox(ackThrough)
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit batch: %w", err)
	}
	p.report(out, dlq, now)
	obs.Batch(len(msgs), time.Since(start))
	return out, nil
}

// DeadLetter commits the given records straight to the DLQ with reason
// retries_exhausted (after Process kept failing for them), recording their
// offsets as applied.
func (p *Processor) DeadLetter(ctx context.Context, msgs []kafkaio.Message, cause error, attempts int, ackThrough uint64) (*Outcome, error) {
	now := p.now()
	out := &Outcome{Offsets: map[string]map[int]int64{}, DLQ: len(msgs)}
	err := p.Store.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error {
		out.Outbox = out.Outbox[:0]
		for _, m := range msgs {
			d := dlqEntry{msg: m, reason: events.ReasonRetriesExhausted, err: cause.Error()}
			om := dlqMessage(p.Topics.DLQ, d, attempts, now)
			om.Seq = tx.AddOutbox(om)
			out.Outbox = append(out.Outbox, om)
			if err := tx.SetOffset(m.Topic, m.Partition, m.Offset+1); err != nil {
				return err
			}
			if po := out.Offsets[m.Topic]; po == nil {
				out.Offsets[m.Topic] = map[int]int64{m.Partition: m.Offset + 1}
			} else if m.Offset+1 > po[m.Partition] {
				po[m.Partition] = m.Offset + 1
			}
			p.logDLQ(d)
			p.obs().DLQ(string(d.reason))
			p.obs().Event("unknown", "dlq")
		}
		tx.AckOutbox(ackThrough)
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("pipeline: commit dead letters: %w", err)
	}
	return out, nil
}

func dlqMessage(topic string, d dlqEntry, attempts int, now time.Time) mvstate.OutboxMessage {
	h := map[string]string{
		HeaderDLQReason:       string(d.reason),
		HeaderDLQError:        d.err,
		HeaderSourceTopic:     d.msg.Topic,
		HeaderSourcePartition: strconv.Itoa(d.msg.Partition),
		HeaderSourceOffset:    strconv.FormatInt(d.msg.Offset, 10),
		HeaderAttempts:        strconv.Itoa(attempts),
		HeaderFailedAt:        strconv.FormatInt(now.UnixMilli(), 10),
	}
	return mvstate.OutboxMessage{Topic: topic, Key: d.msg.Key, Value: d.msg.Value, Headers: h,
		HeaderOrder: []string{HeaderDLQReason, HeaderDLQError, HeaderSourceTopic, HeaderSourcePartition,
			HeaderSourceOffset, HeaderAttempts, HeaderFailedAt}}
}

func findMsg(msgs []kafkaio.Message, c editlog.Cause) kafkaio.Message {
	for _, m := range msgs {
		if m.Topic == c.Topic && m.Partition == c.Partition && m.Offset == c.Offset {
			return m
		}
	}
	return kafkaio.Message{Topic: c.Topic, Partition: c.Partition, Offset: c.Offset}
}

func (p *Processor) obs() Observer {
	if p.Obs == nil {
		return nopObserver{}
	}
	return p.Obs
}

func (p *Processor) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// report logs and counts what a batch did: one INFO line per repaired MV,
// WARN for skipped tables and dead-lettered records (DESIGN.md §6).
func (p *Processor) report(out *Outcome, dlq []dlqEntry, now time.Time) {
	obs := p.obs()
	for _, d := range dlq {
		p.logDLQ(d)
		obs.DLQ(string(d.reason))
		obs.Event("unknown", "dlq")
	}
	for i := range out.Outcomes {
		o := &out.Outcomes[i]
		kind := string(o.Input.Event.Kind())
		switch {
		case o.DLQ != nil:
		case o.Applied():
			obs.Event(kind, "applied")
		case len(o.Skips) > 0:
			obs.Event(kind, "skipped")
		default:
			obs.Event(kind, "noop")
		}
		obs.Repairs(o.Repaired)
		for _, s := range o.Skips {
			obs.Skip(string(s.Reason))
			src := o.Input.Source
			ev := p.Log.Debug()
			if s.Reason == handler.SkipNonNativeTable || s.Reason == handler.SkipNoRelatedMV {
				ev = p.Log.Warn()
			}
			ev.Str("topic", src.Topic).Int("partition", src.Partition).Int64("offset", src.Offset).
				Str("event_id", src.EventID).Str("reason", string(s.Reason)).Str("mv", keyStr(s.MV)).
				Int64("table_id", s.TableID).Str("partition_name", s.Partition).Str("detail", s.Detail).
				Msg("skipped")
		}
	}
	for _, r := range out.Records {
		ev := p.Log.Info().Int64("journal_id", r.JournalID).Int64("epoch", r.Epoch).Str("op", string(r.Op)).
			Str("mv", r.MV.Key().String()).Str("mv_name", r.MV.MVName).Bool("dry_run", p.DryRun)
		if r.BaseTable != nil {
			ev = ev.Int64("table_id", r.BaseTable.TableID)
		}
		if len(r.Partitions) > 0 {
			ev = ev.Int("partitions", len(r.Partitions))
		}
		if len(r.Causes) > 0 {
			c := r.Causes[0]
			ev = ev.Str("topic", c.Topic).Int("partition", c.Partition).Int64("offset", c.Offset).Str("event_id", c.EventID)
		}
		ev.Msg(string(r.Op))
	}
	if n := len(out.Records); n > 0 {
		obs.Records(n, out.Records[n-1].JournalID)
	}
}

func (p *Processor) logDLQ(d dlqEntry) {
	p.Log.Warn().Str("topic", d.msg.Topic).Int("partition", d.msg.Partition).Int64("offset", d.msg.Offset).
		Str("reason", string(d.reason)).Str("error", d.err).Bool("dry_run", p.DryRun).Msg("dead-lettered")
}

func keyStr(k mvstate.MVKey) string {
	if k == (mvstate.MVKey{}) {
		return ""
	}
	return k.String()
}
