// Package recovery builds a state store from Kafka (docs/design.md §5.5,
// §5.9, §7): from the edit log alone (a full rebuild), or from the latest
// checkpoint of the snapshot topic plus the edit log after it. It checks the
// journal's continuity and epoch order, drops records a newer writer
// superseded (a fenced zombie's late writes), applies the rest through the
// store's single apply path, and reports what it found instead of hiding it.
// Memory follows the state, not the history: the log is streamed, never
// held whole.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Source is the edit-log topic to read.
type Source struct {
	Topic string
	// Open returns a reader of the topic from the given next offsets
	// (absent partitions from the first offset).
	Open pipeline.TailOpener
	// HWM returns the next offset to be written per partition.
	HWM pipeline.HighWatermarks
}

// Fenced is a record a newer epoch superseded.
type Fenced struct {
	JournalID, Epoch int64
	Offset           int64
}

// GapError reports journal ids missing from the log.
type GapError struct {
	// After is the last journal id applied before the gap; Next the first
	// one found after it.
	After, Next int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("edit log has a gap: journal ids %d..%d are missing", e.After+1, e.Next-1)
}

// Report is what a rebuild or restore found.
type Report struct {
	// Checkpoint is the checkpoint the restore started from (nil: the
	// whole edit log was read).
	Checkpoint *editlog.Checkpoint
	// Snapshots is the number of MV snapshot records loaded.
	Snapshots  int
	Records    int // edit-log records read
	Applied    int
	Duplicates int // same journal id delivered again (harmless)
	Fenced     []Fenced
	// Undecodable are the offsets of records that are not edit-log JSON.
	Undecodable []int64
	Gaps        []GapError
	JournalID   int64
	Epoch       int64
	MVs         int
	// Offsets are the edit-log positions the store now records.
	Offsets map[int]int64
	Took    time.Duration
}

// Progress is a restore's progress, reported about once a second.
type Progress struct {
	// Phase is "snapshot" (reading the snapshot topic), "scan" (reading the
	// edit log's epochs) or "apply" (applying the edit log).
	Phase string
	// Done and Total count Kafka records of the phase (Total may be an
	// upper bound: compacted topics have holes).
	Done, Total int64
	// Entries counts the partition entries loaded so far.
	Entries int64
	Elapsed time.Duration
}

// Options tune Rebuild and Restore.
type Options struct {
	// AllowGaps finishes despite journal gaps (the records after a gap are
	// not applied) instead of failing with a *GapError.
	AllowGaps bool
	// Progress, when set, receives progress about once a second.
	Progress func(Progress)
	// Chunk is the most records per local commit (default 1000).
	Chunk int
}

// ErrNotEmpty is returned when the target store already holds state.
var ErrNotEmpty = errors.New("recovery: the target store is not empty")

