// Package events decodes and validates the input records of docs/design.md §4: the
// partition-version-changed topic (partition_version_changed,
// external_table_recreated) and the mv-catalog topic (mv_upserted,
// mv_refreshed, mv_dropped). A record that cannot be used yields a *DecodeError
// with a stable reason code (the DLQ's dlq-reason header) and a message that
// names the field at fault.
package events

import "github.com/mvrepair/mvrepair/mvstate"

// Kind is the "kind" discriminator of an input record.
type Kind string

// The input kinds.
const (
	KindPartitionVersionChanged Kind = "partition_version_changed"
	KindExternalTableRecreated  Kind = "external_table_recreated"
	KindMVUpserted              Kind = "mv_upserted"
	KindMVRefreshed             Kind = "mv_refreshed"
	KindMVDropped               Kind = "mv_dropped"
)

// Event is a decoded, validated input record. The concrete types are the
// pointer types below.
type Event interface {
	// Kind returns the record's discriminator.
	Kind() Kind
	// ID returns the producer's event_id (may be empty).
	ID() string
}

// PartitionRepair is one partition entry of a partition_version_changed event.
type PartitionRepair struct {
	PartitionID    int64  `json:"partition_id"`
	PartitionName  string `json:"partition_name"`
	LastVersion    int64  `json:"last_version"`
	NewVersion     int64  `json:"new_version"`
	NewVersionTime int64  `json:"new_version_time"`
	// LastVersionTime is the partition's visible-version time before the
	// change; nil when the producer did not send it (optional field).
	LastVersionTime *int64 `json:"last_version_time,omitempty"`
}

// PartitionVersionChanged: a native table's partitions got new visible
// versions without new data (compaction, metadata-only ALTER).
type PartitionVersionChanged struct {
	EventID    string            `json:"event_id"`
	Source     string            `json:"source,omitempty"`
	DBID       int64             `json:"db_id"`
	TableID    int64             `json:"table_id"`
	TableName  string            `json:"table_name,omitempty"`
	TableType  string            `json:"table_type"`
	Partitions []PartitionRepair `json:"partitions"`
	EmittedAt  int64             `json:"emitted_at,omitempty"`
}

// Kind implements Event.
func (*PartitionVersionChanged) Kind() Kind { return KindPartitionVersionChanged }

// ID implements Event.
func (e *PartitionVersionChanged) ID() string { return e.EventID }

// IsNativeTableType reports whether rule §3.1 applies to a table_type: a
// native table or materialized view, local or cloud-native.
func IsNativeTableType(t string) bool {
	switch t {
	case "olap", "cloud_native", "materialized_view", "cloud_native_materialized_view":
		return true
	}
	return false
}

// ExternalPartition is one entry of external_table_recreated.partitions.
type ExternalPartition struct {
	ModifiedTime int64 `json:"modified_time"`
}

// ExternalTableRecreated: an external (Hive-style) table was dropped and
// recreated; its table identifier changed.
type ExternalTableRecreated struct {
	EventID            string                       `json:"event_id"`
	Catalog            string                       `json:"catalog"`
	DBName             string                       `json:"db_name"`
	TableName          string                       `json:"table_name"`
	OldTableIdentifier string                       `json:"old_table_identifier"`
	NewTableIdentifier string                       `json:"new_table_identifier"`
	Partitions         map[string]ExternalPartition `json:"partitions"`
	UpdatedPartitions  []string                     `json:"updated_partitions"`
}

// Kind implements Event.
func (*ExternalTableRecreated) Kind() Kind { return KindExternalTableRecreated }

// ID implements Event.
func (e *ExternalTableRecreated) ID() string { return e.EventID }

// OldRef is the identity of the table before it was recreated.
func (e *ExternalTableRecreated) OldRef() mvstate.ExternalRef {
	return mvstate.ExternalRef{Catalog: e.Catalog, DBName: e.DBName, TableName: e.TableName, TableIdentifier: e.OldTableIdentifier}
}

// MVUpserted creates or replaces an MV (definition and full refresh state).
type MVUpserted struct {
	EventID string      `json:"event_id"`
	MV      *mvstate.MV `json:"mv"`
}

// Kind implements Event.
func (*MVUpserted) Kind() Kind { return KindMVUpserted }

// ID implements Event.
func (e *MVUpserted) ID() string { return e.EventID }

// MVRefreshed merges refreshed entries into an MV's version maps, deletes the
// removed names and raises its last_refresh_time.
type MVRefreshed struct {
	EventID            string
	DBID               int64
	MVID               int64
	LastRefreshTime    int64
	VersionMap         mvstate.VersionMap
	ExternalVersionMap mvstate.ExternalVersionMap
	// Removed lists partition names to delete, per native base table id.
	Removed map[int64][]string
}

// Kind implements Event.
func (*MVRefreshed) Kind() Kind { return KindMVRefreshed }

// ID implements Event.
func (e *MVRefreshed) ID() string { return e.EventID }

// Key returns the MV the event is about.
func (e *MVRefreshed) Key() mvstate.MVKey { return mvstate.MVKey{DBID: e.DBID, MVID: e.MVID} }

// MVDropped deletes an MV.
type MVDropped struct {
	EventID string `json:"event_id"`
	DBID    int64  `json:"db_id"`
	MVID    int64  `json:"mv_id"`
}

// Kind implements Event.
func (*MVDropped) Kind() Kind { return KindMVDropped }

// ID implements Event.
func (e *MVDropped) ID() string { return e.EventID }

// Key returns the MV the event is about.
func (e *MVDropped) Key() mvstate.MVKey { return mvstate.MVKey{DBID: e.DBID, MVID: e.MVID} }

// Reason is a stable dead-letter reason code (the dlq-reason header).
type Reason string

// The reason codes. They are part of the wire contract: never rename one.
const (
	ReasonInvalidJSON     Reason = "invalid_json"
	ReasonInvalidEvent    Reason = "invalid_event"
	ReasonUnknownKind     Reason = "unknown_kind"
	ReasonInternalCatalog Reason = "internal_catalog"
)

// DecodeError says why a record cannot be used. Field names the JSON path at
// fault ("partitions[2].new_version") when there is one.
type DecodeError struct {
	Reason Reason
	Field  string
	Msg    string
}

// Error implements error: "invalid_event: partitions[0].new_version: must be above last_version".
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return string(e.Reason) + ": " + e.Msg
	}
	return string(e.Reason) + ": " + e.Field + ": " + e.Msg
}
