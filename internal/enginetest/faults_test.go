package enginetest

import (
	"context"
	"errors"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// upsertRecord is an mv_upserted record of a small MV.
func upsertRecord(jid int64, mvID int64) *editlog.Record {
	m := benchMV(mvstate.MVKey{DBID: benchDB, MVID: mvID}, benchTable, 3)
	return &editlog.Record{JournalID: jid, Epoch: 1, Op: editlog.OpUpserted, At: benchTime,
		MV: editlog.MVRef{DBID: m.DBID, MVID: m.MVID}, Definition: m}
}

// A commit whose fdatasync failed reported an error and was undone in
// memory: its entry must not be on disk either, for a reader beside the
// store (state export) or for the next open after a crash.
func TestStore_failedSyncLeavesNothingOnDisk(t *testing.T) {

	ctx := context.Background()
	stateDir := t.TempDir()
	var inject faults
	d, s := openStore(t, stateDir, store.Options{SnapshotEvery: -1, WrapFile: inject.wrap})
	defer func() { s.Close(ctx, false); d.Close() }()
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	live := export(t, s.State())
	inject.next.Store(failSync)
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(2, 2)}}); !store.IsInfra(err) {
		t.Fatalf("commit with a failing fdatasync: %v, want an infrastructure error", err)
	}
	if got := export(t, s.State()); got != live {
		t.Fatalf("the failed commit is in memory: %s", firstDiff(live, got))
	}
	if got := exportDisk(t, stateDir); got != live {
		t.Fatalf("the failed commit is on disk (what a reader beside the store, or the next open after a crash, loads): %s", firstDiff(live, got))
	}
}

// A commit whose fdatasync failed, then a snapshot that rotated the log but
// did not complete (a crash, a shutdown timeout, or here a cancelled
// context), then the retried commit at the same log sequence: reopening the
// store must give the state it held, with the retried commit, not the failed
// one.
func TestStore_failedSyncThenLogRotationReopensToTheCommittedState(t *testing.T) {

	ctx := context.Background()
	stateDir := t.TempDir()
	var inject faults
	d, s := openStore(t, stateDir, store.Options{SnapshotEvery: -1, WrapFile: inject.wrap})
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	inject.next.Store(failSync)
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(2, 2)}}); !store.IsInfra(err) {
		t.Fatalf("commit with a failing fdatasync: %v, want an infrastructure error", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Snapshot(cancelled); err == nil {
		t.Fatal("a snapshot with a cancelled context completed")
	}
	// The writer's next commit decides anew at the same journal id.
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(2, 3)}}); err != nil {
		t.Fatal(err)
	}
	live := export(t, s.State())
	if err := s.Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, s = openStore(t, stateDir, store.Options{})
	defer func() { s.Close(ctx, false); d.Close() }()
	if got := export(t, s.State()); got != live {
		t.Fatalf("reopened after a failed sync and a log rotation, the store holds the failed commit instead of the committed one: %s", firstDiff(live, got))
	}
}

// A store opened read-only beside a live one that takes snapshots (state
// export beside the service) loads the last committed state, or at worst
// fails with an error that says to try again: it never reports a healthy
// store as corrupt.
func TestOpenReadOnly_besideBackgroundSnapshotsNeverReportsCorruption(t *testing.T) {

	ctx := context.Background()
	stateDir := t.TempDir()
	d, s := openStore(t, stateDir, store.Options{NoSync: true, SnapshotEvery: 4 << 10})
	defer func() { s.Close(ctx, false); d.Close() }()
	if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := int64(2); j < 5000; j++ {
			if _, err := s.Commit(ctx, store.Batch{Records: []*editlog.Record{upsertRecord(j, 1+j%7)}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	opens, corrupt := 0, 0
	var first error
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		ro, err := store.OpenReadOnly(ctx, stateDir)
		opens++
		switch {
		case errors.Is(err, store.ErrCorrupt):
			corrupt++
			if first == nil {
				first = err
			}
		case err != nil:
			t.Fatal(err)
		default:
			_ = ro.State().Len()
		}
	}
	if corrupt > 0 {
		t.Fatalf("%d of %d read-only opens beside a store taking snapshots reported it corrupt; the first: %v", corrupt, opens, first)
	}
	t.Logf("%d read-only opens", opens)
}
