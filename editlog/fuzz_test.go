package editlog_test

import (
	"encoding/json"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

// FuzzDecodeRecord: Decode never panics, and whatever it accepts re-encodes
// to a record that decodes again, with encoding a fixed point.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range allOps() {
		b, err := editlog.Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"journal_id":1,"epoch":1,"op":"mv_dropped","mv":{"db_id":1,"mv_id":2}}`))
	f.Add([]byte(`{"journal_id":-1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := editlog.Decode(b)
		if err != nil {
			return
		}
		again, err := editlog.Encode(r)
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
		r2, err := editlog.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, again)
		}
		third, err := editlog.Encode(r2)
		if err != nil || string(third) != string(again) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", again, third)
		}
		if r.JournalID != r2.JournalID || r.Op != r2.Op || r.MV != r2.MV || r.Epoch != r2.Epoch {
			t.Fatalf("round trip changed the record header: %+v vs %+v", r, r2)
		}
	})
}

// FuzzDecodeSnapshot: DecodeSnapshot (one pass, the MV read in place) never
// panics and agrees with decoding the record's "mv" value on its own with
// the generic MV decoder: same MV, same journal id.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(editlog.AppendSnapshot(nil, editlog.MVSnapshot{JournalID: 42, Epoch: 3, MV: mv()}))
	f.Add([]byte(`{"op":"mv_snapshot","journal_id":1,"epoch":1,"mv":{"db_id":1,"mv_id":2,"version_map":{"7":{"p1":{"id":1,"version":2,"last_refresh_time":3}}}}}`))
	f.Add([]byte(`{"op":"mv_snapshot","journal_id":1,"epoch":1,"mv":{"db_id":1,"mv_id":2,"version_map":{"7":{},"07":{}}}}`))
	f.Add([]byte(`{"op":"mv_snapshot","journal_id":1,"mv":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := editlog.DecodeSnapshot(b)
		if err != nil {
			return
		}
		var w struct {
			MV json.RawMessage `json:"mv"`
		}
		if json.Unmarshal(b, &w) != nil {
			return // the generic reader refuses what the fast one accepts: not a snapshot question
		}
		ref, err := mvstate.DecodeMVGeneric(w.MV)
		if err != nil {
			t.Fatalf("DecodeSnapshot accepted an MV the generic decoder refuses (%v): %s", err, b)
		}
		if a, r := mvstate.AppendMV(nil, got.MV, mvstate.CompactEntries), mvstate.AppendMV(nil, ref, mvstate.CompactEntries); string(a) != string(r) {
			t.Fatalf("DecodeSnapshot and the generic decoder disagree:\n%s\n%s", a, r)
		}
	})
}
