// Package faulttest is the fault suite of mvrepair (docs/design.md §5.3,
// §5.8, §7.6; docs/operations.md): the service runs in child processes
// (internal/testkit) under a steady stream of input while a fault happens,
//
//   - the broker killed with SIGKILL and restarted on its data,
//   - the broker frozen (SIGSTOP) past the group's session timeout, then
//     thawed,
//   - the writer frozen past its session: a standby takes over, and the
//     old writer, thawed, finds its store forked, rebuilds it and follows,
//   - the state dir's disk full, then freed,
//   - a store file damaged (truncated, flipped bytes, a changed value)
//     while the service was down,
//
// and every test shows three things: nothing is lost (the final state is
// that of a crash-free run, the edit log has no gap, a rebuild from it
// gives the same state), no valid event reaches the DLQ, and /readyz tells
// the truth throughout: it is polled over HTTP every 100ms, must turn 503
// within a few seconds of a fault that stops the service from making
// progress, must never answer 200 while the state is being restored, and
// must answer 200 again after recovery. Each test logs what it measured
// on one line that scripts can parse:
//
//	FAULTTEST fault=broker-kill9 broker=external detect_ms=1012 ready_ms=2104 applying_ms=2230 ...
//
// detect_ms is from the fault to the first /readyz answer that is not 200,
// ready_ms and applying_ms from the fault's end to the first 200 and to the
// first input offset committed.
//
// The tests run on the embedded broker in plain `go test` where the fault
// maps onto it (a broker kill is a Close and a Start on the same data dir;
// a broker cannot be frozen there), and against a real broker when
// KAFKA_BROKERS is set. The broker faults then need control of the broker
// process: KAFKA_BROKER_CONTROL=scripts/kafka-broker.sh (its kill9,
// restart, pause and resume subcommands; MVREPAIR_KAFKA_DIR when the broker
// is not in the script's default dir); without it they are skipped. Run the
// package alone against a broker of its own: other tests on that broker
// would see the faults. The disk-full test mounts a tmpfs and needs root.
package faulttest
