package mvstate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ErrNotLocked is returned when a Tx changes an MV its Batch did not declare,
// or changes the MV set or an index without Batch.Structural: a programming
// error, caught before anything is written.
var ErrNotLocked = errors.New("mvstate: change outside the batch's declared lock set")

// Batch declares what one commit may change. Touched lists every MV the Apply
// function may modify (they are write-locked in key order); Structural must be
// set when the commit creates or drops an MV or changes an MV's base tables.
type Batch struct {
	Touched    []MVKey
	Structural bool
	// Apply makes the changes through tx. If it returns an error nothing is
	// kept: the in-memory state is restored.
	Apply func(tx *Tx) error
	// Persist, when set, runs after Apply succeeded, with every lock of the
	// batch still held: it makes the batch durable (the store appends it to
	// its log). If it fails, the batch is undone as if Apply had failed.
	Persist func(tx *Tx) error
}

// OffsetChange is one applied-offset update of a commit.
type OffsetChange struct {
	TopicPartition
	Next int64
	// Reset is set for ResetOffsets (the offset may move backwards);
	// otherwise the update moves forward only.
	Reset bool
}

// Tx is the view of the state inside one commit. Every change is applied to
// memory at once (so later changes in the batch see earlier ones); an undo
// log restores memory if the commit fails. A Tx is valid only during its
// Batch's Apply and Persist calls (the state reuses it).
type Tx struct {
	s       *State
	batch   Batch
	locked  []MVKey  // sorted: the MVs Apply may change
	entries []*entry // the entry locks held, to release
	undo    []undoRec
	cur     int64 // journal id of the record being applied (BeginRecord)

	// Meta values are buffered here and published to the state (under
	// metaMu) only once the commit is durable.
	journalID, epoch int64
	offsets          map[TopicPartition]int64
	offsetLog        []OffsetChange
}

type undoKind uint8

const (
	undoFn      undoKind = iota // run fn
	undoEntry                   // restore pm[name] (prev, or delete)
	undoLRT                     // restore e.mv.LastRefreshTime = v
	undoJID                     // restore e.jid = v
	undoDropped                 // restore dropped[key] (v, or delete when !existed)
)

// undoRec restores one change. The frequent changes of a repair are plain
// records; rarer ones carry a closure.
type undoRec struct {
	kind    undoKind
	fn      func()
	pm      PartitionMap
	name    string
	prev    BasePartitionInfo
	existed bool
	e       *entry
	key     MVKey
	v       int64
}

func (u *undoRec) run(s *State) {
	switch u.kind {
	case undoFn:
		u.fn()
	case undoEntry:
		if u.existed {
			u.pm[u.name] = u.prev
		} else {
			delete(u.pm, u.name)
		}
	case undoLRT:
		u.e.mv.LastRefreshTime = u.v
	case undoJID:
		u.e.jid = u.v
	case undoDropped:
		if u.existed {
			s.dropped[u.key] = u.v
		} else {
			delete(s.dropped, u.key)
		}
	}
}

// reset prepares the state's reusable Tx for a new commit.
func (tx *Tx) reset(s *State, b Batch) {
	clear(tx.undo)
	clear(tx.entries)
	*tx = Tx{s: s, batch: b, locked: tx.locked[:0], entries: tx.entries[:0], undo: tx.undo[:0],
		offsets: tx.offsets, offsetLog: tx.offsetLog[:0], journalID: s.journalID, epoch: s.epoch}
	if tx.offsets == nil {
		tx.offsets = map[TopicPartition]int64{}
	}
	clear(tx.offsets)
	tx.locked = append(tx.locked, b.Touched...)
	slices.SortFunc(tx.locked, compareKeys)
	tx.locked = slices.Compact(tx.locked)
}

