package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Benchmarks of the repair engine (figures in docs/benchmarks.md, "Repair
// engine"). Run with:
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./internal/enginetest/

// The docs/design.md §4 sample names, so that records have their real size.
const (
	benchDB      = 10001
	benchTable   = 20001
	benchTime    = int64(1732300000000)
	benchEventID = "COMPACTION_10001-20001-30001-1732400000000"
)

var benchMVKey = mvstate.MVKey{DBID: benchDB, MVID: 50001}

func benchPartName(i int) string { return fmt.Sprintf("p%06d", i) }
func benchPartID(i int) int64    { return 30000000 + int64(i) }

// benchMV is an MV recording n partitions of one native table, all at
// version 5.
func benchMV(key mvstate.MVKey, table int64, n int) *mvstate.MV {
	parts := make(mvstate.PartitionMap, n)
	for i := range n {
		parts[benchPartName(i)] = mvstate.NewBasePartitionInfo(benchPartID(i), 5, benchTime)
	}
	return &mvstate.MV{Active: true, DBID: key.DBID, DBName: "sales", MVID: key.MVID,
		MVName: fmt.Sprintf("mv_orders_daily_%d", key.MVID), LastRefreshTime: benchTime,
		BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: key.DBID, TableID: table,
			DBName: "sales", TableName: "orders"}},
		VersionMap: mvstate.VersionMap{table: parts}, ExternalVersionMap: mvstate.ExternalVersionMap{}}
}

// putMVs commits an mv_upserted record of each MV, at the next journal ids.
func putMVs(b testing.TB, s *store.Store, mvs ...*mvstate.MV) {
	b.Helper()
	for _, m := range mvs {
		r := &editlog.Record{JournalID: s.State().JournalID() + 1, Epoch: 1, Op: editlog.OpUpserted, At: benchTime,
			MV: editlog.MVRef{DBID: m.DBID, MVID: m.MVID}, Definition: m}
		if _, err := s.Commit(context.Background(), store.Batch{Records: []*editlog.Record{r}, Mode: editlog.Strict}); err != nil {
			b.Fatal(err)
		}
	}
}

// repairEvent is a one-partition compaction event, the docs/design.md §4 sample.
func repairEvent(table int64, i int, last int64) *events.PartitionVersionChanged {
	lvt := benchTime
	return &events.PartitionVersionChanged{EventID: benchEventID, Source: "compaction", DBID: benchDB, TableID: table,
		TableName: "orders", TableType: "cloud_native", EmittedAt: 1732400000123,
		Partitions: []events.PartitionRepair{{PartitionID: benchPartID(i), PartitionName: benchPartName(i),
			LastVersion: last, NewVersion: last + 1, NewVersionTime: benchTime + last, LastVersionTime: &lvt}}}
}

// applyRecords is the state change of the live writer's commit
// (internal/pipeline/process.go, store.Commit) without its log entry:
// editlog.ApplyBatch of every record (each must apply) and the input offset,
// in one mvstate.State.Commit.
func applyRecords(st *mvstate.State, recs []*editlog.Record, offset int64) error {
	keys, structural := editlog.Touches(recs)
	return st.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		if _, err := editlog.ApplyBatch(tx, recs, editlog.Strict, nil); err != nil {
			return err
		}
		tx.SetOffset(topicInput, 0, offset+1)
		return nil
	}})
}

// commitRecords is the live writer's commit: the records (with their
// encodings) applied, queued in the outbox for the edit log, the outbox
// acknowledged through ack, and the input offset, in one store.Commit. It
// returns the outbox sequence of the last record queued.
func commitRecords(s *store.Store, recs []*editlog.Record, encoded [][]byte, offset int64, ack uint64) (uint64, error) {
	res, err := s.Commit(context.Background(), store.Batch{Records: recs, Encoded: encoded, Mode: editlog.Strict,
		PublishTo: topicEditLog, Ack: ack,
		Offsets: []mvstate.OffsetChange{{TopicPartition: mvstate.TopicPartition{Topic: topicInput, Partition: 0}, Next: offset + 1}}})
	if err != nil {
		return 0, err
	}
	if len(res.Applied) != len(recs) {
		return 0, fmt.Errorf("%d of %d records applied: %+v", len(res.Applied), len(recs), res.Counts)
	}
	if len(res.Outbox) == 0 {
		return ack, nil
	}
	return res.Outbox[len(res.Outbox)-1].Seq, nil
}

var benchSizes = []int{10, 10000, 100000}

// cpuTime is the process's CPU time (user + system, every thread: GC
// workers included). The machine is shared, so besides ns/op (wall time per
// op, which includes waiting for a CPU) the repair benchmarks report
// cpu-ns/op: CPU time actually spent per op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures CPU time over a benchmark loop; count each iteration.
type cpuMeter struct {
	start time.Duration
	n     int
}

