package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Defaults of Options.
const (
	DefaultSnapshotEvery = 64 << 20
	DefaultSegmentSize   = 64 << 20
)

// Options tune a store.
type Options struct {
	// NoSync skips fdatasync (benchmarks of CPU cost only; a crash can lose
	// committed batches).
	NoSync bool
	// SnapshotEvery is the log size, in bytes, after which a snapshot is
	// written in the background (default 64 MiB). Negative: never.
	SnapshotEvery int64
	// SegmentSize is the size at which the log moves to a new segment
	// (default 64 MiB).
	SegmentSize int64
	// Log receives the background snapshot's messages.
	Log zerolog.Logger
	// WrapFile, when set, wraps every log segment file the store writes
	// (tests inject disk faults with it).
	WrapFile func(File) File
}

func (o Options) withDefaults() Options {
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	return o
}

// Store is the durable state: an mvstate.State, a log, snapshots and the
// outbox. One goroutine commits at a time (commits serialize); any number
// may read the State.
type Store struct {
	opt   Options
	dir   string // the store's directory ("" for a memory store)
	state *mvstate.State
	log   journal

	commitMu sync.Mutex // see doc.go
	buf      []byte     // the log entry being encoded (guarded by commitMu)

	mu            sync.Mutex // guards the fields below (a leaf lock)
	seq           uint64     // last log entry written
	outboxSeq     uint64
	acked         uint64 // outbox acknowledged through
	outbox        []OutboxMessage
	sinceSnapshot int64 // log bytes since the last snapshot
	snapshotSize  int64 // bytes of the last snapshot written or loaded
	snapshotBytes int64 // bytes of every snapshot this Store wrote
	snapshotting  bool
	closed        bool
	snapWG        sync.WaitGroup
	lastSnapErr   error
	recovery      Recovery
}

// Recovery says what opening the store found.
type Recovery struct {
	// Snapshot is the snapshot loaded ("" when none).
	Snapshot string
	// Entries is the number of log entries replayed after it.
	Entries int
	// TornBytes is the size of a torn last log entry that was cut off (a
	// crash during an append).
	TornBytes int64
	// Took is the time the open took.
	Took time.Duration
}

// journal is where commits go: the log on disk, or nothing for a memory
// store.
type journal interface {
	// append writes an encoded entry durably; it returns the bytes written.
	append(payload []byte) (int64, error)
	// rotate starts a new log segment at entry seq (snapshots cut there).
	rotate(seq uint64) error
	close() error
}

// NewMemory returns a store kept in memory only: the same commits, outbox
// and snapshots of the state, without a disk (dry runs, tests).
func NewMemory() *Store {
	return &Store{state: mvstate.NewState(), log: memJournal{}, opt: Options{SnapshotEvery: -1}}
}

// memJournal keeps nothing.
type memJournal struct{}

func (memJournal) append(p []byte) (int64, error) { return int64(len(p)), nil }
func (memJournal) rotate(uint64) error            { return nil }
func (memJournal) close() error                   { return nil }

// fileJournal is the log on disk.
type fileJournal struct {
	w       *wal
	segSize int64
	log     zerolog.Logger
}

func (j *fileJournal) append(p []byte) (int64, error) {
	n, err := j.w.append(p)
	if err == nil && j.w.size >= j.segSize {
		// The next entry starts a new segment; a failed rotation keeps
		// appending here and tries again at the next append.
		if rerr := j.w.createSegment(decodeSeq(p) + 1); rerr != nil {
			j.log.Warn().Err(rerr).Msg("store: cannot start a new log segment; the current one keeps growing")
		}
	}
	return n, err
}

func (j *fileJournal) rotate(seq uint64) error { return j.w.createSegment(seq) }
func (j *fileJournal) close() error            { return j.w.close() }

// decodeSeq reads the sequence of an encoded entry (its second field).
func decodeSeq(p []byte) uint64 {
	d := dec{b: p[1:]}
	return d.uvarint()
}

// State returns the in-memory state (reads, and the handler's view).
func (s *Store) State() *mvstate.State { return s.state }

// Dir returns the store's directory ("" for a memory store).
func (s *Store) Dir() string { return s.dir }

// Recovery returns what opening the store found.
func (s *Store) Recovery() Recovery { return s.recovery }

