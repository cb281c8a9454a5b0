package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/loadgen"
)

// flags are the command's flags beyond loadgen.Options.
type flags struct {
	configPath string
	cases      []string
	shape      loadgen.Shape
	asJSON     bool
	jsonFile   string
	verbose    bool
	quiet      bool
}

func newRoot() *cobra.Command {
	var opt loadgen.Options
	var fl flags
	cmd := &cobra.Command{
		Use:   "loadgen [--case NAME,...] [--quick] [--events N] [--rate R] [--duration D] [--json]",
		Short: "Measure the repair pipeline next to a pass-through baseline, case by case",
		Long: `Measure the mvrepair pipeline in one run, on one broker, with one set of client settings,
for each workload case, one after the other (docs/design.md §5.10):

  1. throughput with repairs: M MVs over T tables (P recorded partitions each) are seeded
     through the catalog topic; then, in each of --rounds rounds, N partition_version_changed
     events that each repair every MV of their table are produced over every table,
     partition and input partition, and the service (started fresh) runs in-process until
     every event is applied, journaled on the edit-log topic and committed: events/s,
     verified against the state;
  2. pass-through baseline, in the same round: the same N records through a consumer group
     with the same fetcher, batching and producer settings and the writer's overlap of
     collecting with publishing, one Publish and one offset commit per batch: events/s.
     The order of the two alternates between rounds; the ratio repair / pass-through is
     the median of the rounds' ratios;
  3. latency at R events/s for D per pipeline, both running, the load going to one at a
     time in alternating slices: produce → edit-log record read, next to produce → output
     record read for the baseline: p50/p90/p99/max, and the ratio of the p99s;
  4. the service's batches, from its pipeline reports: events and edit-log records per
     batch, process + local commit time (per batch and per 1000 events), local log bytes
     per commit against the bytes of the edit-log records they journal.

Cases (--case, default all, in this order):
  spread          500 MVs on 500 tables x 50 partitions, input topic of 6 partitions
  one-partition   the same on a one-partition input topic
  large           2000 MVs on 2000 tables x 50 partitions, 6 input partitions
  easy            48 MVs on 12 tables x 50 partitions (4 MVs per table), 6 input partitions
--mvs, --tables, --partitions and --topic-partitions change the shape of the selected cases;
--transport plaintext,tls,sasl_ssl runs each of them once per listener of the embedded broker.

Events/s are measured from the first batch to the last offset commit (the group join is
excluded; the rate including it is printed too). By default each case runs on its own
embedded broker (kfake, in this process, on a random port, sharing the CPUs with the
pipeline); --brokers runs against real brokers, with topic names (loadgen-<run id>-*) and
group ids unique to the run, which are left on the cluster afterwards. Client, batch and
writer settings come from the configuration (--config, MVREPAIR_* variables), as for
` + "`consumer run`" + `.`,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, opt, fl)
		},
	}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	f := cmd.Flags()
	f.StringVar(&fl.configPath, "config", "", "config file (default: built-in defaults; every key can be set by MVREPAIR_* env vars)")
	f.StringSliceVar(&fl.cases, "case", nil, "cases to run, comma-separated: "+strings.Join(loadgen.CaseNames(), ", ")+" (default all)")
	f.BoolVar(&opt.Quick, "quick", false, fmt.Sprintf("a smoke run: N=%d, %d rounds, R=%d, D=%s unless given, at most %d recorded partitions per MV",
		loadgen.QuickEvents, loadgen.QuickRounds, loadgen.QuickRate, loadgen.QuickDuration, loadgen.QuickPartitions))
	f.IntVar(&opt.Events, "events", 0, fmt.Sprintf("N: events of each throughput round's backlog (default %d)", loadgen.DefaultEvents))
	f.IntVar(&opt.Rounds, "rounds", 0, fmt.Sprintf("throughput rounds; rates are the median over them (default %d)", loadgen.DefaultRounds))
	f.IntVar(&opt.Rate, "rate", 0, fmt.Sprintf("R: events/s produced in the latency phases (default %d)", loadgen.DefaultRate))
	f.DurationVar(&opt.Duration, "duration", 0, fmt.Sprintf("D: length of each latency phase (default %s)", loadgen.DefaultDuration))
	f.IntVar(&fl.shape.MVs, "mvs", 0, "M: MVs in the catalog of the selected cases (each reads one table)")
	f.IntVar(&fl.shape.Tables, "tables", 0, "T: base tables the MVs read (each event repairs every MV of its table)")
	f.IntVar(&fl.shape.Partitions, "partitions", 0, "P: partitions each MV recorded of its table")
	f.IntVar(&fl.shape.TopicPartitions, "topic-partitions", 0, "partitions of the input topics the run creates")
	f.IntVar(&opt.Batch, "batch", 0, fmt.Sprintf("batch.max_events (default: the configuration's, %d built in)", config.Default().Batch.MaxEvents))
	f.DurationVar(&opt.BatchWait, "batch-wait", 0, fmt.Sprintf("batch.max_wait (default: the configuration's, %s built in)", config.Default().Batch.MaxWait))
	f.DurationVar(&opt.TailMaxWait, "tail-max-wait", loadgen.DefaultTailMaxWait, "fetch max wait of the latency tails (part of the measured latency)")
	f.StringSliceVar(&opt.Brokers, "brokers", nil, "run against these brokers (host:port,...) instead of an embedded one per case")
	f.StringSliceVar(&opt.Transports, "transport", nil, "run each case once per transport of the embedded broker: "+strings.Join(loadgen.Transports(), ", ")+" (default: plaintext)")
	f.BoolVar(&opt.SkipLatency, "skip-latency", false, "measure throughput only")
	f.Int64Var(&opt.CheckpointEvery, "checkpoint-every", 0, "alternate rounds with a checkpoint every N edit-log records and without, and compare them (at least 4 rounds)")
	f.BoolVar(&fl.asJSON, "json", false, "print the report as JSON")
	f.StringVar(&fl.jsonFile, "json-file", "", "also write the report as JSON to this file")
	f.StringVar(&opt.CPUProfile, "cpuprofile", "", "write a CPU profile of each case's repair throughput phase to this file, with -<case> before the extension")
	f.BoolVarP(&fl.verbose, "verbose", "v", false, "show the service's logs (at log.level) on stderr")
	f.BoolVarP(&fl.quiet, "quiet", "q", false, "no progress lines on stderr")
	cmd.AddCommand(newRestoreCmd())
	return cmd
}

