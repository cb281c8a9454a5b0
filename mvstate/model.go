// Package mvstate holds the materialized-view refresh metadata the service
// keeps correct: the domain model of docs/design.md §2, the state in memory
// (State) with its index from base tables to related MVs, per-MV locks and
// transactions that undo themselves when they fail. It does no I/O: the
// durable store around it (log, snapshots, outbox, offsets) is
// internal/store.
//
// The JSON shapes here are the wire contract (docs/design.md §4) and the canonical
// export (§6): object keys are declared in sorted order so that encoding/json
// emits canonical documents without a second pass.
package mvstate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
)

// DefaultCatalog is the catalog of native (internal) tables.
const DefaultCatalog = "default_catalog"

// BasePartitionInfo is what an MV recorded about one base-table partition at
// its last refresh (StarRocks' MaterializedView.BasePartitionInfo). The two
// ext fields are used by external tables only and default to -1.
type BasePartitionInfo struct {
	ExtLastFileModifiedTime int64 `json:"ext_last_file_modified_time"`
	FileNumber              int64 `json:"file_number"`
	ID                      int64 `json:"id"`
	LastRefreshTime         int64 `json:"last_refresh_time"`
	Version                 int64 `json:"version"`
}

// NewBasePartitionInfo returns an entry with the ext fields at their -1 default.
func NewBasePartitionInfo(id, version, lastRefreshTime int64) BasePartitionInfo {
	return BasePartitionInfo{ID: id, Version: version, LastRefreshTime: lastRefreshTime,
		ExtLastFileModifiedTime: -1, FileNumber: -1}
}

// UnmarshalJSON decodes an entry, defaulting absent ext fields to -1.
func (p *BasePartitionInfo) UnmarshalJSON(b []byte) error {
	type plain BasePartitionInfo
	v := plain{ExtLastFileModifiedTime: -1, FileNumber: -1}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = BasePartitionInfo(v)
	return nil
}

// BaseTableInfo names a base table of an MV. Native tables live in
// DefaultCatalog and are identified by TableID; external ones by
// (Catalog, DBName, TableName, TableIdentifier). The value is comparable and
// is used whole as the key of an MV's external version map, as in StarRocks.
type BaseTableInfo struct {
	Catalog         string `json:"catalog"`
	DBID            int64  `json:"db_id,omitempty"`
	DBName          string `json:"db_name,omitempty"`
	TableID         int64  `json:"table_id,omitempty"`
	TableIdentifier string `json:"table_identifier,omitempty"`
	TableName       string `json:"table_name,omitempty"`
}

// IsNative reports whether the table lives in the internal catalog.
func (b BaseTableInfo) IsNative() bool { return b.Catalog == DefaultCatalog }

// ExternalRef returns the identity of an external table.
func (b BaseTableInfo) ExternalRef() ExternalRef {
	return ExternalRef{Catalog: b.Catalog, DBName: b.DBName, TableName: b.TableName, TableIdentifier: b.TableIdentifier}
}

// Less orders base tables by catalog, db name, table name, identifier, ids.
func (b BaseTableInfo) Less(o BaseTableInfo) bool {
	switch {
	case b.Catalog != o.Catalog:
		return b.Catalog < o.Catalog
	case b.DBName != o.DBName:
		return b.DBName < o.DBName
	case b.TableName != o.TableName:
		return b.TableName < o.TableName
	case b.TableIdentifier != o.TableIdentifier:
		return b.TableIdentifier < o.TableIdentifier
	case b.DBID != o.DBID:
		return b.DBID < o.DBID
	default:
		return b.TableID < o.TableID
	}
}

// ExternalRef identifies an external table: what an external_table_recreated
// event names (with the old identifier) and what the external index is keyed by.
type ExternalRef struct {
	Catalog, DBName, TableName, TableIdentifier string
}

// String renders the ref as catalog.db.table@identifier for logs.
func (r ExternalRef) String() string {
	return r.Catalog + "." + r.DBName + "." + r.TableName + "@" + r.TableIdentifier
}

// MVKey identifies an MV. Keys order by (DBID, MVID); that order is also the
// lock order when more than one MV lock is held (see locks.go).
type MVKey struct {
	DBID int64 `json:"db_id"`
	MVID int64 `json:"mv_id"`
}

// Less orders keys by (DBID, MVID).
func (k MVKey) Less(o MVKey) bool {
	if k.DBID != o.DBID {
		return k.DBID < o.DBID
	}
	return k.MVID < o.MVID
}

// Compare orders keys by (db_id, mv_id), for slices.SortFunc and
// slices.BinarySearchFunc: -1, 0 or +1.
func (k MVKey) Compare(o MVKey) int {
	return cmp.Or(cmp.Compare(k.DBID, o.DBID), cmp.Compare(k.MVID, o.MVID))
}

// String renders the key as "db_id:mv_id", the edit-log and catalog topic key.
func (k MVKey) String() string {
	return strconv.FormatInt(k.DBID, 10) + ":" + strconv.FormatInt(k.MVID, 10)
}

// PartitionMap maps partition name to the recorded entry.
type PartitionMap = map[string]BasePartitionInfo

// VersionMap is an MV's native version map: base table id → partition name → entry.
type VersionMap = map[int64]PartitionMap

// ExternalVersionMap is an MV's external version map keyed by the whole BaseTableInfo.
type ExternalVersionMap = map[BaseTableInfo]PartitionMap