// Batch is one commit.
type Batch struct {
	// Records are applied in order with editlog.ApplyBatch in Mode.
	Records []*editlog.Record
	// Encoded holds each record's wire bytes (same order), when the caller
	// has them; Commit encodes the records otherwise.
	Encoded [][]byte
	Mode    editlog.Mode
	// PublishTo, when set, queues every applied record in the outbox for
	// publishing to that topic (the edit log): the writer's commits.
	PublishTo string
	// DeadLetters are queued in the outbox after the records.
	DeadLetters []OutboxMessage
	// Offsets move applied input offsets forward (lower values are ignored).
	Offsets []mvstate.OffsetChange
	// Reset sets applied offsets of a topic even to lower values (replay).
	Reset map[string]map[int]int64
	// Ack acknowledges the outbox through this sequence (0: nothing new).
	Ack uint64
}

// Result is what a commit did.
type Result struct {
	// Counts tallies what ApplyBatch did with each record.
	Counts editlog.Counts
	// Applied are the records that applied, in order.
	Applied []*editlog.Record
	// Outbox are the messages this commit queued, in order.
	Outbox []OutboxMessage
	// Bytes is the size of the log entry written.
	Bytes int64
}

// Commit applies the batch and makes it durable: the state changes, the
// outbox messages, the offsets and the acknowledgement, in one log entry
// with one fdatasync. On error nothing was kept (in memory or on disk).
// An error wrapping ErrIO is an infrastructure fault: retry the batch.
func (s *Store) Commit(ctx context.Context, b Batch) (Result, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return Result{}, ErrClosed
	}
	c := &commit{s: s, b: b}
	keys, structural := editlog.Touches(b.Records)
	err := s.state.Commit(ctx, mvstate.Batch{Touched: keys, Structural: structural, Apply: c.apply, Persist: c.persist})
	if err != nil {
		return Result{}, err
	}
	for _, i := range c.applied {
		c.res.Applied = append(c.res.Applied, b.Records[i])
	}
	s.maybeSnapshot()
	return c.res, nil
}

// commit is one Commit's work, in the two steps mvstate.State.Commit runs
// under the batch's locks.
type commit struct {
	s       *Store
	b       Batch
	res     Result
	applied []int // indexes of the records that applied
}

// apply changes the in-memory state: the records, then the offsets.
func (c *commit) apply(tx *mvstate.Tx) error {
	c.applied = c.applied[:0]
	var err error
	c.res.Counts, err = editlog.ApplyBatch(tx, c.b.Records, c.b.Mode, func(i int) { c.applied = append(c.applied, i) })
	if err != nil {
		return err
	}
	for _, o := range c.b.Offsets {
		tx.SetOffset(o.Topic, o.Partition, o.Next)
	}
	for topic, next := range c.b.Reset {
		tx.ResetOffsets(topic, next)
	}
	return nil
}

// persist appends the batch's log entry (one fdatasync) and queues its
// outbox; an error undoes apply.
func (c *commit) persist(tx *mvstate.Tx) error {
	s, b := c.s, c.b
	e := entry{journalID: tx.JournalID(), epoch: tx.Epoch(), topic: b.PublishTo, offsets: tx.OffsetChanges(), dead: b.DeadLetters}
	e.records = make([][]byte, len(c.applied))
	for j, i := range c.applied {
		if b.Encoded != nil {
			e.records[j] = b.Encoded[i]
		} else {
			e.records[j] = editlog.AppendRecord(nil, b.Records[i])
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.seq = s.seq + 1
	e.outboxFirst = s.outboxSeq + 1
	e.ack = max(b.Ack, s.acked)
	n, err := s.appendEntry(&e)
	if err != nil {
		return err
	}
	s.seq, c.res.Bytes = e.seq, n
	s.sinceSnapshot += n
	s.acked = e.ack
	s.pruneOutbox()
	next := e.outboxFirst
	if b.PublishTo != "" {
		for j, i := range c.applied {
			m := recordMessage(b.PublishTo, next, b.Records[i], e.records[j])
			s.outbox = append(s.outbox, m)
			c.res.Outbox = append(c.res.Outbox, m)
			next++
		}
	}
	for _, m := range b.DeadLetters {
		m.Seq = next
		s.outbox = append(s.outbox, m)
		c.res.Outbox = append(c.res.Outbox, m)
		next++
	}
	s.outboxSeq = next - 1
	return nil
}

// appendEntry encodes e into the reused buffer and appends it to the log
// (a memory store writes nothing). Callers hold commitMu and mu.
func (s *Store) appendEntry(e *entry) (int64, error) {
	if _, mem := s.log.(memJournal); mem {
		return 0, nil
	}
	s.buf = e.encode(s.buf[:0])
	n, err := s.log.append(s.buf)
	if cap(s.buf) > 8<<20 {
		s.buf = nil // do not keep a huge batch's buffer
	}
	return n, err
}

// pruneOutbox drops acknowledged messages. Callers hold mu.
func (s *Store) pruneOutbox() {
	i := 0
	for i < len(s.outbox) && s.outbox[i].Seq <= s.acked {
		i++
	}
	if i > 0 {
		s.outbox = append(s.outbox[:0], s.outbox[i:]...)
	}
}

// Outbox returns the messages committed but not yet acknowledged, in order.
func (s *Store) Outbox() []OutboxMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]OutboxMessage(nil), s.outbox...)
}

