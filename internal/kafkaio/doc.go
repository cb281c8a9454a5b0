// Package kafkaio is mvrepair's Kafka adapter: the only package in the module
// that imports github.com/segmentio/kafka-go. Everything else sees the small
// types defined here (Message, Generation, Assignment, ...) and never a
// kafka-go type.
//
// It provides:
//
//   - Producer: a synchronous, multi-topic writer that returns only when every
//     message is acknowledged by all in-sync replicas and then reports where
//     each message was written (Message.Partition and Offset). Keys are
//     partitioned like the Java client's default partitioner (murmur2), so a
//     JVM producer and this one put a key on the same partition (docs/design.md
//     §4). Messages are checked against ProducerConfig.MaxMessageBytes
//     (RecordSize is the size a broker counts against max.message.bytes);
//     too large ones fail with ErrMessageTooLarge.
//   - Group and Generation: the consumer-group membership used for leader
//     election (docs/design.md §7) with SingleActiveBalancer, which gives every
//     partition to one member. Offsets are committed through the generation
//     so that a fenced (stale) writer is detected with errors.Is(err, ErrFenced).
//   - Fetcher: group-less per-partition fetch loops fanned into one queue, for
//     the active member's assignment and for tailing a whole topic
//     (followers, rebuild). It is built on kafka-go's protocol layer rather
//     than kafka.Reader, which hands out the records of aborted transactions
//     and the transaction markers as ordinary messages. With read_committed
//     (the default) it delivers only committed records, and a Skip
//     placeholder Message for every run of skipped records (markers, aborted
//     transactions) so that the consumer's position can move past them. An
//     offset outside the log is reported as an *OffsetOutOfRangeError.
//   - Admin and Lag: topic creation and configs, offsets by position and
//     time, deleting records below an offset, reading and rewinding the
//     offsets of a stopped group, group description and the per-partition
//     consumer lag.
//
// Every client takes a Security (TLS and SASL PLAIN / SCRAM-SHA-256 /
// SCRAM-SHA-512, with kafka-go's sasl packages); one place turns it into
// kafka-go's Transport and Dialer. Authentication and TLS failures wrap
// ErrSecurity and name their cause; passwords never appear in errors or logs.
//
// Errors are wrapped with %w; IsTransient tells retryable errors (broker
// unavailable, timeouts, network errors) from permanent ones (ErrFenced,
// ErrSecurity, ErrMessageTooLarge, ErrOffsetOutOfRange, unknown topics...).
//
// Libraries: kafka-go is the production client (its protocol package carries
// every message the fetcher and admin need but DeleteRecords, defined here
// with its struct tags); cenkalti/backoff paces the fetch retries. franz-go
// (kfake as the embedded broker, kgo as a transactional producer) is used in
// tests only.
package kafkaio
