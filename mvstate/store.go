package mvstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the bbolt file inside the state dir.
const FileName = "mvrepair.db"

// ErrLocked is returned by Open when another process holds the state dir.
var ErrLocked = errors.New("mvstate: state dir is in use by another process")

// TopicPartition names an input partition whose applied offset is tracked.
type TopicPartition struct {
	Topic     string
	Partition int
}

// OutboxMessage is a Kafka record a commit promised to publish: an edit-log
// record or a dead-letter record. It stays in the store until acknowledged.
type OutboxMessage struct {
	Seq     uint64            `json:"seq"`
	Topic   string            `json:"topic"`
	Key     []byte            `json:"key"`
	Value   []byte            `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
	// HeaderOrder keeps header order stable on the wire.
	HeaderOrder []string `json:"header_order,omitempty"`
}

// entry is one MV in memory with its lock. mv is replaced (not mutated) by
// PutMV, and mutated in place by the fine-grained Tx methods, always under mu.
type entry struct {
	mu sync.RWMutex
	mv *MV
}

// Store is the state: an in-memory copy of every MV with indexes and per-MV
// locks, backed by a bbolt file (or by nothing, for a memory-only store).
// Exactly one goroutine commits at a time; any number may read.
type Store struct {
	commitMu sync.Mutex // see locks.go
	mu       sync.RWMutex
	db       *bolt.DB // nil: memory only
	dir      string

	mvs        map[MVKey]*entry
	byTable    map[int64]map[MVKey]struct{}
	byExternal map[ExternalRef]map[MVKey]struct{}

	// metaMu guards the meta values below; a leaf lock (see locks.go).
	// Only Commit writes them, after its transaction is durable.
	metaMu    sync.RWMutex
	journalID int64
	epoch     int64
	outboxSeq uint64
	offsets   map[TopicPartition]int64

	// tx is reused by every commit (commits are serialized by commitMu).
	tx *Tx

	// failCommit, when set (tests only, via SetCommitHook), runs before the
	// bbolt commit and fails the commit if it returns an error.
	failCommit func() error
}

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock (default 1s).
	LockTimeout time.Duration
	// NoSync disables fsync (benchmarks and tests of throughput only).
	NoSync bool
}

// NewMemory returns an empty store with no durability (tests, dry runs).
func NewMemory() *Store {
	s := &Store{}
	s.resetMemory()
	return s
}

func (s *Store) resetMemory() {
	s.mvs = map[MVKey]*entry{}
	s.byTable = map[int64]map[MVKey]struct{}{}
	s.byExternal = map[ExternalRef]map[MVKey]struct{}{}
	s.offsets = map[TopicPartition]int64{}
	s.journalID, s.epoch, s.outboxSeq = 0, 0, 0
}

// Open opens (creating if needed) the store in dir and loads it into memory.
func Open(ctx context.Context, dir string, opt Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mvstate: create state dir: %w", err)
	}
	if opt.LockTimeout == 0 {
		opt.LockTimeout = time.Second
	}
	path := filepath.Join(dir, FileName)
	// InitialMmapSize reserves address space (not memory) so that a growing
	// file is not re-mapped again and again, which stalls large rebuilds.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.LockTimeout, NoSync: opt.NoSync,
		FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("mvstate: open %s: %w", path, err)
	}
	s := &Store{db: db, dir: dir}
	s.resetMemory()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketMVs, bucketParts, bucketExt, bucketOffsets, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaSchema); v == nil {
			return meta.Put(metaSchema, i64(schemaVersion))
		} else if got, err := readI64(v); err != nil || got != schemaVersion {
			return fmt.Errorf("mvstate: %s has schema %d, this build reads %d", path, got, schemaVersion)
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("mvstate: init %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.View(func(tx *bolt.Tx) error { return s.load(tx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("mvstate: load %s: %w", path, err)
	}
	return s, nil
}

// load reads the whole bbolt state into memory (no locks: called before the
// store is shared, or by Snapshot on a private Store).
func (s *Store) load(tx *bolt.Tx) error {
	s.resetMemory()
	meta := tx.Bucket(bucketMeta)
	var err error
	if v := meta.Get(metaJournal); v != nil {
		if s.journalID, err = readI64(v); err != nil {
			return err
		}
	}
	if v := meta.Get(metaEpoch); v != nil {
		if s.epoch, err = readI64(v); err != nil {
			return err
		}
	}
	if v := meta.Get(metaOutboxSeq); v != nil {
		seq, err := readI64(v)
		if err != nil {
			return err
		}
		s.outboxSeq = uint64(seq)
	}
	if err := tx.Bucket(bucketMVs).ForEach(func(k, v []byte) error {
		m, err := parseHeader(v)
		if err != nil {
			return err
		}
		s.mvs[m.Key()] = &entry{mv: m}
		return nil
	}); err != nil {
		return err
	}
	// Native entries, then external ones: each key names its MV, its version
	// map and the partition.
	if err := s.loadEntries(tx.Bucket(bucketParts), func(k []byte) (MVKey, func(*MV) PartitionMap, string, error) {
		key, table, name, err := parsePartKey(k)
		return key, func(m *MV) PartitionMap { return mapOf(m.VersionMap, table) }, name, err
	}); err != nil {
		return err
	}
	if err := s.loadEntries(tx.Bucket(bucketExt), func(k []byte) (MVKey, func(*MV) PartitionMap, string, error) {
		key, bt, name, err := parseExtKey(k)
		return key, func(m *MV) PartitionMap { return mapOf(m.ExternalVersionMap, bt) }, name, err
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bucketOffsets).ForEach(func(k, v []byte) error {
		tp, err := parseOffsetKey(k)
		if err != nil {
			return err
		}
		off, err := readI64(v)
		if err != nil {
			return err
		}
		s.offsets[tp] = off
		return nil
	}); err != nil {
		return err
	}
	for k, e := range s.mvs {
		s.indexAdd(k, e.mv)
	}
	return nil
}

// loadEntries reads a bucket of partition entries into the MVs' maps; parse
// says which MV, which of its maps (creating it) and which partition a key is.
func (s *Store) loadEntries(b *bolt.Bucket, parse func(k []byte) (MVKey, func(*MV) PartitionMap, string, error)) error {
	return b.ForEach(func(k, v []byte) error {
		key, pick, name, err := parse(k)
		if err != nil {
			return err
		}
		p, err := parseEntry(v)
		if err != nil {
			return err
		}
		e := s.mvs[key]
		if e == nil {
			return fmt.Errorf("%w: entry of unknown mv %s", errCorrupt, key)
		}
		pick(e.mv)[name] = p
		return nil
	})
}

// mapOf returns m[k], creating it if absent.
func mapOf[K comparable](m map[K]PartitionMap, k K) PartitionMap {
	pm := m[k]
	if pm == nil {
		pm = PartitionMap{}
		m[k] = pm
	}
	return pm
}

// Close closes the bbolt file. The in-memory state stays readable.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.db.Close()
}

// Dir returns the state dir ("" for a memory-only store).
func (s *Store) Dir() string { return s.dir }

// Durable reports whether the store is backed by a file.
func (s *Store) Durable() bool { return s.db != nil }

func (s *Store) indexAdd(k MVKey, m *MV) {
	for _, bt := range m.BaseTables {
		if bt.IsNative() {
			set := s.byTable[bt.TableID]
			if set == nil {
				set = map[MVKey]struct{}{}
				s.byTable[bt.TableID] = set
			}
			set[k] = struct{}{}
			continue
		}
		ref := bt.ExternalRef()
		set := s.byExternal[ref]
		if set == nil {
			set = map[MVKey]struct{}{}
			s.byExternal[ref] = set
		}
		set[k] = struct{}{}
	}
}

func (s *Store) indexRemove(k MVKey, m *MV) {
	for _, bt := range m.BaseTables {
		if bt.IsNative() {
			if set := s.byTable[bt.TableID]; set != nil {
				delete(set, k)
				if len(set) == 0 {
					delete(s.byTable, bt.TableID)
				}
			}
			continue
		}
		ref := bt.ExternalRef()
		if set := s.byExternal[ref]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(s.byExternal, ref)
			}
		}
	}
}

// ---- reads -----------------------------------------------------------------

// MV returns the live MV, or nil. The pointer is shared with the store: callers
// must not mutate it, and only the goroutine that commits may keep it across a
// commit (the handler, which runs between commits on that goroutine). Other
// readers use WithMV or Get.
func (s *Store) MV(key MVKey) *MV {
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

// WithMV calls fn with the MV under its read lock; fn must not keep or mutate
// it. It reports whether the MV exists. Locks: Store.mu (read) → entry.mu (read).
func (s *Store) WithMV(key MVKey, fn func(*MV)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.mvs[key]
	if e == nil {
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	fn(e.mv)
	return true
}

// Get returns a deep copy of the MV, or nil.
func (s *Store) Get(key MVKey) *MV {
	var out *MV
	s.WithMV(key, func(m *MV) { out = m.Clone() })
	return out
}

// Keys returns every MV key in ascending order.
func (s *Store) Keys() []MVKey {
	s.mu.RLock()
	keys := make([]MVKey, 0, len(s.mvs))
	for k := range s.mvs {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	return sortKeys(keys)
}

// Len returns the number of MVs.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.mvs)
}

// RelatedMVs returns the MVs listing native table tableID, ascending.
func (s *Store) RelatedMVs(tableID int64) []MVKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return setKeys(s.byTable[tableID])
}

// MVsWithExternal returns the MVs listing the external table, ascending.
func (s *Store) MVsWithExternal(ref ExternalRef) []MVKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return setKeys(s.byExternal[ref])
}

func setKeys(set map[MVKey]struct{}) []MVKey {
	if len(set) == 0 {
		return nil
	}
	keys := make([]MVKey, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	return sortKeys(keys)
}

// AppliedOffset returns the next input offset not yet applied, or -1.
func (s *Store) AppliedOffset(topic string, partition int) int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	if off, ok := s.offsets[TopicPartition{topic, partition}]; ok {
		return off
	}
	return -1
}

// Offsets returns a copy of every applied offset.
func (s *Store) Offsets() map[TopicPartition]int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	out := make(map[TopicPartition]int64, len(s.offsets))
	for k, v := range s.offsets {
		out[k] = v
	}
	return out
}

// JournalID returns the journal id of the last applied record.
func (s *Store) JournalID() int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	return s.journalID
}

// Epoch returns the epoch of the last applied record.
func (s *Store) Epoch() int64 {
	s.metaMu.RLock()
	defer s.metaMu.RUnlock()
	return s.epoch
}

// Outbox returns the messages not yet acknowledged, in sequence order.
func (s *Store) Outbox(ctx context.Context) ([]OutboxMessage, error) {
	if s.db == nil {
		return nil, nil
	}
	var out []OutboxMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			m, err := parseOutbox(v)
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mvstate: read outbox: %w", err)
	}
	return out, nil
}

func sortInt64s(v []int64) { slices.Sort(v) }

func sortTables(v []BaseTableInfo) { sort.Slice(v, func(i, j int) bool { return v[i].Less(v[j]) }) }
