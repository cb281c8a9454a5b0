package editlog_test

import (
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
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
