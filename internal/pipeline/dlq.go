package pipeline

import (
	"strconv"
	"time"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
)

// DLQ header names (docs/design.md §4.8).
const (
	HeaderDLQReason       = "dlq-reason"
	HeaderDLQError        = "dlq-error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
	HeaderAttempts        = "attempts"
	HeaderFailedAt        = "failed-at"
	HeaderSourceSize      = "source-size"
)

// AddedHeaders are the headers the service appends to every dead letter,
// in this order, after the original record's own (docs/design.md §4.8); a
// record_too_large letter adds HeaderSourceSize. Whoever reads or strips
// the service's headers (the shrinking of letters, `consumer dlq redrive`)
// takes the list from here.
func AddedHeaders() []string {
	return []string{HeaderDLQReason, HeaderDLQError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset,
		HeaderAttempts, HeaderFailedAt}
}

// maxErrorHeader bounds the dlq-error header (a decoder's message quotes
// the input).
const maxErrorHeader = 1024

// deadLetter builds the dead-letter copy of m: its key, value and headers
// unchanged (an empty value stays empty), then the DLQ headers. When that
// copy would exceed limit bytes it is dead-lettered as record_too_large
// instead: key kept if it fits, an empty value, only the DLQ headers and
// source-size, so that an operator can fetch the original from its offset.
func deadLetter(topic string, m kafkaio.Message, reason events.Reason, errText string, attempts int, now time.Time, limit int) (store.OutboxMessage, DeadLetter) {
	if len(errText) > maxErrorHeader {
		errText = errText[:maxErrorHeader] + "…"
	}
	dl := DeadLetter{Source: sourceOf(m), Reason: reason, Error: errText, Attempts: attempts, Size: len(m.Value)}
	extra := func(r events.Reason, e string) []store.Header {
		values := []string{string(r), e, m.Topic, strconv.Itoa(m.Partition), strconv.FormatInt(m.Offset, 10),
			strconv.Itoa(attempts), strconv.FormatInt(now.UnixMilli(), 10)} // in AddedHeaders' order
		hs := make([]store.Header, 0, len(values))
		for i, k := range AddedHeaders() {
			hs = append(hs, store.Header{Key: k, Value: []byte(values[i])})
		}
		return hs
	}
	out := store.OutboxMessage{Topic: topic, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, store.Header{Key: h.Key, Value: h.Value})
	}
	out.Headers = append(out.Headers, extra(reason, errText)...)
	if limit <= 0 || outboxSize(out) <= limit {
		return out, dl
	}
	// Too large to dead-letter whole.
	if reason != ReasonRecordTooLarge {
		errText = string(reason) + ": " + errText
	}
	errText = "the record is too large to copy to the dead-letter topic (" + strconv.Itoa(outboxSize(out)) +
		" bytes, limit " + strconv.Itoa(limit) + "); fetch it from its source offset. " + errText
	if len(errText) > maxErrorHeader {
		errText = errText[:maxErrorHeader] + "…"
	}
	small := store.OutboxMessage{Topic: topic, Key: m.Key, Value: []byte{}, Headers: extra(ReasonRecordTooLarge, errText)}
	small.Headers = append(small.Headers, store.Header{Key: HeaderSourceSize, Value: []byte(strconv.Itoa(len(m.Value)))})
	if outboxSize(small) > limit {
		small.Key = nil
	}
	dl.Reason, dl.Error = ReasonRecordTooLarge, errText
	return small, dl
}

// outboxSize is the size a message takes against a topic's
// max.message.bytes.
func outboxSize(m store.OutboxMessage) int {
	return kafkaio.RecordSize(toKafka(m))
}

func toKafka(m store.OutboxMessage) kafkaio.Message {
	out := kafkaio.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
	if len(m.Headers) > 0 {
		out.Headers = make([]kafkaio.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = kafkaio.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}
