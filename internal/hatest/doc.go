// Package hatest holds the high-availability tests of docs/design.md §7: several
// service instances (child processes of the test binary, started through
// internal/testkit, each with a state dir of its own) in one consumer group,
// one active writer and hot standbys; failover after kill -9 and after a
// clean stop; a zombie writer's late record ignored by followers and fenced
// by a rebuild. They run on the embedded broker, or on KAFKA_BROKERS. The
// rebuild benchmark times `rebuild --from-edit-log --full` of 1M entries.
package hatest