// Acked returns the outbox sequence acknowledged so far.
func (s *Store) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// SnapshotBytes returns the bytes of all the snapshots this Store wrote
// (the disk writes besides the log's).
func (s *Store) SnapshotBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotBytes
}

// LogSize returns the bytes of log written since the last snapshot.
func (s *Store) LogSize() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sinceSnapshot
}

// maybeSnapshot starts a background snapshot once enough log was written.
func (s *Store) maybeSnapshot() {
	if s.dir == "" || s.opt.SnapshotEvery < 0 {
		return
	}
	s.mu.Lock()
	// At least twice the last snapshot's size of log between two
	// snapshots: writing the state costs at most half the log's bytes
	// again, however large the state grows, and a restart replays at most
	// twice the state's size of log.
	start := !s.snapshotting && !s.closed && s.sinceSnapshot >= max(s.opt.SnapshotEvery, 2*s.snapshotSize)
	if start {
		s.snapshotting = true
		s.snapWG.Add(1)
	}
	s.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer s.snapWG.Done()
		err := s.snapshot(context.Background())
		s.mu.Lock()
		s.snapshotting = false
		s.lastSnapErr = err
		s.mu.Unlock()
		if err != nil && !errors.Is(err, mvstate.ErrSnapshotClosed) {
			s.opt.Log.Warn().Err(err).Str("dir", s.dir).Msg("store: background snapshot failed; the log keeps growing until the next one")
		}
	}()
}

// Snapshot writes a snapshot now and deletes the log segments and older
// snapshots it makes redundant. Commits go on meanwhile.
func (s *Store) Snapshot(ctx context.Context) error {
	if s.dir == "" {
		return nil
	}
	release := s.holdSnapshots()
	defer release()
	return s.snapshot(ctx)
}

// holdSnapshots waits for a snapshot in progress and keeps others from
// starting until release is called: the holder writes one itself, or moves
// the directory they write to (Install). Close waits for holders.
func (s *Store) holdSnapshots() (release func()) {
	s.mu.Lock()
	for s.snapshotting {
		s.mu.Unlock()
		s.snapWG.Wait()
		s.mu.Lock()
	}
	s.snapshotting = true
	s.snapWG.Add(1)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.snapshotting = false
		s.mu.Unlock()
		s.snapWG.Done()
	}
}

// snapshotIfStale writes a snapshot unless one is already on disk and the
// log written since it is smaller than it: opening then replays less than
// a snapshot's worth of log, and a restore that loaded a checkpoint (Load
// wrote its snapshot) and applied a short tail does not write its whole
// state twice. The caller holds snapshots (holdSnapshots).
func (s *Store) snapshotIfStale(ctx context.Context) error {
	s.mu.Lock()
	fresh := s.snapshotSize > 0 && s.sinceSnapshot < s.snapshotSize
	s.mu.Unlock()
	if fresh {
		return nil
	}
	return s.snapshot(ctx)
}

