package editlog

import (
	"strconv"

	"github.com/mvrepair/mvrepair/internal/jsonx"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Decode parses a record value and checks that the op is known and the
// fields it needs are present. It accepts exactly what the generic
// encoding/json decoding accepts and yields the same record: a fast reader
// handles the shapes AppendRecord writes, anything else falls back.
func Decode(b []byte) (*Record, error) {
	if r, ok := decodeFast(b); ok {
		if err := r.validate(); err != nil {
			return nil, err
		}
		return r, nil
	}
	return decodeGeneric(b)
}

// DecodeGeneric decodes with encoding/json only: the reference the fast
// path is tested against.
func DecodeGeneric(b []byte) (*Record, error) { return decodeGeneric(b) }

// Bits of the members seen by decodeFast (a repeated member falls back:
// encoding/json merges repeated objects into maps).
const (
	seenJournal = 1 << iota
	seenEpoch
	seenOp
	seenAt
	seenMV
	seenBaseTable
	seenOldBaseTable
	seenNewBaseTable
	seenPartitions
	seenPrevious
	seenVersionMap
	seenExternal
	seenRemoved
	seenLRT
	seenCauses
)

var memberBits = map[string]int{
	"journal_id": seenJournal, "epoch": seenEpoch, "op": seenOp, "at": seenAt, "mv": seenMV,
	"base_table": seenBaseTable, "old_base_table": seenOldBaseTable, "new_base_table": seenNewBaseTable,
	"partitions": seenPartitions, "previous": seenPrevious, "version_map": seenVersionMap,
	"external_version_map": seenExternal, "removed": seenRemoved, "mv_last_refresh_time": seenLRT, "causes": seenCauses,
}

func decodeFast(b []byte) (*Record, bool) {
	var r jsonx.Reader
	r.Reset(b)
	out := &Record{}
	var mvRaw []byte
	seen, bad := 0, false
	table := func() *mvstate.BaseTableInfo {
		bt, ok := readBaseTable(&r)
		bad = bad || !ok
		return &bt
	}
	r.Object(func(k []byte) {
		bit, known := memberBits[string(k)]
		if !known || seen&bit != 0 || r.IsNull() {
			bad = true
			r.Skip()
			return
		}
		seen |= bit
		switch bit {
		case seenJournal:
			out.JournalID = r.Int()
		case seenEpoch:
			out.Epoch = r.Int()
		case seenOp:
			out.Op = Op(r.String())
		case seenAt:
			out.At = r.Int()
		case seenMV:
			mvRaw = r.Raw()
		case seenBaseTable:
			out.BaseTable = table()
		case seenOldBaseTable:
			out.OldBaseTable = table()
		case seenNewBaseTable:
			out.NewBaseTable = table()
		case seenPartitions:
			out.Partitions = partitions(&r, &bad)
		case seenPrevious:
			out.Previous = partitions(&r, &bad)
		case seenVersionMap:
			out.VersionMap = mvstate.VersionMap{}
			r.Object(func(k []byte) {
				id, err := strconv.ParseInt(string(k), 10, 64)
				if _, dup := out.VersionMap[id]; err != nil || dup {
					bad = true
				}
				out.VersionMap[id] = partitions(&r, &bad)
			})
		case seenExternal:
			out.ExternalVersionMap = mvstate.ExternalVersionMap{}
			r.Array(func() {
				var bt *mvstate.BaseTableInfo
				var pm mvstate.PartitionMap
				r.Object(func(k []byte) {
					switch {
					case string(k) == "base_table" && bt == nil:
						bt = table()
					case string(k) == "partitions" && pm == nil:
						pm = partitions(&r, &bad)
					default:
						bad = true
						r.Skip()
					}
				})
				if bt == nil || pm == nil {
					bad = true
					return
				}
				if _, dup := out.ExternalVersionMap[*bt]; dup {
					bad = true
				}
				out.ExternalVersionMap[*bt] = pm
			})
		case seenRemoved:
			out.Removed = map[int64][]string{}
			r.Object(func(k []byte) {
				id, err := strconv.ParseInt(string(k), 10, 64)
				if _, dup := out.Removed[id]; err != nil || dup || r.IsNull() {
					bad = true
					r.Skip()
					return
				}
				names := []string{}
				r.Array(func() { names = append(names, r.String()) })
				out.Removed[id] = names
			})
		case seenLRT:
			out.MVLastRefreshTime = r.Int()
		case seenCauses:
			out.Causes = []Cause{}
			r.Array(func() {
				var c Cause
				r.Object(func(k []byte) {
					if r.IsNull() {
						bad = true
						return
					}
					switch string(k) {
					case "event_id":
						c.EventID = r.String()
					case "topic":
						c.Topic = r.String()
					case "partition":
						c.Partition = int(r.Int())
					case "offset":
						c.Offset = r.Int()
					default:
						bad = true
						r.Skip()
					}
				})
				out.Causes = append(out.Causes, c)
			})
		}
	})
	if bad || r.End() != nil || len(mvRaw) == 0 {
		return nil, false
	}
	if out.Op == OpUpserted {
		m, err := mvstate.DecodeMV(mvRaw)
		if err != nil {
			return nil, false
		}
		out.Definition = m
		out.MV = MVRef{DBID: m.DBID, MVID: m.MVID, MVName: m.MVName}
		return out, true
	}
	var mr jsonx.Reader
	mr.Reset(mvRaw)
	mr.Object(func(k []byte) {
		if mr.IsNull() {
			bad = true
			return
		}
		switch string(k) {
		case "db_id":
			out.MV.DBID = mr.Int()
		case "mv_id":
			out.MV.MVID = mr.Int()
		case "mv_name":
			out.MV.MVName = mr.String()
		default:
			bad = true
			mr.Skip()
		}
	})
	if bad || mr.End() != nil {
		return nil, false
	}
	return out, true
}

func partitions(r *jsonx.Reader, bad *bool) mvstate.PartitionMap {
	pm, ok := mvstate.ReadPartitions(r)
	if !ok || pm == nil {
		*bad = true
	}
	return pm
}

func readBaseTable(r *jsonx.Reader) (mvstate.BaseTableInfo, bool) {
	return mvstate.ReadBaseTable(r)
}

// Peek reads a record value's journal id and epoch without decoding the
// rest (records written by AppendRecord start with them). ok is false when
// the value does not carry both as integers.
func Peek(b []byte) (journalID, epoch int64, ok bool) {
	// The prefix AppendRecord writes, read without walking the rest.
	const p1, p2 = `{"journal_id":`, `,"epoch":`
	if len(b) > len(p1) && string(b[:len(p1)]) == p1 {
		j, n := leadingInt(b[len(p1):])
		rest := b[len(p1)+n:]
		if n > 0 && len(rest) > len(p2) && string(rest[:len(p2)]) == p2 {
			if e, m := leadingInt(rest[len(p2):]); m > 0 && m < len(rest)-len(p2) && (rest[len(p2)+m] == ',' || rest[len(p2)+m] == '}') {
				return j, e, true
			}
		}
	}
	var r jsonx.Reader
	r.Reset(b)
	seen := 0
	r.Object(func(k []byte) {
		switch {
		case seen == 3:
			r.Skip()
		case string(k) == "journal_id":
			journalID = r.Int()
			seen |= 1
		case string(k) == "epoch":
			epoch = r.Int()
			seen |= 2
		default:
			r.Skip()
		}
	})
	return journalID, epoch, seen == 3 && r.Err() == nil
}

// leadingInt parses the decimal integer at the start of b (an optional
// minus, at most 18 digits) and returns it with its length (0: none).
func leadingInt(b []byte) (int64, int) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	start := i
	var v int64
	for i < len(b) && i-start < 18 && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	if i == start || (i-start > 1 && b[start] == '0') || (i < len(b) && b[i] >= '0' && b[i] <= '9') {
		return 0, 0
	}
	if neg {
		v = -v
	}
	return v, i
}
