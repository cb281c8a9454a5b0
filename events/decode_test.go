package events_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

func TestDecode_designSamplesDecodeToExpectedValues(t *testing.T) {
	hiveEvents := mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}
	tests := []struct {
		name string
		doc  string
		want events.Event
	}{
		{"partition_version_changed", samplePartitionVersionChanged, &events.PartitionVersionChanged{
			EventID: "COMPACTION_10001-20001-30001-1732400000000", Source: "compaction",
			DBID: 10001, TableID: 20001, TableName: "orders", TableType: "cloud_native",
			Partitions: []events.PartitionRepair{{PartitionID: 30001, PartitionName: "p20240101",
				LastVersion: 5, NewVersion: 6, NewVersionTime: 1732400000000, LastVersionTime: ptr[int64](1732300000000)}},
			EmittedAt: 1732400000123,
		}},
		{"external_table_recreated", sampleExternalTableRecreated, &events.ExternalTableRecreated{
			EventID: "...", Catalog: "hive", DBName: "ods", TableName: "events",
			OldTableIdentifier: "events:1700000000", NewTableIdentifier: "events:1732400000",
			Partitions:        map[string]events.ExternalPartition{"dt=2024-01-01": {ModifiedTime: 1732400000000}},
			UpdatedPartitions: []string{"dt=2024-01-02"},
		}},
		{"mv_upserted", sampleMVUpserted, &events.MVUpserted{EventID: "...", MV: &mvstate.MV{
			Active: true, DBID: 10001, DBName: "sales", MVID: 50001, MVName: "mv_orders_daily",
			LastRefreshTime: 1732300000000,
			BaseTables: []mvstate.BaseTableInfo{
				{Catalog: "default_catalog", DBID: 10001, TableID: 20001, DBName: "sales", TableName: "orders"},
				hiveEvents,
			},
			VersionMap: mvstate.VersionMap{20001: {"p20240101": mvstate.NewBasePartitionInfo(30001, 5, 1732300000000)}},
			ExternalVersionMap: mvstate.ExternalVersionMap{hiveEvents: {"dt=2024-01-01": {ID: -1, Version: 1700000000000,
				LastRefreshTime: 1700000000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 3}}},
		}}},
		{"mv_refreshed", sampleMVRefreshed, &events.MVRefreshed{
			EventID: "...", DBID: 10001, MVID: 50001, LastRefreshTime: 1732500000000,
			VersionMap:         mvstate.VersionMap{20001: {"p20240102": mvstate.NewBasePartitionInfo(30002, 3, 1732500000000)}},
			ExternalVersionMap: mvstate.ExternalVersionMap{},
			Removed:            map[int64][]string{20001: {"p20231231"}},
		}},
		{"mv_dropped", sampleMVDropped, &events.MVDropped{EventID: "...", DBID: 10001, MVID: 50001}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustDecode(t, tt.doc)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode:\n got %#v\nwant %#v", got, tt.want)
			}
			if got.Kind() != events.Kind(tt.name) {
				t.Errorf("Kind() = %q, want %q", got.Kind(), tt.name)
			}
		})
	}
}

func TestDecode_rejectsMalformedJSONWithoutField(t *testing.T) {
	tests := []struct{ name, doc, msg string }{
		{"empty input", "", "unexpected end"},
		{"only whitespace", " \n\t", "unexpected end"},
		{"not JSON", "kind=mv_dropped", "malformed JSON at byte offset"},
		{"truncated object", `{"kind":"mv_dropped","db_id":1`, "unexpected end"},
		{"trailing document", sampleMVDropped + ` {}`, "after top-level value"},
		{"trailing garbage", sampleMVDropped + `x`, "after top-level value"},
		{"single quotes", `{'kind':'mv_dropped'}`, "malformed JSON"},
		{"invalid UTF-8", "{\"kind\":\"mv_dropped\",\"event_id\":\"\xff\",\"db_id\":1,\"mv_id\":1}", "not valid UTF-8 (first invalid byte at offset 33)"},
		{"array", `[` + sampleMVDropped + `]`, "expected a JSON object, got array"},
		{"string", `"mv_dropped"`, "expected a JSON object, got string"},
		{"number", `42`, "expected a JSON object, got number"},
		{"boolean", `true`, "expected a JSON object, got boolean"},
		{"null", `null`, "expected a JSON object, got null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			de := decodeError(t, tt.doc)
			if de.Reason != events.ReasonInvalidJSON || de.Field != "" {
				t.Errorf("got reason %q field %q, want invalid_json with no field", de.Reason, de.Field)
			}
			if !strings.Contains(de.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", de.Msg, tt.msg)
			}
		})
	}
}

