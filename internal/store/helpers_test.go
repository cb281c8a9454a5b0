package store_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

const nMVs = 4

func partName(i int) string { return "p" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) }

func sampleMV(db, id int64, parts int) *mvstate.MV {
	m := &mvstate.MV{DBID: db, MVID: id, DBName: "sales", MVName: "mv" + strconv.FormatInt(id, 10), Active: true, LastRefreshTime: 1000,
		BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: db, TableID: 20001, DBName: "sales", TableName: "orders"}},
		VersionMap: mvstate.VersionMap{20001: {}}}
	for i := 0; i < parts; i++ {
		m.VersionMap[20001][partName(i)] = mvstate.NewBasePartitionInfo(int64(30000+i), 5, 1000)
	}
	return m
}

// record returns the deterministic journal record i (1-based): records
// 1..nMVs create the MVs; then each record repairs two partitions of one
// MV, every 25th replaces an MV wholesale and every 40th drops one (which a
// later repair's MV re-creates).
func record(i int) *editlog.Record {
	j := int64(i)
	key := mvstate.MVKey{DBID: 1, MVID: int64(i%nMVs + 1)}
	ref := editlog.MVRef{DBID: key.DBID, MVID: key.MVID, MVName: "mv" + strconv.FormatInt(key.MVID, 10)}
	switch {
	case i <= nMVs:
		m := sampleMV(1, int64(i), 40)
		return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpUpserted, At: j, MV: editlog.MVRef{DBID: 1, MVID: int64(i), MVName: m.MVName}, Definition: m}
	case i%40 == 0:
		return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpDropped, At: j, MV: ref}
	case i%25 == 0 || i%40 == 1:
		m := sampleMV(1, key.MVID, 20+i%30)
		m.LastRefreshTime = j
		return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpUpserted, At: j, MV: ref, Definition: m}
	}
	bt := mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: 20001, TableName: "orders"}
	return &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpVersionRepaired, At: j, MV: ref, BaseTable: &bt,
		Partitions: mvstate.PartitionMap{
			partName(i % 20):         mvstate.NewBasePartitionInfo(int64(i), j, j),
			partName((i*7 + 3) % 20): mvstate.NewBasePartitionInfo(int64(i+1), j, j+1),
		},
		MVLastRefreshTime: j,
		Causes:            []editlog.Cause{{EventID: "e" + strconv.Itoa(i), Topic: "in", Partition: i % 3, Offset: j}}}
}

// batchOf returns the writer-style batch b (1-based) of the deterministic
// history: records firstOf(b)..firstOf(b+1)-1, an input offset, a dead
// letter every 7th batch, and the acknowledgement of the outbox through
// the previous batch's messages.
func firstOf(b int) int { return 1 + (b-1)*3 }

func batchOf(b int, ack uint64) store.Batch {
	var recs []*editlog.Record
	for i := firstOf(b); i < firstOf(b+1); i++ {
		recs = append(recs, record(i))
	}
	out := store.Batch{Records: recs, Mode: editlog.Strict, PublishTo: "edit-log", Ack: ack,
		Offsets: []mvstate.OffsetChange{{TopicPartition: mvstate.TopicPartition{Topic: "in", Partition: b % 3}, Next: int64(b)}}}
	if b%7 == 0 {
		out.DeadLetters = []store.OutboxMessage{{Topic: "dlq", Key: []byte("k" + strconv.Itoa(b)), Value: []byte{},
			Headers: []store.Header{{Key: "dlq-reason", Value: []byte("invalid_json")}}}}
	}
	return out
}

func exportOf(t testing.TB, st *mvstate.State) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// reference returns the export of a memory store fed batches 1..n.
func reference(t testing.TB, n int) (string, map[mvstate.TopicPartition]int64) {
	t.Helper()
	m := store.NewMemory()
	for b := 1; b <= n; b++ {
		if _, err := m.Commit(context.Background(), batchOf(b, 0)); err != nil {
			t.Fatalf("reference batch %d: %v", b, err)
		}
	}
	return exportOf(t, m.State()), m.State().Offsets()
}

func openDir(t testing.TB, path string, opt store.Options) (*store.Dir, *store.Store) {
	t.Helper()
	d, err := store.LockDir(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Open(context.Background())
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	return d, s
}

func closeAll(t testing.TB, d *store.Dir, s *store.Store) {
	t.Helper()
	if err := s.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
