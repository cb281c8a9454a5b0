// Package editlog defines the journal records of docs/design.md §4 (topic
// mv-edit-log), their JSON encoding with the contract's field names, and
// Apply: the one code path that turns a record into state changes, used by the
// live writer, followers, rebuild and tests alike.
package editlog

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/mvrepair/mvrepair/mvstate"
)

// Op is a record's operation.
type Op string

// The operations.
const (
	OpVersionRepaired       Op = "mv_version_repaired"
	OpBaseTableInfoRepaired Op = "mv_base_table_info_repaired"
	OpUpserted              Op = "mv_upserted"
	OpRefreshed             Op = "mv_refreshed"
	OpDropped               Op = "mv_dropped"
)

// HeaderJournalID is the Kafka header carrying the record's journal id.
const HeaderJournalID = "journal-id"

// MVRef names the MV a record is about.
type MVRef struct {
	DBID   int64  `json:"db_id"`
	MVID   int64  `json:"mv_id"`
	MVName string `json:"mv_name,omitempty"`
}

// Key returns the MV's key.
func (r MVRef) Key() mvstate.MVKey { return mvstate.MVKey{DBID: r.DBID, MVID: r.MVID} }

// Cause is an input record a journal record was derived from.
type Cause struct {
	EventID   string `json:"event_id,omitempty"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Record is one edit-log record. Which fields are set depends on Op:
//
//   - mv_version_repaired: BaseTable (native), Partitions (the repaired
//     entries only), Previous (their old values), MVLastRefreshTime.
//   - mv_base_table_info_repaired: OldBaseTable, NewBaseTable, Partitions (the
//     whole new map), Previous (the whole old map).
//   - mv_upserted: Definition (the MV in full; encoded as "mv").
//   - mv_refreshed: VersionMap and ExternalVersionMap (the merged entries),
//     Removed (native names deleted), MVLastRefreshTime (the resulting value).
//   - mv_dropped: nothing beyond MV.
type Record struct {
	JournalID int64
	Epoch     int64
	Op        Op
	At        int64
	MV        MVRef

	Definition *mvstate.MV

	BaseTable    *mvstate.BaseTableInfo
	OldBaseTable *mvstate.BaseTableInfo
	NewBaseTable *mvstate.BaseTableInfo
	Partitions   mvstate.PartitionMap
	Previous     mvstate.PartitionMap

	VersionMap         mvstate.VersionMap
	ExternalVersionMap mvstate.ExternalVersionMap
	Removed            map[int64][]string

	MVLastRefreshTime int64
	Causes            []Cause
}

// Key returns the Kafka key of the record: "<db_id>:<mv_id>".
func (r *Record) Key() string { return r.MV.Key().String() }

// JournalHeader returns the journal-id header value.
func (r *Record) JournalHeader() string { return strconv.FormatInt(r.JournalID, 10) }

// recordJSON is the wire shape; "mv" is an MVRef or, for mv_upserted, the full MV.
type recordJSON struct {
	JournalID          int64                           `json:"journal_id"`
	Epoch              int64                           `json:"epoch"`
	Op                 Op                              `json:"op"`
	At                 int64                           `json:"at"`
	MV                 json.RawMessage                 `json:"mv"`
	BaseTable          *mvstate.BaseTableInfo          `json:"base_table,omitempty"`
	OldBaseTable       *mvstate.BaseTableInfo          `json:"old_base_table,omitempty"`
	NewBaseTable       *mvstate.BaseTableInfo          `json:"new_base_table,omitempty"`
	Partitions         map[string]wireEntry            `json:"partitions,omitempty"`
	Previous           map[string]wireEntry            `json:"previous,omitempty"`
	VersionMap         map[string]map[string]wireEntry `json:"version_map,omitempty"`
	ExternalVersionMap []mvstate.ExternalPartitions    `json:"external_version_map,omitempty"`
	Removed            map[string][]string             `json:"removed,omitempty"`
	MVLastRefreshTime  int64                           `json:"mv_last_refresh_time,omitempty"`
	Causes             []Cause                         `json:"causes,omitempty"`
}

// MarshalJSON encodes the record with the contract's field names (see
// AppendRecord).
func (r *Record) MarshalJSON() ([]byte, error) { return AppendRecord(nil, r), nil }

// UnmarshalJSON decodes a record and checks that the op is known and the
// fields it needs are present (see Decode).
func (r *Record) UnmarshalJSON(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*r = *d
	return nil
}

// decodeGeneric decodes a record with encoding/json: the reference the fast
// path is tested against, and the path for shapes the fast path leaves alone.
func decodeGeneric(b []byte) (*Record, error) {
	var w recordJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	out := Record{JournalID: w.JournalID, Epoch: w.Epoch, Op: w.Op, At: w.At,
		BaseTable: w.BaseTable, OldBaseTable: w.OldBaseTable, NewBaseTable: w.NewBaseTable,
		Partitions: fromWire(w.Partitions), Previous: fromWire(w.Previous), MVLastRefreshTime: w.MVLastRefreshTime, Causes: w.Causes}
	if len(w.MV) == 0 || string(w.MV) == "null" {
		return nil, fmt.Errorf("editlog record %d: mv is missing", w.JournalID)
	}
	if w.Op == OpUpserted {
		// The full MV; its ref is derived rather than decoded a second time.
		out.Definition = &mvstate.MV{}
		if err := json.Unmarshal(w.MV, out.Definition); err != nil {
			return nil, fmt.Errorf("editlog record %d: mv: %w", w.JournalID, err)
		}
		out.MV = MVRef{DBID: out.Definition.DBID, MVID: out.Definition.MVID, MVName: out.Definition.MVName}
	} else if err := json.Unmarshal(w.MV, &out.MV); err != nil {
		return nil, fmt.Errorf("editlog record %d: mv: %w", w.JournalID, err)
	}
	if w.VersionMap != nil {
		in := make(map[string]mvstate.PartitionMap, len(w.VersionMap))
		for id, pm := range w.VersionMap {
			in[id] = fromWire(pm)
		}
		vm, err := mvstate.DecodeVersionMap(in)
		if err != nil {
			return nil, fmt.Errorf("editlog record %d: %w", w.JournalID, err)
		}
		out.VersionMap = vm
	}
	if w.ExternalVersionMap != nil {
		ext, err := mvstate.DecodeExternal(w.ExternalVersionMap)
		if err != nil {
			return nil, fmt.Errorf("editlog record %d: %w", w.JournalID, err)
		}
		out.ExternalVersionMap = ext
	}
	if w.Removed != nil {
		out.Removed = make(map[int64][]string, len(w.Removed))
		for k, names := range w.Removed {
			id, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("editlog record %d: removed key %q: not a table id", w.JournalID, k)
			}
			out.Removed[id] = names
		}
	}
	if err := out.validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// validate checks the op-specific required fields.
func (r *Record) validate() error {
	if r.JournalID <= 0 {
		return fmt.Errorf("editlog record: journal_id %d must be positive", r.JournalID)
	}
	if r.MV.DBID <= 0 || r.MV.MVID <= 0 {
		return fmt.Errorf("editlog record %d: mv.db_id and mv.mv_id must be positive", r.JournalID)
	}
	switch r.Op {
	case OpVersionRepaired:
		if r.BaseTable == nil || len(r.Partitions) == 0 {
			return fmt.Errorf("editlog record %d: %s needs base_table and partitions", r.JournalID, r.Op)
		}
	case OpBaseTableInfoRepaired:
		if r.OldBaseTable == nil || r.NewBaseTable == nil {
			return fmt.Errorf("editlog record %d: %s needs old_base_table and new_base_table", r.JournalID, r.Op)
		}
	case OpUpserted:
		if r.Definition == nil {
			return fmt.Errorf("editlog record %d: %s needs mv in full", r.JournalID, r.Op)
		}
	case OpRefreshed, OpDropped:
	default:
		return fmt.Errorf("editlog record %d: unknown op %q", r.JournalID, r.Op)
	}
	return nil
}

// Encode returns the record's JSON value (AppendRecord). The error is
// always nil; it is kept for callers that treat encoding as fallible.
func Encode(r *Record) ([]byte, error) { return AppendRecord(nil, r), nil }

// wireEntry is a BasePartitionInfo as records carry it: the contract's field
// order (id, version, last_refresh_time, then the ext fields), with the ext
// fields left out when they hold their -1 default, which decoders restore.
// This keeps a one-partition repair record well under 600 bytes.
type wireEntry mvstate.BasePartitionInfo

// MarshalJSON implements json.Marshaler.
func (e wireEntry) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 96)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = append(b, `,"last_refresh_time":`...)
	b = strconv.AppendInt(b, e.LastRefreshTime, 10)
	if e.ExtLastFileModifiedTime != -1 || e.FileNumber != -1 {
		b = append(b, `,"ext_last_file_modified_time":`...)
		b = strconv.AppendInt(b, e.ExtLastFileModifiedTime, 10)
		b = append(b, `,"file_number":`...)
		b = strconv.AppendInt(b, e.FileNumber, 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON implements json.Unmarshaler (ext fields default to -1).
func (e *wireEntry) UnmarshalJSON(b []byte) error {
	return (*mvstate.BasePartitionInfo)(e).UnmarshalJSON(b)
}

func fromWire(p map[string]wireEntry) mvstate.PartitionMap {
	if p == nil {
		return nil
	}
	out := make(mvstate.PartitionMap, len(p))
	for k, v := range p {
		out[k] = mvstate.BasePartitionInfo(v)
	}
	return out
}