// snapshot writes one snapshot (one at a time: callers set snapshotting).
func (s *Store) snapshot(ctx context.Context) error {
	// Cut the log and open a consistent view of the state at the same
	// entry: no commit runs between the two.
	s.commitMu.Lock()
	sn, err := s.state.Snapshot(mvstate.Selection{})
	if err != nil {
		s.commitMu.Unlock()
		return err
	}
	dropped := s.state.Dropped(0)
	s.mu.Lock()
	meta := &snapMeta{seq: s.seq, journalID: sn.JournalID, epoch: sn.Epoch, outboxSeq: s.outboxSeq, acked: s.acked,
		offsets: sn.Offsets, dropped: dropped, outbox: append([]OutboxMessage(nil), s.outbox...)}
	err = s.log.rotate(s.seq + 1)
	if err == nil {
		s.sinceSnapshot = 0
	}
	s.mu.Unlock()
	s.commitMu.Unlock()
	defer sn.Close()
	if err != nil {
		return err
	}
	path, err := writeSnapshot(ctx, s.dir, meta, sn, !s.opt.NoSync)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil {
		s.mu.Lock()
		s.snapshotSize = fi.Size()
		s.snapshotBytes += fi.Size()
		s.mu.Unlock()
	}
	return s.dropBefore(path, meta.seq)
}

// dropBefore deletes the snapshots older than keep and the log segments
// whose entries are all at or below seq.
func (s *Store) dropBefore(keep string, seq uint64) error {
	snaps, err := listSnapshots(s.dir)
	if err != nil {
		return err
	}
	for _, sf := range snaps {
		if sf.path != keep && sf.seq < seq {
			os.Remove(sf.path)
		}
	}
	segs, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		if i+1 < len(segs) && segs[i+1].first <= seq+1 {
			os.Remove(seg.path)
		}
	}
	if !s.opt.NoSync {
		return syncDir(s.dir)
	}
	return nil
}

// Close waits for a background snapshot and closes the log. With
// finalSnapshot, a snapshot is written first if the log grew since the last
// one (so the next open replays nothing), unless ctx ends first. The state
// stays readable in memory.
func (s *Store) Close(ctx context.Context, finalSnapshot bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	grown := s.sinceSnapshot > 0
	s.mu.Unlock()
	s.snapWG.Wait()
	var errs []error
	if finalSnapshot && grown && s.dir != "" && ctx.Err() == nil {
		if err := s.Snapshot(ctx); err != nil {
			errs = append(errs, fmt.Errorf("store: final snapshot: %w", err))
		}
	}
	s.commitMu.Lock()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.log.close(); err != nil {
		errs = append(errs, err)
	}
	s.commitMu.Unlock()
	return errors.Join(errs...)
}

// ---- opening ---------------------------------------------------------------

