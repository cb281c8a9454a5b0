package mvstate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mvrepair/mvrepair/mvstate"
)

// snapshotDoc renders a snapshot's MVs and tombstones, one line each.
func snapshotDoc(t *testing.T, sn *mvstate.Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "journal %d\n", sn.JournalID)
	err := sn.Each(context.Background(), func(v mvstate.SnapMV) error {
		if v.MV == nil {
			fmt.Fprintf(&b, "%s dropped by %d\n", v.Key, v.JournalID)
			return nil
		}
		fmt.Fprintf(&b, "%s @%d %s\n", v.Key, v.JournalID, mvstate.AppendMV(nil, v.MV, mvstate.CompactEntries))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSnapshot_seesTheStateAsOfItsStartWhileCommitsGoOn(t *testing.T) {
	s := mvstate.NewState()
	a, b, c := sampleMV(1, 1, 3), sampleMV(1, 2, 3), sampleMV(1, 3, 3)
	put(t, s, a, 1)
	put(t, s, b, 2)
	put(t, s, c, 3)
	want := mvstate.NewState() // the same history, stopped at journal 3
	put(t, want, a, 1)
	put(t, want, b, 2)
	put(t, want, c, 3)
	ref, err := want.Snapshot(mvstate.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	sn, err := s.Snapshot(mvstate.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	// After the snapshot began: change a (read later), drop b, re-create c.
	repair(t, s, a.Key(), "pa", 9, 4)
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{b.Key(), c.Key()}, Structural: true, Apply: func(tx *mvstate.Tx) error {
		tx.BeginRecord(5)
		tx.SetJournal(5, 1)
		if err := tx.DeleteMV(b.Key()); err != nil {
			return err
		}
		return tx.DeleteMV(c.Key())
	}})
	put(t, s, sampleMV(1, 3, 1), 6)
	if got, want := snapshotDoc(t, sn), snapshotDoc(t, ref); got != want {
		t.Fatalf("snapshot taken at journal 3 reads\n%s\nwant\n%s", got, want)
	}
	if s.JournalID() != 6 {
		t.Fatalf("the state itself is at journal %d, want 6", s.JournalID())
	}
}

func TestSnapshot_changedAfterSelectsChangedMVsAndTombstones(t *testing.T) {
	s := mvstate.NewState()
	a, b, c := sampleMV(1, 1, 1), sampleMV(1, 2, 1), sampleMV(1, 3, 1)
	put(t, s, a, 1)
	put(t, s, b, 2)
	put(t, s, c, 3)
	repair(t, s, a.Key(), "pa", 9, 4)
	commit(t, s, mvstate.Batch{Touched: []mvstate.MVKey{b.Key()}, Structural: true, Apply: func(tx *mvstate.Tx) error {
		tx.BeginRecord(5)
		tx.SetJournal(5, 1)
		return tx.DeleteMV(b.Key())
	}})
	sn, err := s.Snapshot(mvstate.Selection{ChangedAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var got []string
	if err := sn.Each(context.Background(), func(v mvstate.SnapMV) error {
		got = append(got, fmt.Sprintf("%s@%d/%v", v.Key, v.JournalID, v.MV != nil))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "[1:1@4/true 1:2@5/false]"; fmt.Sprint(got) != want {
		t.Fatalf("changed after 3: %v, want %s", got, want)
	}
}

func TestSnapshot_concurrentCommitsNeverLeakIntoIt(t *testing.T) {
	// Many MVs; a writer keeps repairing while a snapshot is read; the
	// snapshot must equal an export taken with commits stopped at its start.
	s := mvstate.NewState()
	var keys []mvstate.MVKey
	for i := int64(1); i <= 50; i++ {
		m := sampleMV(1, i, 4)
		put(t, s, m, i)
		keys = append(keys, m.Key())
	}
	for round := 0; round < 20; round++ {
		before := export(t, s)
		sn, err := s.Snapshot(mvstate.Selection{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := s.JournalID()
			for i, k := range keys {
				j++
				repair(t, s, k, partName(i%4), j, j)
			}
		}()
		var got bytes.Buffer
		if err := mvstate.WriteExport(context.Background(), &got, sn); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		sn.Close()
		if got.String() != before {
			t.Fatalf("round %d: snapshot differs from the state at its start", round)
		}
	}
}

func TestSnapshot_closedSnapshotsStopCopyingAndSlotsAreReused(t *testing.T) {
	s := mvstate.NewState()
	m := sampleMV(1, 1, 1)
	put(t, s, m, 1)
	var open []*mvstate.Snapshot
	for i := 0; i < 64; i++ {
		sn, err := s.Snapshot(mvstate.Selection{})
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		open = append(open, sn)
	}
	if _, err := s.Snapshot(mvstate.Selection{}); !errors.Is(err, mvstate.ErrTooManySnapshots) {
		t.Fatalf("65th snapshot: %v, want ErrTooManySnapshots", err)
	}
	for _, sn := range open {
		sn.Close()
	}
	repair(t, s, m.Key(), "pa", 7, 2)
	if err := open[0].Each(context.Background(), func(mvstate.SnapMV) error { return nil }); !errors.Is(err, mvstate.ErrSnapshotClosed) {
		t.Fatalf("Each on a closed snapshot: %v", err)
	}
	sn, err := s.Snapshot(mvstate.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
}
