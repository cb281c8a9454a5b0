package itest

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/mvrepair/mvrepair/internal/testkit"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	dbID = 10001
	t0   = int64(1732300000000)
)

func nativeTable(id int64) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: id, DBName: "sales",
		TableName: fmt.Sprintf("t%d", id)}
}

func partName(p int) string { return fmt.Sprintf("p%03d", p) }

func partID(table int64, p int) int64 { return table*1000 + int64(p) }

// encode returns the record of an event on topic.
func encode(t testing.TB, topic string, ev events.Event) kafkaio.Message {
	t.Helper()
	b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return kafkaio.Message{Topic: topic, Key: []byte(events.Key(ev)), Value: b}
}

func upsert(t testing.TB, topic string, m *mvstate.MV) kafkaio.Message {
	return encode(t, topic, &events.MVUpserted{EventID: fmt.Sprintf("upsert-%d-%d", m.DBID, m.MVID), MV: m})
}

// compaction is a partition_version_changed event of one native partition.
func compaction(table int64, p int, last, next, at int64) *events.PartitionVersionChanged {
	return &events.PartitionVersionChanged{
		EventID: fmt.Sprintf("COMPACTION_%d-%d-%d-%d", dbID, table, partID(table, p), next), Source: "compaction",
		DBID: dbID, TableID: table, TableName: fmt.Sprintf("t%d", table), TableType: "cloud_native",
		Partitions: []events.PartitionRepair{{PartitionID: partID(table, p), PartitionName: partName(p),
			LastVersion: last, NewVersion: next, NewVersionTime: at}},
		EmittedAt: at + 5,
	}
}

// workload is a catalog of MVs over native tables and a stream of compaction
// events chaining each partition's version v → v+1: losing one event leaves
// the partition behind for good (every later event then mismatches), so the
// final state shows it.
type workload struct {
	tables []int64
	parts  int
	mvs    []*mvstate.MV
	cur    map[int64][]int64 // table → partition → current version
	seq    int64
	rng    *mrand.Rand
}

// newWorkload builds nMVs MVs over nTables tables of nParts partitions; MV i
// reads tables i and i+1 (mod nTables), every partition at version 1.
func newWorkload(rng *mrand.Rand, nTables, nParts, nMVs int) *workload {
	w := &workload{parts: nParts, cur: map[int64][]int64{}, rng: rng}
	for i := range nTables {
		id := int64(20001 + i)
		w.tables = append(w.tables, id)
		w.cur[id] = slices.Repeat([]int64{1}, nParts)
	}
	for i := range nMVs {
		m := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: int64(50001 + i), MVName: fmt.Sprintf("mv_%d", i),
			Active: i%2 == 0, LastRefreshTime: t0, VersionMap: mvstate.VersionMap{}}
		for _, ti := range []int{i % nTables, (i + 1) % nTables} {
			table := w.tables[ti]
			if _, dup := m.VersionMap[table]; dup {
				continue
			}
			m.BaseTables = append(m.BaseTables, nativeTable(table))
			pm := mvstate.PartitionMap{}
			for p := range nParts {
				pm[partName(p)] = mvstate.NewBasePartitionInfo(partID(table, p), 1, t0)
			}
			m.VersionMap[table] = pm
		}
		w.mvs = append(w.mvs, m)
	}
	return w
}

func (w *workload) catalog(t testing.TB, topic string) []kafkaio.Message {
	out := make([]kafkaio.Message, len(w.mvs))
	for i, m := range w.mvs {
		out[i] = upsert(t, topic, m)
	}
	return out
}

// next returns the next compaction: a random table, one or two random
// partitions, each moved from its current version to the next.
func (w *workload) next() *events.PartitionVersionChanged {
	table := w.tables[w.rng.IntN(len(w.tables))]
	n := 1 + w.rng.IntN(2)
	ps := w.rng.Perm(w.parts)[:n]
	w.seq++
	at := t0 + 1000 + w.seq
	ev := &events.PartitionVersionChanged{EventID: fmt.Sprintf("COMPACTION_%d-%d-%d", dbID, table, w.seq),
		Source: "compaction", DBID: dbID, TableID: table, TableName: fmt.Sprintf("t%d", table), TableType: "cloud_native",
		EmittedAt: at + 5}
	for _, p := range ps {
		v := w.cur[table][p]
		w.cur[table][p] = v + 1
		ev.Partitions = append(ev.Partitions, events.PartitionRepair{PartitionID: partID(table, p), PartitionName: partName(p),
			LastVersion: v, NewVersion: v + 1, NewVersionTime: at})
	}
	return ev
}

// stream returns n input records; every badEvery-th one (if > 0) is not JSON
// (dead-lettered with invalid_json, keyed like a real table's events).
func (w *workload) stream(t testing.TB, topic string, n, badEvery int) []kafkaio.Message {
	out := make([]kafkaio.Message, 0, n)
	for i := 1; i <= n; i++ {
		if badEvery > 0 && i%badEvery == 0 {
			key := fmt.Sprintf("%d:%d", dbID, w.tables[w.rng.IntN(len(w.tables))])
			out = append(out, kafkaio.Message{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf(`{"kind":"partition_version_changed","bad":%d`, i))})
			continue
		}
		out = append(out, encode(t, topic, w.next()))
	}
	return out
}

// newRand returns a seeded generator (ITEST_SEED or a fresh seed), logged so
// a failing run can be reproduced.
func newRand(t testing.TB) *mrand.Rand { return testkit.Rand(t) }
