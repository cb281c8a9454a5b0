package kafkaio

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceproto "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A partition without a leader for a moment (a broker restarting, a
// controller fencing a broker that was frozen past broker.session.timeout.ms)
// makes kafka-go's client fail the request before sending it, with its own
// protocol.ErrNoLeader: a leader is moving, which clears by itself. Seen as
// permanent, it made the writer log "the broker refuses the outbox: the
// writer is stalled until this is fixed" and turn /readyz 503 at once after
// a broker was frozen, and would stop a restore at start (internal/faulttest).
func TestIsTransient_partitionWithoutLeaderIsTransient(t *testing.T) {
	noLeader := produceproto.NewError(protocol.NewErrNoLeader("edit-log", 0))
	for _, err := range []error{
		noLeader,
		fmt.Errorf("kafka.(*Client).Produce: %w", noLeader),
		kafka.WriteErrors{fmt.Errorf("kafka.(*Client).Produce: %w", noLeader), nil},
		fmt.Errorf("kafkaio: publish: %w", kafka.WriteErrors{noLeader, noLeader}),
	} {
		if !IsTransient(err) {
			t.Errorf("IsTransient(%v) = false, want true", err)
		}
	}
	// Still permanent: a topic the metadata does not know.
	if err := fmt.Errorf("kafka.(*Client).Produce: %w", protocol.ErrNoTopic); IsTransient(err) {
		t.Errorf("IsTransient(%v) = true, want false", err)
	}
}

// kafka-go serves a producer's metadata from its pool's cache, refreshed
// every MetadataTTL (6s) and never on an error: a partition the cache holds
// without a leader stays unroutable for up to 6s after the broker elected
// one. After a frozen broker thawed, the writer published nothing for those
// seconds and its /readyz turned 503 ("writer stalled") although the broker
// served (internal/faulttest). A publish that fails for a stale route drops
// the pool, so the next one fetches metadata at once.
func TestProducer_publishesAsSoonAsThePartitionHasALeaderAgain(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	var leaderless atomic.Bool
	leaderless.Store(true)
	c.ControlKey(int16(kmsg.Metadata), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !leaderless.Load() {
			return nil, nil, false
		}
		// Partition 0 of t exists and has no leader: an election under way.
		req := kreq.(*kmsg.MetadataRequest)
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = 0, host, int32(port)
		resp.Brokers = append(resp.Brokers, b)
		resp.ControllerID = 0
		topic := kmsg.NewMetadataResponseTopic()
		topic.Topic = kmsg.StringPtr("t")
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition, p.Leader, p.ErrorCode = 0, -1, kerr.LeaderNotAvailable.Code
		p.Replicas, p.ISR = []int32{0}, []int32{}
		topic.Partitions = append(topic.Partitions, p)
		resp.Topics = append(resp.Topics, topic)
		return resp, nil, true
	})
	prod := newTestProducer(t, addr)
	ctx := testCtx(t, 30*time.Second)
	msg := func() Message { return Message{Topic: "t", Key: []byte("k"), Value: []byte("v")} }
	err = prod.Publish(ctx, msg())
	if err == nil {
		t.Fatal("published to a partition without a leader")
	}
	if !IsTransient(err) {
		t.Fatalf("IsTransient(%v) = false", err)
	}
	// The leader is back: the very next publish goes through (kafka-go's
	// own refresh comes at a random moment within MetadataTTL).
	leaderless.Store(false)
	back := time.Now()
	if err := prod.Publish(ctx, msg()); err != nil {
		t.Fatalf("the partition has a leader again, and the next publish failed after %v: %v", time.Since(back).Round(time.Millisecond), err)
	}
}
