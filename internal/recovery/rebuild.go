// Package recovery rebuilds a state store from the edit-log topic alone
// (DESIGN.md §5.5, §7): it reads the whole journal, checks its continuity and
// epoch order, drops records a newer writer superseded (a fenced zombie's
// late writes), applies the rest through editlog.Apply, and reports what it
// found instead of hiding it.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Source is the edit-log topic to read.
type Source struct {
	Topic string
	// Open returns a reader of the topic from the given next offsets
	// (absent partitions from the first offset).
	Open func(ctx context.Context, start map[int]int64) (Tail, error)
	// HWM returns the next offset to be written per partition.
	HWM func(ctx context.Context) (map[int]int64, error)
}

// Tail reads records.
type Tail interface {
	Fetch(ctx context.Context) (kafkaio.Message, error)
	Close() error
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

// Report is what a rebuild found.
type Report struct {
	Records     int // read from the topic
	Applied     int
	Duplicates  int // same journal id delivered again (harmless)
	Fenced      []Fenced
	Undecodable []int64 // offsets of records that are not edit-log JSON
	Gaps        []GapError
	JournalID   int64
	Epoch       int64
	MVs         int
	// Offsets are the edit-log positions the store now records.
	Offsets map[int]int64
}

// ErrNotEmpty is returned when the target store already holds state.
var ErrNotEmpty = errors.New("recovery: the target store is not empty")

// Rebuild reads the whole edit log up to its current high watermarks into
// st, which must be empty. Records are applied in log order after dropping
// superseded ones (editlog.Supersede); a gap in the journal stops the
// rebuild with a *GapError (the state would be wrong past it) unless
// allowGaps is set, in which case the gap is reported and the records after
// it are skipped as Apply dictates.
func Rebuild(ctx context.Context, st *mvstate.Store, src Source, allowGaps bool) (*Report, error) {
	if st.JournalID() != 0 || st.Len() != 0 {
		return nil, ErrNotEmpty
	}
	rep := &Report{Offsets: map[int]int64{}}
	hwm, err := src.HWM(ctx)
	if err != nil {
		return nil, fmt.Errorf("recovery: edit-log high watermarks: %w", err)
	}
	type item struct {
		rec *editlog.Record
		msg kafkaio.Message
	}
	var items []item
	pending := 0
	for _, hw := range hwm {
		if hw > 0 {
			pending++
		}
	}
	if pending > 0 {
		tail, err := src.Open(ctx, map[int]int64{})
		if err != nil {
			return nil, fmt.Errorf("recovery: open edit log: %w", err)
		}
		defer tail.Close()
		for pending > 0 {
			m, err := tail.Fetch(ctx)
			if err != nil {
				return nil, fmt.Errorf("recovery: read edit log: %w", err)
			}
			if m.Offset >= hwm[m.Partition] {
				continue
			}
			rep.Records++
			if m.Offset+1 > rep.Offsets[m.Partition] {
				rep.Offsets[m.Partition] = m.Offset + 1
			}
			if m.Offset+1 == hwm[m.Partition] {
				pending--
			}
			r, err := editlog.Decode(m.Value)
			if err != nil {
				rep.Undecodable = append(rep.Undecodable, m.Offset)
				continue
			}
			items = append(items, item{rec: r, msg: m})
		}
	}
	recs := make([]*editlog.Record, len(items))
	for i, it := range items {
		recs[i] = it.rec
	}
	keep, superseded := editlog.Supersede(recs)
	supSet := map[*editlog.Record]bool{}
	for _, r := range superseded {
		supSet[r] = true
	}
	for _, it := range items {
		if supSet[it.rec] {
			rep.Fenced = append(rep.Fenced, Fenced{JournalID: it.rec.JournalID, Epoch: it.rec.Epoch, Offset: it.msg.Offset})
		}
	}
	const chunk = 1000
	for start := 0; start < len(keep); start += chunk {
		batch := keep[start:min(start+chunk, len(keep))]
		keys, structural := editlog.Touches(batch)
		var applied, dups int
		var gaps []GapError
		err := st.Commit(ctx, mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
			applied, dups, gaps = 0, 0, nil
			for _, r := range batch {
				last := tx.JournalID()
				res, err := editlog.Apply(tx, r)
				if err != nil {
					return err
				}
				switch res {
				case editlog.Applied:
					applied++
				case editlog.Duplicate:
					dups++
				case editlog.Gap:
					if len(gaps) == 0 || gaps[len(gaps)-1].After != last {
						gaps = append(gaps, GapError{After: last, Next: r.JournalID})
					}
				case editlog.Forked, editlog.Stale:
					// Supersede removed what a newer epoch replaced; a
					// remaining older-epoch record is a late duplicate.
					dups++
				}
			}
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("recovery: apply: %w", err)
		}
		rep.Applied += applied
		rep.Duplicates += dups
		rep.Gaps = append(rep.Gaps, gaps...)
		if len(rep.Gaps) > 0 && !allowGaps {
			return rep, &rep.Gaps[0]
		}
	}
	// Remember where the journal was read to, so a follower continues there.
	err = st.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error {
		parts := make([]int, 0, len(rep.Offsets))
		for p := range rep.Offsets {
			parts = append(parts, p)
		}
		sort.Ints(parts)
		for _, p := range parts {
			if err := tx.SetOffset(src.Topic, p, rep.Offsets[p]); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("recovery: record edit-log offsets: %w", err)
	}
	rep.JournalID, rep.Epoch, rep.MVs = st.JournalID(), st.Epoch(), st.Len()
	return rep, nil
}