func TestDecode_rejectsWrongJSONTypeNamingTheField(t *testing.T) {
	pvc, etr, ups, ref, drop := samplePartitionVersionChanged, sampleExternalTableRecreated, sampleMVUpserted, sampleMVRefreshed, sampleMVDropped
	threeParts := mutate(t, mutate(t, pvc, "/partitions/1", json.RawMessage(`{"partition_id":30002,"partition_name":"p2","last_version":1,"new_version":2,"new_version_time":1}`)),
		"/partitions/2", json.RawMessage(`{"partition_id":30003,"partition_name":"p3","last_version":1,"new_version":"2","new_version_time":1}`))
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name, doc, field, msg string
	}{
		{"kind is a number", `{"kind":7}`, "kind", "expected a string, got number 7"},
		{"db_id is a string", mutate(t, pvc, "/db_id", "10001"), "db_id", `expected an integer (int64), got string "10001"`},
		{"table_id overflows int64", mutate(t, pvc, "/table_id", raw(`9223372036854775808`)), "table_id", "got number 9223372036854775808"},
		{"table_type is a number", mutate(t, pvc, "/table_type", 1), "table_type", "expected a string"},
		{"event_id is an object", mutate(t, pvc, "/event_id", raw(`{}`)), "event_id", "expected a string, got object"},
		{"partitions is an object", mutate(t, pvc, "/partitions", raw(`{}`)), "partitions", "expected an array, got object"},
		{"partition entry is a number", mutate(t, pvc, "/partitions/0", 5), "partitions[0]", "expected an object, got number 5"},
		{"new_version of the third partition is a string", threeParts, "partitions[2].new_version", `got string "2"`},
		{"last_version_time is a fraction", mutate(t, pvc, "/partitions/0/last_version_time", raw(`1.5`)), "partitions[0].last_version_time", "got number 1.5"},
		{"last_version is an exponent", mutate(t, pvc, "/partitions/0/last_version", raw(`5e0`)), "partitions[0].last_version", "got number 5e0"},
		{"emitted_at is a boolean", mutate(t, pvc, "/emitted_at", true), "emitted_at", "got boolean"},
		{"first of duplicate members has the wrong type", `{"kind":"mv_dropped","db_id":"x","db_id":1,"mv_id":2}`, "db_id", `got string "x"`},
		{"member name differs only in case", mutate(t, pvc, "/DB_ID", "x"), "db_id", "got string"},
		{"modified_time is a string", mutate(t, etr, "/partitions/dt=2024-01-01/modified_time", "1"), `partitions["dt=2024-01-01"].modified_time`, "got string"},
		{"external partitions is an array", mutate(t, etr, "/partitions", raw(`[]`)), "partitions", "expected an object, got array"},
		{"updated partition is a number", mutate(t, etr, "/updated_partitions/0", 1), "updated_partitions[0]", "expected a string"},
		{"mv is a string", mutate(t, ups, "/mv", "x"), "mv", "expected an object, got string"},
		{"mv.active is a string", mutate(t, ups, "/mv/active", "yes"), "mv.active", "expected a boolean"},
		{"base table identifier is a number", mutate(t, ups, "/mv/base_tables/1/table_identifier", 1), "mv.base_tables[1].table_identifier", "expected a string"},
		{"base table id is a fraction", mutate(t, ups, "/mv/base_tables/0/table_id", raw(`20001.5`)), "mv.base_tables[0].table_id", "got number 20001.5"},
		{"native entry version is a string", mutate(t, ups, "/mv/version_map/20001/p20240101/version", "5"), `mv.version_map["20001"]["p20240101"].version`, "got string"},
		{"external file_number is a string", mutate(t, ups, "/mv/external_version_map/0/partitions/dt=2024-01-01/file_number", "3"),
			`mv.external_version_map[0].partitions["dt=2024-01-01"].file_number`, "got string"},
		{"external_version_map is an object", mutate(t, ups, "/mv/external_version_map", raw(`{}`)), "mv.external_version_map", "expected an array"},
		{"refreshed version_map is an array", mutate(t, ref, "/version_map", raw(`[]`)), "version_map", "expected an object, got array"},
		{"refreshed last_refresh_time is a string", mutate(t, ref, "/last_refresh_time", "now"), "last_refresh_time", "got string"},
		{"removed name is a number", mutate(t, ref, "/removed/20001/0", 1), `removed["20001"][0]`, "expected a string, got number 1"},
		{"removed names is a string", mutate(t, ref, "/removed/20001", "p1"), `removed["20001"]`, "expected an array"},
		{"dropped mv_id is a string", mutate(t, drop, "/mv_id", "50001"), "mv_id", "got string"},
		{"a long string is clipped in the message", mutate(t, drop, "/mv_id", strings.Repeat("x", 500)), "mv_id", "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			de := decodeError(t, tt.doc)
			if de.Reason != events.ReasonInvalidJSON || de.Field != tt.field {
				t.Errorf("got reason %q field %q (%v), want invalid_json field %q", de.Reason, de.Field, de, tt.field)
			}
			if !strings.Contains(de.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", de.Msg, tt.msg)
			}
			if len(de.Msg) > 200 {
				t.Errorf("message is %d bytes long, want a short one", len(de.Msg))
			}
		})
	}
}