// open loads the store in dir (creating it when create is set) and makes it
// ready for commits (unless readOnly).
func open(ctx context.Context, dir string, opt Options, readOnly bool) (*Store, error) {
	start := time.Now()
	opt = opt.withDefaults()
	s := &Store{opt: opt, dir: dir, state: mvstate.NewState()}
	snaps, err := listSnapshots(dir)
	if err != nil {
		return nil, err
	}
	var meta *snapMeta
	if len(snaps) > 0 {
		if meta, err = loadSnapshot(ctx, snaps[0].path, s.state); err != nil {
			return nil, err
		}
		s.recovery.Snapshot = snaps[0].path
		if fi, err := os.Stat(snaps[0].path); err == nil {
			s.snapshotSize = fi.Size()
		}
		s.seq, s.outboxSeq, s.acked, s.outbox = meta.seq, meta.outboxSeq, meta.acked, meta.outbox
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	// Replay the entries after the snapshot.
	tail, err := s.replaySegments(ctx, segs)
	if err != nil {
		return nil, err
	}
	s.recovery.Took = time.Since(start)
	if readOnly {
		s.log = memJournal{}
		s.closed = false
		return s, nil
	}
	w, err := s.openWAL(segs, tail)
	if err != nil {
		return nil, err
	}
	s.log = &fileJournal{w: w, segSize: opt.SegmentSize, log: opt.Log}
	return s, nil
}

// logTail is where the replay of the log ended.
type logTail struct {
	// active is the index of the segment to append to, -1 for a new one.
	active int
	// good is the length of the active segment's valid entries; torn says
	// whether the segment goes on past them (a cut-short append).
	good int64
	torn bool
}

// replaySegments applies the entries of segs after the snapshot's sequence.
func (s *Store) replaySegments(ctx context.Context, segs []segment) (logTail, error) {
	t := logTail{active: -1}
	for i, seg := range segs {
		if i+1 < len(segs) && segs[i+1].first <= s.seq+1 {
			continue // every entry of this segment is in the snapshot
		}
		if seg.first > s.seq+1 {
			return t, &CorruptError{Path: seg.path, Reason: fmt.Sprintf("log entries %d..%d are missing", s.seq+1, seg.first-1)}
		}
		last := i == len(segs)-1
		var err error
		t.good, t.torn, err = readSegment(seg, last, func(e *entry) error {
			if e.seq <= s.seq {
				return nil
			}
			if !last && e.seq >= segs[i+1].first {
				// A failed append that a rotation sealed (the next segment
				// starts at the sequence the commit was retried at): it
				// never committed.
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			return s.replay(ctx, seg.path, e)
		})
		if err != nil {
			return t, err
		}
		t.active = i
	}
	if t.active < 0 && len(segs) > 0 && segs[len(segs)-1].first <= s.seq+1 {
		t.active = len(segs) - 1
	}
	return t, nil
}

// openWAL opens the log for appending where its replay ended: the active
// segment cut back to its valid entries, or a new segment.
func (s *Store) openWAL(segs []segment, t logTail) (*wal, error) {
	opt := s.opt
	w := &wal{dir: s.dir, wrap: opt.WrapFile, sync: !opt.NoSync}
	switch {
	case t.active >= 0 && !(t.torn && t.good == 0):
		if fi, err := os.Stat(segs[t.active].path); err == nil && t.torn {
			s.recovery.TornBytes = fi.Size() - t.good
		}
		if err := w.openActive(segs[t.active], t.good); err != nil {
			return nil, err
		}
		if t.torn && !opt.NoSync {
			if err := w.f.Sync(); err != nil {
				w.close()
				return nil, ioError("sync", segs[t.active].path, err)
			}
		}
	default:
		if t.active >= 0 {
			os.Remove(segs[t.active].path) // a segment whose creation was cut short
		}
		if err := w.createSegment(s.seq + 1); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// replay applies one log entry during open.
func (s *Store) replay(ctx context.Context, path string, e *entry) error {
	recs := make([]*editlog.Record, len(e.records))
	for i, b := range e.records {
		r, err := editlog.Decode(b)
		if err != nil {
			return &CorruptError{Path: path, Reason: fmt.Sprintf("entry %d: record %d: %v", e.seq, i, err)}
		}
		recs[i] = r
	}
	keys, structural := editlog.Touches(recs)
	err := s.state.Commit(ctx, mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		if _, err := editlog.ApplyBatch(tx, recs, editlog.Strict, nil); err != nil {
			return err
		}
		for _, o := range e.offsets {
			if o.Reset {
				tx.ResetOffsets(o.Topic, map[int]int64{o.Partition: o.Next})
			} else {
				tx.SetOffset(o.Topic, o.Partition, o.Next)
			}
		}
		if tx.JournalID() != e.journalID || tx.Epoch() != e.epoch {
			return fmt.Errorf("replay reached journal %d epoch %d, the entry says %d/%d", tx.JournalID(), tx.Epoch(), e.journalID, e.epoch)
		}
		return nil
	}})
	if err != nil {
		return &CorruptError{Path: path, Reason: fmt.Sprintf("entry %d does not replay: %v", e.seq, err)}
	}
	s.seq = e.seq
	s.recovery.Entries++
	next := e.outboxFirst
	if e.topic != "" {
		for i, r := range recs {
			s.outbox = append(s.outbox, recordMessage(e.topic, next, r, e.records[i]))
			next++
		}
	}
	for _, m := range e.dead {
		m.Seq = next
		s.outbox = append(s.outbox, m)
		next++
	}
	if next-1 > s.outboxSeq {
		s.outboxSeq = next - 1
	}
	s.acked = max(s.acked, e.ack)
	s.pruneOutbox()
	return nil
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Load fills an empty store that no other goroutine uses yet (a restore
// building it): each calls add for every MV, with the journal id of the
// last record that changed it, then the journal position and offsets are
// set, and a snapshot makes it all durable.
func (s *Store) Load(ctx context.Context, journalID, epoch int64, offsets map[mvstate.TopicPartition]int64,
	each func(add func(m *mvstate.MV, jid int64)) error) error {
	if !s.state.Empty() {
		return errors.New("store: Load needs an empty store")
	}
	if err := each(s.state.LoadMV); err != nil {
		return err
	}
	s.state.LoadMeta(journalID, epoch, offsets)
	return s.Snapshot(ctx)
}
