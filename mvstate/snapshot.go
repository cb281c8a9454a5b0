package mvstate

import (
	"context"
	"errors"
	"maps"
	"math/bits"
	"sort"
	"sync"
)

// ErrTooManySnapshots is returned by Snapshot when 64 snapshots are open.
var ErrTooManySnapshots = errors.New("mvstate: too many open snapshots")

// ErrSnapshotClosed is returned by Snapshot.Each after Close.
var ErrSnapshotClosed = errors.New("mvstate: snapshot closed")

// Selection says which MVs a Snapshot holds.
type Selection struct {
	// ChangedAfter, when positive, selects only the MVs changed by a record
	// with a journal id above it, and the tombstones of MVs dropped by one
	// (an incremental checkpoint). Zero selects every MV and no tombstone.
	ChangedAfter int64
	// Keys, when not nil, limits the snapshot to these MVs (unknown keys
	// are left out).
	Keys []MVKey
}

// SnapMV is one MV of a snapshot: the MV as of the snapshot's journal id and
// the journal id of the last record that changed it, or a tombstone (MV is
// nil, JournalID is the drop's) for an MV dropped since ChangedAfter.
type SnapMV struct {
	Key       MVKey
	JournalID int64
	MV        *MV
}

// Snapshot is a consistent view of MVs as of one journal id, read while
// commits go on: copy on write. When a commit is about to change an MV the
// snapshot has not read yet, it first hands the snapshot a copy of the MV as
// it was; the snapshot reads every other MV in place, under its read lock.
// So a snapshot costs the writer one MV copy per MV it changes while the
// snapshot is open, and nothing else. Local snapshot files, checkpoints on
// the snapshot topic, `state export` and GET /v1/state all read the state
// through it.
type Snapshot struct {
	s   *State
	bit uint64

	// JournalID and Epoch are the journal position the snapshot reflects.
	JournalID, Epoch int64
	// Offsets are the applied input offsets at that position.
	Offsets map[TopicPartition]int64
	// MVs is the number of MVs in the state at that position (whatever the
	// selection).
	MVs int

	keys    []MVKey
	entries []*entry // parallel to keys; nil for a tombstone
	tombJID []int64  // parallel to keys; the drop's journal id for tombstones

	mu       sync.Mutex
	captured map[*entry]SnapMV // versions a commit saved before changing them
	closed   bool
}

// Snapshot opens a snapshot of the MVs sel selects, as of the last commit.
// It waits for a commit in flight. Close it when done (it costs the writer
// copies while it is open).
//
// Locks: commitMu → mu (read).
func (s *State) Snapshot(sel Selection) (*Snapshot, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	slot := -1
	for i, sn := range s.snaps {
		if sn == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		return nil, ErrTooManySnapshots
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	sn := &Snapshot{s: s, bit: 1 << uint(slot), captured: map[*entry]SnapMV{}}
	s.metaMu.RLock()
	sn.JournalID, sn.Epoch, sn.Offsets = s.journalID, s.epoch, maps.Clone(s.offsets)
	s.metaMu.RUnlock()
	sn.MVs = len(s.mvs)
	var only map[MVKey]bool
	if sel.Keys != nil {
		only = make(map[MVKey]bool, len(sel.Keys))
		for _, k := range sel.Keys {
			only[k] = true
		}
	}
	for k, e := range s.mvs {
		if (sel.ChangedAfter > 0 && e.jid <= sel.ChangedAfter) || (only != nil && !only[k]) {
			continue
		}
		sn.keys = append(sn.keys, k)
	}
	if sel.ChangedAfter > 0 {
		for k, j := range s.dropped {
			if j > sel.ChangedAfter {
				sn.keys = append(sn.keys, k)
			}
		}
	}
	sort.Slice(sn.keys, func(i, j int) bool { return sn.keys[i].Less(sn.keys[j]) })
	sn.entries = make([]*entry, len(sn.keys))
	sn.tombJID = make([]int64, len(sn.keys))
	for i, k := range sn.keys {
		if e := s.mvs[k]; e != nil {
			sn.entries[i] = e
			e.pending.Or(sn.bit)
		} else {
			sn.tombJID[i] = s.dropped[k]
		}
	}
	s.snaps[slot] = sn
	return sn, nil
}

// capture hands open snapshots whose bits are in p a copy of e's current
// version, before a commit changes it. The committer holds e's write lock.
func (s *State) capture(e *entry, p uint64) {
	v := SnapMV{Key: e.mv.Key(), JournalID: e.jid, MV: e.mv.Clone()}
	for q := p; q != 0; q &= q - 1 {
		if sn := s.snaps[bits.TrailingZeros64(q)]; sn != nil {
			sn.mu.Lock()
			sn.captured[e] = v
			sn.mu.Unlock()
		}
	}
	e.pending.And(^p)
}

// Len returns the number of MVs and tombstones in the snapshot.
func (sn *Snapshot) Len() int { return len(sn.keys) }

// Each calls fn for every MV and tombstone of the snapshot in key order,
// each as of the snapshot's journal id. fn must not keep or mutate v.MV.
// It may be called once. Locks: one entry.mu (read) at a time.
func (sn *Snapshot) Each(ctx context.Context, fn func(v SnapMV) error) error {
	for i, k := range sn.keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		sn.mu.Lock()
		closed := sn.closed
		sn.mu.Unlock()
		if closed {
			return ErrSnapshotClosed
		}
		e := sn.entries[i]
		if e == nil {
			if err := fn(SnapMV{Key: k, JournalID: sn.tombJID[i]}); err != nil {
				return err
			}
			continue
		}
		if err := sn.visit(e, fn); err != nil {
			return err
		}
	}
	return nil
}

// visit reads one entry: in place if no commit changed it since the
// snapshot began, else the copy the commit saved.
func (sn *Snapshot) visit(e *entry, fn func(SnapMV) error) error {
	e.mu.RLock()
	if e.pending.Load()&sn.bit != 0 {
		err := fn(SnapMV{Key: e.mv.Key(), JournalID: e.jid, MV: e.mv})
		e.pending.And(^sn.bit)
		e.mu.RUnlock()
		return err
	}
	e.mu.RUnlock()
	sn.mu.Lock()
	if sn.closed {
		sn.mu.Unlock()
		return ErrSnapshotClosed
	}
	v, ok := sn.captured[e]
	delete(sn.captured, e)
	sn.mu.Unlock()
	if !ok {
		return errors.New("mvstate: snapshot lost an MV version (bug)")
	}
	return fn(v)
}

// Close releases the snapshot: commits stop copying for it. Safe to call
// more than once. Locks: commitMu.
func (sn *Snapshot) Close() {
	s := sn.s
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.closed {
		return
	}
	sn.closed = true
	for _, e := range sn.entries {
		if e != nil {
			e.pending.And(^sn.bit)
		}
	}
	sn.captured = nil
	s.snaps[bits.TrailingZeros64(sn.bit)] = nil
}
