package editlog_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

// compactEntry is the reference encoding of a record entry.
type compactEntry mvstate.BasePartitionInfo

func (e compactEntry) MarshalJSON() ([]byte, error) {
	type full struct {
		ID                      int64  `json:"id"`
		Version                 int64  `json:"version"`
		LastRefreshTime         int64  `json:"last_refresh_time"`
		ExtLastFileModifiedTime *int64 `json:"ext_last_file_modified_time,omitempty"`
		FileNumber              *int64 `json:"file_number,omitempty"`
	}
	f := full{ID: e.ID, Version: e.Version, LastRefreshTime: e.LastRefreshTime}
	if e.ExtLastFileModifiedTime != -1 || e.FileNumber != -1 {
		f.ExtLastFileModifiedTime, f.FileNumber = &e.ExtLastFileModifiedTime, &e.FileNumber
	}
	return json.Marshal(f)
}

func compactMap(p mvstate.PartitionMap) map[string]compactEntry {
	if p == nil {
		return nil
	}
	out := map[string]compactEntry{}
	for k, v := range p {
		out[k] = compactEntry(v)
	}
	return out
}

// genericRecord is the reference encoding of a record with encoding/json:
// what AppendRecord must write byte for byte.
func genericRecord(r *editlog.Record) []byte {
	type ext struct {
		BaseTable  mvstate.BaseTableInfo   `json:"base_table"`
		Partitions map[string]compactEntry `json:"partitions"`
	}
	w := struct {
		JournalID          int64                              `json:"journal_id"`
		Epoch              int64                              `json:"epoch"`
		Op                 editlog.Op                         `json:"op"`
		At                 int64                              `json:"at"`
		MV                 json.RawMessage                    `json:"mv"`
		BaseTable          *mvstate.BaseTableInfo             `json:"base_table,omitempty"`
		OldBaseTable       *mvstate.BaseTableInfo             `json:"old_base_table,omitempty"`
		NewBaseTable       *mvstate.BaseTableInfo             `json:"new_base_table,omitempty"`
		Partitions         map[string]compactEntry            `json:"partitions,omitempty"`
		Previous           map[string]compactEntry            `json:"previous,omitempty"`
		VersionMap         map[string]map[string]compactEntry `json:"version_map,omitempty"`
		ExternalVersionMap []ext                              `json:"external_version_map,omitempty"`
		Removed            map[string][]string                `json:"removed,omitempty"`
		MVLastRefreshTime  int64                              `json:"mv_last_refresh_time,omitempty"`
		Causes             []editlog.Cause                    `json:"causes,omitempty"`
	}{JournalID: r.JournalID, Epoch: r.Epoch, Op: r.Op, At: r.At, BaseTable: r.BaseTable, OldBaseTable: r.OldBaseTable,
		NewBaseTable: r.NewBaseTable, Partitions: compactMap(r.Partitions), Previous: compactMap(r.Previous),
		MVLastRefreshTime: r.MVLastRefreshTime, Causes: r.Causes}
	if r.Op == editlog.OpVersionRepaired && r.BaseTable != nil && r.BaseTable.IsNative() {
		bt := mvstate.BaseTableInfo{Catalog: r.BaseTable.Catalog, DBID: r.BaseTable.DBID, TableID: r.BaseTable.TableID, TableName: r.BaseTable.TableName}
		w.BaseTable = &bt
	}
	if r.Op == editlog.OpUpserted && r.Definition != nil {
		w.MV = mvstate.AppendMV(nil, r.Definition, mvstate.CompactEntries)
	} else {
		w.MV, _ = json.Marshal(r.MV)
	}
	if len(r.VersionMap) > 0 {
		w.VersionMap = map[string]map[string]compactEntry{}
		for id, pm := range r.VersionMap {
			w.VersionMap[strconv.FormatInt(id, 10)] = compactMap(pm)
		}
	}
	for _, e := range mvstate.EncodeExternal(r.ExternalVersionMap) {
		w.ExternalVersionMap = append(w.ExternalVersionMap, ext{e.BaseTable, compactMap(e.Partitions)})
	}
	if len(r.Removed) > 0 {
		w.Removed = map[string][]string{}
		for id, n := range r.Removed {
			w.Removed[strconv.FormatInt(id, 10)] = n
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(err)
	}
	return b
}

func TestAppendRecord_matchesTheGenericEncodingForEveryOp(t *testing.T) {
	for _, r := range allOps() {
		if got, want := editlog.AppendRecord(nil, r), genericRecord(r); string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant\n%s", r.Op, got, want)
		}
	}
}

