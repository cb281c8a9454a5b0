package events_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/mvrepair/mvrepair/events"
)

// FuzzDecode checks Decode on arbitrary input: it never panics; a failure is
// a *DecodeError (unwrapped) with one of the reasons Decode documents, a
// message, and the field the reason implies; a success has a topic role and a
// Kafka key, and re-encodes to a document that decodes to an equal event and
// re-encodes to the same bytes.
//
// Seeds: the docs/design.md §4 samples, malformed documents, and the corpus in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		f.Add([]byte(s.doc))
	}
	for _, s := range []string{
		``, `{`, `[]`, `null`, `"x"`, `{"kind":5}`, `{"kind":"x"}`, `{"kind":""}`, `{} {}`,
		"{\"kind\":\"mv_dropped\",\"event_id\":\"\xff\",\"db_id\":1,\"mv_id\":1}",
		`{"kind":"partition_version_changed","db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":"2","new_version_time":1}]}`,
		`{"kind":"partition_version_changed","db_id":1,"table_id":2,"table_type":"hive","partitions":[{"partition_id":3,"partition_name":"p","last_version":2,"new_version":2,"new_version_time":1,"last_version_time":null}]}`,
		`{"kind":"external_table_recreated","catalog":"default_catalog","db_name":"d","table_name":"t","old_table_identifier":"a","new_table_identifier":"b"}`,
		`{"kind":"external_table_recreated","catalog":"hive","db_name":"d","table_name":"t","old_table_identifier":"a","new_table_identifier":"b","partitions":{"":{"modified_time":1}}}`,
		`{"kind":"mv_upserted","mv":{"db_id":1,"mv_id":2,"db_name":"d","mv_name":"m","version_map":{"+5":{},"05":null}}}`,
		`{"kind":"mv_upserted","mv":{"db_id":1,"mv_id":2,"db_name":"d","mv_name":"m","base_tables":[{"catalog":"default_catalog","db_id":1,"table_id":3},{"CATALOG":"default_catalog","db_id":1,"table_id":3}]}}`,
		`{"kind":"mv_refreshed","db_id":1,"mv_id":2,"version_map":{"3":{"p":{"id":1}}},"removed":{"3":["p"]}}`,
		`{"kind":"mv_refreshed","db_id":1,"mv_id":2,"external_version_map":[{"base_table":{"catalog":"hive","db_name":"d","table_name":"t","table_identifier":"i"},"partitions":null}]}`,
		`{"kind":"mv_dropped","db_id":1,"mv_id":1,"db_id":"x"}`,
	} {
		f.Add([]byte(s))
	}
	known := map[events.Reason]bool{
		events.ReasonInvalidJSON: true, events.ReasonUnknownKind: true,
		events.ReasonInvalidEvent: true, events.ReasonInternalCatalog: true,
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := events.Decode(value)
		if err != nil {
			de, ok := err.(*events.DecodeError)
			switch {
			case !ok:
				t.Fatalf("error %v is a %T, want *events.DecodeError", err, err)
			case e != nil:
				t.Fatalf("Decode returned an event (%#v) with its error %v", e, err)
			case !known[de.Reason]:
				t.Fatalf("reason %q is not one Decode documents (%v)", de.Reason, de)
			case de.Msg == "":
				t.Fatalf("empty message (%#v)", de)
			case de.Reason == events.ReasonUnknownKind && de.Field != "kind",
				de.Reason == events.ReasonInternalCatalog && de.Field != "catalog",
				de.Reason == events.ReasonInvalidEvent && de.Field == "":
				t.Fatalf("reason %q with field %q", de.Reason, de.Field)
			}
			return
		}
		if e == nil {
			t.Fatal("Decode returned neither an event nor an error")
		}
		if events.TopicRoleOf(e.Kind()) == "" {
			t.Fatalf("kind %q has no topic role", e.Kind())
		}
		if events.Key(e) == "" {
			t.Fatalf("valid %s event has an empty key", e.Kind())
		}
		b, err := events.Encode(e)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		again, err := events.Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(e)): %v\ninput:   %q\nencoded: %s", err, value, b)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("Decode(Encode(e)) != e\n got %#v\nwant %#v\ninput:   %q\nencoded: %s", again, e, value, b)
		}
		b2, err := events.Encode(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (%v):\n%s\n%s", err, b, b2)
		}
	})
}
