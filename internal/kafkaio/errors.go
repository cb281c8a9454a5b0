package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// Sentinel errors. Returned errors wrap them (errors.Is) together with the
// underlying kafka-go error, so errors.Is(err, kafka-go's code) also works
// inside this package.
var (
	// ErrFenced means the broker refused a commit or a join because this
	// member's generation is no longer current (Kafka errors 22
	// IllegalGeneration, 25 UnknownMemberId, 82 FencedInstanceId): another
	// member may own the partitions now. Generation.Commit also returns it
	// when the generation's coordinator connection is closed, which no retry
	// can repair. The caller must stop writing and wait for the next
	// generation.
	ErrFenced = errors.New("kafkaio: fenced: generation is no longer current")

	// ErrGroupClosed is returned by Group.Next after Group.Close.
	ErrGroupClosed = errors.New("kafkaio: consumer group closed")

	// ErrFetcherClosed is returned by Fetcher.Fetch after Fetcher.Close.
	ErrFetcherClosed = errors.New("kafkaio: fetcher closed")

	// ErrUnknownTopic means a topic does not exist on the cluster.
	ErrUnknownTopic = errors.New("kafkaio: unknown topic")

	// ErrGroupNotEmpty is returned by Admin.CommitGroupOffsets when the group
	// still has members: offsets can only be rewritten for a stopped group.
	ErrGroupNotEmpty = errors.New("kafkaio: consumer group is not empty")
)

// errSubRequest marks a partition for which kafka-go reported error code -1
// (Unknown): its placeholder for a sub-request that failed on the network,
// the real error being dropped. It is transient.
var errSubRequest = errors.New("kafkaio: a per-partition request failed (kafka-go error -1, usually a dropped connection)")

// fencedCodes are the coordinator answers meaning "your generation is gone".
func isFencedCode(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, kafka.UnknownMemberId) ||
		errors.Is(err, kafka.FencedInstanceID)
}

// wrapFenced adds ErrFenced to err when err carries a fencing code.
func wrapFenced(err error) error {
	if err != nil && isFencedCode(err) && !errors.Is(err, ErrFenced) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

// IsTransient reports whether err is worth retrying with backoff: the broker
// was unreachable or busy, a request timed out, a leader or coordinator was
// moving, or the connection dropped (io.ErrUnexpectedEOF after a broker
// restart). It returns false for nil, for context.Canceled, for ErrFenced
// (the caller must give up its role, not retry) and for permanent errors such
// as a message larger than the broker accepts or an unknown topic (topics are
// created up front, so a missing one is a configuration error). For a
// kafka.WriteErrors it is true only when every failed message failed
// transiently. Unrecognized errors are permanent.
func IsTransient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrFenced), errors.Is(err, ErrGroupClosed), errors.Is(err, ErrFetcherClosed):
		return false
	case errors.Is(err, errSubRequest):
		return true
	case errors.Is(err, io.ErrClosedPipe): // writer or reader closed by us
		return false
	}

	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		seen := false
		for _, e := range werrs {
			if e == nil {
				continue
			}
			seen = true
			if !IsTransient(e) {
				return false
			}
		}
		return seen
	}

	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return isTransientCode(kerr)
	}

	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	var nerr net.Error // *net.OpError, *net.DNSError, i/o timeouts
	if errors.As(err, &nerr) {
		return true
	}
	var terr interface{ Timeout() bool }
	if errors.As(err, &terr) && terr.Timeout() {
		return true
	}
	return false
}

// isTransientCode classifies a Kafka protocol error code.
func isTransientCode(code kafka.Error) bool {
	switch code {
	case kafka.UnknownTopicOrPartition, // topics must exist: configuration error
		kafka.MessageSizeTooLarge,
		kafka.IllegalGeneration, kafka.UnknownMemberId, kafka.FencedInstanceID:
		return false
	case kafka.BrokerNotAvailable,
		kafka.ReplicaNotAvailable,
		kafka.RebalanceInProgress,
		kafka.NotEnoughReplicas,
		kafka.NotEnoughReplicasAfterAppend,
		kafka.ConcurrentTransactions:
		return true
	}
	return code.Temporary() || code.Timeout()
}

// ErrOffsetOutOfRange is wrapped by *OffsetOutOfRangeError.
var ErrOffsetOutOfRange = errors.New("kafkaio: offset out of range")

// OffsetOutOfRangeError says that a partition was asked for an offset it
// does not have: below its log start (records deleted by retention or
// truncation) or above its high watermark (the topic was recreated, the
// broker lost data, or this is another cluster).
type OffsetOutOfRangeError struct {
	Topic                           string
	Partition                       int
	Offset, LogStart, HighWatermark int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("kafkaio: %s/%d: offset %d is out of range (log start %d, high watermark %d)",
		e.Topic, e.Partition, e.Offset, e.LogStart, e.HighWatermark)
}

// Unwrap makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetOutOfRangeError) Unwrap() error { return ErrOffsetOutOfRange }

// ErrMessageTooLarge: the broker (or the client, before sending) refused a
// record larger than the topic accepts. Permanent for that record.
var ErrMessageTooLarge = errors.New("kafkaio: message too large")