func startCPU() *cpuMeter { return &cpuMeter{start: cpuTime()} }

func (m *cpuMeter) report(b *testing.B) {
	if m.n > 0 {
		b.ReportMetric(float64(cpuTime()-m.start)/float64(m.n), "cpu-ns/op")
	}
}

// BenchmarkRepair_onePartition: decide (handler.Process on the state) and
// apply in memory (editlog.ApplyBatch and the input offset in one
// mvstate.State.Commit) one one-partition repair of an MV recording N
// partitions. Every iteration is a real repair: the event chains the
// partition's version v→v+1. editlog-bytes/op is the size of the record
// (editlog.AppendRecord, done once after the loop here;
// BenchmarkRepair_onePartitionEncoded includes it).
func BenchmarkRepair_onePartition(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) { benchRepair(b, n, false) })
	}
}

// BenchmarkRepair_onePartitionEncoded is the live writer's whole in-memory
// cost per one-partition repair: decided, the record encoded (once, for the
// log entry and the outbox), and committed to a memory store (store.Commit:
// applied, the log entry built, the record queued in the outbox, the
// previous one acknowledged) — everything but the disk.
func BenchmarkRepair_onePartitionEncoded(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) { benchRepair(b, n, true) })
	}
}

func benchRepair(b *testing.B, n int, encode bool) {
	s := store.NewMemory()
	st := s.State()
	putMVs(b, s, benchMV(benchMVKey, benchTable, n))
	ev := repairEvent(benchTable, n/2, 5)
	in := []handler.Input{{Event: ev, Source: editlog.Cause{EventID: benchEventID, Topic: topicInput, Partition: 0, Offset: 0}}}
	var last *editlog.Record
	var ack uint64
	size := 0
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		cpu.n++
		res := handler.Process(st, in, handler.Options{NextJournalID: st.JournalID() + 1, Epoch: 1, Now: benchTime})
		if len(res.Records) != 1 {
			b.Fatalf("%d records: %+v", len(res.Records), res.Outcomes)
		}
		last = res.Records[0]
		if encode {
			enc := editlog.AppendRecord(nil, last)
			size = len(enc)
			var err error
			if ack, err = commitRecords(s, res.Records, [][]byte{enc}, in[0].Source.Offset, ack); err != nil {
				b.Fatal(err)
			}
		} else if err := applyRecords(st, res.Records, in[0].Source.Offset); err != nil {
			b.Fatal(err)
		}
		// The next link of the chain, at the next offset.
		p := &ev.Partitions[0]
		p.LastVersion, p.NewVersion, p.NewVersionTime = p.NewVersion, p.NewVersion+1, p.NewVersionTime+1
		in[0].Source.Offset++
	}
	cpu.report(b)
	if !encode {
		size = len(editlog.AppendRecord(nil, last))
	}
	b.ReportMetric(float64(size), "editlog-bytes/op")
	if got := st.Get(benchMVKey).VersionMap[benchTable][benchPartName(n/2)].Version; got != ev.Partitions[0].LastVersion {
		b.Fatalf("partition at version %d, want %d", got, ev.Partitions[0].LastVersion)
	}
}

