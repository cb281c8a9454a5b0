package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
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

// Isolation levels accepted by FetcherConfig.IsolationLevel.
const (
	// IsolationReadCommitted delivers only committed records: the records of
	// aborted transactions are skipped and the broker holds back the records
	// of open transactions (it answers up to the last stable offset).
	IsolationReadCommitted = "read_committed"
	// IsolationReadUncommitted delivers every record, including those of
	// aborted and still open transactions.
	IsolationReadUncommitted = "read_uncommitted"
)

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// ClientID identifies this process to the brokers.
	ClientID string
	// MaxWait is how long the broker holds a fetch while it has less than
	// MinBytes to return. Default 250ms. Each fetch request is given
	// MaxWait plus a 10s request timeout before the connection is considered
	// dead, so an idle partition is quiet (no timeouts, no reconnects).
	MaxWait time.Duration
	// MinBytes a fetch waits for. Default 1.
	MinBytes int
	// MaxBytes per fetch (each fetch request asks for one partition, so it
	// bounds both the response and the partition). Default 10 MiB. The
	// broker returns a first record batch larger than this whole.
	MaxBytes int
	// QueueCapacity is the size of the merged queue. Default 1000.
	QueueCapacity int
	// IsolationLevel is "read_committed" (IsolationReadCommitted, the
	// default when empty) or "read_uncommitted".
	IsolationLevel string
	// ResetBelowLogStart decides what happens to a partition whose offset is
	// below its log start (its records were deleted by retention): when
	// true, the Fetcher delivers one *OffsetOutOfRangeError (so the caller
	// can warn that records were lost) and continues from the log start;
	// when false, it delivers that error and stops reading the partition.
	ResetBelowLogStart bool
	// Security configures TLS and SASL. The zero value is plaintext.
	Security Security
	// Decode, when set, is called for each record on its partition's fetch
	// goroutine, and its result is the message's Decoded: the consumer's
	// decoding then runs beside its processing instead of before it. It
	// must be safe for concurrent use and must not keep value.
	Decode func(topic string, value []byte) any
	// Logger receives the fetcher's logs: Warn once when fetching starts
	// failing (and Info when it recovers), Debug for the rest. The zero
	// value discards them.
	Logger zerolog.Logger
}

// Fetcher timings.
const (
	// fetchRequestTimeout is added to MaxWait for the deadline of a fetch
	// (and bounds the other requests of the fetch loop).
	fetchRequestTimeout = 10 * time.Second
	// fetchBackoffMin and fetchBackoffMax bound the pause between retries
	// of a failing partition.
	fetchBackoffMin = 50 * time.Millisecond
	fetchBackoffMax = 2 * time.Second
	// metadataFlushInterval is the least time between two flushes of the
	// fetcher's connection pool after routing errors (see
	// Fetcher.flushMetadata).
	metadataFlushInterval = 2 * time.Second
	// maxThrottle bounds how long a throttled partition pauses.
	maxThrottle = 5 * time.Second
)

// Fetcher reads a fixed set of partitions and merges them into one queue.
// Messages of one partition come out in offset order; partitions are
// interleaved arbitrarily. Fetch and TryFetch are meant to be called from one
// goroutine.
//
// Each partition has its own fetch loop on kafka-go's protocol layer
// (protocol/fetch requests sent with a kafka.Transport, which routes them to
// the partition leader and reuses connections); kafka.Reader is not used
// because it hands out the records of aborted transactions and transaction
// markers as ordinary messages (kafka-go issue 1332). With read_committed the
// loop drops the records of aborted transactions using the aborted
// transactions the broker lists in each fetch response, like the Java
// client: it never delivers a record of an aborted transaction or a control
// record (commit/abort marker), and delivers a Skip placeholder (see Message)
// for every run of such records so that the consumer's position moves past
// them.
//
// Errors. Transient failures (broker down or restarting, leader moved,
// connection reset, timeouts) are retried inside the loop with a capped
// backoff (50ms to 2s) and are not delivered: a consumer can do nothing about
// them but wait, which the loop does. They are logged once per episode at
// Warn (when a second consecutive attempt fails) and once at Info when
// fetching recovers. Errors the caller must know about are delivered once,
// through Fetch, as the partition's next item:
//   - *OffsetOutOfRangeError (ErrOffsetOutOfRange), see
//     FetcherConfig.ResetBelowLogStart; an offset above the high watermark
//     stops the partition;
//   - ErrSecurity (authentication or TLS failures) and other permanent
//     errors (say, records the client cannot decode): delivered once per
//     episode, then retried at the capped backoff (a fix on the broker side
//     is picked up without a restart).
//
// A partition that stops is no longer read; the others go on.
type Fetcher struct {
	cfg       FetcherConfig
	isolation int8
	transport *kafka.Transport
	addr      net.Addr
	log       zerolog.Logger

	out    chan fetchItem
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	pending *fetchItem // an error taken by TryFetch, returned by the next Fetch

	flushMu   sync.Mutex
	lastFlush time.Time

	troubleMu    sync.Mutex
	failing      map[string]struct{} // partitions in a failure episode
	failingSince time.Time
}

type fetchItem struct {
	msg Message
	err error
}

