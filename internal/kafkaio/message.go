package kafkaio

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is one Kafka record. For Publish, Partition and Offset are ignored
// (the partition is chosen by key hash) and a zero Time means "now".
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
	// Skip marks a placeholder that carries no record: the offsets up to and
	// including Offset were read but hold nothing to process (transaction
	// markers, records of aborted transactions). Consumers move their
	// committed position past it.
	Skip bool
	// Received is when the fetcher queued the message (zero for messages
	// not from a fetcher): batches measure their wait from it.
	Received time.Time
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

// fromKafka converts a kafka-go message.
func fromKafka(m kafka.Message) Message {
	out := Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Time:      m.Time,
	}
	if len(m.Headers) > 0 {
		out.Headers = make([]Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
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