func TestDecode_rejectsMissingOrUnknownKind(t *testing.T) {
	tests := []struct{ name, doc, msg string }{
		{"kind absent", `{"db_id":10001,"mv_id":50001}`, "missing"},
		{"kind null", `{"kind":null,"db_id":10001,"mv_id":50001}`, "missing"},
		{"kind empty", `{"kind":"","db_id":10001,"mv_id":50001}`, "must not be empty"},
		{"kind unknown", `{"kind":"table_dropped"}`, `unknown kind "table_dropped"`},
		{"kind in another case", `{"kind":"MV_DROPPED","db_id":10001,"mv_id":50001}`, `unknown kind "MV_DROPPED"`},
		{"empty object", `{}`, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			de := decodeError(t, tt.doc)
			if de.Reason != events.ReasonUnknownKind || de.Field != "kind" {
				t.Errorf("got reason %q field %q, want unknown_kind field kind", de.Reason, de.Field)
			}
			if !strings.Contains(de.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", de.Msg, tt.msg)
			}
		})
	}
}

func TestDecode_rejectsExternalTableRecreatedOnInternalCatalog(t *testing.T) {
	etr := sampleExternalTableRecreated
	runRejections(t, []rejection{
		{"default_catalog", mutate(t, etr, "/catalog", "default_catalog"), events.ReasonInternalCatalog, "catalog"},
		{"default_catalog before other rules", mutate(t, mutate(t, etr, "/catalog", "default_catalog"), "/table_name", ""),
			events.ReasonInternalCatalog, "catalog"},
		{"empty catalog is invalid, not internal", mutate(t, etr, "/catalog", ""), events.ReasonInvalidEvent, "catalog"},
	})
}