// Commit runs b.Apply, then b.Persist, and publishes the batch's journal id,
// epoch and offsets. On any error nothing is kept in memory.
//
// Locks, in order: commitMu → mu (write if b.Structural, else read) → the
// touched MVs' entry locks, ascending → metaMu (at the end, briefly). All
// are held until the commit is durable or undone.
func (s *State) Commit(ctx context.Context, b Batch) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if b.Structural {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	if s.tx == nil {
		s.tx = &Tx{}
	}
	tx := s.tx
	tx.reset(s, b)
	for _, k := range tx.locked {
		if e := s.mvs[k]; e != nil {
			e.mu.Lock()
			tx.entries = append(tx.entries, e)
		}
	}
	defer func() {
		for _, e := range tx.entries {
			e.mu.Unlock()
		}
	}()
	defer func() {
		if err == nil {
			return
		}
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i].run(s)
		}
	}()
	if b.Apply != nil {
		if err = b.Apply(tx); err != nil {
			return err
		}
	}
	if b.Persist != nil {
		if err = b.Persist(tx); err != nil {
			return err
		}
	}
	s.metaMu.Lock()
	s.journalID, s.epoch = tx.journalID, tx.epoch
	for tp, off := range tx.offsets {
		s.offsets[tp] = off
	}
	s.metaMu.Unlock()
	return nil
}

// ---- Tx reads ----------------------------------------------------------------

// MV returns the MV as changed so far in this transaction, or nil. Callers
// must not mutate it.
func (tx *Tx) MV(key MVKey) *MV {
	if e := tx.s.mvs[key]; e != nil {
		return e.mv
	}
	return nil
}

// MVJournalID returns the journal id of the last record that changed the MV
// (as of this transaction), or 0 when there is no such MV.
func (tx *Tx) MVJournalID(key MVKey) int64 {
	if e := tx.s.mvs[key]; e != nil {
		return e.jid
	}
	return 0
}

// JournalID returns the journal id of the last applied record.
func (tx *Tx) JournalID() int64 { return tx.journalID }

// Epoch returns the epoch of the last applied record.
func (tx *Tx) Epoch() int64 { return tx.epoch }

// OffsetChanges returns the offset updates of this transaction, in order
// (for the durable store's log).
func (tx *Tx) OffsetChanges() []OffsetChange { return tx.offsetLog }

// ---- Tx changes ----------------------------------------------------------------

// BeginRecord says that the changes that follow are those of the journal
// record jid: each MV they change remembers it (MVJournalID) and a dropped MV
// is remembered with it (Dropped).
func (tx *Tx) BeginRecord(jid int64) { tx.cur = jid }

func (tx *Tx) check(key MVKey, structural bool) error {
	if _, ok := slices.BinarySearchFunc(tx.locked, key, compareKeys); !ok || (structural && !tx.batch.Structural) {
		return fmt.Errorf("%w: mv %s", ErrNotLocked, key)
	}
	return nil
}

// touch prepares entry e for a change: open snapshots get its current
// version first (copy on write), and it is marked as changed by the current
// record.
func (tx *Tx) touch(e *entry) {
	if p := e.pending.Load(); p != 0 {
		tx.s.capture(e, p)
	}
	if e.jid != tx.cur {
		tx.undo = append(tx.undo, undoRec{kind: undoJID, e: e, v: e.jid})
		e.jid = tx.cur
	}
}

// live returns the entry of an existing MV for a change.
func (tx *Tx) live(key MVKey) (*entry, error) {
	if err := tx.check(key, false); err != nil {
		return nil, err
	}
	e := tx.s.mvs[key]
	if e == nil {
		return nil, fmt.Errorf("mvstate: mv %s does not exist", key)
	}
	tx.touch(e)
	return e, nil
}

func (tx *Tx) setDropped(key MVKey, jid int64, live bool) {
	s := tx.s
	prev, existed := s.dropped[key]
	if live {
		if !existed {
			return
		}
		delete(s.dropped, key)
	} else {
		s.dropped[key] = jid
	}
	tx.undo = append(tx.undo, undoRec{kind: undoDropped, key: key, v: prev, existed: existed})
}

