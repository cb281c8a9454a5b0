// Package loadgen is the load generator behind cmd/loadgen (docs/design.md §5.10):
// it measures the repair pipeline next to a pass-through baseline, in one
// run, on one broker, with one set of client settings, for several workload
// shapes ("cases", see DefaultCases) one after the other.
//
// For each case, on a fresh broker (or fresh topics of a real cluster):
//
//  1. throughput with repairs: a catalog of M MVs over T tables (P recorded
//     partitions each) is seeded through the catalog topic, N
//     partition_version_changed events that each repair every MV of their
//     table are pre-produced (keyed by table, spread over every table,
//     partition and input partition), then the service is started in
//     process (service.Open + Run) and timed from its first committed batch
//     until every event is applied, journaled on the edit-log topic and
//     its offset committed; the result is verified against the state;
//  2. a pass-through baseline over the same N records: a consumer group
//     with the same fetcher settings and batching (pipeline.Collect), one
//     Publish per batch with the same producer settings, one offset commit
//     per batch; no decoding, no state;
//  3. latency at a fixed rate R for both pipelines: events are produced
//     paced, and an event's latency is the time the last output record
//     naming it (an edit-log record's causes[].event_id, or the copy) was
//     read by a tail, minus the time it was handed to Producer.Publish. The
//     tail's own fetch delay is included.
//
// Everything the service did is taken from the pipeline's reports
// (pipeline.Report through a BatchHook, PublishHook, RetryHook and
// OffsetCommitHook passed in service.Options), never from the metrics
// registry: batch sizes, process + local commit times (Report.Took), edit-log
// records per batch, bytes the local log wrote per commit (Report.Bytes)
// next to the encoded size of the records they journal (encoded again off
// the writer's goroutine), repairs, skips and dead letters.
//
// By default the broker is an embedded kfake broker in this process, started
// like the service's dev mode (a data dir, no fsync), on a random port: it
// shares the CPUs with the pipeline it serves, which a real deployment
// would not. Options.Brokers runs against real brokers instead; topic names
// and group ids are unique per case and run, and left on the cluster.
package loadgen
