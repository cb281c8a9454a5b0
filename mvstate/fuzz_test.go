package mvstate_test

import (
	"encoding/json"
	"testing"

	"github.com/mvrepair/mvrepair/mvstate"
)

var mvSeeds = []string{
	`{"db_id":10001,"mv_id":50001,"version_map":{"20001":{"p":{"id":1,"version":5,"last_refresh_time":7}}}}`,
	`{"external_version_map":[{"base_table":{"catalog":"hive"},"partitions":{}},{"base_table":{"catalog":"hive"},"partitions":{}}]}`,
	`{"version_map":{"x":{}}}`,
	`{"version_map":{"7":{},"07":{"a":{"id":1}}}}`,
	`{"ID":3,"Version_Map":{"1":{"p":{"ID":2}}}}`,
	`{"active":null,"db_name":"a\u00e9\"<>","mv_name":"\ud83d\ude00"}`,
	`{"base_tables":[{"catalog":"a"}],"base_tables":[{"catalog":"b","table_id":3}]}`,
	`{"external_version_map":[{"base_table":{"catalog":"x"},"partitions":{"p":{"id":-1,"version":1,"last_refresh_time":1,"ext_last_file_modified_time":5,"file_number":2}}}],"external_version_map":[]}`,
	`{"version_map":{"1":null}}`,
	`{"version_map":{"1":{"p":{"id":1.5}}}}`,
	`{"db_id":1} x`,
}

// FuzzMVUnmarshal: the MV decoder never panics, and an accepted MV encodes
// canonically: encode → decode → encode is a fixed point, in both entry
// styles.
func FuzzMVUnmarshal(f *testing.F) {
	b, err := json.Marshal(sampleMV(1, 2, 3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range mvSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var m mvstate.MV
		if err := json.Unmarshal(in, &m); err != nil {
			return
		}
		for _, style := range []mvstate.EntryStyle{mvstate.FullEntries, mvstate.CompactEntries} {
			first := mvstate.AppendMV(nil, &m, style)
			m2, err := mvstate.DecodeMV(first)
			if err != nil {
				t.Fatalf("canonical encoding does not decode: %v\n%s", err, first)
			}
			if !m.Equal(m2) {
				t.Fatalf("round trip changed the MV")
			}
			if second := mvstate.AppendMV(nil, m2, style); string(first) != string(second) {
				t.Fatalf("encoding is not canonical:\n%s\n%s", first, second)
			}
		}
	})
}

// genericMV is the reference encoding of an MV with encoding/json: what
// AppendMV with FullEntries must produce byte for byte.
func genericMV(m *mvstate.MV) []byte {
	vm := map[string]mvstate.PartitionMap{}
	for id, pm := range mvstate.EncodeVersionMap(m.VersionMap) {
		vm[id] = pm
	}
	bts := m.BaseTables
	if bts == nil {
		bts = []mvstate.BaseTableInfo{}
	}
	b, err := json.Marshal(struct {
		Active             bool                            `json:"active"`
		BaseTables         []mvstate.BaseTableInfo         `json:"base_tables"`
		DBID               int64                           `json:"db_id"`
		DBName             string                          `json:"db_name"`
		ExternalVersionMap []mvstate.ExternalPartitions    `json:"external_version_map"`
		LastRefreshTime    int64                           `json:"last_refresh_time"`
		MVID               int64                           `json:"mv_id"`
		MVName             string                          `json:"mv_name"`
		VersionMap         map[string]mvstate.PartitionMap `json:"version_map"`
	}{m.Active, bts, m.DBID, m.DBName, mvstate.EncodeExternal(m.ExternalVersionMap), m.LastRefreshTime, m.MVID, m.MVName, vm})
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzMVFastPathMatchesGeneric: the hand-written encoder writes what
// encoding/json writes, and the fast decoder agrees with encoding/json on
// every input (the same MV, or both refuse).
func FuzzMVFastPathMatchesGeneric(f *testing.F) {
	b, _ := json.Marshal(sampleMV(1, 2, 3))
	f.Add(b)
	for _, s := range mvSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, ferr := mvstate.DecodeMV(in)
		slow, serr := mvstate.DecodeMVGeneric(in)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("fast path error %v, generic error %v", ferr, serr)
		}
		if ferr != nil {
			return
		}
		if !fast.Equal(slow) {
			t.Fatalf("fast path decoded a different MV")
		}
		if got, want := mvstate.AppendMV(nil, fast, mvstate.FullEntries), genericMV(fast); string(got) != string(want) {
			t.Fatalf("AppendMV differs from encoding/json:\n%s\n%s", got, want)
		}
	})
}
