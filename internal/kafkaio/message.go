package kafkaio

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is one Kafka record.
//
// For Publish, Partition and Offset are inputs that are ignored (the
// partition is chosen by key hash) and outputs: a successful Publish sets
// them to where the message was written. A zero Time means "now".
//
// From a Fetcher, a Message with Skip set is not a record but a placeholder:
// the records from the previous delivered offset of the partition up to and
// including Offset were skipped, because they are transaction control
// records (commit/abort markers) or belong to aborted transactions (with
// read_committed). Only Topic, Partition, Offset and Skip are set. A consumer
// must not process it, but must move its position past it (commit
// Offset+1), or it would never commit past those records. One placeholder
// covers a whole run of skipped records; it comes in offset order with the
// partition's other messages.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
	// Skip marks a placeholder for skipped records (see above).
	Skip bool
	// Received is when the fetcher queued the message (zero for messages
	// not from a fetcher): batches measure their wait from it.
	Received time.Time
	// Decoded is what FetcherConfig.Decode made of the value on the fetch
	// goroutine (nil without a Decode, and for messages not from a
	// fetcher).
	Decoded any
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// HeaderValue returns the value of the first header named key.
func HeaderValue(hs []Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// toKafka converts a message for the writer (partition and offset are left to
// the writer).
func toKafka(m Message) kafka.Message {
	out := kafka.Message{
		Topic: m.Topic,
		Key:   m.Key,
		Value: m.Value,
		Time:  m.Time,
	}
	if len(m.Headers) > 0 {
		out.Headers = make([]kafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

// recordBatchOverhead is the size of a v2 record batch without its records
// (base offset 8, length 4, leader epoch 4, magic 1, crc 4, attributes 2,
// last offset delta 4, first and max timestamps 16, producer id 8, producer
// epoch 2, base sequence 4, record count 4).
const recordBatchOverhead = 61

// RecordSize returns the bytes m takes on the wire as brokers count it
// against max.message.bytes: a record batch (v2) holding m alone, that is the
// batch header plus the record with its key, value and headers, uncompressed.
// Callers can compare it to a topic's max.message.bytes before publishing.
// With compression the broker counts the compressed batch, which is usually
// smaller.
func RecordSize(m Message) int {
	body := 1 + // attributes
		varintLen(0) + // timestamp delta
		varintLen(0) + // offset delta
		bytesLen(m.Key) + bytesLen(m.Value) +
		varintLen(int64(len(m.Headers)))
	for _, h := range m.Headers {
		body += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return recordBatchOverhead + varintLen(int64(body)) + body
}

// bytesLen is the size of a nullable byte field of a record: a zig-zag
// varint length (-1 for nil) and the bytes.
func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the size of v as a zig-zag varint.
func varintLen(v int64) int {
	u := uint64((v << 1) ^ (v >> 63))
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
