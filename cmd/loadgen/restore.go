package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/loadgen"
)

// newRestoreCmd is `loadgen restore`: the time, peak RSS and resident
// memory per partition entry of a restore from a checkpoint.
func newRestoreCmd() *cobra.Command {
	var opt loadgen.RestoreOptions
	var configPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "restore [--mvs M] [--partitions P] [--history-x X] [--tail N] [--runs R]",
		Short: "Time a restore from a checkpoint (docs/design.md §5.9), with its peak and resident memory",
		Long: `Write a state of M MVs x P partition entries to the snapshot topic of a broker as one
checkpoint (with --snapshot-rounds older, superseded rounds before it, as a snapshot topic
holds them before compaction), an edit log holding X times the snapshots' bytes of
mv_version_repaired records before the checkpoint and N records after it (with X > 0 the
same state is also written without a history, and the runs alternate between the two so
that their times compare in one run); then, R times,
restore it as ` + "`consumer rebuild --from-edit-log`" + ` does (a new durable store, recovery from
the checkpoint plus the tail, installed) in a child process of its own, which reports the
time, its peak RSS (VmHWM) and its RSS afterwards with the store open and the heap
collected (the memory a service holding the state needs). The broker is an embedded one
in this process (outside the child's memory) unless --brokers is given.`,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := config.LoadWithWarnings(configPath, os.Environ())
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "loadgen: warning:", w)
			}
			if err != nil {
				return &cli.ExitError{Code: 2, Err: err}
			}
			opt.Config, opt.ConfigPath, opt.Progress = *cfg, configPath, cmd.ErrOrStderr()
			rep, err := loadgen.Restore(cmd.Context(), opt)
			if errors.Is(err, loadgen.ErrOptions) {
				return &cli.ExitError{Code: 2, Err: err}
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restore of %d entries (%d MVs x %d partitions; %d MB of snapshots x %d rounds; history %d records, %d MB; tail %d): median %.2f s over %d runs\n",
				rep.Entries, rep.MVs, rep.Partitions, rep.SnapshotBytes>>20, rep.SnapshotRounds, rep.HistoryRecords, rep.HistoryBytes>>20, rep.Tail,
				rep.MedianSeconds, len(rep.Runs))
			printRuns(cmd.OutOrStdout(), "run", rep.Runs)
			if rep.HistoryRatio > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "the same state without a history, alternating: median %.2f s; with / without: %.2f (target <= 1.2)\n",
					rep.NoHistoryMedianSeconds, rep.HistoryRatio)
				printRuns(cmd.OutOrStdout(), "no-history run", rep.NoHistoryRuns)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (client settings; default: built-in defaults and MVREPAIR_* env vars)")
	f.IntVar(&opt.MVs, "mvs", 10_000, "M: MVs of the state")
	f.IntVar(&opt.Partitions, "partitions", 1_000, "P: partition entries per MV")
	f.Float64Var(&opt.HistoryX, "history-x", 0, "X: edit-log bytes before the checkpoint, as a multiple of the snapshots' bytes")
	f.IntVar(&opt.SnapshotRounds, "snapshot-rounds", 1, "complete rounds of snapshots on the snapshot topic (older ones superseded)")
	f.IntVar(&opt.Tail, "tail", 1000, "N: edit-log records after the checkpoint")
	f.IntVar(&opt.Runs, "runs", 1, "R: restores timed, each in a new child process")
	f.StringSliceVar(&opt.Brokers, "brokers", nil, "use these brokers (host:port,...) instead of an embedded one")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&opt.CPUProfile, "cpuprofile", "", "write a CPU profile of each run's restore to this file, with -<run> before the extension")
	return cmd
}

func printRuns(w io.Writer, name string, runs []loadgen.RestoreRun) {
	for i, r := range runs {
		fmt.Fprintf(w, "  %s %d: %.2f s, %.0f entries/s, peak RSS %d MiB, RSS after %d MiB (%.0f bytes/entry), heap %d MiB\n",
			name, i+1, r.Seconds, r.EntriesPerSec, r.PeakRSSBytes>>20, r.RSSBytes>>20, r.BytesPerEntry, r.HeapBytes>>20)
	}
}