// PutMV creates or replaces an MV with a deep copy of m (m is not retained).
func (tx *Tx) PutMV(m *MV) error {
	key := m.Key()
	if err := tx.check(key, true); err != nil {
		return err
	}
	s := tx.s
	nm := m.Clone()
	if nm.VersionMap == nil {
		nm.VersionMap = VersionMap{}
	}
	if nm.ExternalVersionMap == nil {
		nm.ExternalVersionMap = ExternalVersionMap{}
	}
	if old := s.mvs[key]; old != nil {
		tx.touch(old)
		prev := old.mv
		old.mv = nm
		if slices.Equal(prev.BaseTables, nm.BaseTables) {
			// The usual re-upsert: the indexes (keyed by base table) stay
			// as they are, with no copy of their slices.
			tx.undo = append(tx.undo, undoRec{fn: func() { old.mv = prev }})
			tx.setDropped(key, 0, true)
			return nil
		}
		s.indexRemove(key, prev)
		tx.undo = append(tx.undo, undoRec{fn: func() { s.indexRemove(key, nm); old.mv = prev; s.indexAdd(key, prev) }})
	} else {
		e := &entry{mv: nm, jid: tx.cur}
		s.mvs[key] = e
		tx.undo = append(tx.undo, undoRec{fn: func() { s.indexRemove(key, nm); delete(s.mvs, key) }})
	}
	s.indexAdd(key, nm)
	tx.setDropped(key, 0, true)
	return nil
}

// DeleteMV removes an MV; deleting an unknown MV is a no-op.
func (tx *Tx) DeleteMV(key MVKey) error {
	if err := tx.check(key, true); err != nil {
		return err
	}
	s := tx.s
	old := s.mvs[key]
	if old == nil {
		return nil
	}
	tx.touch(old)
	s.indexRemove(key, old.mv)
	delete(s.mvs, key)
	tx.undo = append(tx.undo, undoRec{fn: func() { s.mvs[key] = old; s.indexAdd(key, old.mv) }})
	tx.setDropped(key, tx.cur, false)
	return nil
}

// SetPartitions sets native entries of table tableID (creating the table's
// map if absent).
func (tx *Tx) SetPartitions(key MVKey, tableID int64, entries PartitionMap) error {
	e, err := tx.live(key)
	if err != nil {
		return err
	}
	m := e.mv
	pm, had := m.VersionMap[tableID]
	if !had {
		pm = PartitionMap{}
		m.VersionMap[tableID] = pm
		tx.undo = append(tx.undo, undoRec{fn: func() { delete(m.VersionMap, tableID) }})
	}
	for name, p := range entries {
		prev, existed := pm[name]
		pm[name] = p
		tx.undo = append(tx.undo, undoRec{kind: undoEntry, pm: pm, name: name, prev: prev, existed: existed})
	}
	return nil
}

// DeletePartitions removes native entries; unknown names are ignored.
func (tx *Tx) DeletePartitions(key MVKey, tableID int64, names []string) error {
	e, err := tx.live(key)
	if err != nil {
		return err
	}
	pm := e.mv.VersionMap[tableID]
	for _, name := range names {
		prev, existed := pm[name]
		if !existed {
			continue
		}
		delete(pm, name)
		tx.undo = append(tx.undo, undoRec{kind: undoEntry, pm: pm, name: name, prev: prev, existed: true})
	}
	return nil
}

// SetExternalPartitions sets entries of external base table bt.
func (tx *Tx) SetExternalPartitions(key MVKey, bt BaseTableInfo, entries PartitionMap) error {
	e, err := tx.live(key)
	if err != nil {
		return err
	}
	m := e.mv
	pm, had := m.ExternalVersionMap[bt]
	if !had {
		pm = PartitionMap{}
		m.ExternalVersionMap[bt] = pm
		tx.undo = append(tx.undo, undoRec{fn: func() { delete(m.ExternalVersionMap, bt) }})
	}
	for name, p := range entries {
		prev, existed := pm[name]
		pm[name] = p
		tx.undo = append(tx.undo, undoRec{kind: undoEntry, pm: pm, name: name, prev: prev, existed: existed})
	}
	return nil
}

