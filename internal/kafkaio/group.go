package kafkaio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Group defaults.
const (
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultJoinGroupBackoff  = 500 * time.Millisecond
	// groupRequestTimeout is kafka-go's per-request deadline towards the
	// coordinator. Its default of 5s turned fencing answers into i/o
	// timeouts after a member was frozen; 30s lets error 25 through.
	groupRequestTimeout = 30 * time.Second
)

// Start offsets for partitions with no committed offset.
const (
	StartFirst = "first"
	StartLast  = "last"
)

// OffsetFirst is the Assignment.Offset of a partition with no committed
// offset when the group starts from the first offset (kafka.FirstOffset).
const OffsetFirst int64 = -2

// OffsetLast is the Assignment.Offset of a partition with no committed offset
// when the group starts from the end (kafka.LastOffset).
const OffsetLast int64 = -1

// GroupConfig configures a Group.
type GroupConfig struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// GroupID is the consumer group.
	GroupID string
	// Topics are the subscribed topics.
	Topics []string
	// ClientID identifies this process to the brokers.
	ClientID string
	// InstanceName is advertised to the other members (single-active
	// balancer) for operators.
	InstanceName string
	// Balancer is "single-active" (default) or "range".
	Balancer string
	// SessionTimeout: a member silent for this long is evicted. Default 10s.
	// The broker enforces a minimum (6s on Kafka and kfake by default; the
	// embedded broker lowers it to 1s).
	SessionTimeout time.Duration
	// HeartbeatInterval bounds how fast a member notices a rebalance, hence
	// the clean-failover latency. Default 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin; it must exceed the time the active member needs to finish its
	// in-flight batch. Default 30s.
	RebalanceTimeout time.Duration
	// JoinGroupBackoff is the pause after a failed join. Default 500ms.
	JoinGroupBackoff time.Duration
	// StartOffset is "first" (default) or "last", for partitions with no
	// committed offset.
	StartOffset string
	// Security configures TLS and SASL. The zero value is plaintext.
	Security Security
	// Logger receives kafka-go's logs (Debug for info, Warn for errors).
	// The zero value discards them.
	Logger zerolog.Logger
}

// Group is this process's membership of a consumer group. Call Next in a
// loop; each call returns the next generation once the previous one ended.
type Group struct {
	cg       *kafka.ConsumerGroup
	balancer *SingleActiveBalancer // nil with the range balancer
	groupID  string
	net      *netConfig
}

// NewGroup creates the membership. It does not connect: joining happens in
// the background and its outcome is reported by Next.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkaio: group: no brokers")
	}
	if cfg.GroupID == "" {
		return nil, errors.New("kafkaio: group: empty group id")
	}
	if len(cfg.Topics) == 0 {
		return nil, errors.New("kafkaio: group: no topics")
	}
	gb, sab, err := newGroupBalancer(cfg.Balancer, cfg.InstanceName)
	if err != nil {
		return nil, err
	}
	start := kafka.FirstOffset
	switch cfg.StartOffset {
	case "", StartFirst:
	case StartLast:
		start = kafka.LastOffset
	default:
		return nil, fmt.Errorf("kafkaio: group: invalid start offset %q (want %q or %q)", cfg.StartOffset, StartFirst, StartLast)
	}
	nc, err := newNetConfig(cfg.ClientID, cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: group %q: %w", cfg.GroupID, err)
	}
	kcfg := kafka.ConsumerGroupConfig{
		ID:                cfg.GroupID,
		Brokers:           cfg.Brokers,
		Dialer:            nc.dialer(),
		Topics:            slices.Clone(cfg.Topics),
		GroupBalancers:    []kafka.GroupBalancer{gb},
		HeartbeatInterval: orDefault(cfg.HeartbeatInterval, DefaultHeartbeatInterval),
		SessionTimeout:    orDefault(cfg.SessionTimeout, DefaultSessionTimeout),
		RebalanceTimeout:  orDefault(cfg.RebalanceTimeout, DefaultRebalanceTimeout),
		JoinGroupBackoff:  orDefault(cfg.JoinGroupBackoff, DefaultJoinGroupBackoff),
		StartOffset:       start,
		Timeout:           groupRequestTimeout,
		Logger:            debugLogger(cfg.Logger, "kafka-group"),
		ErrorLogger:       warnLogger(cfg.Logger, "kafka-group"),
	}
	if kcfg.HeartbeatInterval >= kcfg.SessionTimeout {
		return nil, fmt.Errorf("kafkaio: group: heartbeat interval %v must be below the session timeout %v",
			kcfg.HeartbeatInterval, kcfg.SessionTimeout)
	}
	cg, err := kafka.NewConsumerGroup(kcfg)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: group %q: %w", cfg.GroupID, err)
	}
	return &Group{cg: cg, balancer: sab, groupID: cfg.GroupID, net: nc}, nil
}

// Next blocks until this member is part of a new generation and returns it.
// A generation ends when the group rebalances (a member joins or leaves), when
// this member loses contact with the coordinator, or when a function passed to
// Generation.Run returns; Next then returns the following one. There is never
// more than one live generation, and Next does not return a new one until
// every function started by the previous generation's Run has returned.
//
// Errors joining the group are returned as they happen (the group keeps
// retrying in the background, so callers usually log and call Next again);
// errors.Is(err, ErrFenced) when the coordinator evicted this member,
// errors.Is(err, ErrSecurity) for a TLS or SASL failure, and ErrGroupClosed
// after Close.
func (g *Group) Next(ctx context.Context) (*Generation, error) {
	kg, err := g.cg.Next(ctx)
	if err != nil {
		if errors.Is(err, kafka.ErrGroupClosed) {
			return nil, fmt.Errorf("%w: %w", ErrGroupClosed, err)
		}
		return nil, fmt.Errorf("kafkaio: group %q: next generation: %w", g.groupID, g.net.classify(wrapFenced(err)))
	}
	gen := newGeneration(kg)
	if g.balancer != nil {
		g.balancer.Observe(gen.Active(), gen.ID())
	}
	return gen, nil
}

