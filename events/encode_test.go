package events_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

func TestEncode_roundTripsEveryKind(t *testing.T) {
	hive := mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1"}
	// Events built in code, with nil collections and optional fields unset:
	// they come back with empty collections, everything else equal.
	built := []struct {
		name string
		e    events.Event
		want events.Event
	}{
		{"partition_version_changed without optional fields",
			&events.PartitionVersionChanged{DBID: 1, TableID: 2, TableType: "olap",
				Partitions: []events.PartitionRepair{{PartitionID: 3, PartitionName: "p", LastVersion: 1, NewVersion: 2, NewVersionTime: 4}}},
			nil},
		{"external_table_recreated with nil collections",
			&events.ExternalTableRecreated{Catalog: "hive", DBName: "ods", TableName: "events", OldTableIdentifier: "a", NewTableIdentifier: "b"},
			&events.ExternalTableRecreated{Catalog: "hive", DBName: "ods", TableName: "events", OldTableIdentifier: "a", NewTableIdentifier: "b",
				Partitions: map[string]events.ExternalPartition{}, UpdatedPartitions: []string{}}},
		{"mv_upserted with nil maps",
			&events.MVUpserted{EventID: "u", MV: &mvstate.MV{DBID: 1, MVID: 2, DBName: "d", MVName: "m", BaseTables: []mvstate.BaseTableInfo{hive}}},
			&events.MVUpserted{EventID: "u", MV: &mvstate.MV{DBID: 1, MVID: 2, DBName: "d", MVName: "m", BaseTables: []mvstate.BaseTableInfo{hive},
				VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}}}},
		{"mv_refreshed with every map",
			&events.MVRefreshed{EventID: "r", DBID: 1, MVID: 2, LastRefreshTime: 9,
				VersionMap:         mvstate.VersionMap{5: {"p1": mvstate.NewBasePartitionInfo(6, 7, 8)}, 6: {}},
				ExternalVersionMap: mvstate.ExternalVersionMap{hive: {"dt=1": {ID: -1, Version: 3, LastRefreshTime: 3, ExtLastFileModifiedTime: 3, FileNumber: 2}}},
				Removed:            map[int64][]string{5: {"p0"}, 7: {}}},
			nil},
		{"mv_refreshed with nil maps",
			&events.MVRefreshed{DBID: 1, MVID: 2},
			&events.MVRefreshed{DBID: 1, MVID: 2, VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}, Removed: map[int64][]string{}}},
		{"mv_dropped", &events.MVDropped{EventID: "d", DBID: 1, MVID: 2}, nil},
	}
	for _, tt := range built {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.e
			}
			b, err := events.Encode(tt.e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if got := mustDecode(t, string(b)); !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(Encode(e)):\n got %#v\nwant %#v\njson %s", got, want, b)
			}
		})
	}
	for _, s := range samples() {
		t.Run("design sample "+string(s.kind), func(t *testing.T) {
			e := mustDecode(t, s.doc)
			b1, err := events.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			again := mustDecode(t, string(b1))
			if !reflect.DeepEqual(again, e) {
				t.Errorf("Decode(Encode(e)) != e:\n got %#v\nwant %#v", again, e)
			}
			b2, _ := events.Encode(again)
			if !bytes.Equal(b1, b2) {
				t.Errorf("Encode is not deterministic:\n%s\n%s", b1, b2)
			}
		})
	}
}

func TestEncode_writesTheDesignDocuments(t *testing.T) {
	// Where Decode adds nothing (no ext defaults), Encode gives back the
	// sample's content, "kind" first.
	for _, doc := range []string{samplePartitionVersionChanged, sampleExternalTableRecreated, sampleMVDropped} {
		b, err := events.Encode(mustDecode(t, doc))
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		var got, want any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		_ = json.Unmarshal([]byte(doc), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Encode:\n got %s\nwant %s", b, doc)
		}
		if !bytes.HasPrefix(b, []byte(`{"kind":`)) {
			t.Errorf("output does not start with kind: %s", b)
		}
	}
	const wantPVC = `{"kind":"partition_version_changed","event_id":"COMPACTION_10001-20001-30001-1732400000000",` +
		`"source":"compaction","db_id":10001,"table_id":20001,"table_name":"orders","table_type":"cloud_native",` +
		`"partitions":[{"partition_id":30001,"partition_name":"p20240101","last_version":5,"new_version":6,` +
		`"new_version_time":1732400000000,"last_version_time":1732300000000}],"emitted_at":1732400000123}`
	if b, _ := events.Encode(mustDecode(t, samplePartitionVersionChanged)); string(b) != wantPVC {
		t.Errorf("Encode(partition_version_changed):\n got %s\nwant %s", b, wantPVC)
	}
	const wantRefreshed = `{"kind":"mv_refreshed","event_id":"...","db_id":10001,"mv_id":50001,"last_refresh_time":1732500000000,` +
		`"version_map":{"20001":{"p20240102":{"ext_last_file_modified_time":-1,"file_number":-1,"id":30002,"last_refresh_time":1732500000000,"version":3}}},` +
		`"external_version_map":[],"removed":{"20001":["p20231231"]}}`
	if b, _ := events.Encode(mustDecode(t, sampleMVRefreshed)); string(b) != wantRefreshed {
		t.Errorf("Encode(mv_refreshed):\n got %s\nwant %s", b, wantRefreshed)
	}
}