func TestDecode_rejectsInvalidPartitionVersionChanged(t *testing.T) {
	pvc := samplePartitionVersionChanged
	inv := events.ReasonInvalidEvent
	second := json.RawMessage(`{"partition_id":30002,"partition_name":"p20240102","last_version":3,"new_version":3,"new_version_time":1732400000000}`)
	runRejections(t, []rejection{
		{"db_id zero", mutate(t, pvc, "/db_id", 0), inv, "db_id"},
		{"db_id negative", mutate(t, pvc, "/db_id", -1), inv, "db_id"},
		{"db_id absent", mutate(t, pvc, "/db_id", absent{}), inv, "db_id"},
		{"db_id null", mutate(t, pvc, "/db_id", nil), inv, "db_id"},
		{"table_id zero", mutate(t, pvc, "/table_id", 0), inv, "table_id"},
		{"table_id absent", mutate(t, pvc, "/table_id", absent{}), inv, "table_id"},
		{"table_type empty", mutate(t, pvc, "/table_type", ""), inv, "table_type"},
		{"table_type absent", mutate(t, pvc, "/table_type", absent{}), inv, "table_type"},
		{"emitted_at negative", mutate(t, pvc, "/emitted_at", -1), inv, "emitted_at"},
		{"no partitions", mutate(t, pvc, "/partitions", json.RawMessage(`[]`)), inv, "partitions"},
		{"partitions absent", mutate(t, pvc, "/partitions", absent{}), inv, "partitions"},
		{"partitions null", mutate(t, pvc, "/partitions", nil), inv, "partitions"},
		{"partition_id zero", mutate(t, pvc, "/partitions/0/partition_id", 0), inv, "partitions[0].partition_id"},
		{"partition_id negative", mutate(t, pvc, "/partitions/0/partition_id", -30001), inv, "partitions[0].partition_id"},
		{"partition_name empty", mutate(t, pvc, "/partitions/0/partition_name", ""), inv, "partitions[0].partition_name"},
		{"partition_name absent", mutate(t, pvc, "/partitions/0/partition_name", absent{}), inv, "partitions[0].partition_name"},
		{"last_version zero", mutate(t, pvc, "/partitions/0/last_version", 0), inv, "partitions[0].last_version"},
		{"last_version absent", mutate(t, pvc, "/partitions/0/last_version", absent{}), inv, "partitions[0].last_version"},
		{"new_version equal to last_version", mutate(t, pvc, "/partitions/0/new_version", 5), inv, "partitions[0].new_version"},
		{"new_version below last_version", mutate(t, pvc, "/partitions/0/new_version", 4), inv, "partitions[0].new_version"},
		{"new_version absent", mutate(t, pvc, "/partitions/0/new_version", absent{}), inv, "partitions[0].new_version"},
		{"new_version_time zero", mutate(t, pvc, "/partitions/0/new_version_time", 0), inv, "partitions[0].new_version_time"},
		{"new_version_time absent", mutate(t, pvc, "/partitions/0/new_version_time", absent{}), inv, "partitions[0].new_version_time"},
		{"last_version_time zero", mutate(t, pvc, "/partitions/0/last_version_time", 0), inv, "partitions[0].last_version_time"},
		{"last_version_time negative", mutate(t, pvc, "/partitions/0/last_version_time", -1), inv, "partitions[0].last_version_time"},
		{"second partition new_version not above last", mutate(t, pvc, "/partitions/1", second), inv, "partitions[1].new_version"},
	})
}

// The rule the brief names explicitly, with its exact message.
func TestDecode_rejectsNewVersionNotAboveLast(t *testing.T) {
	de := decodeError(t, mutate(t, samplePartitionVersionChanged, "/partitions/0/new_version", 5))
	const want = "invalid_event: partitions[0].new_version: must be above last_version (5), got 5"
	if de.Error() != want {
		t.Errorf("Error() = %q, want %q", de.Error(), want)
	}
}

func TestDecode_acceptsPartitionVersionChangedVariants(t *testing.T) {
	pvc := samplePartitionVersionChanged
	chained := mutate(t, pvc, "/partitions/1", json.RawMessage(
		`{"partition_id":30001,"partition_name":"p20240101","last_version":6,"new_version":7,"new_version_time":1732400000001}`))
	minimal := `{"kind":"partition_version_changed","db_id":1,"table_id":2,"table_type":"olap",
		"partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4}]}`
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, e *events.PartitionVersionChanged)
	}{
		{"non-native table_type is valid input", mutate(t, pvc, "/table_type", "hive"), func(t *testing.T, e *events.PartitionVersionChanged) {
			if e.TableType != "hive" || events.IsNativeTableType(e.TableType) {
				t.Errorf("table_type %q: want hive, not native", e.TableType)
			}
		}},
		{"optional fields absent", minimal, func(t *testing.T, e *events.PartitionVersionChanged) {
			if e.Source != "" || e.TableName != "" || e.EmittedAt != 0 || e.EventID != "" || e.Partitions[0].LastVersionTime != nil {
				t.Errorf("optional fields not at zero: %+v", e)
			}
		}},
		{"last_version_time null is absent", mutate(t, pvc, "/partitions/0/last_version_time", nil), func(t *testing.T, e *events.PartitionVersionChanged) {
			if e.Partitions[0].LastVersionTime != nil {
				t.Errorf("last_version_time = %d, want nil", *e.Partitions[0].LastVersionTime)
			}
		}},
		{"chained entries for one partition", chained, func(t *testing.T, e *events.PartitionVersionChanged) {
			if len(e.Partitions) != 2 || e.Partitions[1].NewVersion != 7 {
				t.Errorf("partitions = %+v, want v5→v6 then v6→v7", e.Partitions)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustDecode(t, tt.doc).(*events.PartitionVersionChanged))
		})
	}
}

