package pipeline

import (
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
)

// Outcome is what happened to one input record.
type Outcome string

// The outcomes. They are metric label values: never rename one.
const (
	// OutcomeApplied: the event changed the state.
	OutcomeApplied Outcome = "applied"
	// OutcomeSkipped: a repair rule declined every change (see Skips).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeNoop: the event was valid and already reflected in the state
	// (a drop of an unknown MV, an identical upsert).
	OutcomeNoop Outcome = "noop"
	// OutcomeDLQ: the record was dead-lettered (see DeadLetters).
	OutcomeDLQ Outcome = "dlq"
	// OutcomeDuplicate: the record's offset was applied by an earlier commit
	// (a redelivery after a crash, a rebalance or a replay): docs/design.md §5.2.
	OutcomeDuplicate Outcome = "duplicate"
)

// Outcomes lists every Outcome (metrics declare them all).
var Outcomes = []Outcome{OutcomeApplied, OutcomeSkipped, OutcomeNoop, OutcomeDLQ, OutcomeDuplicate}

// Reasons of dead letters the pipeline decides (the decoders' are in
// events): stable dlq-reason codes.
const (
	// ReasonRetriesExhausted: the record's commit kept failing for a reason
	// of its own (never an infrastructure fault).
	ReasonRetriesExhausted events.Reason = "retries_exhausted"
	// ReasonRecordTooLarge: the record, its edit-log record or its
	// dead-letter copy exceeds a topic's size limit; nothing was applied.
	ReasonRecordTooLarge events.Reason = "record_too_large"
)

// Role says which side of the pipeline produced a Report.
type Role string

// The roles.
const (
	RoleWriter   Role = "writer"
	RoleFollower Role = "follower"
)

// Report is what one batch did, delivered to the hooks after its local
// commit is durable (never for a batch that was not committed, except in a
// dry run, where Report.DryRun says so).
type Report struct {
	Role   Role
	DryRun bool
	// Size is the number of Kafka records in the batch.
	Size int
	// Took is the time to decide and durably commit the batch.
	Took time.Duration
	// Events has one entry per input record of a writer's batch, in the
	// order they were decided (catalog records first).
	Events []EventResult
	// Records are the edit-log records the batch applied, in journal order.
	Records []*editlog.Record
	// DeadLetters are the records the batch sent to the dead-letter topic.
	DeadLetters []DeadLetter
	// Counts tallies a follower's records by what Apply did with them.
	Counts editlog.Counts
	// Bytes is the size of the local log entry the commit wrote.
	Bytes int64
	// RecordBytes is the size of the edit-log record values the batch
	// journals (as encoded once by the writer; 0 for a follower).
	RecordBytes int64
	// PartitionMoves are tables whose events arrived on another input
	// partition than before: their producers do not partition by the Java
	// default partitioner (murmur2 of the key), and per-table order is lost.
	PartitionMoves []PartitionMove
}

// PartitionMove is one table whose events changed input partition.
type PartitionMove struct {
	Table    string
	From, To int
}

// EventResult is what happened to one input record.
type EventResult struct {
	Source editlog.Cause
	// Kind is the event's kind; empty for a record that did not decode.
	Kind    events.Kind
	Outcome Outcome
	// Repaired counts the partition entries the event moved forward.
	Repaired int
	// Skips are the entries (or the whole event) a rule declined, and why.
	Skips []handler.Skip
}

// DeadLetter is one record sent to the dead-letter topic.
type DeadLetter struct {
	Source   editlog.Cause
	Reason   events.Reason
	Error    string
	Attempts int
	// Size is the size of the original record's value.
	Size int
}

// Repaired returns the partition entries the batch moved forward.
func (r *Report) Repaired() int {
	n := 0
	for _, e := range r.Events {
		n += e.Repaired
	}
	return n
}

// Hooks receive what the pipeline does. A hook implements any of the
// interfaces below (franz-go's hooks are the model); each is called
// synchronously, so hooks must be cheap.
type Hooks []any

// BatchHook receives the report of every committed batch.
type BatchHook interface{ OnBatch(r *Report) }

// PublishHook receives every acknowledged publish of outbox messages.
type PublishHook interface {
	OnPublish(messages, editLogRecords int, took time.Duration)
}

// RetryHook receives every failed attempt that will be retried.
type RetryHook interface {
	OnRetry(op string, err error, attempt int)
}

// OffsetCommitHook receives every input offset commit to the group.
type OffsetCommitHook interface{ OnOffsetCommit() }

func (h Hooks) batch(r *Report) {
	for _, x := range h {
		if b, ok := x.(BatchHook); ok {
			b.OnBatch(r)
		}
	}
}

func (h Hooks) publish(n, records int, d time.Duration) {
	for _, x := range h {
		if b, ok := x.(PublishHook); ok {
			b.OnPublish(n, records, d)
		}
	}
}

func (h Hooks) retry(op string, err error, attempt int) {
	for _, x := range h {
		if b, ok := x.(RetryHook); ok {
			b.OnRetry(op, err, attempt)
		}
	}
}

func (h Hooks) offsetCommit() {
	for _, x := range h {
		if b, ok := x.(OffsetCommitHook); ok {
			b.OnOffsetCommit()
		}
	}
}