func TestEncode_omitsUnsetOptionalFields(t *testing.T) {
	b, err := events.Encode(&events.PartitionVersionChanged{DBID: 1, TableID: 2, TableType: "olap",
		Partitions: []events.PartitionRepair{{PartitionID: 3, PartitionName: "p", LastVersion: 1, NewVersion: 2, NewVersionTime: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"source", "table_name", "emitted_at", "last_version_time"} {
		if strings.Contains(string(b), `"`+name+`"`) {
			t.Errorf("unset %s is written: %s", name, b)
		}
	}
}

func TestEncode_doesNotValidate(t *testing.T) {
	b, err := events.Encode(&events.MVDropped{DBID: 0, MVID: 1})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if de := decodeError(t, string(b)); de.Reason != events.ReasonInvalidEvent || de.Field != "db_id" {
		t.Errorf("Decode(Encode(invalid)) = %v, want invalid_event db_id", de)
	}
}

// foreignEvent is an Event this package does not define.
type foreignEvent struct{}

func (foreignEvent) Kind() events.Kind { return "foreign" }
func (foreignEvent) ID() string        { return "" }

func TestEncode_rejectsNilAndForeignEvents(t *testing.T) {
	for _, e := range []events.Event{nil, (*events.PartitionVersionChanged)(nil), (*events.ExternalTableRecreated)(nil),
		(*events.MVUpserted)(nil), (*events.MVRefreshed)(nil), (*events.MVDropped)(nil), foreignEvent{}} {
		if b, err := events.Encode(e); err == nil {
			t.Errorf("Encode(%#v) = %s, want an error", e, b)
		}
	}
}

func TestKey_followsTheTopicContract(t *testing.T) {
	tests := []struct {
		name string
		e    events.Event
		want string
	}{
		{"partition_version_changed is keyed by table", mustDecode(t, samplePartitionVersionChanged), "10001:20001"},
		{"external_table_recreated is keyed by table name", mustDecode(t, sampleExternalTableRecreated), "hive.ods.events"},
		{"mv_upserted is keyed by MV", mustDecode(t, sampleMVUpserted), "10001:50001"},
		{"mv_refreshed is keyed by MV", mustDecode(t, sampleMVRefreshed), "10001:50001"},
		{"mv_dropped is keyed by MV", mustDecode(t, sampleMVDropped), "10001:50001"},
		{"mv_upserted without mv", &events.MVUpserted{}, ""},
		{"nil event", nil, ""},
		{"typed nil", (*events.MVDropped)(nil), ""},
		{"foreign event", foreignEvent{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := events.Key(tt.e); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTopicRoleOf_mapsKindsToTopics(t *testing.T) {
	tests := []struct {
		kind events.Kind
		want string
	}{
		{events.KindPartitionVersionChanged, events.TopicRoleInput},
		{events.KindExternalTableRecreated, events.TopicRoleInput},
		{events.KindMVUpserted, events.TopicRoleCatalog},
		{events.KindMVRefreshed, events.TopicRoleCatalog},
		{events.KindMVDropped, events.TopicRoleCatalog},
		{"", ""},
		{"mv_created", ""},
	}
	for _, tt := range tests {
		if got := events.TopicRoleOf(tt.kind); got != tt.want {
			t.Errorf("TopicRoleOf(%q) = %q, want %q", tt.kind, got, tt.want)
		}
	}
	if events.TopicRoleInput != "input" || events.TopicRoleCatalog != "catalog" {
		t.Errorf("role names changed: %q, %q", events.TopicRoleInput, events.TopicRoleCatalog)
	}
}
