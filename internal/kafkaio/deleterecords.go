package kafkaio

import (
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go/protocol"
)

// kafka-go's protocol package has no DeleteRecords message (API key 21), so
// the request and response are defined here with kafka-go's struct tags and
// sent through a kafka.Transport like any other message.
//
// Versions: v0-v1 are the classic encoding, v2 is flexible (compact strings
// and arrays, tagged fields; the `_ struct{}` field marks it). The transport
// picks the highest version both sides support.

// registerOnce guards the registration of the messages below.
var registerOnce sync.Once

// registerProtocol registers the DeleteRecords messages with kafka-go's
// protocol package, exactly once, before this package builds its first
// client (newNetConfig calls it).
//
// Why once, and why then: protocol.Register writes kafka-go's global,
// unsynchronized table of API types. Every new connection reads that table
// while it negotiates API versions (it records, per API key, the version to
// use on that connection). A second registration could race with connections
// being set up in other goroutines, and a connection negotiated before the
// registration would have pinned DeleteRecords to a version computed from an
// empty table. sync.Once makes the single write happen before any client of
// this package dials (and before any caller of registerProtocol returns).
// Registering in init() would also run once, but for every program that
// merely imports the package.
func registerProtocol() {
	registerOnce.Do(func() {
		protocol.Register(&deleteRecordsRequest{}, &deleteRecordsResponse{})
	})
}

type deleteRecordsRequest struct {
	_         struct{}                    `kafka:"min=v2,max=v2,tag"`
	Topics    []deleteRecordsRequestTopic `kafka:"min=v0,max=v2"`
	TimeoutMs int32                       `kafka:"min=v0,max=v2"`
}

type deleteRecordsRequestTopic struct {
	Name       string                          `kafka:"min=v0,max=v2"`
	Partitions []deleteRecordsRequestPartition `kafka:"min=v0,max=v2"`
}

type deleteRecordsRequestPartition struct {
	PartitionIndex int32 `kafka:"min=v0,max=v2"`
	Offset         int64 `kafka:"min=v0,max=v2"`
}

func (r *deleteRecordsRequest) ApiKey() protocol.ApiKey { return protocol.DeleteRecords }

// Broker routes the request to the leader of its (single) partition: the
// only broker that can move a partition's log start.
func (r *deleteRecordsRequest) Broker(cluster protocol.Cluster) (protocol.Broker, error) {
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return protocol.Broker{ID: -1}, fmt.Errorf("kafkaio: delete records: one partition per request")
	}
	topic, part := r.Topics[0].Name, r.Topics[0].Partitions[0].PartitionIndex
	t, ok := cluster.Topics[topic]
	if !ok {
		return protocol.Broker{ID: -1}, protocol.NewErrNoTopic(topic)
	}
	p, ok := t.Partitions[part]
	if !ok {
		return protocol.Broker{ID: -1}, protocol.NewErrNoPartition(topic, part)
	}
	b, ok := cluster.Brokers[p.Leader]
	if !ok {
		return protocol.Broker{ID: -1}, protocol.NewErrNoLeader(topic, part)
	}
	return b, nil
}

type deleteRecordsResponse struct {
	_              struct{}                     `kafka:"min=v2,max=v2,tag"`
	ThrottleTimeMs int32                        `kafka:"min=v0,max=v2"`
	Topics         []deleteRecordsResponseTopic `kafka:"min=v0,max=v2"`
}

type deleteRecordsResponseTopic struct {
	Name       string                           `kafka:"min=v0,max=v2"`
	Partitions []deleteRecordsResponsePartition `kafka:"min=v0,max=v2"`
}

type deleteRecordsResponsePartition struct {
	PartitionIndex int32 `kafka:"min=v0,max=v2"`
	LowWatermark   int64 `kafka:"min=v0,max=v2"`
	ErrorCode      int16 `kafka:"min=v0,max=v2"`
}

func (r *deleteRecordsResponse) ApiKey() protocol.ApiKey { return protocol.DeleteRecords }

var _ protocol.BrokerMessage = (*deleteRecordsRequest)(nil)
