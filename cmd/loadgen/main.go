// Command loadgen is mvrepair's load generator (docs/design.md §5.10): for each
// workload case it measures the repair pipeline's throughput next to a
// pass-through baseline in the same run, the latency of both at a fixed
// rate, and the service's per-batch figures from its pipeline reports, then
// prints a summary of every case.
//
//	loadgen                       every case (spread, one-partition, large, easy)
//	loadgen --case spread,easy    some of them
//	loadgen --quick               a smoke run of every case in seconds
//	loadgen --json                the report as JSON
//	loadgen restore               a restore of 10M partition entries from a checkpoint
//
// It reads config.yaml (or --config) and MVREPAIR_* env vars like the
// consumer (client, batch and writer settings); an MVREPAIR_* variable that
// names no key is reported as a warning. Usage and configuration errors
// exit with status 2, a failed case with status 1 (after the report).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/loadgen"
)

func main() {
	// A restore child (`loadgen restore` times each restore in a process
	// of its own) does its one job and exits.
	if child, err := loadgen.RunRestoreChild(context.Background(), os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: restore child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	cli.Main("loadgen", newRoot())
}
