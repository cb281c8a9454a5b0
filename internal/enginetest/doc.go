// Package enginetest holds cross-package tests and benchmarks of the repair
// engine: the rules (handler), the edit log (editlog), the in-memory state
// (mvstate) and the durable store (internal/store) driven together through
// the live writer's path (internal/pipeline.Processor: inputs below the
// store's applied offsets reported as duplicates, handler.Process on the
// state, then one store.Commit applying every record with editlog.ApplyBatch,
// with the outbox and the input offsets).
//
// It has no non-test code. The tests are property tests (pgregory.net/rapid)
// over random catalogs and random event streams cut into random batches,
// drawn by internal/testkit/gen:
//
//   - the edit log alone rebuilds the live state, byte for byte (docs/design.md §5.5),
//     and a durable store agrees with what its directory holds (its snapshot
//     and the log after it), also reopened mid-stream, and after commits that
//     failed on the disk;
//   - re-processing an input changes nothing and journals nothing (§5.2);
//   - no native entry moves unless rule §3.1 held for it, and an MV's
//     last_refresh_time never goes backwards (§3.1, §5.6).
//
// The benchmarks measure the cost of one repair against the MV's size, one
// durable commit of 1,000 repairs, reopening a store of many entries, and a
// StarRocks-style baseline that journals the whole version map per repair.
// Their figures are in docs/benchmarks.md ("Repair engine").
package enginetest
