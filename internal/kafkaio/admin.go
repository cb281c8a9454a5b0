package kafkaio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// Admin defaults.
const (
	DefaultAdminTimeout = 10 * time.Second
	// adminAttempts bounds the retries of a request that failed on a stale
	// pooled connection (after a broker restart).
	adminAttempts = 3
	// topicWaitPoll is the poll period of EnsureTopics while new topics
	// become visible in metadata.
	topicWaitPoll = 50 * time.Millisecond
	// topicWaitMax bounds that wait when ctx has no earlier deadline (kafka-go
	// refreshes its metadata cache every 6s).
	topicWaitMax = 30 * time.Second
)

// AdminConfig configures an Admin.
type AdminConfig struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// ClientID identifies this process to the brokers.
	ClientID string
	// Timeout bounds each request when ctx has no earlier deadline.
	// Default 10s.
	Timeout time.Duration
	// Security configures TLS and SASL. The zero value is plaintext.
	Security Security
}

// Admin runs cluster and group administration requests over its own
// connection pool. It is safe for concurrent use.
type Admin struct {
	client    *kafka.Client
	transport *kafka.Transport
	net       *netConfig
}

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	Name string
	// Partitions <= 0 uses the broker default.
	Partitions int
	// ReplicationFactor <= 0 uses the broker default (keep it at or below
	// the broker count: 1 for the embedded broker).
	ReplicationFactor int
	// Configs are topic configs such as "retention.ms".
	Configs map[string]string
}

// PartitionOffsets are the bounds of one partition's log.
type PartitionOffsets struct {
	// First is the log start offset (the oldest retained record).
	First int64
	// Last is the high watermark: the offset the next record will get.
	Last int64
}

// GroupInfo describes a consumer group.
type GroupInfo struct {
	// State is the coordinator's group state: "Empty", "Stable",
	// "PreparingRebalance", "CompletingRebalance" or "Dead" (unknown group).
	State string
	// Members are the current members, sorted by ID.
	Members []Member
}

// Member is one member of a consumer group.
type Member struct {
	ID       string
	ClientID string
	Host     string
	// Partitions are the member's assigned partitions by topic.
	Partitions map[string][]int
	// Instance is the member's advertised single-active state, when it uses
	// SingleActiveBalancer; nil otherwise.
	Instance *MemberState
}

// NewAdmin builds an Admin. It does not connect; the first request does.
func NewAdmin(cfg AdminConfig) (*Admin, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkaio: admin: no brokers")
	}
	nc, err := newNetConfig(cfg.ClientID, cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: admin: %w", err)
	}
	t := nc.transport()
	return &Admin{
		client: &kafka.Client{
			Addr:      kafka.TCP(cfg.Brokers...),
			Transport: t,
			Timeout:   orDefault(cfg.Timeout, DefaultAdminTimeout),
		},
		transport: t,
		net:       nc,
	}, nil
}

// Close releases the Admin's connections.
func (a *Admin) Close() error {
	a.transport.CloseIdleConnections()
	return nil
}

// do runs fn, retrying when it failed on a dead pooled connection: after a
// broker restart every idle connection of the pool answers once with
// io.ErrUnexpectedEOF. The pool is flushed before each retry.
//
// A refused connection is not retried (the broker is down) but flushes the
// pool too: a kafka-go pool whose first metadata request failed (it was
// created, or re-created by a flush, while the broker was down) caches that
// error and returns it for every request until its next metadata refresh, up
// to MetadataTTL later, even once the broker is back. Security failures
// (ErrSecurity, see netConfig.classify) are not retried either, and flush the
// pool for the same reason.
func (a *Admin) do(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < adminAttempts; attempt++ {
		if err = a.net.classify(fn()); err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrSecurity) {
			a.transport.CloseIdleConnections()
			return err
		}
		if !isStaleConn(err) {
			return err
		}
		a.transport.CloseIdleConnections()
	}
	return err
}

