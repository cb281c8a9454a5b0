package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/checkpoint"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// journal is the writer side's record of where its records went (the
// checkpoint.EditLog of a pipeline.Writer).
type journal struct {
	mu      sync.Mutex
	offsets map[int64]int64
	through int64
}

func (j *journal) PublishedThrough() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.through
}

func (j *journal) EditLogOffset(jid int64) (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	o, ok := j.offsets[jid]
	return o, ok
}

// history drives a random history of a writer: commits, checkpoints (some
// cut short), failovers with a zombie's late records, compaction and
// truncation, checking restores against the live state as it goes.
type history struct {
	t       *testing.T
	rng     *mrand.Rand
	ctx     context.Context
	live    *store.Store
	log     *testkit.MemTopic // the edit log, truncated below checkpoints
	full    *testkit.MemTopic // every edit-log record, never truncated (for full rebuilds)
	snaps   *testkit.MemTopic
	pub     *journal
	epoch   int64
	cw      *checkpoint.Writer
	mvs     int64 // MV ids are 1..mvs
	stats   map[string]int
	restore int
	// unsettled: a zombie's late records end the edit log, and the new
	// writer has not written yet. Until it does, the log says those records
	// are history (a restore applies them) and the live writer says they are
	// not: the first record of the new epoch settles it (followers that
	// applied them find the log forked and rebuild).
	unsettled bool
}

func newHistory(t *testing.T, seed uint64) *history {
	h := &history{t: t, rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ctx: context.Background(),
		live: store.NewMemory(), log: &testkit.MemTopic{Name: "log"}, full: &testkit.MemTopic{Name: "log"}, snaps: &testkit.MemTopic{Name: "snaps"},
		pub: &journal{offsets: map[int64]int64{}}, epoch: 1, mvs: 12, stats: map[string]int{}}
	h.cw = h.newCheckpointer()
	return h
}

// newCheckpointer is the checkpoint writer of the current epoch's writer,
// which starts from the latest checkpoint on the topic (as the service
// does).
func (h *history) newCheckpointer() *checkpoint.Writer {
	last, err := checkpoint.Latest(h.ctx, h.snaps.Source())
	if err != nil {
		h.t.Fatalf("latest checkpoint: %v", err)
	}
	return &checkpoint.Writer{State: h.live.State(), Pub: h.snaps, EditLog: h.pub, Topic: "snaps", Epoch: h.epoch,
		Truncate: h.log.Truncate, Log: zerolog.Nop(), Chunk: 1 + h.rng.IntN(4), Last: last}
}

// record returns a random record with journal id j that applies to the
// live state.
func (h *history) record(j int64) *editlog.Record {
	st := h.live.State()
	id := 1 + h.rng.Int64N(h.mvs)
	key := mvstate.MVKey{DBID: 1, MVID: id}
	ref := editlog.MVRef{DBID: 1, MVID: id}
	exists := st.Get(key) != nil
	switch r := h.rng.IntN(10); {
	case !exists || r == 0:
		m := &mvstate.MV{DBID: 1, MVID: id, DBName: "d", MVName: "mv" + strconv.FormatInt(id, 10), Active: h.rng.IntN(2) == 0,
			LastRefreshTime: j, VersionMap: mvstate.VersionMap{7: {}}}
		for p := range 1 + h.rng.IntN(6) {
			m.VersionMap[7]["p"+strconv.Itoa(p)] = mvstate.NewBasePartitionInfo(int64(p), j, j)
		}
		m.BaseTables = []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: 7, DBName: "d", TableName: "t"}}
		return &editlog.Record{JournalID: j, Epoch: h.epoch, Op: editlog.OpUpserted, At: j, MV: ref, Definition: m}
	case r == 1:
		return &editlog.Record{JournalID: j, Epoch: h.epoch, Op: editlog.OpDropped, At: j, MV: ref}
	default:
		p := "p" + strconv.Itoa(h.rng.IntN(6))
		bt := mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: 7, DBName: "d", TableName: "t"}
		return &editlog.Record{JournalID: j, Epoch: h.epoch, Op: editlog.OpVersionRepaired, At: j, MV: ref, BaseTable: &bt,
			Partitions: mvstate.PartitionMap{p: mvstate.NewBasePartitionInfo(9, j*10, j)}, MVLastRefreshTime: j}
	}
}

// commit commits a batch of records to the live store and publishes them.
func (h *history) commit() {
	n := 1 + h.rng.IntN(5)
	var recs []*editlog.Record
	j := h.live.State().JournalID()
	for i := range n {
		// Decide against the state as the records before it leave it.
		r := h.record(j + 1 + int64(i))
		if _, err := h.live.Commit(h.ctx, store.Batch{Records: []*editlog.Record{r}, Mode: editlog.Strict}); err != nil {
			h.t.Fatalf("live commit of %s: %v", r.Op, err)
		}
		recs = append(recs, r)
	}
	h.publish(recs)
	h.unsettled = false
	h.stats["records"] += n
}

