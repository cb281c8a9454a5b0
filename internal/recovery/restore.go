package recovery

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// ErrMissingRecords means the edit log no longer holds records a restore
// needs (between the checkpoint and the tail): the state would have a hole.
var ErrMissingRecords = errors.New("recovery: edit-log records after the checkpoint are missing")

// ErrNoCheckpoint means the snapshot topic holds no checkpoint (a full
// rebuild from the edit log is the way).
var ErrNoCheckpoint = errors.New("recovery: no checkpoint on the snapshot topic")

// Restore builds st (empty) from the latest checkpoint of the snapshot
// topic and the edit log after it (docs/design.md §4.9, §5.9): its time and
// memory grow with the state and the tail, not with the history. With no
// checkpoint on the snapshot topic it rebuilds from the whole edit log. A
// restore that finds records missing between the checkpoint and the tail
// fails with ErrMissingRecords; it never builds a state with a hole.
func Restore(ctx context.Context, st *store.Store, snaps, log Source, opt Options) (*Report, error) {
	rep, err := FromCheckpoint(ctx, st, snaps, log, opt)
	if errors.Is(err, ErrNoCheckpoint) {
		return Rebuild(ctx, st, log, opt)
	}
	return rep, err
}

// latest is the newest snapshot record of one MV.
type latest struct {
	off  int64
	jid  int64
	mv   *mvstate.MV // nil: a tombstone
	tomb bool
}

// FromCheckpoint is Restore without the fallback: ErrNoCheckpoint when the
// snapshot topic holds no checkpoint.
func FromCheckpoint(ctx context.Context, st *store.Store, snaps, log Source, opt Options) (*Report, error) {
	if !st.State().Empty() {
		return nil, ErrNotEmpty
	}
	start := time.Now()
	prog := newProgress(opt.Progress, start)
	rep := &Report{Offsets: map[int]int64{}}
	sr, err := readSnapshots(ctx, snaps, prog)
	if err != nil {
		return nil, err
	}
	marker := sr.marker
	rep.Checkpoint = marker
	// The checkpoint must match the edit log: the record at its offset is
	// its journal id (a recreated edit log would not be).
	logHWM, err := log.HWM(ctx)
	if err != nil {
		return nil, fmt.Errorf("recovery: edit-log high watermarks: %w", err)
	}
	if logHWM[0] <= marker.EditLogOffset {
		return nil, fmt.Errorf("%w: the checkpoint is at edit-log offset %d but the edit log ends at %d (was it recreated?)",
			ErrMissingRecords, marker.EditLogOffset, logHWM[0])
	}
	if err := sr.load(ctx, st, log.Topic, rep, prog); err != nil {
		return nil, err
	}
	prog.tick("apply", 0, 0)
	// The edit log after the checkpoint, starting at its own record.
	if err := applyTail(ctx, st, log, marker, logHWM, opt, rep, prog); err != nil {
		return rep, err
	}
	a := newApplier(st, log.Topic, opt, rep, prog)
	a.finish(start)
	return rep, nil
}

// snapshotReader keeps the newest record of every key of the snapshot topic
// and the newest checkpoint marker. Its take is called from several
// goroutines.
type snapshotReader struct {
	mu     sync.Mutex
	byKey  map[mvstate.MVKey]*latest
	marker *editlog.Checkpoint
	markAt int64 // the marker's offset, -1 before one
	bad    error // the first record that is not what its key says
}

// snapshotRecord is one record of the snapshot topic (a nil value: a
// tombstone).
type snapshotRecord struct {
	off   int64
	key   string
	value []byte
}

// readSnapshots reads the snapshot topic up to its current end: the newest
// record of every key. Values are decoded on every core as they arrive.
// ErrNoCheckpoint when the topic holds no checkpoint marker.
func readSnapshots(ctx context.Context, snaps Source, prog *progress) (*snapshotReader, error) {
	hwm, err := snaps.HWM(ctx)
	if err != nil {
		return nil, fmt.Errorf("recovery: snapshot topic high watermarks: %w", err)
	}
	sr := &snapshotReader{byKey: map[mvstate.MVKey]*latest{}, markAt: -1}
	jobs := make(chan snapshotRecord, 256)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for j := range jobs {
				sr.take(j)
			}
		})
	}
	read := int64(0)
	total := int64(0)
	for _, hw := range hwm {
		total += hw
	}
	err = scanKeyed(ctx, snaps, hwm, func(off int64, key string, value []byte) error {
		read++
		prog.tick("snapshot", read, total)
		jobs <- snapshotRecord{off: off, key: key, value: value}
		return nil
	})
	close(jobs)
	wg.Wait()
	switch {
	case err != nil:
		return nil, err
	case sr.bad != nil:
		return nil, sr.bad
	case sr.marker == nil:
		return nil, ErrNoCheckpoint
	}
	return sr, nil
}

