package handler

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// A small universe so that random batches collide often: two native tables,
// one Hive table under three identifiers, three MVs (and one unknown key).
var (
	propKeys   = []mvstate.MVKey{{DBID: 1, MVID: 1}, {DBID: 1, MVID: 2}, {DBID: 1, MVID: 3}}
	propTables = []int64{1, 2}
	propNames  = []string{"p1", "p2", "p3"}
	propIdents = []string{"i1", "i2", "i3"}
	propDTs    = []string{"d1", "d2", "d3"}
)

func propNative(id int64) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: id, DBName: "db", TableName: fmt.Sprint("t", id)}
}

func propHive(ident string) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "ev", TableIdentifier: ident}
}

func partID(name string) int64 { return 100 + int64(name[1]-'0') }

func drawTime(t *rapid.T, label string) int64 { return 10 * rapid.Int64Range(0, 8).Draw(t, label) }

func drawMV(t *rapid.T, k mvstate.MVKey) *mvstate.MV {
	m := &mvstate.MV{Active: rapid.Bool().Draw(t, "active"), DBID: k.DBID, DBName: "db", MVID: k.MVID,
		MVName: "mv" + k.String(), LastRefreshTime: drawTime(t, "lrt"),
		VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}}
	for _, tid := range propTables {
		if !rapid.Bool().Draw(t, "lists table") {
			continue
		}
		m.BaseTables = append(m.BaseTables, propNative(tid))
		if !rapid.Bool().Draw(t, "recorded table") {
			continue
		}
		parts := mvstate.PartitionMap{}
		for _, n := range propNames {
			if rapid.Bool().Draw(t, "recorded partition") {
				parts[n] = pi(partID(n), rapid.Int64Range(1, 4).Draw(t, "version"), drawTime(t, "entry lrt"))
			}
		}
		m.VersionMap[tid] = parts
	}
	if rapid.Bool().Draw(t, "hive") {
		bt := propHive(rapid.SampledFrom(propIdents).Draw(t, "ident"))
		m.BaseTables = append(m.BaseTables, bt)
		if rapid.Bool().Draw(t, "hive recorded") {
			parts := mvstate.PartitionMap{}
			for _, n := range propDTs {
				if rapid.Bool().Draw(t, "dt recorded") {
					at := drawTime(t, "dt time")
					parts[n] = extPI(at, at, at, rapid.Int64Range(1, 3).Draw(t, "files"))
				}
			}
			m.ExternalVersionMap[bt] = parts
		}
	}
	return m
}

func drawKey(t *rapid.T) mvstate.MVKey {
	return rapid.SampledFrom(append(slices.Clone(propKeys), mvstate.MVKey{DBID: 1, MVID: 9})).Draw(t, "key")
}

func drawEvent(t *rapid.T) events.Event {
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 0, 1, 2, 3, 4: // mostly repairs
		ev := &events.PartitionVersionChanged{EventID: "pvc", DBID: 1, TableID: rapid.Int64Range(1, 3).Draw(t, "table"),
			TableName: "t", TableType: rapid.SampledFrom([]string{"cloud_native", "olap", "cloud_native", "hive"}).Draw(t, "type")}
		for range rapid.IntRange(1, 3).Draw(t, "entries") {
			n := rapid.SampledFrom(propNames).Draw(t, "name")
			id := partID(n)
			if rapid.IntRange(0, 9).Draw(t, "wrong id") == 0 {
				id = 999
			}
			last := rapid.Int64Range(1, 4).Draw(t, "last")
			r := rep(id, n, last, last+rapid.Int64Range(1, 2).Draw(t, "step"), 10+drawTime(t, "new time"))
			if rapid.Bool().Draw(t, "has last time") {
				at := drawTime(t, "last time")
				r.LastVersionTime = &at
			}
			ev.Partitions = append(ev.Partitions, r)
		}
		return ev
	case 5:
		ev := &events.ExternalTableRecreated{EventID: "rec", Catalog: "hive", DBName: "ods", TableName: "ev",
			OldTableIdentifier: rapid.SampledFrom(propIdents).Draw(t, "old"),
			NewTableIdentifier: rapid.SampledFrom(propIdents).Draw(t, "new"),
			Partitions:         map[string]events.ExternalPartition{}}
		for _, n := range append(slices.Clone(propDTs), "d9") {
			if rapid.Bool().Draw(t, "in new table") {
				ev.Partitions[n] = events.ExternalPartition{ModifiedTime: drawTime(t, "modified")}
			}
			if rapid.IntRange(0, 3).Draw(t, "updated") == 0 {
				ev.UpdatedPartitions = append(ev.UpdatedPartitions, n)
			}
		}
		return ev
	case 6:
		return upserted(drawMV(t, drawKey(t)))
	case 7, 8:
		k := drawKey(t)
		ev := refreshed(k, drawTime(t, "refresh lrt"))
		for _, tid := range propTables {
			for _, n := range propNames {
				switch rapid.IntRange(0, 5).Draw(t, "refresh op") {
				case 0:
					if ev.VersionMap == nil {
						ev.VersionMap = mvstate.VersionMap{}
					}
					if ev.VersionMap[tid] == nil {
						ev.VersionMap[tid] = mvstate.PartitionMap{}
					}
					ev.VersionMap[tid][n] = pi(partID(n), rapid.Int64Range(1, 5).Draw(t, "version"), drawTime(t, "at"))
				case 1:
					if ev.Removed == nil {
						ev.Removed = map[int64][]string{}
					}
					ev.Removed[tid] = append(ev.Removed[tid], n)
				}
			}
		}
		if rapid.Bool().Draw(t, "refresh hive") {
			at := drawTime(t, "at")
			ev.ExternalVersionMap = mvstate.ExternalVersionMap{
				propHive(rapid.SampledFrom(propIdents).Draw(t, "ident")): {rapid.SampledFrom(propDTs).Draw(t, "dt"): extPI(at, at, at, 1)},
			}
		}
		return ev
	default:
		return dropped(drawKey(t))
	}
}

// Deciding a batch at once must end in the same state, with the same
// decisions per input, as deciding and applying its inputs one at a time:
// the overlay sees exactly what the applied records would show. And Process
// never mutates the View.
func TestProcess_batchEqualsOneAtATime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v0 := newView()
		for _, k := range propKeys {
			if rapid.IntRange(0, 3).Draw(t, "exists") > 0 {
				v0.mvs[k] = drawMV(t, k)
			}
		}
		n := rapid.IntRange(1, 12).Draw(t, "batch")
		in := make([]Input, n)
		for i := range in {
			in[i] = input(drawEvent(t), int64(i))
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
