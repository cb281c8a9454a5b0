package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Producer defaults.
const (
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultBatchSize    = 1000
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxMessageBytes is the default ProducerConfig.MaxMessageBytes:
	// Kafka's default max.message.bytes (1 MiB).
	DefaultMaxMessageBytes = 1 << 20
	// minMaxMessageBytes is the smallest MaxMessageBytes accepted.
	minMaxMessageBytes = 256
	// legacySizeSlack is how much more kafka-go's per-message size estimate
	// (Message.totalSize: 22 bytes of fixed overhead, a legacy v1 layout)
	// can count than the record's v2 encoding (at least 7 bytes of
	// overhead); see NewProducer.
	legacySizeSlack = 22 - 7
	// producerMaxAttempts is kept small: the caller retries the whole set
	// with its own backoff, which it can bound and observe.
	producerMaxAttempts = 3
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// ClientID identifies this process to the brokers.
	ClientID string
	// BatchTimeout is how long a partial batch waits for more messages
	// before it is sent. Default 5ms (kafka-go's own default of 1s would make
	// every synchronous Publish take a second).
	BatchTimeout time.Duration
	// BatchSize is the maximum number of messages per partition batch.
	// Default 1000; keep it at or above the largest Publish per partition so
	// that a call is one request per partition (a failed earlier batch cannot
	// then be overtaken by a later one).
	BatchSize int
	// WriteTimeout bounds each produce request. Default 10s.
	WriteTimeout time.Duration
	// Compression is "", "none", "gzip", "snappy", "lz4" or "zstd".
	Compression string
	// MaxMessageBytes is the largest record the producer sends, as counted
	// by RecordSize; a larger message fails with ErrMessageTooLarge before
	// anything is sent. It also bounds the batches sent to one partition, so
	// keep it at or below the topics' max.message.bytes (a broker refuses a
	// larger batch as a whole). Default 1 MiB, Kafka's default.
	MaxMessageBytes int
	// Security configures TLS and SASL. The zero value is plaintext.
	Security Security
	// Logger receives kafka-go's logs (Debug for info, Warn for errors).
	// The zero value discards them.
	Logger zerolog.Logger
}

// Producer publishes messages synchronously to any topic (the topic is set
// per message). It is safe for concurrent use.
//
// Keys are partitioned like the Java client's default partitioner: murmur2
// of the key, made positive, modulo the partition count (kafka-go's
// Murmur2Balancer), so a JVM producer and this one put a key on the same
// partition. Messages without a key go to a random partition.
type Producer struct {
	w        *kafka.Writer
	net      *netConfig
	maxBytes int
}

// publishResult receives where a message was written (kafka-go's Completion
// callback fills it, through Message.WriterData).
type publishResult struct {
	partition int
	offset    int64
	done      bool
}

// NewProducer builds a Producer. It does not connect; the first Publish does.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkaio: producer: no brokers")
	}
	comp, err := parseCompression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	switch {
	case cfg.MaxMessageBytes == 0:
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	case cfg.MaxMessageBytes < minMaxMessageBytes:
		return nil, fmt.Errorf("kafkaio: producer: max message bytes %d is below %d", cfg.MaxMessageBytes, minMaxMessageBytes)
	}
	nc, err := newNetConfig(cfg.ClientID, cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: producer: %w", err)
	}
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...),
		// The Java client's default partitioner (murmur2), not FNV-1a.
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		Async:        false,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		// kafka-go cuts a partition's batch when the sum of its per-message
		// estimates would pass BatchBytes, and refuses a single message whose
		// estimate does. A batch on the wire is recordBatchOverhead plus its
		// records, and the estimate counts at most legacySizeSlack bytes more
		// than a record (and in practice no less), so this keeps batches
		// within MaxMessageBytes while letting through every message whose
		// RecordSize is within it (Publish checks that first).
		BatchBytes:             int64(cfg.MaxMessageBytes - recordBatchOverhead + legacySizeSlack),
		WriteTimeout:           cfg.WriteTimeout,
		ReadTimeout:            cfg.WriteTimeout,
		MaxAttempts:            producerMaxAttempts,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
		Compression:            comp,
		AllowAutoTopicCreation: false,
		Transport:              nc.transport(),
		Completion:             recordWritten,
		Logger:                 debugLogger(cfg.Logger, "kafka-writer"),
		ErrorLogger:            warnLogger(cfg.Logger, "kafka-writer"),
	}
	return &Producer{w: w, net: nc, maxBytes: cfg.MaxMessageBytes}, nil
}

// recordWritten is the Writer's Completion callback: it runs once per
// partition batch, before the synchronous WriteMessages waiting for the batch
// returns, and records where each message of a successful batch was written.
func recordWritten(msgs []kafka.Message, err error) {
	if err != nil {
		return
	}
	for i := range msgs {
		if r, ok := msgs[i].WriterData.(*publishResult); ok {
			r.partition, r.offset, r.done = msgs[i].Partition, msgs[i].Offset, true
		}
	}
}

// writer exposes the kafka-go configuration to the package tests.
func (p *Producer) writer() *kafka.Writer { return p.w }

