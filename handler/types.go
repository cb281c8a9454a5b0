// Package handler is the repair engine's decision logic (docs/design.md §3): pure
// functions with no I/O that take a batch of decoded events and a read-only
// view of the state, and return the edit-log records to apply and journal, and
// one outcome per event (applied, skipped with typed reasons, or dead-lettered).
//
// The handler never mutates the state it reads. Entries later in a batch see
// the results of earlier ones through a private overlay; the caller applies
// the returned records (editlog.Apply) in one local commit.
package handler

import (
	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// View is the read-only state the rules consult. Implementations must return
// values the handler may keep but must not mutate (the handler never does).
type View interface {
	// MV returns the MV with the given key, or nil.
	MV(key mvstate.MVKey) *mvstate.MV
	// RelatedMVs returns the keys of the MVs listing native table tableID in
	// base_tables, in ascending key order. The handler never modifies the
	// slice (a View may share it).
	RelatedMVs(tableID int64) []mvstate.MVKey
	// MVsWithExternal returns the keys of the MVs whose base_tables contain
	// the external table ref, in ascending key order (not modified either).
	MVsWithExternal(ref mvstate.ExternalRef) []mvstate.MVKey
}

// Input is one decoded event with its position in the input.
type Input struct {
	Event  events.Event
	Source editlog.Cause
}

// Options parameterise one Process call.
type Options struct {
	// NextJournalID is the journal id of the first record Process returns;
	// the rest follow without gaps.
	NextJournalID int64
	// Epoch is stamped on every record.
	Epoch int64
	// Now (epoch ms) is stamped as each record's "at".
	Now int64
}

// SkipReason says why one partition entry (or a whole event) was not applied.
type SkipReason string

// The skip reasons: stable values, used as metric labels and log fields.
const (
	// Rule §3.1.
	SkipNonNativeTable       SkipReason = "non_native_table"
	SkipNoRelatedMV          SkipReason = "no_related_mv"
	SkipTableNotInVersionMap SkipReason = "table_not_in_version_map"
	SkipPartitionNotInMap    SkipReason = "partition_not_in_version_map"
	SkipVersionMismatch      SkipReason = "version_mismatch"
	SkipUnconsumedChange     SkipReason = "unconsumed_change"
	// Rule §3.2.
	SkipNoMVWithExternal SkipReason = "no_mv_with_external_table"
	// Rule §3.3.
	SkipUnknownMV SkipReason = "unknown_mv"
	SkipNoChange  SkipReason = "no_change"
)

// Skip is one skipped entry: which MV and partition, and why. MV is the zero
// key for event-level skips (non-native table, no related MV).
type Skip struct {
	Reason    SkipReason
	MV        mvstate.MVKey
	TableID   int64
	Partition string
	// Detail is human text for logs ("recorded version 5, event last_version 6").
	Detail string
}

// Outcome is what happened to one input.
type Outcome struct {
	Input Input
	// Records are the journal ids of the records this input contributed to.
	Records []int64
	// Repaired counts partition entries this input moved (rules §3.1/§3.2).
	Repaired int
	Skips    []Skip
	// DLQ is set when the input must go to the dead-letter topic
	// (e.g. external_table_recreated on the internal catalog).
	DLQ *events.DecodeError
}

// Applied reports whether the input changed the state.
func (o *Outcome) Applied() bool { return len(o.Records) > 0 }

// Result is the output of Process: records in journal order and one outcome
// per input, in input order.
type Result struct {
	Records  []*editlog.Record
	Outcomes []Outcome
}
