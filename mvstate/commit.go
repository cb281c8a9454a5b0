package mvstate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
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
	// committed and the in-memory state is restored.
	Apply func(tx *Tx) error
}

// Tx is the view of the state inside one commit. Every change is applied to
// memory at once (so later changes in the batch see earlier ones) and to the
// bbolt transaction; if the commit fails, an undo log restores memory. A Tx is
// valid only during its Batch.Apply call (the store reuses it).
type Tx struct {
	s       *Store
	btx     *bolt.Tx // nil for a memory-only store
	batch   Batch
	locked  []MVKey  // sorted: the MVs Apply may change
	entries []*entry // the entry locks held, to release
	undo    []undoRec
	dirty   map[MVKey]bool // headers to rewrite
	newAck  uint64
	outbox  []OutboxMessage

	// Meta values are buffered here and published to the store (under
	// metaMu) only once the commit is durable.
	journalID, epoch int64
	outboxSeq        uint64
	offsets          map[TopicPartition]int64
}

// undoRec restores one change. The two common changes of a repair (an entry,
// a last refresh time) are plain records; rarer ones carry a closure.
type undoRec struct {
	fn      func()
	pm      PartitionMap
	name    string
	prev    BasePartitionInfo
	existed bool
	mv      *MV
	lrt     int64
}

func (u *undoRec) run() {
	switch {
	case u.fn != nil:
		u.fn()
	case u.pm != nil:
		if u.existed {
			u.pm[u.name] = u.prev
		} else {
			delete(u.pm, u.name)
		}
	case u.mv != nil:
		u.mv.LastRefreshTime = u.lrt
	}
}

// reset prepares the store's reusable Tx for a new commit.
func (tx *Tx) reset(s *Store, b Batch) {
	clear(tx.undo)
	clear(tx.outbox)
	clear(tx.entries)
	*tx = Tx{s: s, batch: b, locked: tx.locked[:0], entries: tx.entries[:0], undo: tx.undo[:0],
		dirty: tx.dirty, outbox: tx.outbox[:0], offsets: tx.offsets,
		journalID: s.journalID, epoch: s.epoch, outboxSeq: s.outboxSeq}
	if tx.dirty == nil {
		tx.dirty = map[MVKey]bool{}
		tx.offsets = map[TopicPartition]int64{}
	}
	clear(tx.dirty)
	clear(tx.offsets)
	tx.locked = append(tx.locked, b.Touched...)
	slices.SortFunc(tx.locked, compareKeys)
	tx.locked = slices.Compact(tx.locked)
}

// Commit runs b.Apply and makes its changes durable in one bbolt transaction
// (one fsync): state changes, outbox messages, journal id, epoch and offsets
// together. On any error nothing is kept, in memory or on disk.
//
// Locks, in order: commitMu → mu (write if b.Structural, else read) → the
// touched MVs' entry locks, ascending → bbolt's writer lock. All are held
// until the commit is durable or undone.
func (s *Store) Commit(ctx context.Context, b Batch) (err error) {
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
	if s.db != nil {
		if tx.btx, err = s.db.Begin(true); err != nil {
			return fmt.Errorf("mvstate: begin: %w", err)
		}
	}
	defer func() {
		if err == nil {
			return
		}
		if tx.btx != nil {
			_ = tx.btx.Rollback()
		}
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i].run()
		}
	}()
	if b.Apply != nil {
		if err = b.Apply(tx); err != nil {
			return err
		}
	}
	if err = tx.flush(); err != nil {
		return fmt.Errorf("mvstate: write: %w", err)
	}
	if s.failCommit != nil {
		if err = s.failCommit(); err != nil {
			return err
		}
	}
	if tx.btx != nil {
		if err = tx.btx.Commit(); err != nil {
			return fmt.Errorf("mvstate: commit: %w", err)
		}
	}
	s.metaMu.Lock()
	s.journalID, s.epoch, s.outboxSeq = tx.journalID, tx.epoch, tx.outboxSeq
	for tp, off := range tx.offsets {
		s.offsets[tp] = off
	}
	s.metaMu.Unlock()
	return nil
}

// SetCommitHook installs a function run just before every bbolt commit; a
// non-nil error fails that commit. For fault-injection tests only.
func (s *Store) SetCommitHook(fn func() error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.failCommit = fn
}