func TestDecode_rejectsInvalidExternalTableRecreated(t *testing.T) {
	etr := sampleExternalTableRecreated
	inv := events.ReasonInvalidEvent
	runRejections(t, []rejection{
		{"catalog absent", mutate(t, etr, "/catalog", absent{}), inv, "catalog"},
		{"db_name empty", mutate(t, etr, "/db_name", ""), inv, "db_name"},
		{"table_name absent", mutate(t, etr, "/table_name", absent{}), inv, "table_name"},
		{"old_table_identifier empty", mutate(t, etr, "/old_table_identifier", ""), inv, "old_table_identifier"},
		{"new_table_identifier empty", mutate(t, etr, "/new_table_identifier", ""), inv, "new_table_identifier"},
		{"identifier unchanged", mutate(t, etr, "/new_table_identifier", "events:1700000000"), inv, "new_table_identifier"},
		{"modified_time zero", mutate(t, etr, "/partitions/dt=2024-01-01/modified_time", 0), inv, `partitions["dt=2024-01-01"].modified_time`},
		{"modified_time absent", mutate(t, etr, "/partitions/dt=2024-01-01", json.RawMessage(`{}`)), inv, `partitions["dt=2024-01-01"].modified_time`},
		{"modified_time negative in a later partition", mutate(t, etr, "/partitions/dt=2024-01-03/modified_time", -1), inv, `partitions["dt=2024-01-03"].modified_time`},
		{"empty partition name", mutate(t, etr, "/partitions/", json.RawMessage(`{"modified_time":1}`)), inv, `partitions[""]`},
		{"empty updated partition name", mutate(t, etr, "/updated_partitions/1", ""), inv, "updated_partitions[1]"},
	})
}

func TestDecode_acceptsExternalTableRecreatedWithoutPartitions(t *testing.T) {
	doc := mutate(t, mutate(t, sampleExternalTableRecreated, "/partitions", absent{}), "/updated_partitions", nil)
	e := mustDecode(t, doc).(*events.ExternalTableRecreated)
	if e.Partitions == nil || len(e.Partitions) != 0 || e.UpdatedPartitions == nil || len(e.UpdatedPartitions) != 0 {
		t.Errorf("partitions %#v, updated %#v: want empty, non-nil", e.Partitions, e.UpdatedPartitions)
	}
	ref := e.OldRef()
	if ref != (mvstate.ExternalRef{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}) {
		t.Errorf("OldRef = %v", ref)
	}
}