func isStaleConn(err error) bool {
	return errors.Is(err, errSubRequest) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// Ping checks that a broker answers a request (ApiVersions, sent over the
// wire: kafka-go serves Metadata requests from its cache, so they would not
// prove the broker is reachable). For /readyz.
//
// A TLS or SASL failure (wrong password, untrusted certificate, TLS against
// a plaintext listener or the reverse) fails it with ErrSecurity within a few
// seconds (the dial timeout, 5s, bounds every step), with a message that
// names the cause.
func (a *Admin) Ping(ctx context.Context) error {
	err := a.do(ctx, func() error {
		// A pool that never got the cluster metadata keeps the error of its
		// last attempt and answers Metadata requests with it: when that is a
		// TLS or SASL failure, it is the answer (without a second connection
		// attempt, which would take as long again).
		if _, err := a.client.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
			if err = a.net.classify(err); errors.Is(err, ErrSecurity) {
				return err
			}
		}
		resp, err := a.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
		if err != nil {
			return err
		}
		return resp.Error
	})
	if err != nil {
		return fmt.Errorf("kafkaio: ping: %w", err)
	}
	return nil
}

// EnsureTopics creates the topics that do not exist yet and waits (at most
// 30s) until all of them are visible in the cluster metadata. Existing topics are left as
// they are (their partition count and configs are not changed or checked).
func (a *Admin) EnsureTopics(ctx context.Context, specs []TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	req := &kafka.CreateTopicsRequest{Topics: make([]kafka.TopicConfig, 0, len(specs))}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if s.Name == "" {
			return errors.New("kafkaio: ensure topics: empty topic name")
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: -1, ReplicationFactor: -1}
		if s.Partitions > 0 {
			tc.NumPartitions = s.Partitions
		}
		if s.ReplicationFactor > 0 {
			tc.ReplicationFactor = s.ReplicationFactor
		}
		for _, k := range slices.Sorted(maps.Keys(s.Configs)) {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: s.Configs[k]})
		}
		req.Topics = append(req.Topics, tc)
		names = append(names, s.Name)
	}
	var resp *kafka.CreateTopicsResponse
	err := a.do(ctx, func() error {
		var err error
		resp, err = a.client.CreateTopics(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("kafkaio: create topics %v: %w", names, err)
	}
	var errs []error
	for _, name := range names {
		if terr := resp.Errors[name]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("topic %q: %w", name, terr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafkaio: create topics: %w", errors.Join(errs...))
	}
	// Topic creation is asynchronous on a real cluster: wait until every
	// topic has partitions with leaders.
	ctx, cancel := context.WithTimeout(ctx, topicWaitMax)
	defer cancel()
	for {
		meta, err := a.metadata(ctx, names)
		if err == nil {
			ready := true
			for _, name := range names {
				if !topicReady(meta[name]) {
					ready = false
					break
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("kafkaio: wait for topics %v: %w (last error: %w)", names, ctx.Err(), err)
			}
			return fmt.Errorf("kafkaio: wait for topics %v: %w", names, ctx.Err())
		case <-time.After(topicWaitPoll):
		}
	}
}

func topicReady(t *kafka.Topic) bool {
	if t == nil || t.Error != nil || len(t.Partitions) == 0 {
		return false
	}
	for _, p := range t.Partitions {
		if p.Error != nil && !errors.Is(p.Error, kafka.ReplicaNotAvailable) {
			return false
		}
	}
	return true
}

// metadata returns the metadata of topics by name (from kafka-go's metadata
// cache, refreshed every few seconds and after CreateTopics).
func (a *Admin) metadata(ctx context.Context, topics []string) (map[string]*kafka.Topic, error) {
	var resp *kafka.MetadataResponse
	err := a.do(ctx, func() error {
		var err error
		resp, err = a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*kafka.Topic, len(resp.Topics))
	for i := range resp.Topics {
		out[resp.Topics[i].Name] = &resp.Topics[i]
	}
	return out, nil
}

// partitionsOf returns the sorted partition ids of each topic; an unknown
// topic is an error wrapping ErrUnknownTopic.
func (a *Admin) partitionsOf(ctx context.Context, topics []string) (map[string][]int, error) {
	meta, err := a.metadata(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := make(map[string][]int, len(topics))
	for _, name := range topics {
		t := meta[name]
		if t == nil || errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %q: %w", name, t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		slices.Sort(ids)
		out[name] = ids
	}
	return out, nil
}

// Partitions returns the sorted partition ids of topic, or an error wrapping
// ErrUnknownTopic. The answer comes from kafka-go's metadata cache, so a
// topic or partition created by another client can take a few seconds to
// appear.
func (a *Admin) Partitions(ctx context.Context, topic string) ([]int, error) {
	m, err := a.partitionsOf(ctx, []string{topic})
	if err != nil {
		return nil, fmt.Errorf("kafkaio: partitions of %q: %w", topic, err)
	}
	return m[topic], nil
}

// ListOffsets returns the first offset and the high watermark of every
// partition of topic.
func (a *Admin) ListOffsets(ctx context.Context, topic string) (map[int]PartitionOffsets, error) {
	parts, err := a.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	res, err := a.listOffsets(ctx, topic, reqs)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: list offsets of %q: %w", topic, err)
	}
	out := make(map[int]PartitionOffsets, len(parts))
	for _, p := range parts {
		po, ok := res[p]
		if !ok {
			return nil, fmt.Errorf("kafkaio: list offsets of %q: no answer for partition %d", topic, p)
		}
		out[p] = PartitionOffsets{First: po.FirstOffset, Last: po.LastOffset}
	}
	return out, nil
}

// HighWatermarks returns the high watermark (the offset the next record
// will get) of every partition of topic: ListOffsets' Last.
func (a *Admin) HighWatermarks(ctx context.Context, topic string) (map[int]int64, error) {
	offs, err := a.ListOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(offs))
	for p, o := range offs {
		out[p] = o.Last
	}
	return out, nil
}

// OffsetsForTime returns, for every partition of topic, the offset of the
// first record whose timestamp is at or after t, or the high watermark when
// there is none (so that consuming from the result replays exactly the
// records written at or after t).
func (a *Admin) OffsetsForTime(ctx context.Context, topic string, t time.Time) (map[int]int64, error) {
	if t.UnixMilli() < 0 {
		return nil, fmt.Errorf("kafkaio: offsets for time %v: time before the epoch", t)
	}
	parts, err := a.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.TimeOffsetOf(p, t), kafka.LastOffsetOf(p))
	}
	res, err := a.listOffsets(ctx, topic, reqs)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: offsets of %q for time %v: %w", topic, t, err)
	}
	out := make(map[int]int64, len(parts))
	for _, p := range parts {
		po, ok := res[p]
		if !ok {
			return nil, fmt.Errorf("kafkaio: offsets of %q for time %v: no answer for partition %d", topic, t, p)
		}
		// kafka-go returns the answer of a timestamp query only as the key of
		// the Offsets map; -1 means no record at or after t.
		off := int64(-1)
		for k := range po.Offsets {
			off = k
		}
		if off < 0 {
			off = po.LastOffset
		}
		out[p] = off
	}
	return out, nil
}

