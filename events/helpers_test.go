package events_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/events"
)

// The docs/design.md §4 sample documents, copied verbatim.
const (
	samplePartitionVersionChanged = `{"kind":"partition_version_changed","event_id":"COMPACTION_10001-20001-30001-1732400000000",
 "source":"compaction","db_id":10001,"table_id":20001,"table_name":"orders","table_type":"cloud_native",
 "partitions":[{"partition_id":30001,"partition_name":"p20240101","last_version":5,"new_version":6,
   "new_version_time":1732400000000,"last_version_time":1732300000000}],
 "emitted_at":1732400000123}`

	sampleExternalTableRecreated = `{"kind":"external_table_recreated","event_id":"...","catalog":"hive","db_name":"ods","table_name":"events",
 "old_table_identifier":"events:1700000000","new_table_identifier":"events:1732400000",
 "partitions":{"dt=2024-01-01":{"modified_time":1732400000000}},"updated_partitions":["dt=2024-01-02"]}`

	sampleMVUpserted = `{"kind":"mv_upserted","event_id":"...","mv":{"db_id":10001,"db_name":"sales","mv_id":50001,
 "mv_name":"mv_orders_daily","active":true,"last_refresh_time":1732300000000,
 "base_tables":[{"catalog":"default_catalog","db_id":10001,"table_id":20001,"db_name":"sales","table_name":"orders"},
                {"catalog":"hive","db_name":"ods","table_name":"events","table_identifier":"events:1700000000"}],
 "version_map":{"20001":{"p20240101":{"id":30001,"version":5,"last_refresh_time":1732300000000}}},
 "external_version_map":[{"base_table":{"catalog":"hive","db_name":"ods","table_name":"events",
   "table_identifier":"events:1700000000"},"partitions":{"dt=2024-01-01":{"id":-1,"version":1700000000000,
   "last_refresh_time":1700000000000,"ext_last_file_modified_time":1700000000000,"file_number":3}}}]}}`

	sampleMVRefreshed = `{"kind":"mv_refreshed","event_id":"...","db_id":10001,"mv_id":50001,"last_refresh_time":1732500000000,
 "version_map":{"20001":{"p20240102":{"id":30002,"version":3,"last_refresh_time":1732500000000}}},
 "external_version_map":[],"removed":{"20001":["p20231231"]}}`

	sampleMVDropped = `{"kind":"mv_dropped","event_id":"...","db_id":10001,"mv_id":50001}`
)

// samples lists the §4 documents by kind, in a stable order.
func samples() []struct {
	kind events.Kind
	doc  string
} {
	return []struct {
		kind events.Kind
		doc  string
	}{
		{events.KindPartitionVersionChanged, samplePartitionVersionChanged},
		{events.KindExternalTableRecreated, sampleExternalTableRecreated},
		{events.KindMVUpserted, sampleMVUpserted},
		{events.KindMVRefreshed, sampleMVRefreshed},
		{events.KindMVDropped, sampleMVDropped},
	}
}

// absent, as a mutate value, deletes the member (or array element).
type absent struct{}

// mutate returns doc with the value at JSON Pointer ptr (RFC 6901) replaced by
// v (a json.RawMessage is inserted verbatim; absent{} deletes it). Missing
// intermediate objects are created; index len(array) appends.
func mutate(t testing.TB, doc, ptr string, v any) string {
	t.Helper()
	var root any
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("mutate: base document: %v", err)
	}
	if !strings.HasPrefix(ptr, "/") {
		t.Fatalf("mutate: pointer %q must start with /", ptr)
	}
	var segs []string
	for _, s := range strings.Split(ptr[1:], "/") {
		segs = append(segs, strings.NewReplacer("~1", "/", "~0", "~").Replace(s))
	}
	root = set(t, root, segs, v)
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatalf("mutate: %v", err)
	}
	return string(b)
}

func set(t testing.TB, node any, segs []string, v any) any {
	t.Helper()
	seg, rest := segs[0], segs[1:]
	switch n := node.(type) {
	case nil:
		return set(t, map[string]any{}, segs, v)
	case map[string]any:
		if len(rest) == 0 {
			if _, del := v.(absent); del {
				delete(n, seg)
			} else {
				n[seg] = v
			}
			return n
		}
		n[seg] = set(t, n[seg], rest, v)
		return n
	case []any:
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i > len(n) {
			t.Fatalf("mutate: bad index %q for array of %d", seg, len(n))
		}
		if i == len(n) {
			n = append(n, nil)
		}
		if len(rest) == 0 {
			if _, del := v.(absent); del {
				return append(n[:i], n[i+1:]...)
			}
			n[i] = v
			return n
		}
		n[i] = set(t, n[i], rest, v)
		return n
	default:
		t.Fatalf("mutate: cannot descend into %T at %q", node, seg)
		return nil
	}
}

// mustDecode decodes doc and fails the test on error.
func mustDecode(t testing.TB, doc string) events.Event {
	t.Helper()
	e, err := events.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("Decode: %v\ndocument: %s", err, doc)
	}
	return e
}

// decodeError decodes doc, which must fail, and returns the *DecodeError.
func decodeError(t testing.TB, doc string) *events.DecodeError {
	t.Helper()
	e, err := events.Decode([]byte(doc))
	if err == nil {
		t.Fatalf("Decode succeeded (%#v), want an error\ndocument: %s", e, doc)
	}
	if e != nil {
		t.Errorf("Decode returned an event (%#v) with its error", e)
	}
	var de *events.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v is a %T, want *events.DecodeError", err, err)
	}
	return de
}

// rejection is one table row: a document and the error it must yield.
type rejection struct {
	name   string
	doc    string
	reason events.Reason
	field  string
}

func runRejections(t *testing.T, rows []rejection) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			de := decodeError(t, r.doc)
			if de.Reason != r.reason || de.Field != r.field {
				t.Errorf("got reason %q field %q (%v), want reason %q field %q\ndocument: %s",
					de.Reason, de.Field, de, r.reason, r.field, r.doc)
			}
			if de.Msg == "" {
				t.Errorf("empty message")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
