package editlog

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mvrepair/mvrepair/mvstate"
)

// Result says what Apply did with a record.
type Result int

// Apply results.
const (
	// Applied: the record's changes were made and its journal id recorded.
	Applied Result = iota
	// Duplicate: the record's journal id is not above the last applied one
	// (same epoch): a redelivery, ignored.
	Duplicate
	// Stale: the record's epoch is older than the last applied one: a late
	// write of a fenced (zombie) writer, ignored.
	Stale
	// Forked: a newer epoch whose journal id is not above the last applied
	// one. The new writer started from an earlier point than this reader has
	// reached, so this reader applied records the new writer never saw. The
	// record is not applied; the reader must rebuild (see Supersede).
	Forked
	// Gap: the journal id is more than one above the last applied one. The
	// record is not applied: a writer retries a failed publish as a whole, so
	// the missing records arrive again before it (or the log is damaged,
	// which a rebuild reports).
	Gap
)

// String names the result for logs and metrics.
func (r Result) String() string {
	switch r {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Forked:
		return "forked"
	case Gap:
		return "gap"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// ErrForked is returned by callers that cannot continue after a Forked result.
var ErrForked = errors.New("editlog: journal forked by a newer epoch; rebuild from the edit log")

// ErrInconsistent means a record that had to apply did not: a writer's own
// records (decided against this very state) always apply, so this is a bug,
// never a transient failure.
var ErrInconsistent = errors.New("editlog: record does not apply to the state it was decided on")

// Apply makes the changes of one record in tx. A record is applied only if
// its epoch is not older than the last applied epoch and its journal id is
// the next one, last applied + 1 (docs/design.md §8.1: the spec says "above
// the last applied"; requiring the next one also keeps a reader from
// skipping records that a retried publish wrote out of order); otherwise it
// is a no-op and the result says why. A record about an MV the state does
// not have (other than mv_upserted) changes nothing but still advances the
// journal, and so does a record whose MV was already changed by a record at
// or above it: a state restored from a checkpoint holds MVs newer than the
// checkpoint's journal id, and the edit-log tail after it must not apply its
// older records to them (docs/design.md §4.9). In a live state every MV's
// last change is below the next journal id, so that test never fires there.
//
// The caller's mvstate.Batch must declare the record's MV (Touches) and, for
// structural ops, be Structural. Most callers use ApplyBatch.
func Apply(tx *mvstate.Tx, r *Record) (Result, error) {
	switch {
	case r.Epoch < tx.Epoch():
		return Stale, nil
	case r.JournalID <= tx.JournalID() && r.Epoch == tx.Epoch():
		return Duplicate, nil
	case r.JournalID <= tx.JournalID():
		return Forked, nil
	case r.JournalID > tx.JournalID()+1:
		return Gap, nil
	}
	tx.BeginRecord(r.JournalID)
	if tx.MVJournalID(r.MV.Key()) < r.JournalID {
		if err := applyOp(tx, r); err != nil {
			return 0, fmt.Errorf("editlog: apply record %d (%s %s): %w", r.JournalID, r.Op, r.MV.Key(), err)
		}
	}
	tx.SetJournal(r.JournalID, r.Epoch)
	return Applied, nil
}

// Mode says how ApplyBatch treats records that do not apply.
type Mode int

const (
	// Strict: every record must apply; anything else is ErrInconsistent.
	// For a writer's own records, decided against the same state.
	Strict Mode = iota
	// Follow: duplicates, stale records and gaps are counted and skipped; a
	// fork stops the batch with ErrForked. For followers of the edit log.
	Follow
	// Rebuild: like Follow, but a record of an older epoch, or of a newer
	// one starting below the journal, counts as a duplicate (Supersede
	// already removed what a newer epoch replaced). For restores.
	Rebuild
)

// Hole is a gap in the journal: the records after After up to Next-1 are
// missing.
type Hole struct{ After, Next int64 }

// Counts tallies what ApplyBatch did with each record.
type Counts struct {
	Applied, Duplicate, Stale, Gap, Forked int
	// Gaps lists the holes found (Follow and Rebuild), in order.
	Gaps []Hole
}

// Add adds o's tallies to c.
func (c *Counts) Add(o Counts) {
	c.Applied += o.Applied
	c.Duplicate += o.Duplicate
	c.Stale += o.Stale
	c.Gap += o.Gap
	c.Forked += o.Forked
	c.Gaps = append(c.Gaps, o.Gaps...)
}

// ApplyBatch applies recs in order inside one commit: the single apply loop
// of every path (the writer, followers, restores, the local log's replay),
// run by the store's Commit. applied, when not nil, is called for each
// record that applied, with its index.
func ApplyBatch(tx *mvstate.Tx, recs []*Record, mode Mode, applied func(i int)) (Counts, error) {
	var c Counts
	for i, r := range recs {
		last := tx.JournalID()
		res, err := Apply(tx, r)
		if err != nil {
			return c, err
		}
		if res != Applied && mode == Strict {
			return c, fmt.Errorf("%w: record %d was %s (state at %d, epoch %d)", ErrInconsistent, r.JournalID, res, last, tx.Epoch())
		}
		switch res {
		case Applied:
			c.Applied++
			if applied != nil {
				applied(i)
			}
		case Duplicate:
			c.Duplicate++
		case Stale:
			if mode == Rebuild {
				c.Duplicate++
			} else {
				c.Stale++
			}
		case Forked:
			if mode == Rebuild {
				c.Duplicate++
				continue
			}
			c.Forked++
			return c, fmt.Errorf("%w: record %d of epoch %d at or below journal %d (epoch %d)", ErrForked, r.JournalID, r.Epoch, last, tx.Epoch())
		case Gap:
			c.Gap++
			if n := len(c.Gaps); n == 0 || c.Gaps[n-1].After != last {
				c.Gaps = append(c.Gaps, Hole{After: last, Next: r.JournalID})
			}
		}
	}
	return c, nil
}

func applyOp(tx *mvstate.Tx, r *Record) error {
	key := r.MV.Key()
	switch r.Op {
	case OpUpserted:
		if r.Definition == nil {
			return errors.New("mv_upserted without mv")
		}
		if r.Definition.Key() != key {
			return fmt.Errorf("mv_upserted: definition key %s differs from record key %s", r.Definition.Key(), key)
		}
		return tx.PutMV(r.Definition)
	case OpDropped:
		return tx.DeleteMV(key)
	}
	if tx.MV(key) == nil {
		return nil
	}
	switch r.Op {
	case OpVersionRepaired:
		if r.BaseTable == nil {
			return errors.New("mv_version_repaired without base_table")
		}
		if err := tx.SetPartitions(key, r.BaseTable.TableID, r.Partitions); err != nil {
			return err
		}
		return tx.SetLastRefreshTime(key, r.MVLastRefreshTime)
	case OpBaseTableInfoRepaired:
		if r.OldBaseTable == nil || r.NewBaseTable == nil {
			return errors.New("mv_base_table_info_repaired without old/new base table")
		}
		return tx.ReplaceExternalTable(key, *r.OldBaseTable, *r.NewBaseTable, r.Partitions)
	case OpRefreshed:
		for id, pm := range r.VersionMap {
			if err := tx.SetPartitions(key, id, pm); err != nil {
				return err
			}
		}
		for bt, pm := range r.ExternalVersionMap {
			if err := tx.SetExternalPartitions(key, bt, pm); err != nil {
				return err
			}
		}
		for id, names := range r.Removed {
			if err := tx.DeletePartitions(key, id, names); err != nil {
				return err
			}
		}
		return tx.SetLastRefreshTime(key, r.MVLastRefreshTime)
	}
	return fmt.Errorf("unknown op %q", r.Op)
}

// Structural reports whether applying the record may change the MV set or an
// index (and so needs an exclusive state lock).
func (r *Record) Structural() bool {
	return r.Op == OpUpserted || r.Op == OpDropped || r.Op == OpBaseTableInfoRepaired
}

// Touches returns the MV keys the records change and whether any of them is
// structural: what an mvstate.Batch must declare.
func Touches(recs []*Record) ([]mvstate.MVKey, bool) {
	keys := make([]mvstate.MVKey, 0, len(recs))
	structural := false
	for _, r := range recs {
		keys = append(keys, r.MV.Key())
		structural = structural || r.Structural()
	}
	return keys, structural
}

// Supersede splits a journal read in log order into the records a rebuild
// must apply and the ones it must skip because a newer epoch superseded them:
// a record (epoch e, journal j) is superseded when some record of a newer
// epoch e' > e has a journal id <= j. That newer writer started from a state
// before j, so it never saw the record (a zombie's late write, or an
// unpublished outbox of a writer that lost its role). Duplicates are kept;
// Apply drops them.
func Supersede(recs []*Record) (keep, superseded []*Record) {
	// start[e] = smallest journal id seen for epoch e.
	start := map[int64]int64{}
	for _, r := range recs {
		if s, ok := start[r.Epoch]; !ok || r.JournalID < s {
			start[r.Epoch] = r.JournalID
		}
	}
	epochs := make([]int64, 0, len(start))
	for e := range start {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	// minLater[i] = smallest start among epochs newer than epochs[i].
	minLater := make(map[int64]int64, len(epochs))
	var best int64 = -1
	for i := len(epochs) - 1; i >= 0; i-- {
		minLater[epochs[i]] = best
		if s := start[epochs[i]]; best < 0 || s < best {
			best = s
		}
	}
	for _, r := range recs {
		if m := minLater[r.Epoch]; m >= 0 && m <= r.JournalID {
			superseded = append(superseded, r)
			continue
		}
		keep = append(keep, r)
	}
	return keep, superseded
}
