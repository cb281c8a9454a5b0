package doccheck

import (
	"bytes"
	"os"
	"testing"

	"github.com/mvrepair/mvrepair/internal/demo"
)

// TestExamples_eventsFileIsTheDemoStream keeps examples/events.ndjson (used
// by the README's `consumer produce` examples) equal to the demo's records.
func TestExamples_eventsFileIsTheDemoStream(t *testing.T) {
	recs, err := demo.Stream()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, r := range recs {
		want.Write(r.Value)
		want.WriteByte('\n')
	}
	const path = "../../examples/events.ndjson"
	got, err := os.ReadFile(path)
	if *update {
		if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("%s is out of date (%v); run: go test ./internal/doccheck -update", path, err)
	}
}