// Rebuild reads the whole edit log, up to its current high watermarks, into
// st, which must be empty. It reads the log twice: first only the journal
// ids and epochs (to know which records a newer epoch superseded:
// editlog.Supersede), then the records, applied in chunks as they arrive,
// so memory holds the state and one chunk, never the log. A gap in the
// journal stops the rebuild with a *GapError (the state would be wrong past
// it) unless AllowGaps.
func Rebuild(ctx context.Context, st *store.Store, src Source, opt Options) (*Report, error) {
	if !st.State().Empty() {
		return nil, ErrNotEmpty
	}
	start := time.Now()
	rep := &Report{Offsets: map[int]int64{}}
	hwm, err := src.HWM(ctx)
	if err != nil {
		return nil, fmt.Errorf("recovery: edit-log high watermarks: %w", err)
	}
	prog := newProgress(opt.Progress, start)
	// Pass 1: the first journal id of every epoch.
	starts := epochStarts{}
	scanned := int64(0)
	err = scan(ctx, src, map[int]int64{}, hwm, func(p int, off int64, value []byte) error {
		scanned++
		prog.tick("scan", scanned, 0)
		if j, e, ok := editlog.Peek(value); ok {
			starts.note(e, j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Pass 2: apply.
	a := newApplier(st, src.Topic, opt, rep, prog)
	a.supersededAt = starts.supersedeLimits()
	err = scan(ctx, src, map[int]int64{}, hwm, func(p int, off int64, value []byte) error {
		return a.record(ctx, p, off, value)
	})
	if err == nil {
		err = a.flush(ctx)
	}
	if err != nil {
		return rep, err
	}
	a.finish(start)
	return rep, nil
}

// epochStarts maps each epoch of the log to its first journal id.
type epochStarts map[int64]int64

// note records that epoch e wrote journal id j.
func (es epochStarts) note(e, j int64) {
	if s, seen := es[e]; !seen || j < s {
		es[e] = j
	}
}

// supersedeLimits maps each epoch to the smallest first journal id of the
// epochs newer than it: its records at or above that were superseded
// (editlog.Supersede's rule, from epoch starts alone).
func (es epochStarts) supersedeLimits() map[int64]int64 {
	epochs := make([]int64, 0, len(es))
	for e := range es {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	out := map[int64]int64{}
	best := int64(-1)
	for i := len(epochs) - 1; i >= 0; i-- {
		if best >= 0 {
			out[epochs[i]] = best
		}
		if s := es[epochs[i]]; best < 0 || s < best {
			best = s
		}
	}
	return out
}

// scan reads the topic from start up to hwm (exclusive), calling fn for
// every record in per-partition order. A record deleted before it was read
// fails the scan with ErrMissingRecords.
func scan(ctx context.Context, src Source, start, hwm map[int]int64, fn func(p int, off int64, value []byte) error) error {
	err := scanMessages(ctx, src, start, hwm, func(m kafkaio.Message) error { return fn(m.Partition, m.Offset, m.Value) })
	var oor *kafkaio.OffsetOutOfRangeError
	if ctx.Err() == nil && errors.As(err, &oor) && oor.Offset < oor.LogStart {
		return fmt.Errorf("%w: %s starts at offset %d, the restore needs it from %d (records were deleted)",
			ErrMissingRecords, src.Topic, oor.LogStart, oor.Offset)
	}
	return err
}

// scanMessages reads the topic from start (absent partitions: from their
// first offset) up to hwm (exclusive), calling fn for every record but the
// placeholders of skipped ones, in per-partition order.
func scanMessages(ctx context.Context, src Source, start, hwm map[int]int64, fn func(kafkaio.Message) error) error {
	pending := 0
	for p, hw := range hwm {
		if hw > start[p] && hw > 0 {
			pending++
		}
	}
	if pending == 0 {
		return nil
	}
	tail, err := src.Open(ctx, start)
	if err != nil {
		return fmt.Errorf("recovery: open %s: %w", src.Topic, err)
	}
	defer tail.Close()
	for pending > 0 {
		m, err := tail.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			return fmt.Errorf("recovery: read %s: %w", src.Topic, err)
		}
		hw := hwm[m.Partition]
		if m.Offset >= hw {
			continue
		}
		if !m.Skip {
			if err := fn(m); err != nil {
				return err
			}
		}
		if m.Offset+1 == hw {
			pending--
		}
	}
	return nil
}

// applier applies edit-log records to a store in chunks.
type applier struct {
	st    *store.Store
	topic string
	opt   Options
	rep   *Report
	prog  *progress

	// supersededAt is supersedeLimits of the log being applied.
	supersededAt map[int64]int64

	recs []*editlog.Record
	enc  [][]byte
	pos  map[int]int64
}

func newApplier(st *store.Store, topic string, opt Options, rep *Report, prog *progress) *applier {
	if opt.Chunk <= 0 {
		opt.Chunk = 1000
	}
	return &applier{st: st, topic: topic, opt: opt, rep: rep, prog: prog, pos: map[int]int64{}}
}

// position notes that the log was read through offset off of partition p.
func (a *applier) position(ctx context.Context, p int, off int64) error {
	if off+1 > a.pos[p] {
		a.pos[p] = off + 1
	}
	if off+1 > a.rep.Offsets[p] {
		a.rep.Offsets[p] = off + 1
	}
	return nil
}

// record applies the record value read at offset off of partition p, or
// reports it (and moves past it) when it does not decode or a newer epoch
// superseded it.
func (a *applier) record(ctx context.Context, p int, off int64, value []byte) error {
	a.rep.Records++
	r, err := editlog.Decode(value)
	if err != nil {
		a.rep.Undecodable = append(a.rep.Undecodable, off)
		return a.position(ctx, p, off)
	}
	if lim, ok := a.supersededAt[r.Epoch]; ok && lim <= r.JournalID {
		a.rep.Fenced = append(a.rep.Fenced, Fenced{JournalID: r.JournalID, Epoch: r.Epoch, Offset: off})
		return a.position(ctx, p, off)
	}
	return a.add(ctx, p, off, r, value)
}

func (a *applier) add(ctx context.Context, p int, off int64, r *editlog.Record, value []byte) error {
	a.position(ctx, p, off)
	a.recs = append(a.recs, r)
	a.enc = append(a.enc, value)
	if len(a.recs) >= a.opt.Chunk {
		return a.flush(ctx)
	}
	return nil
}

// flush commits the pending records and the edit-log position.
func (a *applier) flush(ctx context.Context) error {
	if len(a.recs) == 0 && len(a.pos) == 0 {
		return nil
	}
	b := store.Batch{Records: a.recs, Encoded: a.enc, Mode: editlog.Rebuild}
	for p, next := range a.pos {
		b.Offsets = append(b.Offsets, mvstate.OffsetChange{TopicPartition: mvstate.TopicPartition{Topic: a.topic, Partition: p}, Next: next})
	}
	res, err := a.st.Commit(ctx, b)
	if err != nil {
		return fmt.Errorf("recovery: apply: %w", err)
	}
	a.rep.Applied += res.Counts.Applied
	a.rep.Duplicates += res.Counts.Duplicate + res.Counts.Stale
	for _, g := range res.Counts.Gaps {
		if n := len(a.rep.Gaps); n == 0 || a.rep.Gaps[n-1].After != g.After {
			a.rep.Gaps = append(a.rep.Gaps, GapError{After: g.After, Next: g.Next})
		}
	}
	for _, r := range res.Applied {
		if r.Op == editlog.OpUpserted && r.Definition != nil {
			a.prog.entries += int64(r.Definition.Entries())
		} else {
			a.prog.entries += int64(len(r.Partitions))
		}
	}
	a.recs, a.enc = a.recs[:0], a.enc[:0]
	clear(a.pos)
	a.prog.tick("apply", int64(a.rep.Records), 0)
	if len(a.rep.Gaps) > 0 && !a.opt.AllowGaps {
		return &a.rep.Gaps[0]
	}
	return nil
}

func (a *applier) finish(start time.Time) {
	st := a.st.State()
	a.rep.JournalID, a.rep.Epoch, a.rep.MVs = st.JournalID(), st.Epoch(), st.Len()
	a.rep.Took = time.Since(start)
	a.prog.done("apply", int64(a.rep.Records))
}

// progress throttles Progress calls to about one a second.
type progress struct {
	fn      func(Progress)
	start   time.Time
	last    time.Time
	entries int64
}

func newProgress(fn func(Progress), start time.Time) *progress {
	return &progress{fn: fn, start: start, last: start}
}

func (p *progress) tick(phase string, done, total int64) {
	if p.fn == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	p.fn(Progress{Phase: phase, Done: done, Total: total, Entries: p.entries, Elapsed: time.Since(p.start)})
}

func (p *progress) done(phase string, n int64) {
	if p.fn != nil {
		p.fn(Progress{Phase: phase, Done: n, Total: n, Entries: p.entries, Elapsed: time.Since(p.start)})
	}
}
