package handler

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/mvrepair/mvrepair/internal/testkit/gen"
)

// Deciding a batch at once must end in the same state, with the same
// decisions per input, as deciding and applying its inputs one at a time:
// the overlay sees exactly what the applied records would show. And Process
// never mutates the View.
func TestProcess_batchEqualsOneAtATime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := gen.NewWorld(t)
		v0 := newView()
		for _, k := range gen.AllKeys() {
			if rapid.IntRange(0, 3).Draw(t, "exists") > 0 {
				v0.mvs[k] = w.DrawMV(t, k)
			}
		}
		n := rapid.IntRange(1, 12).Draw(t, "batch")
		in := make([]Input, n)
		for i := range in {
			in[i] = input(w.DrawEvent(t), int64(i))
		}

		before := v0.snapshot()
		batch := Process(v0, in, Options{NextJournalID: 1, Epoch: 1, Now: 1})
		if !sameState(v0.mvs, before) {
			t.Fatalf("Process mutated the View")
		}
		for i, r := range batch.Records {
			if r.JournalID != int64(i+1) {
				t.Fatalf("record %d has journal id %d", i, r.JournalID)
			}
		}
		vb := v0.clone()
		vb.apply(t, batch.Records...)

		vs := v0.clone()
		next := int64(1)
		for i := range in {
			one := Process(vs, in[i:i+1], Options{NextJournalID: next, Epoch: 1, Now: 1})
			next += int64(len(one.Records))
			vs.apply(t, one.Records...)
			ob, os := batch.Outcomes[i], one.Outcomes[0]
			if !slices.Equal(skipReasons(ob), skipReasons(os)) || ob.Repaired != os.Repaired ||
				(ob.DLQ == nil) != (os.DLQ == nil) || ob.Applied() != os.Applied() {
				t.Fatalf("input %d (%T): batch decided %+v, one at a time %+v", i, in[i].Event, ob, os)
			}
		}
		if !sameState(vb.mvs, vs.mvs) {
			t.Fatalf("states differ\nbatch:\n%s\none at a time:\n%s", dump(vb.mvs), dump(vs.mvs))
		}
		if len(batch.Records) > int(next-1) {
			t.Fatalf("batch emitted %d records, one at a time %d", len(batch.Records), next-1)
		}
	})
}