func TestDecode_rejectsInvalidMVUpserted(t *testing.T) {
	ups := sampleMVUpserted
	inv := events.ReasonInvalidEvent
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	runRejections(t, []rejection{
		{"mv absent", mutate(t, ups, "/mv", absent{}), inv, "mv"},
		{"mv null", mutate(t, ups, "/mv", nil), inv, "mv"},
		{"mv empty", mutate(t, ups, "/mv", raw(`{}`)), inv, "mv.db_id"},
		{"db_id zero", mutate(t, ups, "/mv/db_id", 0), inv, "mv.db_id"},
		{"mv_id absent", mutate(t, ups, "/mv/mv_id", absent{}), inv, "mv.mv_id"},
		{"mv_id negative", mutate(t, ups, "/mv/mv_id", -5), inv, "mv.mv_id"},
		{"db_name empty", mutate(t, ups, "/mv/db_name", ""), inv, "mv.db_name"},
		{"mv_name absent", mutate(t, ups, "/mv/mv_name", absent{}), inv, "mv.mv_name"},
		{"last_refresh_time negative", mutate(t, ups, "/mv/last_refresh_time", -1), inv, "mv.last_refresh_time"},
		{"base table catalog empty", mutate(t, ups, "/mv/base_tables/0/catalog", ""), inv, "mv.base_tables[0].catalog"},
		{"native base table db_id absent", mutate(t, ups, "/mv/base_tables/0/db_id", absent{}), inv, "mv.base_tables[0].db_id"},
		{"native base table table_id zero", mutate(t, ups, "/mv/base_tables/0/table_id", 0), inv, "mv.base_tables[0].table_id"},
		{"external base table db_name empty", mutate(t, ups, "/mv/base_tables/1/db_name", ""), inv, "mv.base_tables[1].db_name"},
		{"external base table table_name absent", mutate(t, ups, "/mv/base_tables/1/table_name", absent{}), inv, "mv.base_tables[1].table_name"},
		{"external base table identifier empty", mutate(t, ups, "/mv/base_tables/1/table_identifier", ""), inv, "mv.base_tables[1].table_identifier"},
		{"native base table listed twice", mutate(t, ups, "/mv/base_tables/2", raw(`{"catalog":"default_catalog","db_id":10001,"table_id":20001}`)),
			inv, "mv.base_tables[2]"},
		{"external base table listed twice", mutate(t, ups, "/mv/base_tables/2", raw(`{"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"events:1700000000"}`)),
			inv, "mv.base_tables[2]"},
		{"external base table listed twice with two identifiers", mutate(t, ups, "/mv/base_tables/2", raw(`{"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"events:1732400000"}`)),
			inv, "mv.base_tables[2]"},
		{"version_map key not a number", mutate(t, ups, "/mv/version_map/orders", raw(`{}`)), inv, `mv.version_map["orders"]`},
		{"version_map key zero", mutate(t, ups, "/mv/version_map/0", raw(`{}`)), inv, `mv.version_map["0"]`},
		{"version_map key negative", mutate(t, ups, "/mv/version_map/-20001", raw(`{}`)), inv, `mv.version_map["-20001"]`},
		{"version_map key with leading zero", mutate(t, ups, "/mv/version_map/020001", raw(`{}`)), inv, `mv.version_map["020001"]`},
		{"version_map key with sign", mutate(t, ups, "/mv/version_map/+20002", raw(`{}`)), inv, `mv.version_map["+20002"]`},
		{"version_map key overflows", mutate(t, ups, "/mv/version_map/9223372036854775808", raw(`{}`)), inv, `mv.version_map["9223372036854775808"]`},
		{"version_map partition name empty", mutate(t, ups, "/mv/version_map/20001/", raw(`{"id":1}`)), inv, `mv.version_map["20001"][""]`},
		{"external version map on the internal catalog", mutate(t, ups, "/mv/external_version_map/0/base_table/catalog", "default_catalog"),
			inv, "mv.external_version_map[0].base_table.catalog"},
		{"external version map identifier empty", mutate(t, ups, "/mv/external_version_map/0/base_table/table_identifier", ""),
			inv, "mv.external_version_map[0].base_table.table_identifier"},
		{"external version map base table absent", mutate(t, ups, "/mv/external_version_map/0/base_table", absent{}),
			inv, "mv.external_version_map[0].base_table.catalog"},
		{"external version map table listed twice", mutate(t, ups, "/mv/external_version_map/1",
			raw(`{"base_table":{"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"events:1700000000"},"partitions":{}}`)),
			inv, "mv.external_version_map[1].base_table"},
		{"external version map partition name empty", mutate(t, ups, "/mv/external_version_map/0/partitions/", raw(`{}`)),
			inv, `mv.external_version_map[0].partitions[""]`},
	})
}

func TestDecode_acceptsMVUpsertedVariants(t *testing.T) {
	ups := sampleMVUpserted
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, mv *mvstate.MV)
	}{
		{"same table name in two catalogs", mutate(t, ups, "/mv/base_tables/2", json.RawMessage(
			`{"catalog":"iceberg","db_name":"ods","table_name":"events","table_identifier":"events:1700000000"}`)),
			func(t *testing.T, mv *mvstate.MV) {
				if len(mv.BaseTables) != 3 {
					t.Errorf("base_tables = %v", mv.BaseTables)
				}
			}},
		{"minimal mv", `{"kind":"mv_upserted","mv":{"db_id":1,"mv_id":2,"db_name":"d","mv_name":"m"}}`,
			func(t *testing.T, mv *mvstate.MV) {
				if mv.BaseTables == nil || mv.VersionMap == nil || mv.ExternalVersionMap == nil || mv.Active {
					t.Errorf("mv = %#v: want empty non-nil collections, inactive", mv)
				}
			}},
		{"null partition map keeps the table key", mutate(t, ups, "/mv/version_map/20002", nil),
			func(t *testing.T, mv *mvstate.MV) {
				if parts, ok := mv.VersionMap[20002]; !ok || parts == nil || len(parts) != 0 {
					t.Errorf("version_map[20002] = %#v, %v: want present and empty", parts, ok)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustDecode(t, tt.doc).(*events.MVUpserted).MV)
		})
	}
}