func run(cmd *cobra.Command, opt loadgen.Options, fl flags) error {
	cfg, warnings, err := config.LoadWithWarnings(fl.configPath, os.Environ())
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "loadgen: warning:", w)
	}
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if err := checkFlags(opt, fl.shape); err != nil {
		return err
	}
	cases, err := loadgen.SelectCases(fl.cases)
	if err != nil {
		return usageErrorf("--case: %w", err)
	}
	for i := range cases {
		cases[i] = fl.shape.Apply(cases[i])
	}
	opt.Cases, opt.Config = cases, cfg
	if fl.verbose {
		opt.ServiceLog = cmd.ErrOrStderr()
	}
	if !fl.quiet {
		opt.Progress = cmd.ErrOrStderr()
	}
	rep, err := loadgen.Run(cmd.Context(), opt)
	if errors.Is(err, loadgen.ErrOptions) {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if rep != nil {
		if werr := write(cmd.OutOrStdout(), rep, fl.asJSON); werr != nil && err == nil {
			err = werr
		}
		if werr := writeFile(fl.jsonFile, rep); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// writeFile writes the report as JSON to path, when one is given.
func writeFile(path string, rep *loadgen.Report) error {
	if path == "" {
		return nil
	}
	var b bytes.Buffer
	if err := write(&b, rep, true); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// checkFlags refuses negative counts and durations (zero means the default).
func checkFlags(opt loadgen.Options, s loadgen.Shape) error {
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"events", int64(opt.Events)}, {"rounds", int64(opt.Rounds)}, {"rate", int64(opt.Rate)}, {"duration", int64(opt.Duration)},
		{"mvs", int64(s.MVs)}, {"tables", int64(s.Tables)}, {"partitions", int64(s.Partitions)},
		{"topic-partitions", int64(s.TopicPartitions)}, {"batch", int64(opt.Batch)}, {"batch-wait", int64(opt.BatchWait)},
		{"tail-max-wait", int64(opt.TailMaxWait)}, {"checkpoint-every", opt.CheckpointEvery},
	} {
		if v.n < 0 {
			return usageErrorf("--%s must not be negative", v.name)
		}
	}
	return nil
}

// write prints the report as JSON or as tables.
func write(w io.Writer, rep *loadgen.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteTable(w)
	return nil
}

// usageErrorf is a usage error: it exits with status 2.
func usageErrorf(format string, a ...any) error {
	return &cli.ExitError{Code: 2, Err: fmt.Errorf(format, a...)}
}

// noArgs refuses positional arguments: the command takes flags only.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if f := cmd.Flags().Lookup(strings.TrimLeft(args[0], "-")); f != nil {
		hint = "; did you mean --" + f.Name + "?"
	} else if strings.HasSuffix(args[0], ".yaml") || strings.HasSuffix(args[0], ".yml") {
		hint = "; did you mean --config " + args[0] + "?"
	} else if _, err := loadgen.SelectCases([]string{args[0]}); err == nil {
		hint = "; did you mean --case " + args[0] + "?"
	}
	return usageErrorf("unexpected argument %s: loadgen takes flags only%s", strconv.Quote(args[0]), hint)
}