// parseIsolation maps FetcherConfig.IsolationLevel to the protocol value.
func parseIsolation(s string) (int8, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", IsolationReadCommitted:
		return 1, nil
	case IsolationReadUncommitted:
		return 0, nil
	default:
		return 0, fmt.Errorf("kafkaio: fetcher: unknown isolation level %q (want %q or %q)",
			s, IsolationReadCommitted, IsolationReadUncommitted)
	}
}

// NewFetcher starts reading assignments (topic → partitions with the offset
// to start at: an absolute offset, OffsetFirst or OffsetLast; typically a
// Generation's Assignments). OffsetLast is the last stable offset with
// read_committed, the high watermark otherwise. The fetch loops run until
// Close or until ctx ends; with a generation's ctx they thus stop with the
// generation. NewFetcher itself does no I/O.
func NewFetcher(ctx context.Context, cfg FetcherConfig, assignments map[string][]Assignment) (*Fetcher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkaio: fetcher: no brokers")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafkaio: fetcher: %w", err)
	}
	isolation, err := parseIsolation(cfg.IsolationLevel)
	if err != nil {
		return nil, err
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
	nc, err := newNetConfig(cfg.ClientID, cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: fetcher: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &Fetcher{
		cfg:       cfg,
		isolation: isolation,
		transport: nc.transport(),
		addr:      kafka.TCP(cfg.Brokers...),
		log:       cfg.Logger.With().Str("component", "kafka-fetcher").Logger(),
		out:       make(chan fetchItem, cfg.QueueCapacity),
		ctx:       fctx,
		cancel:    cancel,
		failing:   map[string]struct{}{},
	}
	for _, topic := range slices.Sorted(maps.Keys(assignments)) {
		for _, a := range assignments[topic] {
			off := a.Offset
			if off < OffsetFirst {
				off = OffsetFirst
			}
			p := newPartitionFetch(f, nc, topic, a.Partition, off)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				p.run()
			}()
		}
	}
	return f, nil
}

// NewTopicTail starts a Fetcher over every partition of topic, starting at
// start[partition] (the next offset to read) or at the first offset for
// partitions missing from start: followers and rebuilds tail the edit log
// with it. Partitions added to the topic later are not read.
func NewTopicTail(ctx context.Context, cfg FetcherConfig, topic string, start map[int]int64) (*Fetcher, error) {
	admin, err := NewAdmin(AdminConfig{Brokers: cfg.Brokers, ClientID: cfg.ClientID, Security: cfg.Security})
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

// Fetch returns the next message, blocking until one is available, ctx ends,
// or the fetcher stops (errors.Is(err, ErrFetcherClosed) after Close or once
// the ctx given to NewFetcher ended). A message may be a Skip placeholder (see
// Message). A partition's error (see Fetcher) is returned once, in its place
// in the partition's order.
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

// Close stops the fetch loops, waits for them and releases the connections.
// It is safe to call more than once.
func (f *Fetcher) Close() error {
	f.once.Do(func() {
		f.cancel()
		f.wg.Wait()
		f.transport.CloseIdleConnections()
	})
	return nil
}

// send queues an item; false when the fetcher stopped first.
func (f *Fetcher) send(item fetchItem) bool {
	select {
	case f.out <- item:
		return true
	case <-f.ctx.Done():
		return false
	}
}

// flushMetadata drops the fetcher's connection pool, at most once per
// metadataFlushInterval, after errors that mean its view of the cluster is
// stale (leader moved, topic or partition unknown to the pool). kafka-go
// refreshes a pool's metadata only every MetadataTTL (6s), and a pool whose
// first metadata request failed (the broker was down) routes nothing until
// then; a new pool fetches metadata at once. Requests in flight finish on
// their connections.
func (f *Fetcher) flushMetadata() {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	if time.Since(f.lastFlush) < metadataFlushInterval {
		return
	}
	f.lastFlush = time.Now()
	f.transport.CloseIdleConnections()
}

// troubleStart records that a partition is failing; the first one of an
// episode logs at Warn.
func (f *Fetcher) troubleStart(topic string, partition int, err error) {
	f.troubleMu.Lock()
	defer f.troubleMu.Unlock()
	key := fmt.Sprintf("%s/%d", topic, partition)
	if _, ok := f.failing[key]; ok {
		return
	}
	if len(f.failing) == 0 {
		f.failingSince = time.Now()
		f.log.Warn().Err(err).Str("topic", topic).Int("partition", partition).
			Msg("kafka fetch failing; retrying with backoff (logged once until it recovers)")
	}
	f.failing[key] = struct{}{}
}

// troubleEnd records that a partition fetches again; the last one of an
// episode logs at Info.
func (f *Fetcher) troubleEnd(topic string, partition int) {
	f.troubleMu.Lock()
	defer f.troubleMu.Unlock()
	key := fmt.Sprintf("%s/%d", topic, partition)
	if _, ok := f.failing[key]; !ok {
		return
	}
	delete(f.failing, key)
	if len(f.failing) == 0 {
		f.log.Info().Dur("after", time.Since(f.failingSince)).Msg("kafka fetch recovered")
	}
}