func TestDecode_rejectsInvalidMVRefreshed(t *testing.T) {
	ref := sampleMVRefreshed
	inv := events.ReasonInvalidEvent
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	hive := `{"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"events:1700000000"}`
	withHive := mutate(t, ref, "/external_version_map/0", raw(`{"base_table":`+hive+`,"partitions":{"dt=2024-01-01":{"id":-1}}}`))
	runRejections(t, []rejection{
		{"db_id zero", mutate(t, ref, "/db_id", 0), inv, "db_id"},
		{"mv_id absent", mutate(t, ref, "/mv_id", absent{}), inv, "mv_id"},
		{"last_refresh_time negative", mutate(t, ref, "/last_refresh_time", -1), inv, "last_refresh_time"},
		{"version_map key not a table id", mutate(t, ref, "/version_map/p20240102", raw(`{}`)), inv, `version_map["p20240102"]`},
		{"version_map key zero", mutate(t, ref, "/version_map/0", raw(`{}`)), inv, `version_map["0"]`},
		{"version_map partition name empty", mutate(t, ref, "/version_map/20001/", raw(`{"id":1}`)), inv, `version_map["20001"][""]`},
		{"external base table name empty", mutate(t, withHive, "/external_version_map/0/base_table/table_name", ""),
			inv, "external_version_map[0].base_table.table_name"},
		{"external base table listed twice", mutate(t, withHive, "/external_version_map/1", raw(`{"base_table":`+hive+`}`)),
			inv, "external_version_map[1].base_table"},
		{"external partition name empty", mutate(t, withHive, "/external_version_map/0/partitions/", raw(`{}`)),
			inv, `external_version_map[0].partitions[""]`},
		{"removed key not a table id", mutate(t, ref, "/removed/x", raw(`["p1"]`)), inv, `removed["x"]`},
		{"removed key negative", mutate(t, ref, "/removed/-1", raw(`["p1"]`)), inv, `removed["-1"]`},
		{"removed name empty", mutate(t, ref, "/removed/20001/1", ""), inv, `removed["20001"][1]`},
		{"removed name null", mutate(t, ref, "/removed/20001/1", nil), inv, `removed["20001"][1]`},
		{"removed name also merged", mutate(t, ref, "/removed/20001/0", "p20240102"), inv, `removed["20001"][0]`},
	})
}

func TestDecode_acceptsMVRefreshedVariants(t *testing.T) {
	minimal := mustDecode(t, `{"kind":"mv_refreshed","db_id":1,"mv_id":2}`).(*events.MVRefreshed)
	if minimal.VersionMap == nil || minimal.ExternalVersionMap == nil || minimal.Removed == nil || minimal.LastRefreshTime != 0 {
		t.Errorf("minimal = %#v: want empty non-nil collections", minimal)
	}
	// A name removed from one table may be merged into another.
	doc := mutate(t, sampleMVRefreshed, "/removed/20002", json.RawMessage(`["p20240102"]`))
	e := mustDecode(t, doc).(*events.MVRefreshed)
	if got := e.Removed[20002]; len(got) != 1 || got[0] != "p20240102" {
		t.Errorf("removed[20002] = %q", got)
	}
	if e.Key() != (mvstate.MVKey{DBID: 10001, MVID: 50001}) {
		t.Errorf("Key = %v", e.Key())
	}
}

func TestDecode_rejectsInvalidMVDropped(t *testing.T) {
	drop := sampleMVDropped
	inv := events.ReasonInvalidEvent
	runRejections(t, []rejection{
		{"db_id zero", mutate(t, drop, "/db_id", 0), inv, "db_id"},
		{"db_id absent", mutate(t, drop, "/db_id", absent{}), inv, "db_id"},
		{"mv_id zero", mutate(t, drop, "/mv_id", 0), inv, "mv_id"},
		{"mv_id negative", mutate(t, drop, "/mv_id", -50001), inv, "mv_id"},
	})
}