// Balancer returns the single-active balancer (nil with "range"), whose State
// is what this member advertises.
func (g *Group) Balancer() *SingleActiveBalancer { return g.balancer }

// Close leaves the group (LeaveGroup, so the others rebalance at their next
// heartbeat instead of after the session timeout). It blocks until every
// function started by the current generation's Run has returned.
func (g *Group) Close() error {
	if err := g.cg.Close(); err != nil {
		return fmt.Errorf("kafkaio: close group %q: %w", g.groupID, err)
	}
	return nil
}

// Assignment is one assigned partition and where to start reading it.
type Assignment struct {
	Partition int
	// Offset is the committed next offset to read, or OffsetFirst /
	// OffsetLast when the group has no committed offset for the partition.
	Offset int64
}

// Generation is one generation of the group as seen by this member.
type Generation struct {
	gen         *kafka.Generation
	assignments map[string][]Assignment
	// commitSem serializes commits, including one abandoned by a caller whose
	// ctx ended, so a late older commit can never overtake a newer one.
	commitSem chan struct{}
}

func newGeneration(kg *kafka.Generation) *Generation {
	as := make(map[string][]Assignment)
	for topic, parts := range kg.Assignments {
		if len(parts) == 0 {
			continue
		}
		list := make([]Assignment, len(parts))
		for i, p := range parts {
			list[i] = Assignment{Partition: p.ID, Offset: p.Offset}
		}
		slices.SortFunc(list, func(a, b Assignment) int { return cmp.Compare(a.Partition, b.Partition) })
		as[topic] = list
	}
	return &Generation{gen: kg, assignments: as, commitSem: make(chan struct{}, 1)}
}

// ID is the generation id: strictly increasing for the group (it rises on
// every rebalance, a standby joining included), the same for all members.
// Use it as the writer's epoch.
func (g *Generation) ID() int64 { return int64(g.gen.ID) }

// MemberID is this member's id in the group (it contains spaces).
func (g *Generation) MemberID() string { return g.gen.MemberID }

// Assignments returns a copy of this member's partitions by topic, sorted by
// partition; topics with no partition are left out (empty for a standby).
func (g *Generation) Assignments() map[string][]Assignment {
	out := make(map[string][]Assignment, len(g.assignments))
	for t, list := range g.assignments {
		out[t] = slices.Clone(list)
	}
	return out
}

// Topics returns the topics with assigned partitions, sorted.
func (g *Generation) Topics() []string {
	return slices.Sorted(maps.Keys(g.assignments))
}

// Active reports whether this member was assigned any partition.
func (g *Generation) Active() bool { return len(g.assignments) > 0 }

// Run starts fn in a goroutine bound to the generation. fn's ctx ends when
// the generation ends (its Err is then kafka-go's ErrGenerationEnded); fn must
// return promptly after that, because the group cannot move to the next
// generation (and Close cannot finish) until it does. If fn returns on its
// own, the generation ends and the member rejoins.
func (g *Generation) Run(fn func(ctx context.Context)) {
	g.gen.Start(fn)
}

// Commit commits offsets (topic → partition → NEXT offset to read) for the
// group within this generation. It fails with errors.Is(err, ErrFenced) when
// the coordinator no longer accepts this generation or member, or when the
// generation's coordinator connection is closed: either way the role is lost
// for this generation. Success does not prove the member is still active
// (Kafka accepts commits of the current generation during a rebalance). Commits are
// serialized; if ctx ends first Commit returns ctx.Err() and the request may
// still complete (kafka-go bounds it with its 30s request timeout).
// Call Commit from within Run: the coordinator connection closes once the
// generation's functions have returned.
func (g *Generation) Commit(ctx context.Context, offsets map[string]map[int]int64) error {
	n := 0
	for topic, parts := range offsets {
		for p, off := range parts {
			if off < 0 {
				return fmt.Errorf("kafkaio: commit %s/%d: negative offset %d", topic, p, off)
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	select {
	case g.commitSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("kafkaio: commit (generation %d): %w", g.ID(), ctx.Err())
	}
	cp := make(map[string]map[int]int64, len(offsets))
	for t, parts := range offsets {
		cp[t] = maps.Clone(parts)
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-g.commitSem }()
		done <- g.gen.CommitOffsets(cp)
	}()
	select {
	case err := <-done:
		if err != nil {
			err = wrapFenced(err)
			if !errors.Is(err, ErrFenced) && isStaleConn(err) {
				// The generation commits over its one coordinator connection;
				// once that is closed (broker restart, coordinator lost) no
				// retry can succeed, and retrying would hold the generation
				// (kafka-go cannot rejoin until Run's function returns).
				err = fmt.Errorf("%w: its coordinator connection is closed: %w", ErrFenced, err)
			}
			return fmt.Errorf("kafkaio: commit (generation %d): %w", g.ID(), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkaio: commit (generation %d): %w", g.ID(), ctx.Err())
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
