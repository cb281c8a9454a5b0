package mvstate_test

import (
	"bytes"
	"encoding/json"
	"testing"
)

// assertSortedKeys fails unless doc's objects have their keys in sorted order:
// re-encoding the generic decoding (encoding/json sorts map keys) must give
// the same compact bytes.
func assertSortedKeys(t *testing.T, doc string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("keys not in canonical order:\n%.300s\nwant\n%.300s", got.Bytes(), want)
	}
}
