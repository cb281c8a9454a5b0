package store

import (
	"fmt"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Header is one Kafka record header of an outbox message.
type Header struct {
	Key   string
	Value []byte
}

// OutboxMessage is a Kafka record a commit promised to publish: an edit-log
// record or a dead letter. It stays in the outbox until acknowledged.
type OutboxMessage struct {
	// Seq orders the outbox; Ack(seq) acknowledges everything up to it.
	Seq   uint64
	Topic string
	Key   []byte
	// Value is nil for a null value; an empty value stays empty.
	Value   []byte
	Headers []Header
	// JournalID is the record's journal id for an edit-log record, 0 for a
	// dead letter.
	JournalID int64
}

// entry is one commit in the log.
type entry struct {
	seq uint64
	// journalID and epoch are the state's after the entry (checked at replay).
	journalID, epoch int64
	// ack: the outbox is acknowledged through this sequence (0: unchanged).
	ack uint64
	// topic is the edit-log topic the records are queued for publishing
	// to; "" when they are not (a follower's entries).
	topic string
	// outboxFirst is the sequence of the entry's first outbox message
	// (its queued records, then its dead letters).
	outboxFirst uint64
	offsets     []mvstate.OffsetChange
	records     [][]byte
	dead        []OutboxMessage // Seq unset
}

const entryVersion = 1

func (e *entry) encode(dst []byte) []byte {
	w := enc{b: dst}
	w.u8(entryVersion)
	w.uvarint(e.seq)
	w.varint(e.journalID)
	w.varint(e.epoch)
	w.uvarint(e.ack)
	w.str(e.topic)
	w.uvarint(e.outboxFirst)
	w.uvarint(uint64(len(e.offsets)))
	for _, o := range e.offsets {
		w.str(o.Topic)
		w.uvarint(uint64(o.Partition))
		w.varint(o.Next)
		if o.Reset {
			w.u8(1)
		} else {
			w.u8(0)
		}
	}
	w.uvarint(uint64(len(e.records)))
	for _, r := range e.records {
		w.bytes(r)
	}
	w.uvarint(uint64(len(e.dead)))
	for _, m := range e.dead {
		encodeMessage(&w, m)
	}
	return w.b
}

func encodeMessage(w *enc, m OutboxMessage) {
	w.str(m.Topic)
	w.bytes(m.Key)
	w.bytes(m.Value)
	w.varint(m.JournalID)
	w.uvarint(uint64(len(m.Headers)))
	for _, h := range m.Headers {
		w.str(h.Key)
		w.bytes(h.Value)
	}
}

func decodeMessage(d *dec) OutboxMessage {
	m := OutboxMessage{Topic: d.str(), Key: d.bytes(), Value: d.bytes(), JournalID: d.varint()}
	if n := d.count(2); n > 0 {
		m.Headers = make([]Header, n)
		for i := range m.Headers {
			m.Headers[i] = Header{Key: d.str(), Value: d.bytes()}
		}
	}
	return m
}

func decodeEntry(p []byte) (*entry, error) {
	d := dec{b: p}
	if v := d.u8(); v != entryVersion && d.err == nil {
		return nil, fmt.Errorf("log entry version %d (this build reads %d)", v, entryVersion)
	}
	e := &entry{seq: d.uvarint(), journalID: d.varint(), epoch: d.varint(), ack: d.uvarint(), topic: d.str(), outboxFirst: d.uvarint()}
	if n := d.count(4); n > 0 {
		e.offsets = make([]mvstate.OffsetChange, n)
		for i := range e.offsets {
			o := &e.offsets[i]
			o.Topic, o.Partition, o.Next, o.Reset = d.str(), int(d.uvarint()), d.varint(), d.u8() == 1
		}
	}
	if n := d.count(1); n > 0 {
		e.records = make([][]byte, n)
		for i := range e.records {
			e.records[i] = d.bytes()
		}
	}
	if n := d.count(6); n > 0 {
		e.dead = make([]OutboxMessage, n)
		for i := range e.dead {
			e.dead[i] = decodeMessage(&d)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the entry", len(d.b))
	}
	return e, nil
}

// recordMessage is the outbox message of an edit-log record.
func recordMessage(topic string, seq uint64, r *editlog.Record, value []byte) OutboxMessage {
	return OutboxMessage{Seq: seq, Topic: topic, Key: []byte(r.Key()), Value: value, JournalID: r.JournalID,
		Headers: []Header{{Key: editlog.HeaderJournalID, Value: []byte(r.JournalHeader())}}}
}
