package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Fetcher defaults.
const (
	DefaultFetchMaxWait       = 250 * time.Millisecond
	DefaultFetchMinBytes      = 1
	DefaultFetchMaxBytes      = 10 << 20
	DefaultFetchQueueCapacity = 1000
)

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// ClientID identifies this process to the brokers.
	ClientID string
	// MaxWait is how long a fetch waits for MinBytes. Default 250ms; it also
	// bounds how long Close can take.
	MaxWait time.Duration
	// MinBytes a fetch waits for. Default 1.
	MinBytes int
	// MaxBytes per fetch and partition. Default 10 MiB.
	MaxBytes int
	// QueueCapacity is the size of the merged queue (and of each partition
	// reader's internal queue). Default 1000.
	QueueCapacity int
	// Logger receives kafka-go's logs (Debug for info, Warn for errors).
	// The zero value discards them.
	Logger zerolog.Logger
}

// Fetcher reads a fixed set of partitions, each with its own group-less
// kafka-go Reader started at an explicit offset, and merges them into one
// queue. Messages of one partition come out in offset order; partitions are
// interleaved arbitrarily. Fetch and TryFetch are meant to be called from one
// goroutine.
type Fetcher struct {
	readers []*kafka.Reader
	out     chan fetchItem
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	mu      sync.Mutex
	pending *fetchItem // an error taken by TryFetch, returned by the next Fetch
}

type fetchItem struct {
	msg Message
	err error
}

// NewFetcher starts reading assignments (topic → partitions with the offset
// to start at: an absolute offset, OffsetFirst or OffsetLast; typically a
// Generation's Assignments). The readers run until Close or until ctx ends;
// with a generation's ctx they thus stop with the generation. An offset below
// the log start is moved to the log start by kafka-go (records lost to
// retention are skipped).
func NewFetcher(ctx context.Context, cfg FetcherConfig, assignments map[string][]Assignment) (*Fetcher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkaio: fetcher: no brokers")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafkaio: fetcher: %w", err)
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultFetchMaxWait
	}
	if cfg.MinBytes <= 0 {
		cfg.MinBytes = DefaultFetchMinBytes
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultFetchMaxBytes
	}
	if cfg.QueueCapacity <= 0 {
		cfg.QueueCapacity = DefaultFetchQueueCapacity
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &Fetcher{
		out:    make(chan fetchItem, cfg.QueueCapacity),
		ctx:    fctx,
		cancel: cancel,
	}
	dialer := newDialer(cfg.ClientID)
	for _, topic := range slices.Sorted(maps.Keys(assignments)) {
		for _, a := range assignments[topic] {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:       cfg.Brokers,
				Topic:         topic,
				Partition:     a.Partition,
				Dialer:        dialer,
				MinBytes:      cfg.MinBytes,
				MaxBytes:      cfg.MaxBytes,
				MaxWait:       cfg.MaxWait,
				QueueCapacity: cfg.QueueCapacity,
				Logger:        debugLogger(cfg.Logger, "kafka-reader"),
				ErrorLogger:   warnLogger(cfg.Logger, "kafka-reader"),
			})
			off := a.Offset
			if off < OffsetFirst {
				off = OffsetFirst
			}
			if err := r.SetOffset(off); err != nil {
				_ = r.Close()
				_ = f.Close()
				return nil, fmt.Errorf("kafkaio: fetcher: %s/%d: set offset %d: %w", topic, a.Partition, off, err)
			}
			f.readers = append(f.readers, r)
		}
	}
	for _, r := range f.readers {
		f.wg.Add(1)
		go f.pump(r)
	}
	return f, nil
}

// NewTopicTail starts a Fetcher over every partition of topic, starting at
// start[partition] (the next offset to read) or at the first offset for
// partitions missing from start: followers and rebuilds tail the edit log
// with it. Partitions added to the topic later are not read.
func NewTopicTail(ctx context.Context, cfg FetcherConfig, topic string, start map[int]int64) (*Fetcher, error) {
	admin, err := NewAdmin(AdminConfig{Brokers: cfg.Brokers, ClientID: cfg.ClientID})
	if err != nil {
		return nil, fmt.Errorf("kafkaio: tail %q: %w", topic, err)
	}
	defer admin.Close()
	parts, err := admin.Partitions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: tail %q: %w", topic, err)
	}
	as := make([]Assignment, len(parts))
	for i, p := range parts {
		off, ok := start[p]
		if !ok || off < 0 {
			off = OffsetFirst
		}
		as[i] = Assignment{Partition: p, Offset: off}
	}
	return NewFetcher(ctx, cfg, map[string][]Assignment{topic: as})
}

// pump moves one partition's messages into the merged queue, in order.
func (f *Fetcher) pump(r *kafka.Reader) {
	defer f.wg.Done()
	cfg := r.Config()
	failures := 0
	for {
		km, err := r.FetchMessage(f.ctx)
		if f.ctx.Err() != nil {
			return
		}
		var item fetchItem
		if err != nil {
			if errors.Is(err, io.EOF) { // reader closed
				return
			}
			item.err = fmt.Errorf("kafkaio: fetch %s/%d: %w", cfg.Topic, cfg.Partition, err)
		} else {
			item.msg = fromKafka(km)
			item.msg.Received = time.Now()
		}
		select {
		case f.out <- item:
		case <-f.ctx.Done():
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		// kafka-go already retried; do not spin if it keeps failing.
		failures++
		delay := min(100*time.Millisecond<<min(failures, 5), 2*time.Second)
		select {
		case <-time.After(delay):
		case <-f.ctx.Done():
			return
		}
	}
}

// Fetch returns the next message, blocking until one is available, ctx ends,
// or the fetcher stops (errors.Is(err, ErrFetcherClosed) after Close or once
// the ctx given to NewFetcher ended). A read error of one partition is
// returned once; the partition keeps being read.
func (f *Fetcher) Fetch(ctx context.Context) (Message, error) {
	if item, ok := f.takePending(); ok {
		return item.msg, item.err
	}
	select {
	case item := <-f.out:
		return item.msg, item.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-f.ctx.Done():
		return Message{}, fmt.Errorf("%w: %w", ErrFetcherClosed, context.Cause(f.ctx))
	}
}

// TryFetch returns the next message if one is already queued, without
// blocking (to fill a batch). A queued error is kept for the next Fetch.
func (f *Fetcher) TryFetch() (Message, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		return Message{}, false
	}
	select {
	case item := <-f.out:
		if item.err != nil {
			f.pending = &item
			return Message{}, false
		}
		return item.msg, true
	default:
		return Message{}, false
	}
}

func (f *Fetcher) takePending() (fetchItem, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == nil {
		return fetchItem{}, false
	}
	item := *f.pending
	f.pending = nil
	return item, true
}

// Close stops the readers and waits for them. It is safe to call more than
// once.
func (f *Fetcher) Close() error {
	var errs []error
	f.once.Do(func() {
		f.cancel()
		for _, r := range f.readers {
			if err := r.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		f.wg.Wait()
	})
	if len(errs) > 0 {
		return fmt.Errorf("kafkaio: close fetcher: %w", errors.Join(errs...))
	}
	return nil
}
