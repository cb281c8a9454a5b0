// Package hatest holds the high-availability tests of DESIGN.md §7: several
// service instances (child processes of the test binary) in one consumer
// group, one active writer and hot standbys; failover after kill -9 and after
// a clean stop; a zombie writer's late record ignored by followers and fenced
// by rebuild. They run on the embedded broker, or on KAFKA_BROKERS.
package hatest
