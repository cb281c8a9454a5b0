package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Producer defaults.
const (
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultBatchSize    = 1000
	DefaultWriteTimeout = 10 * time.Second
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
	// MaxMessageBytes is the largest record the producer sends (default
	// 1 MiB); larger ones fail with ErrMessageTooLarge without being sent.
	MaxMessageBytes int
	// Logger receives kafka-go's logs (Debug for info, Warn for errors).
	// The zero value discards them.
	Logger zerolog.Logger
}

// Producer publishes messages synchronously to any topic (the topic is set
// per message). It is safe for concurrent use.
type Producer struct {
	w *kafka.Writer
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
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               &kafka.Hash{}, // same key, same partition (FNV-1a, Sarama-compatible)
		RequiredAcks:           kafka.RequireAll,
		Async:                  false,
		BatchTimeout:           cfg.BatchTimeout,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             int64(cfg.MaxMessageBytes),
		WriteTimeout:           cfg.WriteTimeout,
		ReadTimeout:            cfg.WriteTimeout,
		MaxAttempts:            producerMaxAttempts,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        500 * time.Millisecond,
		Compression:            comp,
		AllowAutoTopicCreation: false,
		Transport:              newTransport(cfg.ClientID),
		Logger:                 debugLogger(cfg.Logger, "kafka-writer"),
		ErrorLogger:            warnLogger(cfg.Logger, "kafka-writer"),
		// Completion runs for every batch before WriteMessages returns
		// (the writer is synchronous): it hands each message's partition
		// and offset back to the Publish call that wrote it.
		Completion: func(msgs []kafka.Message, err error) {
			if err != nil {
				return
			}
			for _, m := range msgs {
				if slot, ok := m.WriterData.(*Message); ok {
					slot.Partition, slot.Offset = m.Partition, m.Offset
				}
			}
		},
	}
	return &Producer{w: w}, nil
}

// writer exposes the kafka-go configuration to the package tests.
func (p *Producer) writer() *kafka.Writer { return p.w }

// Publish writes msgs and returns only when every one of them is acknowledged
// by all in-sync replicas; then msgs[i].Partition and msgs[i].Offset say
// where each was written. Each message's Topic must be set. On any error the
// caller should retry the whole set (possibly after backoff, see IsTransient):
// some messages may already be written, so a retry can duplicate them but
// never leaves a gap. If ctx ends first, the outcome of the write is unknown
// and the messages' byte slices must not be modified until retried.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	kms := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		if m.Topic == "" {
			return fmt.Errorf("kafkaio: publish: message %d has no topic", i)
		}
		kms[i] = toKafka(m)
		kms[i].WriterData = &msgs[i]
		msgs[i].Offset = -1
	}
	if err := p.w.WriteMessages(ctx, kms...); err != nil {
		var big kafka.MessageTooLargeError
		if errors.As(err, &big) || errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) {
			return fmt.Errorf("kafkaio: publish %d messages: %w: %w", len(msgs), ErrMessageTooLarge, err)
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) {
			for _, e := range werrs {
				if errors.Is(e, kafka.MessageSizeTooLarge) || errors.Is(e, kafka.RecordListTooLarge) {
					return fmt.Errorf("kafkaio: publish: %d of %d messages failed: %w: %w", werrs.Count(), len(msgs), ErrMessageTooLarge, err)
				}
			}
			return fmt.Errorf("kafkaio: publish: %d of %d messages failed: %w", werrs.Count(), len(msgs), err)
		}
		return fmt.Errorf("kafkaio: publish %d messages: %w", len(msgs), err)
	}
	return nil
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

// newTransport gives each component its own connection pool (never
// kafka.DefaultTransport) so a stale pool after a broker restart is local.
func newTransport(clientID string) *kafka.Transport {
	return &kafka.Transport{
		ClientID:    clientID,
		DialTimeout: 5 * time.Second,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 6 * time.Second,
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
