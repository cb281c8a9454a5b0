package handler

import (
	"fmt"
	"testing"

	"github.com/mvrepair/mvrepair/mvstate"
)

// benchFixture returns a View holding one MV that recorded n partitions of
// orders, and one input repairing one of them.
func benchFixture(n int) (*memView, []Input) {
	parts := make(mvstate.PartitionMap, n)
	for i := range n {
		parts[fmt.Sprintf("p%06d", i)] = pi(int64(100000+i), 5, t0)
	}
	v := newView(withParts(newMV(mvKey, t0, orders), ordersID, parts))
	// Precompute the index so the View's own cost is O(1) too.
	v.related = map[int64][]mvstate.MVKey{ordersID: {mvKey}}
	return v, inputs(pvc(ordersID, rep(100005, "p000005", 5, 6, t0+100)))
}

func BenchmarkProcess_onePartitionRepair(b *testing.B) {
	for _, n := range []int{10, 10000, 100000} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			v, in := benchFixture(n)
			b.ReportAllocs()
			for b.Loop() {
				res := Process(v, in, opts)
				if len(res.Records) != 1 {
					b.Fatalf("records = %d", len(res.Records))
				}
			}
		})
	}
}