// listOffsets sends reqs for one topic and returns the merged answer by
// partition, failing on any partition error.
func (a *Admin) listOffsets(ctx context.Context, topic string, reqs []kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
	var resp *kafka.ListOffsetsResponse
	err := a.do(ctx, func() error {
		var err error
		resp, err = a.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{topic: reqs},
		})
		if err != nil {
			return err
		}
		// kafka-go splits ListOffsets into one request per partition and
		// turns a failed one (say, on a dead pooled connection) into error
		// code -1 for that partition, dropping the real error.
		for _, po := range resp.Topics[topic] {
			if errors.Is(po.Error, kafka.Unknown) {
				return fmt.Errorf("partition %d: %w", po.Partition, errSubRequest)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int]kafka.PartitionOffsets)
	var errs []error
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", po.Partition, po.Error))
			continue
		}
		out[po.Partition] = po
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// CommittedOffsets returns the group's committed offset (the next offset to
// read) for every partition of topics, -1 where none is committed (including
// for a group that does not exist).
func (a *Admin) CommittedOffsets(ctx context.Context, group string, topics []string) (map[string]map[int]int64, error) {
	parts, err := a.partitionsOf(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: committed offsets of group %q: %w", group, err)
	}
	out := make(map[string]map[int]int64, len(topics))
	for t, ps := range parts {
		m := make(map[int]int64, len(ps))
		for _, p := range ps {
			m[p] = -1
		}
		out[t] = m
	}
	var resp *kafka.OffsetFetchResponse
	err = a.do(ctx, func() error {
		var err error
		resp, err = a.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kafkaio: committed offsets of group %q: %w", group, err)
	}
	if resp.Error != nil {
		// kfake answers an unknown group with error 69 and no partitions;
		// Apache Kafka answers -1 for every partition.
		if errors.Is(resp.Error, kafka.GroupIdNotFound) {
			return out, nil
		}
		return nil, fmt.Errorf("kafkaio: committed offsets of group %q: %w", group, resp.Error)
	}
	var errs []error
	for t, ps := range resp.Topics {
		m, ok := out[t]
		if !ok {
			continue
		}
		for _, p := range ps {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", t, p.Partition, p.Error))
				continue
			}
			if _, ok := m[p.Partition]; ok && p.CommittedOffset >= 0 {
				m[p.Partition] = p.CommittedOffset
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kafkaio: committed offsets of group %q: %w", group, errors.Join(errs...))
	}
	return out, nil
}

// CommitGroupOffsets sets the committed offsets (topic → partition → next
// offset to read) of a STOPPED group, as an admin (generation -1, no member):
// the replay path. It also works for a group that does not exist yet. If the
// group has members the broker refuses and the error wraps ErrGroupNotEmpty.
func (a *Admin) CommitGroupOffsets(ctx context.Context, group string, offsets map[string]map[int]int64) error {
	topics := make(map[string][]kafka.OffsetCommit, len(offsets))
	for t, parts := range offsets {
		for _, p := range slices.Sorted(maps.Keys(parts)) {
			off := parts[p]
			if off < 0 {
				return fmt.Errorf("kafkaio: commit offsets of group %q: %s/%d: negative offset %d", group, t, p, off)
			}
			topics[t] = append(topics[t], kafka.OffsetCommit{Partition: p, Offset: off})
		}
	}
	if len(topics) == 0 {
		return nil
	}
	var resp *kafka.OffsetCommitResponse
	err := a.do(ctx, func() error {
		var err error
		resp, err = a.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
			GroupID:      group,
			GenerationID: -1,
			MemberID:     "",
			Topics:       topics,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("kafkaio: commit offsets of group %q: %w", group, err)
	}
	var errs []error
	notEmpty := false
	for t, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error == nil {
				continue
			}
			if isFencedCode(p.Error) || errors.Is(p.Error, kafka.RebalanceInProgress) {
				notEmpty = true
			}
			errs = append(errs, fmt.Errorf("%s/%d: %w", t, p.Partition, p.Error))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	err = errors.Join(errs...)
	if notEmpty {
		return fmt.Errorf("kafkaio: commit offsets of group %q: %w: %w", group, ErrGroupNotEmpty, err)
	}
	return fmt.Errorf("kafkaio: commit offsets of group %q: %w", group, err)
}

// DescribeGroup returns the group's state and members. An unknown group is
// reported with State "Dead" and no members.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupInfo, error) {
	var resp *kafka.DescribeGroupsResponse
	err := a.do(ctx, func() error {
		var err error
		resp, err = a.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		return err
	})
	if err != nil {
		return GroupInfo{}, fmt.Errorf("kafkaio: describe group %q: %w", group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != group {
			continue
		}
		if g.Error != nil {
			if errors.Is(g.Error, kafka.GroupIdNotFound) {
				return GroupInfo{State: "Dead"}, nil
			}
			return GroupInfo{}, fmt.Errorf("kafkaio: describe group %q: %w", group, g.Error)
		}
		info := GroupInfo{State: g.GroupState}
		for _, m := range g.Members {
			mem := Member{
				ID:         m.MemberID,
				ClientID:   m.ClientID,
				Host:       m.ClientHost,
				Partitions: map[string][]int{},
			}
			for _, t := range m.MemberAssignments.Topics {
				if len(t.Partitions) > 0 {
					ps := slices.Clone(t.Partitions)
					slices.Sort(ps)
					mem.Partitions[t.Topic] = ps
				}
			}
			var st MemberState
			if ud := m.MemberMetadata.UserData; len(ud) > 0 && json.Unmarshal(ud, &st) == nil {
				mem.Instance = &st
			}
			info.Members = append(info.Members, mem)
		}
		slices.SortFunc(info.Members, func(x, y Member) int { return strings.Compare(x.ID, y.ID) })
		return info, nil
	}
	return GroupInfo{}, fmt.Errorf("kafkaio: describe group %q: no answer for the group", group)
}

// TopicConfigs returns the effective configuration of topic (DescribeConfigs):
// every config the broker reports, whether set on the topic or inherited from
// the broker or the defaults, e.g. "max.message.bytes", "cleanup.policy",
// "retention.ms". Sensitive configs, whose value the broker withholds, are
// left out. An unknown topic is an error wrapping ErrUnknownTopic.
func (a *Admin) TopicConfigs(ctx context.Context, topic string) (map[string]string, error) {
	var out map[string]string
	err := a.do(ctx, func() error {
		var err error
		out, err = describeTopicConfigs(ctx, a.client, topic)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kafkaio: configs of topic %q: %w", topic, err)
	}
	return out, nil
}

// describeTopicConfigs sends DescribeConfigs for one topic.
func describeTopicConfigs(ctx context.Context, c *kafka.Client, topic string) (map[string]string, error) {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}},
	})
	if err != nil {
		return nil, err
	}
	for _, r := range resp.Resources {
		if r.ResourceName != topic {
			continue
		}
		if r.Error != nil {
			if errors.Is(r.Error, kafka.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
			}
			return nil, r.Error
		}
		out := make(map[string]string, len(r.ConfigEntries))
		for _, e := range r.ConfigEntries {
			if e.IsSensitive {
				continue
			}
			out[e.ConfigName] = e.ConfigValue
		}
		return out, nil
	}
	return nil, fmt.Errorf("no answer for topic %q", topic)
}

