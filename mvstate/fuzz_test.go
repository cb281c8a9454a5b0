package mvstate_test

import (
	"encoding/json"
	"testing"

	"github.com/mvrepair/mvrepair/mvstate"
)

// FuzzMVUnmarshal: the MV decoder never panics, and an accepted MV encodes
// canonically: encode → decode → encode is a fixed point.
func FuzzMVUnmarshal(f *testing.F) {
	b, err := json.Marshal(sampleMV(1, 2, 3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"db_id":10001,"mv_id":50001,"version_map":{"20001":{"p":{"id":1,"version":5,"last_refresh_time":7}}}}`))
	f.Add([]byte(`{"external_version_map":[{"base_table":{"catalog":"hive"},"partitions":{}},{"base_table":{"catalog":"hive"},"partitions":{}}]}`))
	f.Add([]byte(`{"version_map":{"x":{}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var m mvstate.MV
		if err := json.Unmarshal(in, &m); err != nil {
			return
		}
		first, err := json.Marshal(&m)
		if err != nil {
			t.Fatalf("accepted MV does not encode: %v", err)
		}
		var m2 mvstate.MV
		if err := json.Unmarshal(first, &m2); err != nil {
			t.Fatalf("canonical encoding does not decode: %v\n%s", err, first)
		}
		if !m.Equal(&m2) {
			t.Fatalf("round trip changed the MV")
		}
		second, _ := json.Marshal(&m2)
		if string(first) != string(second) {
			t.Fatalf("encoding is not canonical:\n%s\n%s", first, second)
		}
	})
}
