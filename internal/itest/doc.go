// Package itest is the integration test suite of the pipeline (docs/design.md §5,
// §8): the whole service — state store, kafka-go clients, consumer group,
// writer, follower, outbox, dead-letter queue — driven over TCP against a
// Kafka-protocol broker.
//
// By default every test starts its own embedded broker (franz-go's kfake,
// internal/embedded) on a random loopback port, so `go test ./...` needs
// nothing but Go. When the environment variable KAFKA_BROKERS is set
// (comma-separated host:port, e.g. a real Apache Kafka in CI), the same tests
// run against that cluster instead; every test then uses its own topics and
// consumer group (names suffixed with a random id), so runs can share one
// broker. Tests that need to stop the broker itself are skipped there.
//
// The crash tests run the service in a child process (the test binary re-run
// with -test.run=^TestServiceChild$) and kill it with SIGKILL at random
// moments, have it SIGKILL itself just before or just after a local commit
// (through the store's commit hook), or stop it with SIGTERM. The test kills
// only while the consumer group is Stable: kfake never expires a member
// killed while its JoinGroup is pending (see reference/kfake-with-kafka-go.md).
// The expected final state is that of the same input applied, crash-free, to
// an in-memory store through the same decoder, rules and edit-log code.
//
// Environment knobs: ITEST_LOG_LEVEL (the services' log level, default info;
// logs go to files that are printed when a test fails) and ITEST_SEED (the
// seed of the random workloads and kill moments, logged by every test that
// uses one).
package itest
