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

func export(t *testing.T, s *mvstate.State) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func commit(t *testing.T, s *mvstate.State, b mvstate.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// put upserts m as journal record jid.
func put(t *testing.T, s *mvstate.State, m *mvstate.MV, jid int64) {
	t.Helper()
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.BeginRecord(jid)
			tx.SetJournal(jid, 1)
			return tx.PutMV(m)
		}})
}

// repair moves partition name of m's table 20001 to version v as record jid.
func repair(t *testing.T, s *mvstate.State, key mvstate.MVKey, name string, v, jid int64) {
	t.Helper()
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{key}, Apply: func(tx *mvstate.Tx) error {
		tx.BeginRecord(jid)
		tx.SetJournal(jid, 1)
		return tx.SetPartitions(key, 20001, mvstate.PartitionMap{name: mvstate.NewBasePartitionInfo(1, v, v)})
	}})
}

func TestState_failedPersistUndoesEveryChange(t *testing.T) {
	s := mvstate.NewState()
	m := sampleMV(1, 2, 10)
	put(t, s, m, 1)
	before := export(t, s)
	other := sampleMV(1, 3, 5)
	err := s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key(), other.Key()}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.BeginRecord(2)
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
			if err := tx.DeleteMV(m.Key()); err != nil {
				return err
			}
			tx.SetOffset("in", 0, 5)
			return nil
		},
		Persist: func(*mvstate.Tx) error { return errors.New("disk on fire") }})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("commit error = %v", err)
	}
	if got := export(t, s); got != before {
		t.Fatalf("memory changed by a failed commit:\n%s\nwant\n%s", got, before)
	}
	if s.Len() != 1 || len(s.RelatedMVs(20001)) != 1 || s.AppliedOffset("in", 0) != -1 || s.JournalID() != 1 ||
		s.MVJournalID(m.Key()) != 1 || len(s.Dropped(0)) != 0 {
		t.Fatalf("indexes or meta changed by a failed commit")
	}
}

func TestState_persistSeesTheBatchAndRunsUnderItsLocks(t *testing.T) {
	s := mvstate.NewState()
	m := sampleMV(1, 2, 1)
	put(t, s, m, 1)
	var seen []mvstate.OffsetChange
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Apply: func(tx *mvstate.Tx) error {
		tx.SetOffset("in", 1, 7)
		tx.SetOffset("in", 1, 3) // backwards: ignored
		tx.ResetOffsets("cat", map[int]int64{0: 0})
		return tx.SetLastRefreshTime(m.Key(), 5)
	}, Persist: func(tx *mvstate.Tx) error {
		seen = append(seen, tx.OffsetChanges()...)
		if got := tx.MV(m.Key()).LastRefreshTime; got != 5 {
			t.Errorf("Persist sees last_refresh_time %d, want the batch's 5", got)
		}
		return nil
	}})
	want := []mvstate.OffsetChange{{TopicPartition: mvstate.TopicPartition{Topic: "in", Partition: 1}, Next: 7},
		{TopicPartition: mvstate.TopicPartition{Topic: "cat", Partition: 0}, Next: 0, Reset: true}}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("offset changes = %+v, want %+v", seen, want)
	}
}

func TestState_changeOutsideDeclaredSetIsRefused(t *testing.T) {
	s := mvstate.NewState()
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

func TestState_putMVKeepsNoReferenceToCallerMaps(t *testing.T) {
	s := mvstate.NewState()
	m := sampleMV(1, 2, 3)
	put(t, s, m, 1)
	before := export(t, s)
	m.VersionMap[20001]["pa"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	m.BaseTables[0].TableID = 777
	if export(t, s) != before {
		t.Fatal("mutating the caller's MV changed the state")
	}
	got := s.Get(m.Key())
	got.VersionMap[20001]["pb"] = mvstate.NewBasePartitionInfo(1, 1, 1)
	if export(t, s) != before {
		t.Fatal("mutating a Get copy changed the state")
	}
}

func TestState_offsetsOnlyMoveForwardUnlessReset(t *testing.T) {
	s := mvstate.NewState()
	c := func(fn func(tx *mvstate.Tx)) {
		commit(t, s, mvstate.Batch{Apply: func(tx *mvstate.Tx) error { fn(tx); return nil }})
	}
	c(func(tx *mvstate.Tx) { tx.SetOffset("in", 0, 10) })
	c(func(tx *mvstate.Tx) { tx.SetOffset("in", 0, 4) })
	if got := s.AppliedOffset("in", 0); got != 10 {
		t.Fatalf("offset moved backwards to %d", got)
	}
	c(func(tx *mvstate.Tx) { tx.ResetOffsets("in", map[int]int64{0: 0}) })
	if got := s.AppliedOffset("in", 0); got != 0 {
		t.Fatalf("reset offset = %d, want 0", got)
	}
}

func TestState_remembersWhichRecordChangedEachMVAndWhichDroppedIt(t *testing.T) {
	s := mvstate.NewState()
	a, b := sampleMV(1, 2, 2), sampleMV(1, 3, 2)
	put(t, s, a, 1)
	put(t, s, b, 2)
	repair(t, s, a.Key(), "pa", 6, 3)
	if got := s.MVJournalID(a.Key()); got != 3 {
		t.Fatalf("MV a last changed by record %d, want 3", got)
	}
	if got := s.MVJournalID(b.Key()); got != 2 {
		t.Fatalf("MV b last changed by record %d, want 2", got)
	}
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{b.Key()}, Structural: true, Apply: func(tx *mvstate.Tx) error {
		tx.BeginRecord(4)
		tx.SetJournal(4, 1)
		return tx.DeleteMV(b.Key())
	}})
	if got := s.Dropped(3); got[b.Key()] != 4 || len(got) != 1 {
		t.Fatalf("Dropped(3) = %v, want b dropped by record 4", got)
	}
	if got := s.Dropped(4); len(got) != 0 {
		t.Fatalf("Dropped(4) = %v, want none", got)
	}
	put(t, s, b, 5) // re-created: no longer dropped
	if got := s.Dropped(0); len(got) != 0 {
		t.Fatalf("a re-created MV is still listed as dropped: %v", got)
	}
	s.PruneDropped(10)
}