// flush writes the dirty MV headers and the meta values.
func (tx *Tx) flush() error {
	if tx.btx == nil {
		return nil
	}
	mvs := tx.btx.Bucket(bucketMVs)
	for k := range tx.dirty {
		var err error
		if e := tx.s.mvs[k]; e != nil {
			err = mvs.Put(mvKeyBytes(k), headerOf(e.mv))
		} else {
			err = mvs.Delete(mvKeyBytes(k))
		}
		if err != nil {
			return err
		}
	}
	meta := tx.btx.Bucket(bucketMeta)
	if err := meta.Put(metaJournal, i64(tx.journalID)); err != nil {
		return err
	}
	if err := meta.Put(metaEpoch, i64(tx.epoch)); err != nil {
		return err
	}
	if err := meta.Put(metaOutboxSeq, i64(int64(tx.outboxSeq))); err != nil {
		return err
	}
	offs := tx.btx.Bucket(bucketOffsets)
	for tp, off := range tx.offsets {
		if err := offs.Put(offsetKey(tp), i64(off)); err != nil {
			return err
		}
	}
	ob := tx.btx.Bucket(bucketOutbox)
	for _, m := range tx.outbox {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := ob.Put(u64(m.Seq), v); err != nil {
			return err
		}
	}
	if tx.newAck > 0 {
		// Re-seek after each delete: bbolt's Next after a Delete skips a key.
		c := ob.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= tx.newAck; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseOutbox(v []byte) (OutboxMessage, error) {
	var m OutboxMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("%w: outbox: %v", errCorrupt, err)
	}
	return m, nil
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

// JournalID returns the journal id of the last applied record.
func (tx *Tx) JournalID() int64 { return tx.journalID }

// Epoch returns the epoch of the last applied record.
func (tx *Tx) Epoch() int64 { return tx.epoch }

// ---- Tx changes ----------------------------------------------------------------

func (tx *Tx) check(key MVKey, structural bool) error {
	if _, ok := slices.BinarySearchFunc(tx.locked, key, compareKeys); !ok || (structural && !tx.batch.Structural) {
		return fmt.Errorf("%w: mv %s", ErrNotLocked, key)
	}
	return nil
}

func (tx *Tx) live(key MVKey) (*MV, error) {
	if err := tx.check(key, false); err != nil {
		return nil, err
	}
	e := tx.s.mvs[key]
	if e == nil {
		return nil, fmt.Errorf("mvstate: mv %s does not exist", key)
	}
	return e.mv, nil
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
	old := s.mvs[key]
	if old != nil {
		s.indexRemove(key, old.mv)
		prev := old.mv
		old.mv = nm
		tx.undo = append(tx.undo, undoRec{fn: func() { s.indexRemove(key, nm); old.mv = prev; s.indexAdd(key, prev) }})
	} else {
		e := &entry{mv: nm}
		s.mvs[key] = e
		tx.undo = append(tx.undo, undoRec{fn: func() { s.indexRemove(key, nm); delete(s.mvs, key) }})
	}
	s.indexAdd(key, nm)
	tx.dirty[key] = true
	if tx.btx == nil {
		return nil
	}
	if err := tx.deletePrefix(bucketParts, mvKeyBytes(key)); err != nil {
		return err
	}
	if err := tx.deletePrefix(bucketExt, mvKeyBytes(key)); err != nil {
		return err
	}
	parts := tx.btx.Bucket(bucketParts)
	for id, pm := range nm.VersionMap {
		for name, p := range pm {
			if err := parts.Put(partKey(key, id, name), entryBytes(p)); err != nil {
				return err
			}
		}
	}
	ext := tx.btx.Bucket(bucketExt)
	for bt, pm := range nm.ExternalVersionMap {
		for name, p := range pm {
			if err := ext.Put(extKey(key, bt, name), entryBytes(p)); err != nil {
				return err
			}
		}
	}
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
	s.indexRemove(key, old.mv)
	delete(s.mvs, key)
	tx.undo = append(tx.undo, undoRec{fn: func() { s.mvs[key] = old; s.indexAdd(key, old.mv) }})
	tx.dirty[key] = true
	if tx.btx == nil {
		return nil
	}
	if err := tx.deletePrefix(bucketParts, mvKeyBytes(key)); err != nil {
		return err
	}
	return tx.deletePrefix(bucketExt, mvKeyBytes(key))
}

func (tx *Tx) deletePrefix(bucket, prefix []byte) error {
	c := tx.btx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// SetPartitions sets native entries of table tableID (creating the table's
// map if absent).
func (tx *Tx) SetPartitions(key MVKey, tableID int64, entries PartitionMap) error {
	m, err := tx.live(key)
	if err != nil {
		return err
	}
	pm, had := m.VersionMap[tableID]
	if !had {
		pm = PartitionMap{}
		m.VersionMap[tableID] = pm
		tx.dirty[key] = true
		tx.undo = append(tx.undo, undoRec{fn: func() { delete(m.VersionMap, tableID) }})
	}
	for name, p := range entries {
		prev, existed := pm[name]
		pm[name] = p
		tx.undo = append(tx.undo, undoRec{pm: pm, name: name, prev: prev, existed: existed})
		if tx.btx != nil {
			if err := tx.btx.Bucket(bucketParts).Put(partKey(key, tableID, name), entryBytes(p)); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeletePartitions removes native entries; unknown names are ignored.
func (tx *Tx) DeletePartitions(key MVKey, tableID int64, names []string) error {
	m, err := tx.live(key)
	if err != nil {
		return err
	}
	pm := m.VersionMap[tableID]
	for _, name := range names {
		prev, existed := pm[name]
		if !existed {
			continue
		}
		delete(pm, name)
		tx.undo = append(tx.undo, undoRec{pm: pm, name: name, prev: prev, existed: true})
		if tx.btx != nil {
			if err := tx.btx.Bucket(bucketParts).Delete(partKey(key, tableID, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetExternalPartitions sets entries of external base table bt.
func (tx *Tx) SetExternalPartitions(key MVKey, bt BaseTableInfo, entries PartitionMap) error {
	m, err := tx.live(key)
	if err != nil {
		return err
	}
	pm, had := m.ExternalVersionMap[bt]
	if !had {
		pm = PartitionMap{}
		m.ExternalVersionMap[bt] = pm
		tx.dirty[key] = true
		tx.undo = append(tx.undo, undoRec{fn: func() { delete(m.ExternalVersionMap, bt) }})
	}
	for name, p := range entries {
		prev, existed := pm[name]
		pm[name] = p
		tx.undo = append(tx.undo, undoRec{pm: pm, name: name, prev: prev, existed: existed})
		if tx.btx != nil {
			if err := tx.btx.Bucket(bucketExt).Put(extKey(key, bt, name), entryBytes(p)); err != nil {
				return err
			}
		}
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
	m, err := tx.live(key)
	if err != nil {
		return err
	}
	s := tx.s
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
	tx.dirty[key] = true
	if tx.btx == nil {
		return nil
	}
	if err := tx.deletePrefix(bucketExt, extPrefix(key, old)); err != nil {
		return err
	}
	if err := tx.deletePrefix(bucketExt, extPrefix(key, nw)); err != nil {
		return err
	}
	ext := tx.btx.Bucket(bucketExt)
	for name, p := range entries {
		if err := ext.Put(extKey(key, nw, name), entryBytes(p)); err != nil {
			return err
		}
	}
	return nil
}

// SetLastRefreshTime sets the MV's last_refresh_time.
func (tx *Tx) SetLastRefreshTime(key MVKey, t int64) error {
	m, err := tx.live(key)
	if err != nil {
		return err
	}
	if m.LastRefreshTime == t {
		return nil
	}
	tx.undo = append(tx.undo, undoRec{mv: m, lrt: m.LastRefreshTime})
	m.LastRefreshTime = t
	tx.dirty[key] = true
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
func (tx *Tx) SetOffset(topic string, partition int, next int64) error {
	tp := TopicPartition{topic, partition}
	if prev, had := tx.appliedOffset(tp); had && next <= prev {
		return nil
	}
	tx.offsets[tp] = next
	return nil
}

// ResetOffsets replaces the applied offsets of topic (replay): partitions in
// next are set to the given value, even if lower; others of the topic are
// left alone.
func (tx *Tx) ResetOffsets(topic string, next map[int]int64) error {
	for p, off := range next {
		tx.offsets[TopicPartition{topic, p}] = off
	}
	return nil
}

// AddOutbox queues a message to publish after the commit; it gets the next
// outbox sequence number, which is returned.
func (tx *Tx) AddOutbox(m OutboxMessage) uint64 {
	tx.outboxSeq++
	m.Seq = tx.outboxSeq
	tx.outbox = append(tx.outbox, m)
	return m.Seq
}

// AckOutbox deletes every outbox message with Seq <= through in this commit.
func (tx *Tx) AckOutbox(through uint64) {
	if through > tx.newAck {
		tx.newAck = through
	}
}
