package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/mvrepair/mvrepair/mvstate"
)

// Decode parses one input record (a Kafka message value) into an Event and
// validates it. The concrete type is chosen by the "kind" field:
// *PartitionVersionChanged, *ExternalTableRecreated, *MVUpserted,
// *MVRefreshed or *MVDropped.
//
// Every error is a *DecodeError whose Reason is one of:
//
//   - ReasonInvalidJSON: the value is not valid UTF-8, not well-formed JSON
//     (including trailing data after the document), not a JSON object, or a
//     known field holds a JSON type its Go field cannot (a string where an
//     integer is expected, a fraction or an out-of-range number for an int64,
//     an object where an array is expected, ...). Field names the value at
//     fault, e.g. "partitions[2].new_version"; it is empty for document-level
//     problems.
//   - ReasonUnknownKind: "kind" is missing, null, empty or not one of the five
//     kinds (Field "kind"). A "kind" that is not a JSON string is
//     ReasonInvalidJSON.
//   - ReasonInvalidEvent: the event breaks one of the validation rules below.
//   - ReasonInternalCatalog: an external_table_recreated event names
//     mvstate.DefaultCatalog (Field "catalog").
//
// Field paths use ".name" for object members, "[i]" for array elements and
// "[\"key\"]" (a Go-quoted key) for members of map-like objects, e.g.
// `mv.version_map["20001"]["p20240101"].version`.
//
// Decoding follows encoding/json: unknown fields are ignored (forward
// compatibility), a member name matches a field exactly or else
// case-insensitively, the last of duplicate members wins, and null leaves a
// field at its zero value, so null counts as absent. Partition entries
// (mvstate.BasePartitionInfo) default ext_last_file_modified_time and
// file_number to -1. Maps and slices of a decoded event are never nil (absent
// collections decode as empty ones), so Decode(Encode(e)) reproduces e exactly.
//
// Validation (ReasonInvalidEvent unless noted; checks run in the order listed
// and the first failure is reported; map members are visited in sorted key
// order, so the reported field is deterministic):
//
// partition_version_changed (docs/design.md §4):
//   - db_id > 0, table_id > 0, table_type non-empty. A table_type outside the
//     native set is valid: rule §3.1 skips such tables with a warning.
//   - emitted_at >= 0 (optional; 0 means absent).
//   - partitions has at least one entry, and each partitions[i] has
//     partition_id > 0, a non-empty partition_name, last_version >= 1,
//     new_version > last_version, new_version_time > 0, and
//     last_version_time > 0 when present (it is optional).
//
// external_table_recreated:
//   - catalog non-empty; catalog == "default_catalog" is ReasonInternalCatalog
//     (checked before the remaining rules).
//   - db_name, table_name, old_table_identifier, new_table_identifier
//     non-empty, and new_table_identifier != old_table_identifier.
//   - partitions: no empty partition name (Field `partitions[""]`), each
//     modified_time > 0. partitions may be empty or absent.
//   - updated_partitions[i] non-empty.
//
// mv_upserted (the "mv" object is decoded by mvstate.MV's UnmarshalJSON):
//   - mv present and not null.
//   - mv.db_id > 0, mv.mv_id > 0, mv.db_name and mv.mv_name non-empty,
//     mv.last_refresh_time >= 0.
//   - each mv.base_tables[i] has a non-empty catalog; a native table
//     (default_catalog) has db_id > 0 and table_id > 0; an external table has
//     non-empty db_name, table_name and table_identifier.
//   - no base table is listed twice: native tables are the same when their
//     table_id is, external ones when (catalog, db_name, table_name) is (a
//     name cannot denote two tables at once). The later entry is reported.
//   - mv.version_map keys are table ids: positive decimal integers in
//     canonical form (no sign, no leading zeros, so two keys can never denote
//     the same table); partition names are non-empty.
//   - each mv.external_version_map[i].base_table is a valid external table
//     (as above; default_catalog tables belong in version_map), listed once
//     (same identity as base_tables); partition names are non-empty.
//
// mv_refreshed:
//   - db_id > 0, mv_id > 0, last_refresh_time >= 0.
//   - version_map and external_version_map as for mv_upserted.
//   - removed keys are table ids as for version_map, names are non-empty, and
//     a name is not both merged (in version_map under the same table) and
//     removed: the order of the two would be ambiguous.
//
// mv_dropped:
//   - db_id > 0, mv_id > 0.
func Decode(value []byte) (Event, error) {
	e, de := decode(value)
	if de != nil {
		return nil, de
	}
	return e, nil
}

