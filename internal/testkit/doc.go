// Package testkit is the one test framework of mvrepair's integration and
// HA suites (etcd's tests/framework and watermill's pubsub/tests are the
// models): a broker (an embedded one per test, or the cluster named by
// KAFKA_BROKERS, with KAFKA_SECURITY_PROTOCOL and friends for a secured
// one), per-test topics and groups, services in this process or in child
// processes (the test binary re-run) that tests can kill, stop or freeze,
// polling with deadlines, and the checks every suite makes: the expected
// state of an input, the edit-log contract, a rebuild from the edit log,
// dead letters. Production code never imports it.
//
// Environment:
//
//	KAFKA_BROKERS            run against this cluster (host:port,...)
//	KAFKA_SECURITY_PROTOCOL  PLAINTEXT (default), SSL or SASL_SSL
//	KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD
//	KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE
//	ITEST_LOG_LEVEL          the services' log level (default info); logs
//	                         go to files printed when a test fails
//	ITEST_SEED               the seed of random workloads and kill moments
//	KAFKA_BROKER_CONTROL     scripts/kafka-broker.sh: lets Env.Broker kill,
//	                         restart, pause and resume the external broker
package testkit
