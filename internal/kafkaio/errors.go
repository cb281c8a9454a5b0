package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
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

	// ErrOffsetOutOfRange means a fetch asked for an offset the partition
	// does not have: below its log start (the records were deleted by
	// retention or DeleteRecords) or above its high watermark. The error is
	// an *OffsetOutOfRangeError with the bounds. It is permanent.
	ErrOffsetOutOfRange = errors.New("kafkaio: offset out of range")

	// ErrMessageTooLarge means a message is larger than the producer's
	// MaxMessageBytes or than the broker accepts for the topic
	// (max.message.bytes: Kafka errors MESSAGE_TOO_LARGE and
	// RECORD_LIST_TOO_LARGE). The error is usually a *MessageTooLargeError.
	// It is permanent: retrying the same message cannot succeed.
	ErrMessageTooLarge = errors.New("kafkaio: message too large")

	// ErrSecurity means the client could not authenticate or establish TLS
	// with a broker: SASL authentication failed or the mechanism is not
	// enabled, the broker's certificate is not trusted, the broker refused
	// the client certificate, TLS was attempted on a plaintext listener or
	// plaintext on a TLS listener, or a CA/certificate/key file could not be
	// loaded. It is permanent (a configuration error); the message names the
	// cause and never contains a password.
	ErrSecurity = errors.New("kafkaio: security (TLS/SASL) failure")
)

// OffsetOutOfRangeError is the error a Fetcher delivers for a partition whose
// requested offset is outside [LogStart, HighWatermark]. errors.Is(err,
// ErrOffsetOutOfRange) holds.
type OffsetOutOfRangeError struct {
	Topic     string
	Partition int
	// Offset is the offset that was requested.
	Offset int64
	// LogStart is the partition's first retained offset when the error was
	// detected.
	LogStart int64
	// HighWatermark is the offset the next record will get.
	HighWatermark int64
}

func (e *OffsetOutOfRangeError) Error() string {
	if e.Offset < e.LogStart {
		return fmt.Sprintf("kafkaio: %s/%d: offset %d is below the log start %d: records %d..%d were deleted (retention or DeleteRecords)",
			e.Topic, e.Partition, e.Offset, e.LogStart, e.Offset, e.LogStart-1)
	}
	return fmt.Sprintf("kafkaio: %s/%d: offset %d is above the high watermark %d (log start %d)",
		e.Topic, e.Partition, e.Offset, e.HighWatermark, e.LogStart)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// BelowLogStart reports whether the requested offset was below the log start
// (records lost to retention) rather than above the high watermark.
func (e *OffsetOutOfRangeError) BelowLogStart() bool { return e.Offset < e.LogStart }

// MessageTooLargeError describes a message refused for its size, by the
// producer itself (Size > Limit = ProducerConfig.MaxMessageBytes) or by the
// broker. errors.Is(err, ErrMessageTooLarge) holds.
type MessageTooLargeError struct {
	// Topic of the message.
	Topic string
	// Index is the message's position in the Publish call, or -1 when the
	// broker refused a batch of several messages and none of them is known
	// to be the culprit.
	Index int
	// Size is the message's RecordSize (for Index -1: of the largest message
	// of the refused batch).
	Size int
	// Limit is the size limit that was exceeded: MaxMessageBytes for a
	// refusal by the producer, the topic's max.message.bytes for a refusal
	// by the broker, 0 when it could not be determined.
	Limit int

	err error // the kafka-go error, if any
}

func (e *MessageTooLargeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kafkaio: message too large: ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "message %d to %q is %d bytes", e.Index, e.Topic, e.Size)
	} else {
		fmt.Fprintf(&b, "a batch to %q was refused (its largest message is %d bytes)", e.Topic, e.Size)
	}
	if e.Limit > 0 {
		fmt.Fprintf(&b, ", limit %d", e.Limit)
	}
	if e.err != nil {
		fmt.Fprintf(&b, ": %v", e.err)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrMessageTooLarge) true.
func (e *MessageTooLargeError) Is(target error) bool { return target == ErrMessageTooLarge }

// Unwrap returns the underlying kafka-go error, if any.
func (e *MessageTooLargeError) Unwrap() error { return e.err }

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
// as a message larger than the broker accepts (ErrMessageTooLarge), an
// authentication or TLS failure (ErrSecurity), an offset out of range or an
// unknown topic (topics are created up front, so a missing one is a
// configuration error). For a
// kafka.WriteErrors it is true only when every failed message failed
// transiently. Unrecognized errors are permanent.
func IsTransient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrFenced), errors.Is(err, ErrGroupClosed), errors.Is(err, ErrFetcherClosed),
		errors.Is(err, ErrSecurity), errors.Is(err, ErrMessageTooLarge), errors.Is(err, ErrOffsetOutOfRange):
		return false
	case isSecurityCode(err):
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
		// kafka-go's own: the metadata shows no leader for the partition
		// (a leader election, a broker restarting or fenced for a moment).
		errors.Is(err, protocol.ErrNoLeader),
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
		kafka.MessageSizeTooLarge, kafka.RecordListTooLarge,
		kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState,
		kafka.OffsetOutOfRange,
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

// securityCodes are the Kafka errors of a failed SASL authentication.
var securityCodes = []kafka.Error{kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState}

// isSecurityCode reports whether err (or any error of a kafka.WriteErrors in
// it) carries a SASL failure code.
func isSecurityCode(err error) bool {
	return anyError(err, func(e error) bool {
		for _, c := range securityCodes {
			if errors.Is(e, c) {
				return true
			}
		}
		return false
	})
}

// anyError reports whether match holds for err or, when err wraps a
// kafka.WriteErrors (which does not unwrap), for one of its errors.
func anyError(err error, match func(error) bool) bool {
	if err == nil {
		return false
	}
	if match(err) {
		return true
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && match(e) {
				return true
			}
		}
	}
	return false
}
