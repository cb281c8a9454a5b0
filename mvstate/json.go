package mvstate

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/mvrepair/mvrepair/internal/jsonx"
)

// EntryStyle says how AppendMV writes partition entries.
type EntryStyle int

const (
	// FullEntries writes every field of an entry, keys sorted:
	// {"ext_last_file_modified_time":-1,"file_number":-1,"id":..,"last_refresh_time":..,"version":..}.
	// The canonical export and the HTTP API use it.
	FullEntries EntryStyle = iota
	// CompactEntries writes {"id":..,"version":..,"last_refresh_time":..} and
	// the two ext fields only when one differs from its -1 default (decoders
	// restore it): the form of edit-log and snapshot records, about half the
	// bytes of FullEntries for native tables (docs/design.md §8).
	CompactEntries
)

// AppendMV appends m's canonical JSON: object keys sorted, version-map keys
// sorted as strings, the external version map as a list sorted by base
// table, nil collections written as empty ones. With FullEntries the bytes
// equal encoding/json's for the same value (a fuzz test checks it).
func AppendMV(dst []byte, m *MV, style EntryStyle) []byte {
	dst = append(dst, `{"active":`...)
	dst = jsonx.AppendBool(dst, m.Active)
	dst = append(dst, `,"base_tables":[`...)
	for i := range m.BaseTables {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendBaseTable(dst, &m.BaseTables[i])
	}
	dst = append(dst, `],"db_id":`...)
	dst = jsonx.AppendInt(dst, m.DBID)
	dst = append(dst, `,"db_name":`...)
	dst = jsonx.AppendString(dst, m.DBName)
	dst = append(dst, `,"external_version_map":[`...)
	if len(m.ExternalVersionMap) > 0 {
		tables := make([]BaseTableInfo, 0, len(m.ExternalVersionMap))
		for bt := range m.ExternalVersionMap {
			tables = append(tables, bt)
		}
		slices.SortFunc(tables, compareTables)
		for i := range tables {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"base_table":`...)
			dst = AppendBaseTable(dst, &tables[i])
			dst = append(dst, `,"partitions":`...)
			dst = AppendPartitions(dst, m.ExternalVersionMap[tables[i]], style)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, `],"last_refresh_time":`...)
	dst = jsonx.AppendInt(dst, m.LastRefreshTime)
	dst = append(dst, `,"mv_id":`...)
	dst = jsonx.AppendInt(dst, m.MVID)
	dst = append(dst, `,"mv_name":`...)
	dst = jsonx.AppendString(dst, m.MVName)
	dst = append(dst, `,"version_map":`...)
	dst = AppendVersionMap(dst, m.VersionMap, style)
	return append(dst, '}')
}

// AppendVersionMap appends a native version map as a JSON object whose keys
// are the table ids in decimal, sorted as strings (as encoding/json sorts
// map keys).
func AppendVersionMap(dst []byte, vm VersionMap, style EntryStyle) []byte {
	dst = append(dst, '{')
	ids := make([]int64, 0, len(vm))
	for id := range vm {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareDecimal)
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, id, 10)
		dst = append(dst, `":`...)
		dst = AppendPartitions(dst, vm[id], style)
	}
	return append(dst, '}')
}

// compareDecimal orders ids by their decimal strings, the order in which
// encoding/json writes map keys.
func compareDecimal(a, b int64) int {
	var x, y [24]byte
	return compareBytes(strconv.AppendInt(x[:0], a, 10), strconv.AppendInt(y[:0], b, 10))
}

