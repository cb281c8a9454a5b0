package events

import (
	"bytes"
	"unicode/utf8"

	"github.com/mvrepair/mvrepair/internal/jsonx"
)

// pvcKind is the JSON form of KindPartitionVersionChanged, as producers write it.
const pvcKind = `"` + string(KindPartitionVersionChanged) + `"`

// pvcFields and partFields are the members the fast path decodes.
var (
	pvcFields  = []string{"kind", "event_id", "source", "db_id", "table_id", "table_name", "table_type", "partitions", "emitted_at"}
	partFields = []string{"partition_id", "partition_name", "last_version", "new_version", "new_version_time", "last_version_time"}
)

// decodeFast is the hot path: one pass with a pull scanner (no reflection)
// for a valid partition_version_changed record written plainly, the bulk of
// the input. It returns nil for anything else: another kind, kind not
// written plainly, a member written twice, a null, a key that
// encoding/json could match case-insensitively, any decode or validation
// failure. Those take the general path, which decodes them exactly as
// encoding/json does or reports the precise error. For a record it
// accepts, the general path returns an equal event (FuzzFastPath checks it).
func decodeFast(value []byte) *PartitionVersionChanged {
	r := jsonx.NewReader(value)
	e := &PartitionVersionChanged{}
	var seen uint16
	ok := true
	kindOK := false
	r.Object(func(key []byte) {
		f := pvcField(key)
		if !claim(r, f, &seen) {
			ok = false
			return
		}
		switch f {
		case 0:
			kindOK = string(r.Raw()) == pvcKind
		case 1:
			e.EventID = r.String()
		case 2:
			e.Source = intern(r.StringBytes())
		case 3:
			e.DBID = r.Int()
		case 4:
			e.TableID = r.Int()
		case 5:
			e.TableName = r.String()
		case 6:
			e.TableType = intern(r.StringBytes())
		case 7:
			r.Array(func() {
				p, pok := decodePartitionFast(r)
				ok = ok && pok
				e.Partitions = append(e.Partitions, p)
			})
		case 8:
			e.EmittedAt = r.Int()
		default:
			r.Skip() // a member encoding/json ignores too
		}
	})
	if r.End() != nil || !ok || !kindOK || e.Partitions == nil || validatePartitionVersionChanged(e) != nil {
		return nil
	}
	return e
}

// claim applies the fast path's rule to member f (a field index, -1 for a
// member encoding/json ignores, -2 for one it could match
// case-insensitively): the member is refused, and skipped, when it is -2,
// seen before or null; otherwise it is marked seen and read by the caller.
func claim(r *jsonx.Reader, f int, seen *uint16) bool {
	if f == -2 || (f >= 0 && *seen&(1<<f) != 0) || r.IsNull() {
		r.Skip()
		return false
	}
	if f >= 0 {
		*seen |= 1 << f
	}
	return true
}

// decodePartitionFast reads one element of "partitions".
func decodePartitionFast(r *jsonx.Reader) (PartitionRepair, bool) {
	var p PartitionRepair
	var seen uint16
	ok := true
	r.Object(func(key []byte) {
		f := partField(key)
		if !claim(r, f, &seen) {
			ok = false
			return
		}
		switch f {
		case 0:
			p.PartitionID = r.Int()
		case 1:
			p.PartitionName = r.String()
		case 2:
			p.LastVersion = r.Int()
		case 3:
			p.NewVersion = r.Int()
		case 4:
			p.NewVersionTime = r.Int()
		case 5:
			v := r.Int()
			p.LastVersionTime = &v
		default:
			r.Skip()
		}
	})
	return p, ok
}

// pvcField returns the index in pvcFields of a member of the event, or
// what otherField says.
func pvcField(key []byte) int {
	switch string(key) {
	case "kind":
		return 0
	case "event_id":
		return 1
	case "source":
		return 2
	case "db_id":
		return 3
	case "table_id":
		return 4
	case "table_name":
		return 5
	case "table_type":
		return 6
	case "partitions":
		return 7
	case "emitted_at":
		return 8
	}
	return otherField(pvcFields, key)
}

// partField returns the index in partFields of a member of a partition, or
// what otherField says.
func partField(key []byte) int {
	switch string(key) {
	case "partition_id":
		return 0
	case "partition_name":
		return 1
	case "last_version":
		return 2
	case "new_version":
		return 3
	case "new_version_time":
		return 4
	case "last_version_time":
		return 5
	}
	return otherField(partFields, key)
}

// otherField classifies a key that is none of fields exactly: -1 when no
// field could match it in encoding/json (ASCII, and not equal to any field
// when case is ignored), -2 when the fast path leaves it to encoding/json
// (a case-insensitive match, or not ASCII).
func otherField(fields []string, key []byte) int {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return -2
		}
	}
	for _, f := range fields {
		if bytes.EqualFold(key, []byte(f)) {
			return -2
		}
	}
	return -1
}

// intern returns the shared copy of the values most events carry (the
// table types and sources of a StarRocks cluster), so that a batch does not
// hold a thousand copies of "cloud_native".
func intern(s []byte) string {
	switch string(s) { // no allocation for the comparison
	case "cloud_native":
		return "cloud_native"
	case "olap":
		return "olap"
	case "compaction":
		return "compaction"
	case "materialized_view":
		return "materialized_view"
	case "cloud_native_materialized_view":
		return "cloud_native_materialized_view"
	}
	return string(s)
}