// take decodes one record of the snapshot topic and keeps it if it is the
// newest of its key. Keys that are neither the checkpoint key nor an MV's
// are not ours and are passed over.
func (sr *snapshotReader) take(j snapshotRecord) {
	if j.key == editlog.CheckpointKey {
		c, err := editlog.DecodeCheckpoint(j.value)
		sr.mu.Lock()
		if err != nil && sr.bad == nil {
			sr.bad = fmt.Errorf("recovery: snapshot topic offset %d: %w", j.off, err)
		}
		if err == nil && j.off > sr.markAt {
			sr.marker, sr.markAt = &c, j.off
		}
		sr.mu.Unlock()
		return
	}
	k, err := parseKey(j.key)
	if err != nil {
		return // not ours
	}
	if j.value == nil {
		sr.keep(k, &latest{off: j.off, tomb: true})
		return
	}
	s, err := editlog.DecodeSnapshot(j.value)
	if err != nil || s.MV.Key() != k {
		sr.mu.Lock()
		if sr.bad == nil {
			sr.bad = fmt.Errorf("recovery: snapshot topic offset %d (key %s): not an MV snapshot of that key: %v", j.off, j.key, err)
		}
		sr.mu.Unlock()
		return
	}
	sr.keep(k, &latest{off: j.off, jid: s.JournalID, mv: s.MV})
}

// keep makes l the record of k unless a later one is kept.
func (sr *snapshotReader) keep(k mvstate.MVKey, l *latest) {
	sr.mu.Lock()
	if cur := sr.byKey[k]; cur == nil || cur.off < l.off {
		sr.byKey[k] = l
	}
	sr.mu.Unlock()
}

// load loads the state as of the checkpoint into st: every MV whose newest
// record is a snapshot (not a tombstone), and the edit-log position after
// the checkpoint's record. The snapshots are released.
func (sr *snapshotReader) load(ctx context.Context, st *store.Store, topic string, rep *Report, prog *progress) error {
	m := sr.marker
	entries := int64(0)
	err := st.Load(ctx, m.JournalID, m.Epoch,
		map[mvstate.TopicPartition]int64{{Topic: topic, Partition: 0}: m.EditLogOffset + 1},
		func(add func(*mvstate.MV, int64)) error {
			for _, l := range sr.byKey {
				if l.mv != nil {
					add(l.mv, l.jid)
					rep.Snapshots++
					entries += int64(l.mv.Entries())
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("recovery: load the checkpoint: %w", err)
	}
	sr.byKey = nil
	prog.entries = entries
	return nil
}

// applyTail applies the edit log from the checkpoint's offset to hwm.
func applyTail(ctx context.Context, st *store.Store, log Source, cp *editlog.Checkpoint, hwm map[int]int64, opt Options, rep *Report, prog *progress) error {
	from := map[int]int64{0: cp.EditLogOffset}
	// Pass 1: epochs of the tail, and the checkpoint's own record.
	starts := epochStarts{}
	first := true
	err := scan(ctx, log, from, hwm, func(p int, off int64, value []byte) error {
		j, e, ok := editlog.Peek(value)
		if first {
			first = false
			if off > cp.EditLogOffset+1 {
				return fmt.Errorf("%w: the checkpoint at journal id %d needs the edit log from offset %d, which now starts at %d",
					ErrMissingRecords, cp.JournalID, cp.EditLogOffset+1, off)
			}
			if off == cp.EditLogOffset && (!ok || j != cp.JournalID) {
				return fmt.Errorf("%w: the checkpoint says edit-log offset %d holds journal id %d, it holds %d (was the edit log recreated?)",
					ErrMissingRecords, cp.EditLogOffset, cp.JournalID, j)
			}
		}
		if ok && off > cp.EditLogOffset {
			starts.note(e, j)
		}
		return nil
	})
	if err != nil {
		return err
	}
	a := newApplier(st, log.Topic, opt, rep, prog)
	a.supersededAt = starts.supersedeLimits()
	err = scan(ctx, log, map[int]int64{0: cp.EditLogOffset + 1}, hwm, func(p int, off int64, value []byte) error {
		return a.record(ctx, p, off, value)
	})
	if err == nil {
		err = a.flush(ctx)
	}
	var gap *GapError
	if errors.As(err, &gap) {
		return fmt.Errorf("%w: %w", ErrMissingRecords, err)
	}
	return err
}

// scanKeyed reads the whole topic up to hwm (exclusive) with each
// record's key and a nil value for tombstones.
func scanKeyed(ctx context.Context, src Source, hwm map[int]int64, fn func(off int64, key string, value []byte) error) error {
	return scanMessages(ctx, src, map[int]int64{}, hwm, func(m kafkaio.Message) error { return fn(m.Offset, string(m.Key), m.Value) })
}

// parseKey parses "<db_id>:<mv_id>".
func parseKey(k string) (mvstate.MVKey, error) {
	var key mvstate.MVKey
	if _, err := fmt.Sscanf(k, "%d:%d", &key.DBID, &key.MVID); err != nil || key.DBID <= 0 || key.MVID <= 0 {
		return key, fmt.Errorf("recovery: snapshot key %q is not <db_id>:<mv_id>", k)
	}
	return key, nil
}
