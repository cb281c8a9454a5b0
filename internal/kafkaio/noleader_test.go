package kafkaio

import (
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceproto "github.com/segmentio/kafka-go/protocol/produce"
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
