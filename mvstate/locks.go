package mvstate

// Lock order (checked by reading; every function that takes more than one of
// these says so in its comment):
//
//	Store.commitMu            one writer at a time (Commit, Reset)
//	  → Store.mu              the MV set, the indexes, journal id, epoch, offsets
//	                          (write mode when a commit changes the MV set or an
//	                          index, read mode otherwise)
//	    → entry.mu            per-MV read/write lock; when several are held they
//	                          are taken in ascending MVKey (db_id, mv_id) order
//	      → bbolt's writer lock (inside db.Begin(true))
//	        → Store.metaMu    journal id, epoch, outbox sequence, applied offsets:
//	                          a leaf lock, held for a few assignments; Commit
//	                          publishes a transaction's buffered meta values
//	                          under it once the transaction is durable
//
// Readers take Store.mu.RLock and then at most one entry.mu.RLock at a time, or
// metaMu alone, and
// never wait for another lock while holding an entry lock, so a reader can never
// be part of a cycle. The single writer holds every lock of a batch from before
// its first in-memory change until its bbolt transaction is durable (or undone),
// so a reader never observes a change that could still be rolled back.

import (
	"slices"
)

// sortKeys sorts MV keys into lock order and removes duplicates, in place.
func sortKeys(keys []MVKey) []MVKey {
	slices.SortFunc(keys, compareKeys)
	return slices.Compact(keys)
}

// compareKeys orders keys by (db_id, mv_id): the lock order.
func compareKeys(a, b MVKey) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}