// ReplaceExternalTable replaces base table old by nw (same position in
// base_tables), moves the external version-map key and sets its map to a
// copy of entries. It changes the external index, so the batch must be
// Structural.
func (tx *Tx) ReplaceExternalTable(key MVKey, old, nw BaseTableInfo, entries PartitionMap) error {
	if err := tx.check(key, true); err != nil {
		return err
	}
	e, err := tx.live(key)
	if err != nil {
		return err
	}
	m, s := e.mv, tx.s
	prevTables := m.BaseTables
	prevOld, hadOld := m.ExternalVersionMap[old]
	prevNew, hadNew := m.ExternalVersionMap[nw]
	s.indexRemove(key, m)
	tables := append([]BaseTableInfo{}, m.BaseTables...)
	for i := range tables {
		if tables[i] == old {
			tables[i] = nw
		}
	}
	m.BaseTables = tables
	delete(m.ExternalVersionMap, old)
	m.ExternalVersionMap[nw] = ClonePartitions(entries)
	if m.ExternalVersionMap[nw] == nil {
		m.ExternalVersionMap[nw] = PartitionMap{}
	}
	s.indexAdd(key, m)
	tx.undo = append(tx.undo, undoRec{fn: func() {
		s.indexRemove(key, m)
		m.BaseTables = prevTables
		delete(m.ExternalVersionMap, nw)
		if hadNew {
			m.ExternalVersionMap[nw] = prevNew
		}
		if hadOld {
			m.ExternalVersionMap[old] = prevOld
		}
		s.indexAdd(key, m)
	}})
	return nil
}

// SetLastRefreshTime sets the MV's last_refresh_time.
func (tx *Tx) SetLastRefreshTime(key MVKey, t int64) error {
	if err := tx.check(key, false); err != nil {
		return err
	}
	e := tx.s.mvs[key]
	if e == nil {
		return fmt.Errorf("mvstate: mv %s does not exist", key)
	}
	if e.mv.LastRefreshTime == t {
		return nil
	}
	tx.touch(e)
	tx.undo = append(tx.undo, undoRec{kind: undoLRT, e: e, v: e.mv.LastRefreshTime})
	e.mv.LastRefreshTime = t
	return nil
}

// SetJournal records the journal id and epoch of the last applied record.
func (tx *Tx) SetJournal(journalID, epoch int64) {
	tx.journalID, tx.epoch = journalID, epoch
}

// appliedOffset is the offset as changed so far in this transaction.
func (tx *Tx) appliedOffset(tp TopicPartition) (int64, bool) {
	if off, ok := tx.offsets[tp]; ok {
		return off, true
	}
	off, ok := tx.s.offsets[tp] // the committer is the only writer of offsets
	return off, ok
}

// SetOffset records that input (topic, partition) was applied up to, not
// including, next. Offsets only move forward; a lower value is ignored.
func (tx *Tx) SetOffset(topic string, partition int, next int64) {
	tp := TopicPartition{topic, partition}
	if prev, had := tx.appliedOffset(tp); had && next <= prev {
		return
	}
	tx.offsets[tp] = next
	tx.offsetLog = append(tx.offsetLog, OffsetChange{TopicPartition: tp, Next: next})
}

// ResetOffsets sets the applied offsets of topic's partitions in next, even
// to lower values (replay); other partitions are left alone.
func (tx *Tx) ResetOffsets(topic string, next map[int]int64) {
	for _, p := range slices.Sorted(maps.Keys(next)) {
		tp := TopicPartition{topic, p}
		tx.offsets[tp] = next[p]
		tx.offsetLog = append(tx.offsetLog, OffsetChange{TopicPartition: tp, Next: next[p], Reset: true})
	}
}