func decode(value []byte) (Event, *DecodeError) {
	if !utf8.Valid(value) {
		return nil, &DecodeError{Reason: ReasonInvalidJSON,
			Msg: fmt.Sprintf("not valid UTF-8 (first invalid byte at offset %d)", invalidUTF8Offset(value))}
	}
	if e := decodeFast(value); e != nil {
		return e, nil
	}
	var probe struct {
		Kind json.RawMessage `json:"kind"`
	}
	if err := json.Unmarshal(value, &probe); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, &DecodeError{Reason: ReasonInvalidJSON,
				Msg: fmt.Sprintf("malformed JSON at byte offset %d: %s", se.Offset, se.Error())}
		}
		// Any other error means the top level is not an object: reported next.
	}
	if t := jsonType(value); t != "object" {
		return nil, &DecodeError{Reason: ReasonInvalidJSON, Msg: "expected a JSON object, got " + t}
	}
	if len(probe.Kind) == 0 || jsonType(probe.Kind) == "null" {
		return nil, &DecodeError{Reason: ReasonUnknownKind, Field: "kind", Msg: "missing"}
	}
	var kind string
	if err := json.Unmarshal(probe.Kind, &kind); err != nil {
		return nil, mismatch("kind", "a string", probe.Kind)
	}
	switch Kind(kind) {
	case KindPartitionVersionChanged:
		return decodePartitionVersionChanged(value)
	case KindExternalTableRecreated:
		return decodeExternalTableRecreated(value)
	case KindMVUpserted:
		return decodeMVUpserted(value)
	case KindMVRefreshed:
		return decodeMVRefreshed(value)
	case KindMVDropped:
		return decodeMVDropped(value)
	case "":
		return nil, &DecodeError{Reason: ReasonUnknownKind, Field: "kind", Msg: "must not be empty"}
	default:
		return nil, &DecodeError{Reason: ReasonUnknownKind, Field: "kind", Msg: fmt.Sprintf(
			"unknown kind %s (want partition_version_changed, external_table_recreated, mv_upserted, mv_refreshed or mv_dropped)",
			clip(kind))}
	}
}

func decodePartitionVersionChanged(value []byte) (Event, *DecodeError) {
	e := new(PartitionVersionChanged)
	if de := unmarshal(value, e, ""); de != nil {
		return nil, de
	}
	if de := validatePartitionVersionChanged(e); de != nil {
		return nil, de
	}
	return e, nil
}

func decodeExternalTableRecreated(value []byte) (Event, *DecodeError) {
	e := new(ExternalTableRecreated)
	if de := unmarshal(value, e, ""); de != nil {
		return nil, de
	}
	if de := validateExternalTableRecreated(e); de != nil {
		return nil, de
	}
	if e.Partitions == nil {
		e.Partitions = map[string]ExternalPartition{}
	}
	if e.UpdatedPartitions == nil {
		e.UpdatedPartitions = []string{}
	}
	return e, nil
}

// upsertedWire is the envelope of mv_upserted; the mv object is decoded in two
// passes (see decodeMVUpserted).
type upsertedWire struct {
	EventID string          `json:"event_id"`
	MV      json.RawMessage `json:"mv"`
}

// mvWire mirrors the wire shape of mvstate.MV with the raw (string) version
// map keys and the external version map in list order, so that validation can
// name the member at fault exactly. It is also the type the error locator
// walks for the mv object.
type mvWire struct {
	Active             bool                            `json:"active"`
	BaseTables         []mvstate.BaseTableInfo         `json:"base_tables"`
	DBID               int64                           `json:"db_id"`
	DBName             string                          `json:"db_name"`
	ExternalVersionMap []mvstate.ExternalPartitions    `json:"external_version_map"`
	LastRefreshTime    int64                           `json:"last_refresh_time"`
	MVID               int64                           `json:"mv_id"`
	MVName             string                          `json:"mv_name"`
	VersionMap         map[string]mvstate.PartitionMap `json:"version_map"`
}

