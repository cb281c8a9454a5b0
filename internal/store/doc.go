// Package store is mvrepair's durable local state: the in-memory
// mvstate.State made durable by an append-only log with one fdatasync per
// commit, plus snapshots written in the background (etcd's WAL + snap and
// raft's LogStore + snapshots are the models).
//
// One Commit is one log entry: the edit-log records the batch applied (their
// wire bytes, which are also what the writer publishes), the input offsets
// it consumed, the dead letters it produced and the outbox position the
// broker has acknowledged. Records go through editlog.ApplyBatch inside
// mvstate.State.Commit, and the entry is appended and synced while the
// batch's locks are held; if the append fails, the batch is undone in memory,
// so memory never holds what the disk does not. Appending costs one
// sequential write and one fdatasync, whatever the size of the state (a
// B+tree store rewrote hundreds of random pages per commit:
// docs/benchmarks.md).
//
// The outbox (records and dead letters committed but not yet acknowledged by
// the broker) is the tail of the log after the last acknowledgement; it is
// kept in memory and in snapshots.
//
// A snapshot is the state at one log entry, written while commits go on (an
// mvstate.Snapshot: copy on write), in the record format of the snapshot
// topic (editlog.AppendSnapshot), framed like the log. Opening a store loads
// the newest snapshot and replays the log entries after it; log segments and
// snapshots the newest snapshot makes redundant are deleted.
//
// Files under state.dir:
//
//	LOCK                 flock of the process using the state dir
//	store/               the live store
//	  snap-<seq>.snap    snapshots (seq = the last log entry they include)
//	  wal-<seq>.log      log segments (seq = their first entry)
//	store.new/           a store being built by a rebuild; COMPLETE when done
//	store.old-<time>/    a store moved aside (replaced or found corrupt)
//
// Every frame of every file carries a CRC-32C. A torn last entry (a crash
// during an append) is cut off at open; any other damage is a *CorruptError:
// the caller moves the store aside and restores from Kafka rather than
// serving or extending a bad state.
//
// Lock order (outermost first; see mvstate/locks.go for the state's own):
//
//	Store.commitMu   one commit or snapshot start at a time
//	  → mvstate.State's locks (commitMu → mu → entry.mu)
//	    → Store.mu   the log file, the outbox and the counters (a leaf)
package store