func compareBytes(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func compareTables(a, b BaseTableInfo) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// AppendPartitions appends a partition map as a JSON object, names sorted.
func AppendPartitions(dst []byte, pm PartitionMap, style EntryStyle) []byte {
	dst = append(dst, '{')
	names := make([]string, 0, len(pm))
	for n := range pm {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendKey(dst, n)
		dst = AppendEntry(dst, pm[n], style)
	}
	return append(dst, '}')
}

// AppendEntry appends one partition entry.
func AppendEntry(dst []byte, p BasePartitionInfo, style EntryStyle) []byte {
	if style == FullEntries {
		dst = append(dst, `{"ext_last_file_modified_time":`...)
		dst = jsonx.AppendInt(dst, p.ExtLastFileModifiedTime)
		dst = append(dst, `,"file_number":`...)
		dst = jsonx.AppendInt(dst, p.FileNumber)
		dst = append(dst, `,"id":`...)
		dst = jsonx.AppendInt(dst, p.ID)
		dst = append(dst, `,"last_refresh_time":`...)
		dst = jsonx.AppendInt(dst, p.LastRefreshTime)
		dst = append(dst, `,"version":`...)
		dst = jsonx.AppendInt(dst, p.Version)
		return append(dst, '}')
	}
	dst = append(dst, `{"id":`...)
	dst = jsonx.AppendInt(dst, p.ID)
	dst = append(dst, `,"version":`...)
	dst = jsonx.AppendInt(dst, p.Version)
	dst = append(dst, `,"last_refresh_time":`...)
	dst = jsonx.AppendInt(dst, p.LastRefreshTime)
	if p.ExtLastFileModifiedTime != -1 || p.FileNumber != -1 {
		dst = append(dst, `,"ext_last_file_modified_time":`...)
		dst = jsonx.AppendInt(dst, p.ExtLastFileModifiedTime)
		dst = append(dst, `,"file_number":`...)
		dst = jsonx.AppendInt(dst, p.FileNumber)
	}
	return append(dst, '}')
}

// AppendBaseTable appends a base table as encoding/json writes
// BaseTableInfo (keys sorted, zero ids and empty strings other than the
// catalog left out).
func AppendBaseTable(dst []byte, b *BaseTableInfo) []byte {
	dst = append(dst, `{"catalog":`...)
	dst = jsonx.AppendString(dst, b.Catalog)
	if b.DBID != 0 {
		dst = append(dst, `,"db_id":`...)
		dst = jsonx.AppendInt(dst, b.DBID)
	}
	if b.DBName != "" {
		dst = append(dst, `,"db_name":`...)
		dst = jsonx.AppendString(dst, b.DBName)
	}
	if b.TableID != 0 {
		dst = append(dst, `,"table_id":`...)
		dst = jsonx.AppendInt(dst, b.TableID)
	}
	if b.TableIdentifier != "" {
		dst = append(dst, `,"table_identifier":`...)
		dst = jsonx.AppendString(dst, b.TableIdentifier)
	}
	if b.TableName != "" {
		dst = append(dst, `,"table_name":`...)
		dst = jsonx.AppendString(dst, b.TableName)
	}
	return append(dst, '}')
}

// DecodeMV decodes the JSON of an MV (either entry style). It accepts
// exactly what encoding/json accepts for the wire shape and yields the same
// value: a fast reader handles the canonical shapes, and anything it does
// not (unknown or differently-cased keys, nulls, escapes it leaves alone)
// falls back to encoding/json. Collections are never nil.
func DecodeMV(b []byte) (*MV, error) {
	var r jsonx.Reader
	r.Reset(b)
	if m, ok := ReadMV(&r); ok && r.End() == nil {
		return m, nil
	}
	return decodeMVSlow(b)
}

// ReadMV reads an MV object from r: the fast path of DecodeMV. ok is false
// when the object needs the generic decoder (or r failed): callers then
// decode the value's bytes with DecodeMV's fallback, e.g. by calling
// DecodeMV on them.
func ReadMV(r *jsonx.Reader) (*MV, bool) {
	m := &MV{BaseTables: []BaseTableInfo{}, VersionMap: VersionMap{}, ExternalVersionMap: ExternalVersionMap{}}
	bad := false
	r.Object(func(k []byte) {
		if r.IsNull() {
			bad = true
			r.Skip()
			return
		}
		switch string(k) {
		case "active":
			m.Active = r.Bool()
		case "base_tables":
			m.BaseTables = m.BaseTables[:0]
			r.Array(func() {
				bt, ok := readBaseTable(r)
				bad = bad || !ok
				m.BaseTables = append(m.BaseTables, bt)
			})
		case "db_id":
			m.DBID = r.Int()
		case "db_name":
			m.DBName = r.String()
		case "external_version_map":
			m.ExternalVersionMap = ExternalVersionMap{}
			r.Array(func() {
				var bt BaseTableInfo
				var pm PartitionMap
				seenBT := false
				r.Object(func(k []byte) {
					switch string(k) {
					case "base_table":
						var ok bool
						bt, ok = readBaseTable(r)
						bad = bad || !ok || seenBT
						seenBT = true
					case "partitions":
						var ok bool
						pm, ok = readPartitions(r)
						bad = bad || !ok || pm == nil
					default:
						bad = true
						r.Skip()
					}
				})
				if _, dup := m.ExternalVersionMap[bt]; dup || pm == nil {
					bad = true // duplicates and absent maps: the slow path reports or handles them
				}
				m.ExternalVersionMap[bt] = pm
			})
		case "last_refresh_time":
			m.LastRefreshTime = r.Int()
		case "mv_id":
			m.MVID = r.Int()
		case "mv_name":
			m.MVName = r.String()
		case "version_map":
			r.Object(func(k []byte) {
				id, err := strconv.ParseInt(string(k), 10, 64)
				pm, ok := readPartitions(r)
				if err != nil || !ok || pm == nil {
					bad = true
					return
				}
				if _, dup := m.VersionMap[id]; dup {
					bad = true // "7" and "07": the slow path decides
				}
				m.VersionMap[id] = pm
			})
		default:
			bad = true
			r.Skip()
		}
	})
	if bad || r.Err() != nil {
		return nil, false
	}
	return m, true
}

// ReadBaseTable reads a BaseTableInfo object; ok is false when the object
// needs the generic decoder.
func ReadBaseTable(r *jsonx.Reader) (BaseTableInfo, bool) { return readBaseTable(r) }

func readBaseTable(r *jsonx.Reader) (BaseTableInfo, bool) {
	var b BaseTableInfo
	ok := true
	r.Object(func(k []byte) {
		if r.IsNull() {
			ok = false
			return
		}
		switch string(k) {
		case "catalog":
			b.Catalog = r.String()
		case "db_id":
			b.DBID = r.Int()
		case "db_name":
			b.DBName = r.String()
		case "table_id":
			b.TableID = r.Int()
		case "table_identifier":
			b.TableIdentifier = r.String()
		case "table_name":
			b.TableName = r.String()
		default:
			ok = false
			r.Skip()
		}
	})
	return b, ok
}

// ReadPartitions reads a partition map object (either entry style).
// ok is false when it needs the generic decoder; a JSON null yields nil.
func ReadPartitions(r *jsonx.Reader) (PartitionMap, bool) { return readPartitions(r) }

func readPartitions(r *jsonx.Reader) (PartitionMap, bool) {
	if r.IsNull() {
		return nil, true
	}
	pm := make(PartitionMap, r.Members())
	ok := true
	r.Object(func(k []byte) {
		name := string(k)
		p, eok := readEntry(r)
		ok = ok && eok
		pm[name] = p
	})
	return pm, ok
}

func readEntry(r *jsonx.Reader) (BasePartitionInfo, bool) {
	p := BasePartitionInfo{ExtLastFileModifiedTime: -1, FileNumber: -1}
	ok := true
	r.Object(func(k []byte) {
		if r.IsNull() {
			ok = false
			return
		}
		switch string(k) {
		case "id":
			p.ID = r.Int()
		case "version":
			p.Version = r.Int()
		case "last_refresh_time":
			p.LastRefreshTime = r.Int()
		case "ext_last_file_modified_time":
			p.ExtLastFileModifiedTime = r.Int()
		case "file_number":
			p.FileNumber = r.Int()
		default:
			ok = false
			r.Skip()
		}
	})
	return p, ok
}

// mvWire is the generic decoder's shape of an MV.
type mvWire struct {
	Active             bool                    `json:"active"`
	BaseTables         []BaseTableInfo         `json:"base_tables"`
	DBID               int64                   `json:"db_id"`
	DBName             string                  `json:"db_name"`
	ExternalVersionMap []ExternalPartitions    `json:"external_version_map"`
	LastRefreshTime    int64                   `json:"last_refresh_time"`
	MVID               int64                   `json:"mv_id"`
	MVName             string                  `json:"mv_name"`
	VersionMap         map[string]PartitionMap `json:"version_map"`
}

func decodeMVSlow(b []byte) (*MV, error) {
	var w mvWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	vm, err := DecodeVersionMap(w.VersionMap)
	if err != nil {
		return nil, err
	}
	ext, err := DecodeExternal(w.ExternalVersionMap)
	if err != nil {
		return nil, err
	}
	m := &MV{Active: w.Active, BaseTables: w.BaseTables, DBID: w.DBID, DBName: w.DBName,
		ExternalVersionMap: ext, LastRefreshTime: w.LastRefreshTime, MVID: w.MVID, MVName: w.MVName,
		VersionMap: vm}
	if m.BaseTables == nil {
		m.BaseTables = []BaseTableInfo{}
	}
	return m, nil
}

// DecodeMVGeneric decodes an MV with encoding/json only: the reference
// DecodeMV's fast path is tested against.
func DecodeMVGeneric(b []byte) (*MV, error) { return decodeMVSlow(b) }
