package events

import (
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzFastPath checks that the single-pass fast path of Decode accepts only
// what the general path accepts, with an equal result. (Named so that
// -fuzz=FuzzDecode selects FuzzDecode alone.)
func FuzzFastPath(f *testing.F) {
	for _, s := range []string{
		`{"kind":"partition_version_changed","db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4,"last_version_time":5}]}`,
		`{"KIND":"partition_version_changed","Db_Id":1,"table_id":2,"table_type":"x","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4}],"kind":"partition_version_changed"}`,
		`{"kind":"partition\u005fversion_changed","db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4}]}`,
		`{"kind":"mv_dropped","db_id":1,"table_id":2,"mv_id":3,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		fast := decodeFast(value)
		if fast == nil || !utf8.Valid(value) { // Decode checks UTF-8 before the fast path
			return
		}
		e, de := decode(value)
		if de != nil {
			t.Fatalf("fast path accepted what the general path rejects: %v\ninput: %q", de, value)
		}
		slow, de := decodePartitionVersionChanged(value)
		if de != nil || !reflect.DeepEqual(slow, Event(fast)) || !reflect.DeepEqual(e, Event(fast)) {
			t.Fatalf("paths disagree (%v):\nfast %#v\nslow %#v\ninput: %q", de, fast, slow, value)
		}
	})
}

func TestDecodeFast_leavesOtherRecordsToTheGeneralPath(t *testing.T) {
	for _, s := range []string{
		``, `null`, `[]`,
		`{"kind":"mv_dropped","db_id":1,"mv_id":2}`,
		`{"kind":"partition\u005fversion_changed","db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4}]}`,
		`{"kind":"partition_version_changed","db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":2,"new_version":2,"new_version_time":4}]}`,
		`{"kind":"partition_version_changed","db_id":"1"}`,
	} {
		if e := decodeFast([]byte(s)); e != nil {
			t.Errorf("decodeFast(%s) = %#v, want nil", s, e)
		}
	}
}

func TestDecodeFast_fieldTablesMatchTheSwitches(t *testing.T) {
	for i, f := range pvcFields {
		if got := pvcField([]byte(f)); got != i {
			t.Errorf("pvcField(%q) = %d, want %d", f, got, i)
		}
	}
	for i, f := range partFields {
		if got := partField([]byte(f)); got != i {
			t.Errorf("partField(%q) = %d, want %d", f, got, i)
		}
	}
	for key, want := range map[string]int{"Kind": -2, "DB_ID": -2, "extra": -1, "kinds": -1, "kınd": -2} {
		if got := pvcField([]byte(key)); got != want {
			t.Errorf("pvcField(%q) = %d, want %d", key, got, want)
		}
	}
}

// The fast path's member tables are the structs' JSON members: a field
// added to PartitionVersionChanged or PartitionRepair must be added to the
// fast path too, or it would drop the member the general path decodes.
func TestDecodeFast_fieldTablesAreTheStructsMembers(t *testing.T) {
	names := func(v any) []string {
		var out []string
		for _, f := range jsonFields(reflect.TypeOf(v)) {
			out = append(out, f.name)
		}
		return out
	}
	if want := append([]string{"kind"}, names(PartitionVersionChanged{})...); !slices.Equal(pvcFields, want) {
		t.Errorf("pvcFields = %v, want %v (kind, then PartitionVersionChanged's members)", pvcFields, want)
	}
	if want := names(PartitionRepair{}); !slices.Equal(partFields, want) {
		t.Errorf("partFields = %v, want PartitionRepair's members %v", partFields, want)
	}
}

func TestDecodeFast_takesAnEventWithAnExtraMember(t *testing.T) {
	in := `{"kind":"partition_version_changed","schema":2,"db_id":1,"table_id":2,"table_type":"olap","partitions":[{"partition_id":3,"partition_name":"p","last_version":1,"new_version":2,"new_version_time":4,"extra":[1,{"a":null}]}]}`
	e := decodeFast([]byte(in))
	if e == nil || e.DBID != 1 || len(e.Partitions) != 1 || e.Partitions[0].NewVersion != 2 {
		t.Fatalf("decodeFast of an event with unknown members: %+v", e)
	}
}