// BenchmarkRepairPhases splits BenchmarkRepair_onePartition (no encoding):
// decide is handler.Process alone (the decision is not applied, so every
// iteration decides the same repair); apply is applyRecords alone (the same
// one-partition record re-applied under the next journal id, its
// last_refresh_time raised each time like a real repair's); encode is
// editlog.Encode of that record and marshaljson Record.MarshalJSON (same
// bytes).
func BenchmarkRepairPhases(b *testing.B) {
	for _, n := range []int{10, 100000} {
		setup := func(b *testing.B) (*mvstate.State, []handler.Input, *editlog.Record) {
			s := store.NewMemory()
			putMVs(b, s, benchMV(benchMVKey, benchTable, n))
			st := s.State()
			in := []handler.Input{{Event: repairEvent(benchTable, n/2, 5),
				Source: editlog.Cause{EventID: benchEventID, Topic: topicInput}}}
			rec := handler.Process(st, in, handler.Options{NextJournalID: st.JournalID() + 1, Epoch: 1, Now: benchTime}).Records[0]
			return st, in, rec
		}
		b.Run(fmt.Sprintf("decide/partitions=%d", n), func(b *testing.B) {
			s, in, _ := setup(b)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				if res := handler.Process(s, in, handler.Options{NextJournalID: s.JournalID() + 1, Epoch: 1, Now: benchTime}); len(res.Records) != 1 {
					b.Fatalf("%d records", len(res.Records))
				}
			}
			cpu.report(b)
		})
		b.Run(fmt.Sprintf("apply/partitions=%d", n), func(b *testing.B) {
			s, _, rec := setup(b)
			recs := []*editlog.Record{rec}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				rec.JournalID = s.JournalID() + 1
				rec.MVLastRefreshTime++
				if err := applyRecords(s, recs, int64(cpu.n)); err != nil {
					b.Fatal(err)
				}
				cpu.n++
			}
			cpu.report(b)
		})
		b.Run(fmt.Sprintf("encode/partitions=%d", n), func(b *testing.B) {
			_, _, rec := setup(b)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				if _, err := editlog.Encode(rec); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
		// Record.MarshalJSON: the same bytes as editlog.AppendRecord (what the
		// writer calls), without json.Marshal's second validate-and-compact
		// pass.
		b.Run(fmt.Sprintf("marshaljson/partitions=%d", n), func(b *testing.B) {
			_, _, rec := setup(b)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				if _, err := rec.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkRepair_starRocksBaseline is what StarRocks journals per repair
// (reference/starrocks-mv-repair.md §1.7, §7): the same decision and map
// update, then the MV's WHOLE refresh state as the record (here json.Marshal
// of the whole MV, our canonical encoding, standing in for the Gson
// ChangeMaterializedViewRefreshSchemeLog). It leaves out what StarRocks adds on
// top (copying the context, followers decoding and replacing it whole).
func BenchmarkRepair_starRocksBaseline(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			m := benchMV(benchMVKey, benchTable, n)
			ev := repairEvent(benchTable, n/2, 5)
			size := 0
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				p := &ev.Partitions[0]
				parts := m.VersionMap[ev.TableID]
				cur, ok := parts[p.PartitionName]
				if !ok || cur.ID != p.PartitionID || cur.Version != p.LastVersion || *p.LastVersionTime > cur.LastRefreshTime {
					b.Fatalf("not a repair: %+v vs %+v", cur, p)
				}
				parts[p.PartitionName] = mvstate.NewBasePartitionInfo(p.PartitionID, p.NewVersion, p.NewVersionTime)
				m.LastRefreshTime = max(m.LastRefreshTime, p.NewVersionTime)
				rec, err := json.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				size = len(rec)
				p.LastVersion, p.NewVersion, p.NewVersionTime = p.NewVersion, p.NewVersion+1, p.NewVersionTime+1
			}
			cpu.report(b)
			b.ReportMetric(float64(size), "editlog-bytes/op")
		})
	}
}

// BenchmarkCommit_1000Repairs: one durable commit (the store's log on the
// local disk: one append and one fdatasync) of 1,000 one-partition repairs
// spread over 4 MVs of 10,000 partitions each, with their edit-log records
// queued in the outbox, the previous batch's outbox acknowledged, and the
// input offset, as the live writer commits them.
//
//   - records=1000: 1,000 separate mv_version_repaired records (what 1,000
//     repairs decided in 1,000 batches would journal), applied in one commit.
//     Decided and encoded outside the timer: ns/op is the commit alone.
//   - batched: the 1,000 events decided as one batch (handler.Process groups
//     them into one record per MV and table), encoded and committed: the
//     writer's whole cost per batch of 1,000 compaction events.
func BenchmarkCommit_1000Repairs(b *testing.B) {
	const nMVs, nParts, nRepairs = 4, 10000, 1000
	for _, batched := range []bool{false, true} {
		name := "records=1000"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			d, err := store.LockDir(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			s, err := d.Open(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx, false)
			st := s.State()
			var mvs []*mvstate.MV
			for i := range nMVs {
				mvs = append(mvs, benchMV(mvstate.MVKey{DBID: benchDB, MVID: 60001 + int64(i)}, benchTable+int64(i), nParts))
			}
			putMVs(b, s, mvs...)
			version := make([][]int64, nMVs)
			for i := range version {
				version[i] = make([]int64, nParts)
				for j := range version[i] {
					version[i][j] = 5
				}
			}
			var offset int64
			round := 0
			// inputs returns the next 1,000 repairs: 250 per MV, at
			// partitions not repaired in the previous rounds.
			inputs := func() []handler.Input {
				in := make([]handler.Input, nRepairs)
				for j := range in {
					mv, part := j%nMVs, (round*nRepairs/nMVs+j/nMVs)%nParts
					ev := repairEvent(benchTable+int64(mv), part, version[mv][part])
					version[mv][part]++
					in[j] = handler.Input{Event: ev, Source: editlog.Cause{EventID: benchEventID, Topic: topicInput, Offset: offset}}
					offset++
				}
				round++
				return in
			}
			nRecords, nBytes := 0, 0
			var acked uint64
			b.ReportAllocs()
			encodeAll := func(recs []*editlog.Record) [][]byte {
				out := make([][]byte, len(recs))
				nRecords, nBytes = len(recs), 0
				for i, r := range recs {
					out[i] = editlog.AppendRecord(nil, r)
					nBytes += len(out[i])
				}
				return out
			}
			for b.Loop() {
				var recs []*editlog.Record
				var encoded [][]byte
				if batched {
					recs = handler.Process(st, inputs(), handler.Options{NextJournalID: st.JournalID() + 1, Epoch: 1, Now: benchTime}).Records
					encoded = encodeAll(recs)
				} else {
					b.StopTimer()
					for _, in := range inputs() {
						res := handler.Process(st, []handler.Input{in}, handler.Options{
							NextJournalID: st.JournalID() + int64(len(recs)) + 1, Epoch: 1, Now: benchTime})
						recs = append(recs, res.Records...)
					}
					encoded = encodeAll(recs)
					b.StartTimer()
				}
				// The previous batch's outbox counts as published: this
				// commit acknowledges it, as the writer's next commit does.
				if acked, err = commitRecords(s, recs, encoded, offset-1, acked); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(nRecords), "records/op")
			b.ReportMetric(float64(nBytes), "editlog-bytes/op")
		})
	}
}

