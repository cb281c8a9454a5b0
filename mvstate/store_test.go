package mvstate_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mvrepair/mvrepair/mvstate"
)

func sampleMV(db, id int64, parts int) *mvstate.MV {
	m := &mvstate.MV{DBID: db, MVID: id, DBName: "sales", MVName: "mv", Active: true, LastRefreshTime: 1000,
		BaseTables: []mvstate.BaseTableInfo{
			{Catalog: mvstate.DefaultCatalog, DBID: db, TableID: 20001, DBName: "sales", TableName: "orders"},
			{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1"},
		},
		VersionMap: mvstate.VersionMap{20001: {}},
		ExternalVersionMap: mvstate.ExternalVersionMap{
			{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1"}: {
				"dt=1": {ID: -1, Version: 7, LastRefreshTime: 7, ExtLastFileModifiedTime: 7, FileNumber: 3}},
		},
	}
	for i := 0; i < parts; i++ {
		m.VersionMap[20001][partName(i)] = mvstate.NewBasePartitionInfo(int64(30000+i), 5, 1000)
	}
	return m
}

func partName(i int) string { return "p" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) }

func export(t *testing.T, s *mvstate.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func exportDurable(t *testing.T, s *mvstate.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.ExportDurable(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func put(t *testing.T, s *mvstate.Store, m *mvstate.MV, jid int64) {
	t.Helper()
	err := s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.SetJournal(jid, 1)
			return tx.PutMV(m)
		}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStore_reopenGivesLastCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := mvstate.Open(ctx, dir, mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMV(1, 2, 30)
	put(t, s, m, 1)
	err = s.Commit(ctx, mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Apply: func(tx *mvstate.Tx) error {
		tx.SetJournal(2, 1)
		if err := tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pa": mvstate.NewBasePartitionInfo(30000, 6, 2000)}); err != nil {
			return err
		}
		if err := tx.SetOffset("in", 3, 42); err != nil {
			return err
		}
		tx.AddOutbox(mvstate.OutboxMessage{Topic: "log", Key: []byte("1:2"), Value: []byte("{}")})
		return tx.SetLastRefreshTime(m.Key(), 2000)
	}})
	if err != nil {
		t.Fatal(err)
	}
	live := export(t, s)
	if d := exportDurable(t, s); d != live {
		t.Fatalf("durable export differs from memory:\n%s\n%s", d, live)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := mvstate.Open(ctx, dir, mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := export(t, s2); got != live {
		t.Fatalf("reopened state differs:\n%s\nwant\n%s", got, live)
	}
	if s2.JournalID() != 2 || s2.AppliedOffset("in", 3) != 42 || s2.AppliedOffset("in", 4) != -1 {
		t.Fatalf("meta not restored: journal %d offset %d", s2.JournalID(), s2.AppliedOffset("in", 3))
	}
	ob, err := s2.Outbox(ctx)
	if err != nil || len(ob) != 1 || string(ob[0].Key) != "1:2" || ob[0].Seq != 1 {
		t.Fatalf("outbox not restored: %+v %v", ob, err)
	}
	if got := s2.RelatedMVs(20001); len(got) != 1 || got[0] != m.Key() {
		t.Fatalf("native index not rebuilt: %v", got)
	}
	if got := s2.MVsWithExternal(mvstate.ExternalRef{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1"}); len(got) != 1 {
		t.Fatalf("external index not rebuilt: %v", got)
	}
}

func TestStore_failedCommitLeavesMemoryAndDiskUnchanged(t *testing.T) {
	ctx := context.Background()
	s, err := mvstate.Open(ctx, t.TempDir(), mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := sampleMV(1, 2, 10)
	put(t, s, m, 1)
	before := export(t, s)
	s.SetCommitHook(func() error { return errors.New("disk on fire") })
	other := sampleMV(1, 3, 5)
	err = s.Commit(ctx, mvstate.Batch{Touched: []mvstate.MVKey{m.Key(), other.Key()}, Structural: true, Apply: func(tx *mvstate.Tx) error {
		tx.SetJournal(2, 1)
		if err := tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pa": mvstate.NewBasePartitionInfo(30000, 9, 9), "new": mvstate.NewBasePartitionInfo(1, 1, 1)}); err != nil {
			return err
		}
		if err := tx.SetLastRefreshTime(m.Key(), 99999); err != nil {
			return err
		}
		if err := tx.ReplaceExternalTable(m.Key(), m.BaseTables[1], mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:2"}, nil); err != nil {
			return err
		}
		if err := tx.PutMV(other); err != nil {
			return err
		}
		return tx.SetOffset("in", 0, 5)
	}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("commit error = %v", err)
	}
	if got := export(t, s); got != before {
		t.Fatalf("memory changed by a failed commit:\n%s\nwant\n%s", got, before)
	}
	if got := exportDurable(t, s); got != before {
		t.Fatalf("disk changed by a failed commit")
	}
	if s.Len() != 1 || len(s.RelatedMVs(20001)) != 1 || s.AppliedOffset("in", 0) != -1 || s.JournalID() != 1 {
		t.Fatalf("indexes or meta changed by a failed commit")
	}
}

func TestStore_changeOutsideDeclaredSetIsRefused(t *testing.T) {
	s := mvstate.NewMemory()
	m := sampleMV(1, 2, 1)
	put(t, s, m, 1)
	err := s.Commit(context.Background(), mvstate.Batch{Apply: func(tx *mvstate.Tx) error {
		return tx.SetLastRefreshTime(m.Key(), 5)
	}})
	if !errors.Is(err, mvstate.ErrNotLocked) {
		t.Fatalf("want ErrNotLocked, got %v", err)
	}
	err = s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Apply: func(tx *mvstate.Tx) error {
		return tx.DeleteMV(m.Key())
	}})
	if !errors.Is(err, mvstate.ErrNotLocked) {
		t.Fatalf("structural change without Structural: want ErrNotLocked, got %v", err)
	}
}

func TestStore_putMVKeepsNoReferenceToCallerMaps(t *testing.T) {
	s := mvstate.NewMemory()
	m := sampleMV(1, 2, 3)
	put(t, s, m, 1)
	before := export(t, s)
	m.VersionMap[20001]["pa"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	m.BaseTables[0].TableID = 777
	if export(t, s) != before {
		t.Fatal("mutating the caller's MV changed the store")
	}
	got := s.Get(m.Key())
	got.VersionMap[20001]["pb"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	if export(t, s) != before {
		t.Fatal("mutating a Get copy changed the store")
	}
}

func TestStore_offsetsOnlyMoveForwardUnlessReset(t *testing.T) {
	s := mvstate.NewMemory()
	commit := func(fn func(tx *mvstate.Tx) error) {
		if err := s.Commit(context.Background(), mvstate.Batch{Apply: fn}); err != nil {
			t.Fatal(err)
		}
	}
	commit(func(tx *mvstate.Tx) error { return tx.SetOffset("in", 0, 10) })
	commit(func(tx *mvstate.Tx) error { return tx.SetOffset("in", 0, 4) })
	if got := s.AppliedOffset("in", 0); got != 10 {
		t.Fatalf("offset moved backwards to %d", got)
	}
	commit(func(tx *mvstate.Tx) error { return tx.ResetOffsets("in", map[int]int64{0: 0}) })
	if got := s.AppliedOffset("in", 0); got != 0 {
		t.Fatalf("reset offset = %d, want 0", got)
	}
}

func TestStore_ackedOutboxIsDeleted(t *testing.T) {
	ctx := context.Background()
	s, err := mvstate.Open(ctx, t.TempDir(), mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seqs []uint64
	if err := s.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error {
		for i := 0; i < 5; i++ {
			seqs = append(seqs, tx.AddOutbox(mvstate.OutboxMessage{Topic: "t", Value: []byte{byte(i)}}))
		}
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error { tx.AckOutbox(seqs[3]); return nil }}); err != nil {
		t.Fatal(err)
	}
	ob, err := s.Outbox(ctx)
	if err != nil || len(ob) != 1 || ob[0].Seq != seqs[4] {
		t.Fatalf("outbox after acknowledging through %d = %+v, %v", seqs[3], ob, err)
	}
}

func TestStore_secondOpenOfSameDirFailsWithErrLocked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := mvstate.Open(ctx, dir, mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = mvstate.Open(ctx, dir, mvstate.Options{LockTimeout: 50e6})
	if !errors.Is(err, mvstate.ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
}

func TestStore_readersNeverSeeAHalfCommittedBatch(t *testing.T) {
	// One writer commits batches that move two partitions of one MV to the
	// same version; readers must always see them equal.
	s := mvstate.NewMemory()
	m := sampleMV(1, 2, 2)
	put(t, s, m, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.WithMV(m.Key(), func(mv *mvstate.MV) {
					a, b := mv.VersionMap[20001]["pa"], mv.VersionMap[20001]["pb"]
					if a.Version != b.Version {
						t.Errorf("half-applied batch seen: %d vs %d", a.Version, b.Version)
					}
				})
			}
		}()
	}
	for v := int64(6); v < 300; v++ {
		err := s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Apply: func(tx *mvstate.Tx) error {
			if err := tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pa": mvstate.NewBasePartitionInfo(30000, v, v)}); err != nil {
				return err
			}
			return tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pb": mvstate.NewBasePartitionInfo(30001, v, v)})
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestExport_isCanonical(t *testing.T) {
	a, b := mvstate.NewMemory(), mvstate.NewMemory()
	m1, m2 := sampleMV(2, 1, 40), sampleMV(1, 9, 40)
	put(t, a, m1, 1)
	put(t, a, m2, 2)
	put(t, b, m2, 1)
	put(t, b, m1, 2)
	ea, eb := export(t, a), export(t, b)
	if ea != eb {
		t.Fatalf("equal states exported differently:\n%s\n%s", ea, eb)
	}
	if !strings.HasPrefix(ea, `{"journal_id":2,"mvs":[`+"\n"+`{"active":true,"base_tables":[`) {
		t.Fatalf("unexpected export prefix: %.120s", ea)
	}
	if strings.Index(ea, `"db_id":1,"db_name":"sales","external_version_map"`) > strings.Index(ea, `"db_id":2,"db_name"`) {
		t.Fatal("MVs are not sorted by (db_id, mv_id)")
	}
	assertSortedKeys(t, ea)
}