func (h *history) publish(recs []*editlog.Record) {
	for _, r := range recs {
		b, err := editlog.Encode(r)
		if err != nil {
			h.t.Fatal(err)
		}
		m := []kafkaio.Message{{Topic: "log", Key: []byte(r.Key()), Value: b}}
		if err := h.log.Publish(h.ctx, m...); err != nil {
			h.t.Fatal(err)
		}
		h.full.Publish(h.ctx, kafkaio.Message{Topic: "log", Key: m[0].Key, Value: b})
		if r.Epoch == h.epoch {
			h.pub.mu.Lock()
			h.pub.offsets[r.JournalID] = m[0].Offset
			h.pub.through = max(h.pub.through, r.JournalID)
			h.pub.mu.Unlock()
		}
	}
}

// failover: a new epoch takes over. The old writer's last records reach
// the edit log either before the new writer's restore barrier (it applies
// them: they are history) or after it (a zombie's late records, which the
// new writer's first record supersedes).
func (h *history) failover() {
	if h.rng.IntN(2) == 0 {
		h.commit() // before the barrier
	}
	j := h.live.State().JournalID()
	var late []*editlog.Record
	for i := range h.rng.IntN(3) {
		late = append(late, &editlog.Record{JournalID: j + 1 + int64(i), Epoch: h.epoch, Op: editlog.OpDropped, At: 1,
			MV: editlog.MVRef{DBID: 1, MVID: 1 + h.rng.Int64N(h.mvs)}})
	}
	h.publish(late)
	h.unsettled = h.unsettled || len(late) > 0
	h.epoch++
	h.pub.mu.Lock()
	h.pub.offsets, h.pub.through = map[int64]int64{}, 0
	h.pub.mu.Unlock()
	h.cw = h.newCheckpointer()
	h.stats["failovers"]++
}

func (h *history) checkpoint() {
	if !h.cw.Due(0, 1, time.Now()) {
		return
	}
	killed := h.rng.IntN(4) == 0
	if killed {
		h.snaps.FailAfter = 1 + h.rng.IntN(5)
	}
	c, err := h.cw.Write(h.ctx)
	h.snaps.FailAfter = 0
	switch {
	case killed && errors.Is(err, testkit.ErrKilled):
		// The writer died in the middle: its successor takes over.
		h.stats["killed checkpoints"]++
		h.failover()
	case err != nil:
		h.t.Fatalf("checkpoint: %v", err)
	case c != nil:
		h.stats["checkpoints"]++
	}
}

// check restores from the topics into new stores and compares them with
// the live state: from the latest checkpoint and the tail, and from the
// full edit log.
func (h *history) check(when string) {
	h.t.Helper()
	if h.unsettled {
		return
	}
	want := exportOf(h.t, h.live.State())
	fromCP := store.NewMemory()
	if _, err := recovery.Restore(h.ctx, fromCP, h.snaps.Source(), h.log.Source(), recovery.Options{Chunk: 1 + h.rng.IntN(50)}); err != nil {
		h.t.Fatalf("%s: restore from the checkpoint: %v", when, err)
	}
	if got := exportOf(h.t, fromCP.State()); got != want {
		h.t.Fatalf("%s: restore from checkpoint + tail differs from the live state:\n%s", when, firstDiff(got, want))
	}
	full := store.NewMemory()
	if _, err := recovery.Rebuild(h.ctx, full, h.full.Source(), recovery.Options{}); err != nil {
		h.t.Fatalf("%s: full rebuild: %v", when, err)
	}
	if got := exportOf(h.t, full.State()); got != want {
		h.t.Fatalf("%s: full rebuild differs from the live state:\n%s", when, firstDiff(got, want))
	}
	h.restore++
}

func exportOf(t *testing.T, st *mvstate.State) string {
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func firstDiff(got, want string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			lo := max(0, i-200)
			return fmt.Sprintf("at byte %d:\n got ...%s\nwant ...%s", i, got[lo:min(len(got), i+200)], want[lo:min(len(want), i+200)])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// TestRestore_fromCheckpointEqualsFullRebuildEqualsLiveForRandomHistories
// is the equivalence of docs/design.md §5.9 as a property: for random
// histories with checkpoints at random points (some cut short by a
// writer's death), failovers with a zombie's late records, compaction of
// the snapshot topic (with and without its tombstones) and truncation of
// the edit log below checkpoints, a restore from the latest checkpoint
// and the tail exports byte-identically to a rebuild from the full edit
// log and to the live state.
func TestRestore_fromCheckpointEqualsFullRebuildEqualsLiveForRandomHistories(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	base := uint64(1)
	if s := os.Getenv("PROPERTY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PROPERTY_SEED: %v", err)
		}
		base, seeds = v, 1
	}
	total := map[string]int{}
	for i := range seeds {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			h := newHistory(t, seed)
			for step := range 300 {
				switch r := h.rng.IntN(100); {
				case r < 70:
					h.commit()
				case r < 82:
					h.checkpoint()
				case r < 86:
					h.failover()
				case r < 92:
					h.snaps.Compact(h.rng.IntN(2) == 0)
				default:
					h.check(fmt.Sprintf("step %d", step))
				}
			}
			h.commit()
			h.check("end")
			for k, v := range h.stats {
				total[k] += v
			}
			total["restores"] += h.restore
		})
	}
	t.Logf("over %d histories: %v", seeds, total)
	if total["checkpoints"] == 0 || total["killed checkpoints"] == 0 || total["failovers"] == 0 {
		t.Fatalf("the histories did not cover every event: %v", total)
	}
}