// benchStores caches the large state dirs BenchmarkOpen builds (once per
// process, not per -count run); TestMain removes them.
var benchStores struct {
	sync.Mutex
	root string
	dirs map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchStores.root != "" {
		os.RemoveAll(benchStores.root)
	}
	os.Exit(code)
}

// benchStateDir returns a state dir whose (closed) store holds mvs MVs of
// perMV native entries each: in a snapshot (a clean shutdown's final
// snapshot) or, without one, in the log alone (a crash before any snapshot).
func benchStateDir(b *testing.B, mvs, perMV int, snapshot bool) string {
	benchStores.Lock()
	defer benchStores.Unlock()
	name := fmt.Sprintf("entries-%d-snapshot-%t", mvs*perMV, snapshot)
	if d, ok := benchStores.dirs[name]; ok {
		return d
	}
	if benchStores.root == "" {
		root, err := os.MkdirTemp("", "enginetest-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchStores.root, benchStores.dirs = root, map[string]string{}
	}
	ctx := context.Background()
	dir := filepath.Join(benchStores.root, name)
	d, err := store.LockDir(dir, store.Options{NoSync: true, SnapshotEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s, err := d.Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range mvs {
		putMVs(b, s, benchMV(mvstate.MVKey{DBID: benchDB, MVID: 70001 + int64(i)}, benchTable+int64(i%10), perMV))
	}
	if err := s.Close(ctx, snapshot); err != nil {
		b.Fatal(err)
	}
	benchStores.dirs[name] = dir
	return dir
}

// BenchmarkOpen_1MEntries: reopen a store of 1,000,000 native partition
// entries (100 MVs of 10,000), which is what a restart costs before the
// writer can consume: the state dir locked, the whole state loaded into
// memory with its indexes, from the snapshot a clean shutdown writes
// (from=snapshot) or by replaying the log of a store that never took one
// (from=log), and the log opened for appending.
func BenchmarkOpen_1MEntries(b *testing.B) { benchOpen(b, 100, 10000) }

// BenchmarkOpen_200kEntries is the same with 200,000 entries (100 MVs of
// 2,000), to show the cost is linear in the entries.
func BenchmarkOpen_200kEntries(b *testing.B) { benchOpen(b, 100, 2000) }

func benchOpen(b *testing.B, mvs, perMV int) {
	for _, snapshot := range []bool{true, false} {
		from := "log"
		if snapshot {
			from = "snapshot"
		}
		b.Run("from="+from, func(b *testing.B) {
			dir := benchStateDir(b, mvs, perMV, snapshot)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d, err := store.LockDir(dir, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				s, err := d.Open(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n := s.State().Len(); n != mvs {
					b.Fatalf("%d mvs", n)
				}
				if got := s.Recovery().Snapshot != ""; got != snapshot {
					b.Fatalf("loaded a snapshot: %t, want %t", got, snapshot)
				}
				s.Close(ctx, false)
				d.Close()
			}
			var size int64
			filepath.WalkDir(filepath.Join(dir, "store"), func(_ string, de fs.DirEntry, err error) error {
				if err == nil && !de.IsDir() {
					if fi, err := de.Info(); err == nil {
						size += fi.Size()
					}
				}
				return nil
			})
			b.ReportMetric(float64(size)/(1<<20), "store-MiB")
			b.ReportMetric(float64(mvs*perMV), "entries")
		})
	}
}