// Publish writes msgs and returns only when every one of them is acknowledged
// by all in-sync replicas. Each message's Topic must be set.
//
// On success Publish sets msgs[i].Partition and msgs[i].Offset to where each
// message was written (the Message values in the caller's slice are
// updated; nothing else is changed). On error they are left as they were.
//
// On any error the caller should retry the whole set (possibly after
// backoff, see IsTransient): some messages may already be written, so a retry
// can duplicate them but never leaves a gap. If ctx ends first, the outcome
// of the write is unknown and the messages' byte slices must not be modified
// until retried.
//
// A message larger than MaxMessageBytes (see RecordSize) fails the call with
// a *MessageTooLargeError before anything is sent; one the broker refuses as
// too large for the topic fails it with ErrMessageTooLarge too (a
// *MessageTooLargeError naming the message when it can be told). Neither is
// transient.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	kms := make([]kafka.Message, len(msgs))
	results := make([]publishResult, len(msgs))
	for i, m := range msgs {
		if m.Topic == "" {
			return fmt.Errorf("kafkaio: publish: message %d has no topic", i)
		}
		if size := RecordSize(m); size > p.maxBytes {
			return &MessageTooLargeError{Topic: m.Topic, Index: i, Size: size, Limit: p.maxBytes}
		}
		kms[i] = toKafka(m)
		kms[i].WriterData = &results[i]
	}
	if err := p.w.WriteMessages(ctx, kms...); err != nil {
		if anyError(err, staleProduceRoute) {
			p.flushMetadata()
		}
		if tooLarge := p.tooLarge(ctx, msgs, kms, err); tooLarge != nil {
			return tooLarge
		}
		err = p.net.classify(err)
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) {
			return fmt.Errorf("kafkaio: publish: %d of %d messages failed: %w", werrs.Count(), len(msgs), err)
		}
		return fmt.Errorf("kafkaio: publish %d messages: %w", len(msgs), err)
	}
	// Every batch completed, so every Completion callback has run (done is
	// a guard: kafka-go calls it for every batch it writes).
	for i := range msgs {
		if results[i].done {
			msgs[i].Partition, msgs[i].Offset = results[i].partition, results[i].offset
		}
	}
	return nil
}

// staleProduceRoute reports a produce error meaning that the pool's view
// of the cluster is stale: kafka-go found no leader for a partition in its
// cached metadata (protocol.ErrNoLeader), or the broker answered that the
// route is wrong (staleRouting).
func staleProduceRoute(err error) bool {
	return errors.Is(err, protocol.ErrNoLeader) || staleRouting(err)
}

// flushMetadata drops the producer's connection pool so that the next
// publish fetches metadata at once: kafka-go serves a pool's metadata from
// its cache, refreshed at a random moment within MetadataTTL (6s) and never
// on an error, so a partition cached without a leader (an election, a
// broker restarting or fenced for a moment) stays unroutable for up to 6s
// after it has one again. Requests in flight finish on their connections.
func (p *Producer) flushMetadata() {
	if t, ok := p.w.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
}

// tooLarge turns a size refusal into a *MessageTooLargeError, or returns nil
// when err is not one.
func (p *Producer) tooLarge(ctx context.Context, msgs []Message, kms []kafka.Message, err error) error {
	// Refused by kafka-go itself (should not happen: Publish checks first).
	var kerr kafka.MessageTooLargeError
	if errors.As(err, &kerr) {
		idx := -1
		if r, ok := kerr.Message.WriterData.(*publishResult); ok {
			for i := range kms {
				if kms[i].WriterData == r {
					idx = i
				}
			}
		}
		e := &MessageTooLargeError{Topic: kerr.Message.Topic, Index: idx, Limit: p.maxBytes, err: err}
		if idx >= 0 {
			e.Size = RecordSize(msgs[idx])
		}
		return e
	}
	// Refused by the broker: every message of the refused batches carries
	// the error.
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) {
		return nil
	}
	var failed []int
	var cause error
	for i, e := range werrs {
		if e != nil && (errors.Is(e, kafka.MessageSizeTooLarge) || errors.Is(e, kafka.RecordListTooLarge)) {
			failed = append(failed, i)
			cause = e
		}
	}
	if len(failed) == 0 {
		return nil
	}
	largest := failed[0]
	for _, i := range failed {
		if RecordSize(msgs[i]) > RecordSize(msgs[largest]) {
			largest = i
		}
	}
	e := &MessageTooLargeError{Topic: msgs[largest].Topic, Index: -1, Size: RecordSize(msgs[largest]), err: cause}
	if len(failed) == 1 {
		e.Index = failed[0]
	}
	// Name the limit: the topic's effective max.message.bytes (best effort).
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if limit, lerr := topicMaxMessageBytes(lctx, p.w.Transport, p.w.Addr, e.Topic); lerr == nil {
		e.Limit = limit
		if e.Index < 0 && e.Size > limit {
			// The one message over the limit is the culprit.
			over := -1
			for _, i := range failed {
				if RecordSize(msgs[i]) > limit {
					if over >= 0 {
						over = -1
						break
					}
					over = i
				}
			}
			e.Index = over
		}
	}
	return e
}

// Close flushes pending batches and closes the connections. It returns
// ctx.Err() if ctx ends first (the writer then finishes closing in the
// background).
func (p *Producer) Close(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- p.w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafkaio: close producer: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkaio: close producer: %w", ctx.Err())
	}
}

func parseCompression(s string) (kafka.Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	default:
		return 0, fmt.Errorf("kafkaio: unknown compression %q (want none, gzip, snappy, lz4 or zstd)", s)
	}
}