func decodeMVUpserted(value []byte) (Event, *DecodeError) {
	var w upsertedWire
	if de := unmarshal(value, &w, ""); de != nil {
		return nil, de
	}
	if len(w.MV) == 0 || jsonType(w.MV) == "null" {
		return nil, invalid("mv", "required")
	}
	// Pass 1: the wire shape, for type errors and validation with exact paths.
	var shape mvWire
	if de := unmarshal(w.MV, &shape, "mv"); de != nil {
		return nil, de
	}
	if de := validateMV(&shape, "mv"); de != nil {
		return nil, de
	}
	// Pass 2: the value, by the model's own decoder (the authority on the
	// MV's fields and defaults). It accepts everything pass 1 accepted.
	mv := new(mvstate.MV)
	if err := json.Unmarshal(w.MV, mv); err != nil {
		return nil, &DecodeError{Reason: ReasonInvalidEvent, Field: "mv", Msg: err.Error()}
	}
	normalizeVersionMap(mv.VersionMap)
	normalizeExternal(mv.ExternalVersionMap)
	return &MVUpserted{EventID: w.EventID, MV: mv}, nil
}

// refreshedWire is the wire shape of mv_refreshed.
type refreshedWire struct {
	EventID            string                          `json:"event_id"`
	DBID               int64                           `json:"db_id"`
	MVID               int64                           `json:"mv_id"`
	LastRefreshTime    int64                           `json:"last_refresh_time"`
	VersionMap         map[string]mvstate.PartitionMap `json:"version_map"`
	ExternalVersionMap []mvstate.ExternalPartitions    `json:"external_version_map"`
	Removed            map[string][]string             `json:"removed"`
}

func decodeMVRefreshed(value []byte) (Event, *DecodeError) {
	var w refreshedWire
	if de := unmarshal(value, &w, ""); de != nil {
		return nil, de
	}
	if de := validateRefreshed(&w); de != nil {
		return nil, de
	}
	// Validation guarantees canonical positive keys and unique base tables,
	// so the conversions below cannot fail; the checks are defensive.
	vm, err := mvstate.DecodeVersionMap(w.VersionMap)
	if err != nil {
		return nil, invalid("version_map", "%s", err)
	}
	ext, err := mvstate.DecodeExternal(w.ExternalVersionMap)
	if err != nil {
		return nil, invalid("external_version_map", "%s", err)
	}
	normalizeVersionMap(vm)
	normalizeExternal(ext)
	removed := make(map[int64][]string, len(w.Removed))
	for k, names := range w.Removed {
		id, _ := parseTableID(k)
		if names == nil {
			names = []string{}
		}
		removed[id] = names
	}
	return &MVRefreshed{EventID: w.EventID, DBID: w.DBID, MVID: w.MVID, LastRefreshTime: w.LastRefreshTime,
		VersionMap: vm, ExternalVersionMap: ext, Removed: removed}, nil
}

func decodeMVDropped(value []byte) (Event, *DecodeError) {
	e := new(MVDropped)
	if de := unmarshal(value, e, ""); de != nil {
		return nil, de
	}
	if de := validateMVDropped(e); de != nil {
		return nil, de
	}
	return e, nil
}

// normalizeVersionMap replaces null partition maps by empty ones (the table
// key stays present: "table in version map, partition not").
func normalizeVersionMap(vm mvstate.VersionMap) {
	for id, parts := range vm {
		if parts == nil {
			vm[id] = mvstate.PartitionMap{}
		}
	}
}

func normalizeExternal(ext mvstate.ExternalVersionMap) {
	for bt, parts := range ext {
		if parts == nil {
			ext[bt] = mvstate.PartitionMap{}
		}
	}
}

// unmarshal decodes value into v (a pointer to a wire type) with
// encoding/json and, when that fails, explains the failure as a *DecodeError
// naming the field at fault; prefix is the path of value in the document.
func unmarshal(value []byte, v any, prefix string) *DecodeError {
	err := json.Unmarshal(value, v)
	if err == nil {
		return nil
	}
	if de := locate(value, reflect.TypeOf(v).Elem(), prefix); de != nil {
		return de
	}
	// Defensive: the locator mirrors encoding/json (member order, duplicates,
	// case folding), so this is not expected to run. Should the two ever
	// disagree, fall back to encoding/json's own, index-less, report.
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return &DecodeError{Reason: ReasonInvalidJSON, Field: join(prefix, ute.Field),
			Msg: fmt.Sprintf("expected %s, got %s", ute.Type, ute.Value)}
	}
	return &DecodeError{Reason: ReasonInvalidJSON, Field: prefix, Msg: err.Error()}
}

// clip shortens s for an error message, quoted.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// sortedKeys returns m's keys in ascending order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
