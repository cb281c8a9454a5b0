package events_test

import (
	"testing"

	"github.com/mvrepair/mvrepair/events"
)

// BenchmarkDecode_partitionVersionChanged measures the hot path: decoding and
// validating the docs/design.md §4 partition_version_changed sample.
func BenchmarkDecode_partitionVersionChanged(b *testing.B) {
	value := []byte(samplePartitionVersionChanged)
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(value); err != nil {
			b.Fatal(err)
		}
	}
}
