package mvstate

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// TopicPartition names an input partition whose applied offset is tracked.
type TopicPartition struct {
	Topic     string
	Partition int
}

// entry is one MV in memory with its lock. mv is replaced by PutMV and
// mutated in place by the other Tx methods, always under mu held for
// writing; jid is the journal id of the last record that changed the MV.
// pending holds one bit per open Snapshot that still needs the MV as it was
// when the snapshot began (see snapshot.go).
type entry struct {
	mu      sync.RWMutex
	mv      *MV
	jid     int64
	pending atomic.Uint64
}

// State is the in-memory MV state: every MV with its per-MV lock and the
// journal id of the last record that changed it, the indexes from base
// tables to related MVs, the MVs dropped recently (for checkpoint
// tombstones), and the meta values of the journal: last applied journal id
// and epoch, and the next input offset applied per partition.
//
// State does no I/O. Changes go through Commit, one batch at a time; a
// Batch's Persist function (the durable store's log append) runs with every
// lock of the batch held, and if it fails the batch is undone, so a reader
// never sees a change that was not made durable. Any number of goroutines
// may read. Lock order: see locks.go.
type State struct {
	commitMu sync.Mutex // see locks.go
	mu       sync.RWMutex

	mvs map[MVKey]*entry
	// byTable and byExternal list the MVs reading a table, sorted: a slice
	// handed to a reader is never written again (an index change replaces
	// it), so readers take it without a copy.
	byTable    map[int64][]MVKey
	byExternal map[ExternalRef][]MVKey
	// dropped maps an MV dropped by a record to that record's journal id,
	// until PruneDropped forgets it (once a checkpoint holds its tombstone).
	dropped map[MVKey]int64

	// metaMu guards the meta values below; a leaf lock (see locks.go).
	// Only Commit writes them, after the batch is durable.
	metaMu    sync.RWMutex
	journalID int64
	epoch     int64
	offsets   map[TopicPartition]int64

	tx    *Tx           // reused by every commit (commits are serialized by commitMu)
	snaps [64]*Snapshot // open snapshots by bit; changed under commitMu
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		mvs:        map[MVKey]*entry{},
		byTable:    map[int64][]MVKey{},
		byExternal: map[ExternalRef][]MVKey{},
		dropped:    map[MVKey]int64{},
		offsets:    map[TopicPartition]int64{},
	}
}

// ---- loading (before the state is shared) ----------------------------------

// LoadMV adds an MV (not copied: the state owns m from now on) with the
// journal id of the last record that changed it. Only for building a state
// before any other goroutine can see it (restoring a snapshot); it takes no
// lock. A second MV with the same key replaces the first.
func (s *State) LoadMV(m *MV, jid int64) {
	if m.VersionMap == nil {
		m.VersionMap = VersionMap{}
	}
	if m.ExternalVersionMap == nil {
		m.ExternalVersionMap = ExternalVersionMap{}
	}
	if m.BaseTables == nil {
		m.BaseTables = []BaseTableInfo{}
	}
	k := m.Key()
	if old := s.mvs[k]; old != nil {
		s.indexRemove(k, old.mv)
	}
	s.mvs[k] = &entry{mv: m, jid: jid}
	s.indexAddInPlace(k, m) // no reader yet: no copies (a bulk load stays linear)
	delete(s.dropped, k)
}

// LoadDropped records that MV key was dropped by record jid (see LoadMV).
func (s *State) LoadDropped(key MVKey, jid int64) {
	if _, live := s.mvs[key]; !live {
		s.dropped[key] = jid
	}
}

// LoadMeta sets the journal id, epoch and applied offsets (see LoadMV).
func (s *State) LoadMeta(journalID, epoch int64, offsets map[TopicPartition]int64) {
	s.journalID, s.epoch = journalID, epoch
	s.offsets = maps.Clone(offsets)
	if s.offsets == nil {
		s.offsets = map[TopicPartition]int64{}
	}
}

// ---- reads -----------------------------------------------------------------

// MV returns the live MV, or nil. The pointer is shared with the state:
// callers must not mutate it, and only the goroutine that commits may keep it
// across a commit (the handler, which decides between commits on that
// goroutine). Other readers use WithMV or Get.
func (s *State) MV(key MVKey) *MV {
	s.mu.RLock()
	e := s.mvs[key]
	s.mu.RUnlock()
	if e == nil {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.mv
}

// WithMV calls fn with the MV and the journal id of the last record that
// changed it, under the MV's read lock; fn must not keep or mutate the MV. It
// reports whether the MV exists. Locks: mu (read) → entry.mu (read).
func (s *State) WithMV(key MVKey, fn func(m *MV, jid int64)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.mvs[key]
	if e == nil {
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	fn(e.mv, e.jid)
	return true
}

// Get returns a deep copy of the MV, or nil.
func (s *State) Get(key MVKey) *MV {
	var out *MV
	s.WithMV(key, func(m *MV, _ int64) { out = m.Clone() })
	return out
}

// MVJournalID returns the journal id of the last record that changed the
// MV, or 0 when there is no such MV.
func (s *State) MVJournalID(key MVKey) int64 {
	var j int64
	s.WithMV(key, func(_ *MV, jid int64) { j = jid })
	return j
}

// Keys returns every MV key in ascending order.
func (s *State) Keys() []MVKey {
	s.mu.RLock()
	keys := make([]MVKey, 0, len(s.mvs))
	for k := range s.mvs {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	return sortKeys(keys)
}

// Len returns the number of MVs.
func (s *State) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.mvs)
}

// Entries returns the number of partition entries of every MV, native and
// external (for metrics and progress reports).
func (s *State) Entries() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, e := range s.mvs {
		e.mu.RLock()
		n += e.mv.Entries()
		e.mu.RUnlock()
	}
	return n
}