func TestDecode_ignoresUnknownFields(t *testing.T) {
	tests := []struct {
		name, base string
		ptrs       []string
	}{
		{"partition_version_changed", samplePartitionVersionChanged, []string{"/schema_version", "/partitions/0/rowset_count"}},
		{"external_table_recreated", sampleExternalTableRecreated, []string{"/location", "/partitions/dt=2024-01-01/size"}},
		{"mv_upserted", sampleMVUpserted, []string{"/mv_sql", "/mv/definition", "/mv/base_tables/0/table_type",
			"/mv/version_map/20001/p20240101/row_count", "/mv/external_version_map/0/base_table/owner"}},
		{"mv_refreshed", sampleMVRefreshed, []string{"/refresh_job_id", "/version_map/20001/p20240102/row_count"}},
		// A member another kind defines is unknown here, whatever its type.
		{"mv_dropped", sampleMVDropped, []string{"/partitions", "/mv", "/version_map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustDecode(t, tt.base)
			doc := tt.base
			for _, p := range tt.ptrs {
				doc = mutate(t, doc, p, "unexpected")
			}
			if got := mustDecode(t, doc); !reflect.DeepEqual(got, want) {
				t.Errorf("with unknown fields:\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestDecode_defaultsExtFieldsToMinusOne(t *testing.T) {
	ups := mustDecode(t, sampleMVUpserted).(*events.MVUpserted)
	if p := ups.MV.VersionMap[20001]["p20240101"]; p.ExtLastFileModifiedTime != -1 || p.FileNumber != -1 {
		t.Errorf("mv_upserted native entry %+v: want ext fields -1", p)
	}
	for _, parts := range ups.MV.ExternalVersionMap {
		if p := parts["dt=2024-01-01"]; p.ExtLastFileModifiedTime != 1700000000000 || p.FileNumber != 3 {
			t.Errorf("mv_upserted external entry %+v: want the given ext fields kept", p)
		}
	}
	ref := mustDecode(t, sampleMVRefreshed).(*events.MVRefreshed)
	if p := ref.VersionMap[20001]["p20240102"]; p.ExtLastFileModifiedTime != -1 || p.FileNumber != -1 {
		t.Errorf("mv_refreshed entry %+v: want ext fields -1", p)
	}
	hive := `{"base_table":{"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"t:1"},"partitions":{"p":{"id":-1,"version":9}}}`
	ref = mustDecode(t, mutate(t, sampleMVRefreshed, "/external_version_map/0", json.RawMessage(hive))).(*events.MVRefreshed)
	for _, parts := range ref.ExternalVersionMap {
		if p := parts["p"]; p.ExtLastFileModifiedTime != -1 || p.FileNumber != -1 || p.Version != 9 {
			t.Errorf("mv_refreshed external entry %+v: want ext fields -1", p)
		}
	}
}

func TestDecodeError_messageNamesReasonAndField(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"validation", mutate(t, samplePartitionVersionChanged, "/partitions/0/partition_id", 0),
			"invalid_event: partitions[0].partition_id: must be positive, got 0"},
		{"wrong type", mutate(t, sampleMVUpserted, "/mv/base_tables/1/table_identifier", 7),
			"invalid_json: mv.base_tables[1].table_identifier: expected a string, got number 7"},
		{"map member", mutate(t, sampleMVUpserted, "/mv/version_map/x", json.RawMessage(`{}`)),
			`invalid_event: mv.version_map["x"]: key must be a table id: a positive decimal integer without sign or leading zeros`},
		{"unknown kind", `{"kind":"mv_created"}`,
			`unknown_kind: kind: unknown kind "mv_created" (want partition_version_changed, external_table_recreated, mv_upserted, mv_refreshed or mv_dropped)`},
		{"internal catalog", mutate(t, sampleExternalTableRecreated, "/catalog", "default_catalog"),
			"internal_catalog: catalog: default_catalog is the internal catalog: external_table_recreated applies to external catalogs only"},
		{"document level", `[]`, "invalid_json: expected a JSON object, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeError(t, tt.doc).Error(); got != tt.want {
				t.Errorf("Error() = %q\n          want %q", got, tt.want)
			}
		})
	}
}

func TestDecode_reportsTheSameFieldEveryTime(t *testing.T) {
	// Several bad map keys: the first in sorted order is reported, whatever
	// the map iteration order.
	doc := sampleMVRefreshed
	for _, k := range []string{"zz", "b", "a", "0", "-3"} {
		doc = mutate(t, doc, "/version_map/"+k, json.RawMessage(`{}`))
	}
	for range 20 {
		if de := decodeError(t, doc); de.Field != `version_map["-3"]` {
			t.Fatalf("field %q, want the first bad key in sorted order", de.Field)
		}
	}
}
