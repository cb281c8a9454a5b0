// Package kafkaio is mvrepair's Kafka adapter: the only package in the module
// that imports github.com/segmentio/kafka-go. Everything else sees the small
// types defined here (Message, Generation, Assignment, ...) and never a
// kafka-go type.
//
// It provides:
//
//   - Producer: a synchronous, multi-topic writer that returns only when every
//     message is acknowledged by all in-sync replicas, keyed by hash so that
//     one key always lands on one partition (DESIGN.md §4).
//   - Group and Generation: the consumer-group membership used for leader
//     election (DESIGN.md §7) with SingleActiveBalancer, which gives every
//     partition to one member. Offsets are committed through the generation
//     so that a fenced (stale) writer is detected with errors.Is(err, ErrFenced).
//   - Fetcher: group-less per-partition readers fanned into one queue, for the
//     active member's assignment and for tailing a whole topic (followers,
//     rebuild).
//   - Admin and Lag: topic creation, offsets by position and time, reading and
//     rewinding the offsets of a stopped group, group description and the
//     per-partition consumer lag.
//
// Errors are wrapped with %w; IsTransient tells retryable errors (broker
// unavailable, timeouts, network errors) from permanent ones.
package kafkaio