// RelatedMVs returns the MVs listing native table tableID, ascending. The
// slice is shared: callers must not modify it.
func (s *State) RelatedMVs(tableID int64) []MVKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byTable[tableID]
}

// MVsWithExternal returns the MVs listing the external table, ascending.
// The slice is shared: callers must not modify it.
func (s *State) MVsWithExternal(ref ExternalRef) []MVKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byExternal[ref]
}

// Dropped returns the MVs dropped by a record with a journal id above
// after, with those journal ids (for checkpoint tombstones).
func (s *State) Dropped(after int64) map[MVKey]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[MVKey]int64{}
	for k, j := range s.dropped {
		if j > after {
			out[k] = j
		}
	}
	return out
}

// PruneDropped forgets the drops of records up to journal id upTo (a
// durable checkpoint holds their tombstones).
func (s *State) PruneDropped(upTo int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, j := range s.dropped {
		if j <= upTo {
			delete(s.dropped, k)
		}
	}
}

// AppliedOffset returns the next input offset not yet applied, or -1.
func (s *State) AppliedOffset(topic string, partition int) int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	if off, ok := s.offsets[TopicPartition{topic, partition}]; ok {
		return off
	}
	return -1
}

// Offsets returns a copy of every applied offset.
func (s *State) Offsets() map[TopicPartition]int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	return maps.Clone(s.offsets)
}

// JournalID returns the journal id of the last applied record.
func (s *State) JournalID() int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	return s.journalID
}

// Epoch returns the epoch of the last applied record.
func (s *State) Epoch() int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	return s.epoch
}

// Empty reports whether the state holds nothing: no MV, no journal, no
// offsets (a new or lost state dir).
func (s *State) Empty() bool {
	return s.Len() == 0 && s.JournalID() == 0 && len(s.Offsets()) == 0
}

// ---- indexes (callers hold mu for writing, or own the state) ---------------

// indexAdd adds k to the indexes of m's base tables, replacing the slices it
// changes (readers may hold the old ones).
func (s *State) indexAdd(k MVKey, m *MV) { s.indexEdit(k, m, withKey) }

// indexAddInPlace is indexAdd for a state no reader can see yet: it may
// grow the slices in place.
func (s *State) indexAddInPlace(k MVKey, m *MV) {
	s.indexEdit(k, m, func(ks []MVKey, k MVKey) []MVKey {
		if i, found := slices.BinarySearchFunc(ks, k, compareKeys); !found {
			ks = slices.Insert(ks, i, k)
		}
		return ks
	})
}

// indexRemove removes k from the indexes of m's base tables, replacing the
// slices it changes.
func (s *State) indexRemove(k MVKey, m *MV) { s.indexEdit(k, m, withoutKey) }

func (s *State) indexEdit(k MVKey, m *MV, edit func([]MVKey, MVKey) []MVKey) {
	for _, bt := range m.BaseTables {
		if bt.IsNative() {
			if ks := edit(s.byTable[bt.TableID], k); len(ks) > 0 {
				s.byTable[bt.TableID] = ks
			} else {
				delete(s.byTable, bt.TableID)
			}
			continue
		}
		ref := bt.ExternalRef()
		if ks := edit(s.byExternal[ref], k); len(ks) > 0 {
			s.byExternal[ref] = ks
		} else {
			delete(s.byExternal, ref)
		}
	}
}

// withKey returns ks (sorted) with k, as a new slice if k was missing.
func withKey(ks []MVKey, k MVKey) []MVKey {
	i, found := slices.BinarySearchFunc(ks, k, compareKeys)
	if found {
		return ks
	}
	out := make([]MVKey, 0, len(ks)+1)
	out = append(out, ks[:i]...)
	out = append(out, k)
	return append(out, ks[i:]...)
}

// withoutKey returns ks (sorted) without k, as a new slice if k was there.
func withoutKey(ks []MVKey, k MVKey) []MVKey {
	i, found := slices.BinarySearchFunc(ks, k, compareKeys)
	if !found {
		return ks
	}
	out := make([]MVKey, 0, len(ks)-1)
	out = append(out, ks[:i]...)
	return append(out, ks[i+1:]...)
}