// FuzzRecordFastPathMatchesGeneric: the fast decoder agrees with the
// encoding/json decoder on every input, and what it accepts re-encodes
// exactly as the generic encoder would.
func FuzzRecordFastPathMatchesGeneric(f *testing.F) {
	for _, r := range allOps() {
		f.Add(editlog.AppendRecord(nil, r))
	}
	for _, s := range []string{
		`{"journal_id":1,"epoch":1,"op":"mv_dropped","mv":{"db_id":1,"mv_id":2},"mv":{"db_id":3,"mv_id":4}}`,
		`{"journal_id":1,"epoch":1,"op":"mv_refreshed","mv":{"db_id":1,"mv_id":2},"removed":{"5":null,"6":["a"]},"version_map":{"5":{"a":{"id":1}}}}`,
		`{"journal_id":1,"epoch":1,"op":"mv_refreshed","mv":{"db_id":1,"mv_id":2},"Causes":[{"topic":"t"}]}`,
		`{"journal_id":1,"epoch":1,"op":"mv_version_repaired","mv":{"db_id":1,"mv_id":2},"base_table":{"catalog":"default_catalog","table_id":3},"partitions":{"p":{"id":1,"version":2,"last_refresh_time":3}},"causes":[{"event_id":"e","topic":"t","partition":1,"offset":2,"extra":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ferr := editlog.Decode(b)
		slow, serr := editlog.DecodeGeneric(b)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("fast path error %v, generic error %v", ferr, serr)
		}
		if ferr != nil {
			return
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path decoded\n%+v\ngeneric\n%+v", fast, slow)
		}
		if got, want := editlog.AppendRecord(nil, fast), genericRecord(fast); string(got) != string(want) {
			t.Fatalf("AppendRecord differs from the generic encoding:\n%s\n%s", got, want)
		}
	})
}

func TestSnapshotRecords_roundTrip(t *testing.T) {
	s := editlog.MVSnapshot{JournalID: 42, Epoch: 3, MV: mv()}
	b := editlog.AppendSnapshot(nil, s)
	got, err := editlog.DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.JournalID != 42 || got.Epoch != 3 || !got.MV.Equal(s.MV) {
		t.Fatalf("snapshot round trip: %+v", got)
	}
	want := `{"op":"mv_snapshot","journal_id":42,"epoch":3,"mv":{"active":true,`
	if string(b[:len(want)]) != want {
		t.Fatalf("snapshot record starts %s", b[:len(want)])
	}
	c := editlog.Checkpoint{JournalID: 42, Epoch: 3, EditLogOffset: 41, MVs: 1, At: 1732400000000}
	cb := editlog.AppendCheckpoint(nil, c)
	if string(cb) != `{"op":"checkpoint","journal_id":42,"epoch":3,"edit_log_offset":41,"mvs":1,"at":1732400000000}` {
		t.Fatalf("checkpoint marker %s", cb)
	}
	if got, err := editlog.DecodeCheckpoint(cb); err != nil || got != c {
		t.Fatalf("checkpoint round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{`{"op":"checkpoint","journal_id":-1}`, `{"op":"mv_snapshot"}`, `[`, `{"op":"mv_snapshot","journal_id":1,"mv":{"db_id":0,"mv_id":1}}`} {
		if _, err := editlog.DecodeSnapshot([]byte(bad)); err == nil {
			t.Errorf("DecodeSnapshot(%s) accepted", bad)
		}
		if _, err := editlog.DecodeCheckpoint([]byte(bad)); err == nil {
			t.Errorf("DecodeCheckpoint(%s) accepted", bad)
		}
	}
}

func TestPeek_readsJournalIDAndEpochOfEveryRecord(t *testing.T) {
	for _, r := range allOps() {
		j, e, ok := editlog.Peek(editlog.AppendRecord(nil, r))
		if !ok || j != r.JournalID || e != r.Epoch {
			t.Errorf("Peek(%s) = %d, %d, %v", r.Op, j, e, ok)
		}
	}
	for doc, want := range map[string]bool{
		`{"epoch":3,"op":"x","journal_id":7}`: true, // another order: the slow path
		`{"journal_id":7}`:                    false,
		`{"journal_id":7,"epoch":1.5}`:        false,
		`not json`:                            false,
		`{"journal_id":-4,"epoch":2}`:         true,
	} {
		if _, _, ok := editlog.Peek([]byte(doc)); ok != want {
			t.Errorf("Peek(%s) ok = %v, want %v", doc, ok, want)
		}
	}
}