func TestState_readersNeverSeeAHalfCommittedBatch(t *testing.T) {
	// One writer commits batches that move two partitions of one MV to the
	// same version; readers must always see them equal.
	s := mvstate.NewState()
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
				s.WithMV(m.Key(), func(mv *mvstate.MV, _ int64) {
					a, b := mv.VersionMap[20001]["pa"], mv.VersionMap[20001]["pb"]
					if a.Version != b.Version {
						t.Errorf("half-applied batch seen: %d vs %d", a.Version, b.Version)
					}
				})
			}
		}()
	}
	for v := int64(6); v < 300; v++ {
		commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Apply: func(tx *mvstate.Tx) error {
			if err := tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pa": mvstate.NewBasePartitionInfo(30000, v, v)}); err != nil {
				return err
			}
			return tx.SetPartitions(m.Key(), 20001, mvstate.PartitionMap{"pb": mvstate.NewBasePartitionInfo(30001, v, v)})
		}})
	}
	close(stop)
	wg.Wait()
}

func TestExport_isCanonical(t *testing.T) {
	a, b := mvstate.NewState(), mvstate.NewState()
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
	var one bytes.Buffer
	if err := a.ExportMVs(context.Background(), &one, []mvstate.MVKey{m2.Key(), {DBID: 9, MVID: 9}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(one.String(), `{"journal_id":2,"mvs":[`+"\n") || strings.Count(one.String(), `"mv_id":`) != 1 {
		t.Fatalf("ExportMVs of one known and one unknown MV = %.200s", one.String())
	}
}

func TestState_relatedMVsHandsOutSlicesThatLaterChangesLeaveAlone(t *testing.T) {
	s := mvstate.NewState()
	put(t, s, sampleMV(1, 30, 1), 1)
	put(t, s, sampleMV(1, 10, 1), 2)
	got := s.RelatedMVs(20001)
	if len(got) != 2 || got[0].MVID != 10 || got[1].MVID != 30 {
		t.Fatalf("RelatedMVs = %v, want MVs 10 and 30 ascending", got)
	}
	held := append([]mvstate.MVKey(nil), got...)
	put(t, s, sampleMV(1, 20, 1), 3) // inserted between them
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{{DBID: 1, MVID: 30}}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.BeginRecord(4)
			tx.SetJournal(4, 1)
			return tx.DeleteMV(mvstate.MVKey{DBID: 1, MVID: 30})
		}})
	for i := range held {
		if got[i] != held[i] {
			t.Fatalf("a slice handed out earlier changed: %v, was %v", got, held)
		}
	}
	now := s.RelatedMVs(20001)
	if len(now) != 2 || now[0].MVID != 10 || now[1].MVID != 20 {
		t.Fatalf("RelatedMVs after an upsert and a drop = %v, want MVs 10 and 20", now)
	}
	ext := s.MVsWithExternal(mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1"}.ExternalRef())
	if len(ext) != 2 {
		t.Fatalf("MVsWithExternal = %v, want 2 MVs", ext)
	}
}

func TestPutMV_reUpsertKeepsTheIndexAndAMoveOfTablesIsUndone(t *testing.T) {
	s := mvstate.NewState()
	m := sampleMV(1, 2, 3)
	put(t, s, m, 1)
	before := s.RelatedMVs(20001)
	again := m.Clone()
	again.MVName = "renamed"
	put(t, s, again, 2)
	if after := s.RelatedMVs(20001); len(after) != 1 || &after[0] != &before[0] {
		t.Fatal("a re-upsert with the same base tables rebuilt the table's index (or lost the MV from it)")
	}
	// Base tables that change move the MV in the index; a failed commit
	// moves it back.
	moved := again.Clone()
	moved.BaseTables = []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: 20002}}
	moved.VersionMap = mvstate.VersionMap{20002: {}}
	err := s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.BeginRecord(3)
			tx.SetJournal(3, 1)
			return tx.PutMV(moved)
		},
		Persist: func(*mvstate.Tx) error { return errors.New("disk on fire") }})
	if err == nil || len(s.RelatedMVs(20001)) != 1 || len(s.RelatedMVs(20002)) != 0 {
		t.Fatalf("after a failed move: %v, indexes %v / %v", err, s.RelatedMVs(20001), s.RelatedMVs(20002))
	}
	put(t, s, moved, 3)
	if len(s.RelatedMVs(20001)) != 0 || len(s.RelatedMVs(20002)) != 1 {
		t.Fatalf("after a move: indexes %v / %v", s.RelatedMVs(20001), s.RelatedMVs(20002))
	}
	// And a failed re-upsert with the same tables restores the old MV.
	renamed := moved.Clone()
	renamed.MVName = "again"
	_ = s.Commit(context.Background(), mvstate.Batch{Touched: []mvstate.MVKey{m.Key()}, Structural: true,
		Apply: func(tx *mvstate.Tx) error {
			tx.BeginRecord(4)
			tx.SetJournal(4, 1)
			return tx.PutMV(renamed)
		},
		Persist: func(*mvstate.Tx) error { return errors.New("disk on fire") }})
	if got := s.Get(m.Key()).MVName; got != "renamed" {
		t.Fatalf("a failed re-upsert left name %q", got)
	}
}
