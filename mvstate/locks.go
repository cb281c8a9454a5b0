package mvstate

// Lock order (checked by reading; every function that takes more than one of
// these says so in its comment), outermost first:
//
//	State.commitMu        one writer at a time: Commit, Load, Snapshot and
//	                      Snapshot.Close (the set of open snapshots changes
//	                      only under it)
//	  → State.mu          the MV set, the indexes and the dropped MVs (write
//	                      mode when a batch is Structural, read mode otherwise)
//	    → entry.mu        per-MV read/write lock; when several are held they
//	                      are taken in ascending MVKey (db_id, mv_id) order
//	      → Snapshot.mu   the copies an open snapshot was handed (a leaf; taken
//	                      by a committer capturing an MV it is about to change,
//	                      and by the snapshot's reader)
//	      → (a Batch's Persist: the durable store's own leaf lock, see
//	        internal/store)
//	        → State.metaMu  journal id, epoch, applied offsets: a leaf, held
//	                      for a few assignments; Commit publishes the batch's
//	                      meta values under it once Persist succeeded
//
// Readers take State.mu.RLock and then at most one entry.mu.RLock at a time,
// or metaMu alone, and never wait for another lock while holding an entry
// lock, so a reader can never be part of a cycle. The single writer holds
// every lock of a batch from before its first in-memory change until its
// Persist returned (or the batch was undone), so a reader never observes a
// change that could still be rolled back.

import (
	"slices"
)

// sortKeys sorts MV keys into lock order and removes duplicates, in place.
func sortKeys(keys []MVKey) []MVKey {
	slices.SortFunc(keys, compareKeys)
	return slices.Compact(keys)
}

// compareKeys orders keys by (db_id, mv_id): the lock order.
func compareKeys(a, b MVKey) int { return a.Compare(b) }