// MV is one materialized view's definition and refresh state: exactly the
// fields of the "mv" object of mv_upserted (docs/design.md §4). The JSON encoding
// is canonical: keys sorted, version-map keys sorted, the external version map
// as a list sorted by base table.
type MV struct {
	Active             bool
	BaseTables         []BaseTableInfo
	DBID               int64
	DBName             string
	ExternalVersionMap ExternalVersionMap
	LastRefreshTime    int64
	MVID               int64
	MVName             string
	VersionMap         VersionMap
}

// Key returns the MV's identity.
func (m *MV) Key() MVKey { return MVKey{DBID: m.DBID, MVID: m.MVID} }

// ExternalPartitions is one element of the JSON external_version_map list.
type ExternalPartitions struct {
	BaseTable  BaseTableInfo `json:"base_table"`
	Partitions PartitionMap  `json:"partitions"`
}

// EncodeExternal renders an external version map as the sorted JSON list.
func EncodeExternal(m ExternalVersionMap) []ExternalPartitions {
	out := make([]ExternalPartitions, 0, len(m))
	for bt, parts := range m {
		if parts == nil {
			parts = PartitionMap{}
		}
		out = append(out, ExternalPartitions{BaseTable: bt, Partitions: parts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BaseTable.Less(out[j].BaseTable) })
	return out
}

// DecodeExternal turns the JSON list form back into a map. A base table listed
// twice is an error.
func DecodeExternal(list []ExternalPartitions) (ExternalVersionMap, error) {
	out := make(ExternalVersionMap, len(list))
	for i, e := range list {
		if _, dup := out[e.BaseTable]; dup {
			return nil, fmt.Errorf("external_version_map[%d]: base table %s listed twice", i, e.BaseTable.ExternalRef())
		}
		out[e.BaseTable] = clonePartitions(e.Partitions)
	}
	return out, nil
}

// EncodeVersionMap renders table ids as decimal JSON object keys. encoding/json
// sorts string keys lexically, so the result is canonical.
func EncodeVersionMap(vm VersionMap) map[string]PartitionMap {
	out := make(map[string]PartitionMap, len(vm))
	for id, parts := range vm {
		if parts == nil {
			parts = PartitionMap{}
		}
		out[strconv.FormatInt(id, 10)] = parts
	}
	return out
}

// DecodeVersionMap parses decimal table-id keys.
func DecodeVersionMap(in map[string]PartitionMap) (VersionMap, error) {
	out := make(VersionMap, len(in))
	for k, parts := range in {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version_map key %q: not a table id", k)
		}
		if _, dup := out[id]; dup {
			// "7" and "07": which one would win depends on map order.
			return nil, fmt.Errorf("version_map: two keys name table %d", id)
		}
		out[id] = clonePartitions(parts)
	}
	return out, nil
}

// MarshalJSON encodes the MV canonically (AppendMV with FullEntries).
func (m *MV) MarshalJSON() ([]byte, error) { return AppendMV(nil, m, FullEntries), nil }

// UnmarshalJSON decodes the wire shape of an MV (see DecodeMV).
func (m *MV) UnmarshalJSON(b []byte) error {
	d, err := DecodeMV(b)
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

// Clone returns a deep copy: no map or slice is shared with m.
func (m *MV) Clone() *MV {
	if m == nil {
		return nil
	}
	c := *m
	c.BaseTables = append([]BaseTableInfo{}, m.BaseTables...)
	c.VersionMap = make(VersionMap, len(m.VersionMap))
	for id, parts := range m.VersionMap {
		c.VersionMap[id] = clonePartitions(parts)
	}
	c.ExternalVersionMap = make(ExternalVersionMap, len(m.ExternalVersionMap))
	for bt, parts := range m.ExternalVersionMap {
		c.ExternalVersionMap[bt] = clonePartitions(parts)
	}
	return &c
}

// Equal reports whether two MVs hold the same definition and refresh state.
// A nil and an empty map are equal.
func (m *MV) Equal(o *MV) bool {
	if m == nil || o == nil {
		return m == o
	}
	if m.Active != o.Active || m.DBID != o.DBID || m.DBName != o.DBName || m.MVID != o.MVID ||
		m.MVName != o.MVName || m.LastRefreshTime != o.LastRefreshTime || len(m.BaseTables) != len(o.BaseTables) ||
		len(m.VersionMap) != len(o.VersionMap) || len(m.ExternalVersionMap) != len(o.ExternalVersionMap) {
		return false
	}
	for i := range m.BaseTables {
		if m.BaseTables[i] != o.BaseTables[i] {
			return false
		}
	}
	for id, p := range m.VersionMap {
		q, ok := o.VersionMap[id]
		if !ok || !maps.Equal(p, q) {
			return false
		}
	}
	for bt, p := range m.ExternalVersionMap {
		q, ok := o.ExternalVersionMap[bt]
		if !ok || !maps.Equal(p, q) {
			return false
		}
	}
	return true
}

// HasNativeBase reports whether tableID is listed in BaseTables.
func (m *MV) HasNativeBase(tableID int64) bool {
	for _, bt := range m.BaseTables {
		if bt.IsNative() && bt.TableID == tableID {
			return true
		}
	}
	return false
}

// ClonePartitions returns a copy of a partition map (nil stays nil).
func ClonePartitions(p PartitionMap) PartitionMap { return clonePartitions(p) }

func clonePartitions(p PartitionMap) PartitionMap {
	if p == nil {
		return nil
	}
	return maps.Clone(p)
}

// Entries counts the MV's partition entries, native and external.
func (m *MV) Entries() int {
	n := 0
	for _, pm := range m.VersionMap {
		n += len(pm)
	}
	for _, pm := range m.ExternalVersionMap {
		n += len(pm)
	}
	return n
}
