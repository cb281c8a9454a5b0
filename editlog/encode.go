package editlog

import (
	"slices"
	"strconv"

	"github.com/mvrepair/mvrepair/internal/jsonx"
	"github.com/mvrepair/mvrepair/mvstate"
)

// AppendRecord appends the record's JSON value (the edit-log wire format of
// docs/design.md §4.7) to dst. Keys are written in the contract's order
// (journal_id, epoch, op, at, mv, then the op's fields); maps are written
// with sorted keys and partition entries in mvstate.CompactEntries form, so
// a record's bytes depend only on its content. It is hand-written for the
// writer's hot path; a fuzz test checks it against the generic encoding.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, `{"journal_id":`...)
	dst = jsonx.AppendInt(dst, r.JournalID)
	dst = append(dst, `,"epoch":`...)
	dst = jsonx.AppendInt(dst, r.Epoch)
	dst = append(dst, `,"op":`...)
	dst = jsonx.AppendString(dst, string(r.Op))
	dst = append(dst, `,"at":`...)
	dst = jsonx.AppendInt(dst, r.At)
	dst = append(dst, `,"mv":`...)
	if r.Op == OpUpserted && r.Definition != nil {
		dst = mvstate.AppendMV(dst, r.Definition, mvstate.CompactEntries)
	} else {
		dst = appendMVRef(dst, r.MV)
	}
	if r.BaseTable != nil {
		bt := *r.BaseTable
		if r.Op == OpVersionRepaired && bt.IsNative() {
			// The contract's shape: a native table is named by catalog, ids and name.
			bt = mvstate.BaseTableInfo{Catalog: bt.Catalog, DBID: bt.DBID, TableID: bt.TableID, TableName: bt.TableName}
		}
		dst = append(dst, `,"base_table":`...)
		dst = mvstate.AppendBaseTable(dst, &bt)
	}
	if r.OldBaseTable != nil {
		dst = append(dst, `,"old_base_table":`...)
		dst = mvstate.AppendBaseTable(dst, r.OldBaseTable)
	}
	if r.NewBaseTable != nil {
		dst = append(dst, `,"new_base_table":`...)
		dst = mvstate.AppendBaseTable(dst, r.NewBaseTable)
	}
	if len(r.Partitions) > 0 {
		dst = append(dst, `,"partitions":`...)
		dst = mvstate.AppendPartitions(dst, r.Partitions, mvstate.CompactEntries)
	}
	if len(r.Previous) > 0 {
		dst = append(dst, `,"previous":`...)
		dst = mvstate.AppendPartitions(dst, r.Previous, mvstate.CompactEntries)
	}
	if len(r.VersionMap) > 0 {
		dst = append(dst, `,"version_map":`...)
		dst = mvstate.AppendVersionMap(dst, r.VersionMap, mvstate.CompactEntries)
	}
	if len(r.ExternalVersionMap) > 0 {
		dst = append(dst, `,"external_version_map":[`...)
		for i, e := range mvstate.EncodeExternal(r.ExternalVersionMap) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"base_table":`...)
			dst = mvstate.AppendBaseTable(dst, &e.BaseTable)
			dst = append(dst, `,"partitions":`...)
			dst = mvstate.AppendPartitions(dst, e.Partitions, mvstate.CompactEntries)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(r.Removed) > 0 {
		dst = append(dst, `,"removed":{`...)
		ids := make([]string, 0, len(r.Removed))
		for id := range r.Removed {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		slices.Sort(ids)
		for i, id := range ids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonx.AppendKey(dst, id)
			n, _ := strconv.ParseInt(id, 10, 64)
			dst = appendStrings(dst, r.Removed[n])
		}
		dst = append(dst, '}')
	}
	if r.MVLastRefreshTime != 0 {
		dst = append(dst, `,"mv_last_refresh_time":`...)
		dst = jsonx.AppendInt(dst, r.MVLastRefreshTime)
	}
	if len(r.Causes) > 0 {
		dst = append(dst, `,"causes":[`...)
		for i, c := range r.Causes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			if c.EventID != "" {
				dst = append(dst, `"event_id":`...)
				dst = jsonx.AppendString(dst, c.EventID)
				dst = append(dst, ',')
			}
			dst = append(dst, `"topic":`...)
			dst = jsonx.AppendString(dst, c.Topic)
			dst = append(dst, `,"partition":`...)
			dst = jsonx.AppendInt(dst, int64(c.Partition))
			dst = append(dst, `,"offset":`...)
			dst = jsonx.AppendInt(dst, c.Offset)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendMVRef(dst []byte, m MVRef) []byte {
	dst = append(dst, `{"db_id":`...)
	dst = jsonx.AppendInt(dst, m.DBID)
	dst = append(dst, `,"mv_id":`...)
	dst = jsonx.AppendInt(dst, m.MVID)
	if m.MVName != "" {
		dst = append(dst, `,"mv_name":`...)
		dst = jsonx.AppendString(dst, m.MVName)
	}
	return append(dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonx.AppendString(dst, s)
	}
	return append(dst, ']')
}