// topicMaxMessageBytes returns the effective max.message.bytes of topic.
func topicMaxMessageBytes(ctx context.Context, rt kafka.RoundTripper, addr net.Addr, topic string) (int, error) {
	cfgs, err := describeTopicConfigs(ctx, &kafka.Client{Addr: addr, Transport: rt}, topic)
	if err != nil {
		return 0, err
	}
	v, ok := cfgs["max.message.bytes"]
	if !ok {
		return 0, errors.New("max.message.bytes not reported")
	}
	return strconv.Atoi(v)
}

// DeleteRecords deletes the records of topic's partition below the offset
// before (DeleteRecords, sent to the partition leader) and returns the
// partition's new log start offset (its low watermark). before = -1 deletes
// every record up to the high watermark. Deleting below the current log start
// changes nothing and returns the log start; an offset above the high
// watermark fails with an *OffsetOutOfRangeError.
func (a *Admin) DeleteRecords(ctx context.Context, topic string, partition int, before int64) (int64, error) {
	if before < -1 {
		return 0, fmt.Errorf("kafkaio: delete records of %s/%d: invalid offset %d", topic, partition, before)
	}
	if _, err := a.partitionsOf(ctx, []string{topic}); err != nil {
		return 0, fmt.Errorf("kafkaio: delete records of %s/%d: %w", topic, partition, err)
	}
	timeout := orDefault(a.client.Timeout, DefaultAdminTimeout)
	req := &deleteRecordsRequest{
		Topics: []deleteRecordsRequestTopic{{Name: topic, Partitions: []deleteRecordsRequestPartition{
			{PartitionIndex: int32(partition), Offset: before},
		}}},
		TimeoutMs: int32(timeout / time.Millisecond),
	}
	var low int64
	var code int16
	err := a.do(ctx, func() error {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		m, err := a.transport.RoundTrip(rctx, a.client.Addr, req)
		if err != nil {
			return err
		}
		resp, ok := m.(*deleteRecordsResponse)
		if !ok {
			return fmt.Errorf("unexpected response %T", m)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if t.Name == topic && int(p.PartitionIndex) == partition {
					low, code = p.LowWatermark, p.ErrorCode
					return nil
				}
			}
		}
		return errors.New("no answer for the partition")
	})
	if err != nil {
		return 0, fmt.Errorf("kafkaio: delete records of %s/%d below %d: %w", topic, partition, before, err)
	}
	switch kerr := kafka.Error(code); {
	case code == 0:
		return low, nil
	case errors.Is(kerr, kafka.OffsetOutOfRange):
		offs, lerr := a.ListOffsets(ctx, topic)
		if lerr != nil {
			return 0, fmt.Errorf("kafkaio: delete records of %s/%d below %d: %w (and %w)", topic, partition, before, kerr, lerr)
		}
		po := offs[partition]
		if before <= po.First && before >= 0 {
			return po.First, nil // nothing to delete (Apache Kafka answers so too)
		}
		return 0, fmt.Errorf("kafkaio: delete records: %w", &OffsetOutOfRangeError{
			Topic: topic, Partition: partition, Offset: before, LogStart: po.First, HighWatermark: po.Last})
	default:
		return 0, fmt.Errorf("kafkaio: delete records of %s/%d below %d: %w", topic, partition, before, kerr)
	}
}
