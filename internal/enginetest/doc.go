// Package enginetest holds cross-package tests and benchmarks of the repair
// engine: the rules (handler), the edit log (editlog) and the state store
// (mvstate) driven together through the live writer's path
// (internal/pipeline.Processor: handler.Process on the store as View, then
// editlog.Apply of every record inside one mvstate.Store.Commit, with the
// outbox and the input offsets).
//
// It has no non-test code. The tests are property tests (pgregory.net/rapid)
// over random catalogs and random event streams cut into random batches:
//
//   - the edit log alone rebuilds the live state, byte for byte (DESIGN.md §5.5),
//     and a durable store reopened (also mid-stream) equals the live one;
//   - re-processing an input changes nothing and journals nothing (§5.2);
//   - no native entry moves unless rule §3.1 held for it, and an MV's
//     last_refresh_time never goes backwards (§3.1, §5.6).
//
// The benchmarks measure the cost of one repair against the MV's size, one
// durable commit of 1,000 repairs, reopening a store of many entries, and a
// StarRocks-style baseline that journals the whole version map per repair.
// Their figures are in docs/benchmarks.md ("Repair engine").
package enginetest
