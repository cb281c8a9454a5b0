package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/loadtest"
)

func newLoadCmd(g *globals) *cobra.Command {
	var opt loadtest.Options
	var brokers []string
	var asJSON, verbose, quiet bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "load [--events N] [--rate R] [--mvs M] [--partitions P] [--batch B] [--duration D] [--json]",
		Short: "Benchmark the pipeline: events/s with repairs vs a pass-through baseline, and latency at a fixed rate",
		Long: `Benchmark the pipeline in one run, on one broker, with one set of client settings (DESIGN.md §8):

  1. throughput with repairs: M MVs over T tables (P recorded partitions each) are seeded
     through the catalog topic, N partition_version_changed events that each repair every
     MV of their table are pre-produced, then the service runs in-process until every input
     offset is applied, journaled on the edit-log topic and committed: events/s;
  2. pass-through baseline: the same N records through a consumer group with the same
     fetcher, batching and producer settings, one Publish and one offset commit per batch:
     events/s, and the ratio repair / pass-through;
  3. latency at R events/s for D: produce → edit-log record read (and produce → output
     record read for the baseline), p50/p90/p99/max.

Events/s are measured from the first batch to the last offset commit (the group join is
excluded; the rate including it is printed too). By default the broker is embedded (kfake,
in this process, on a random port, sharing the CPUs with the pipeline); --brokers runs
against real brokers, with topic names (load-<run id>-*) and group ids unique to the run,
which are left on the cluster afterwards. Client, batch and
writer settings come from the configuration (--config, MVREPAIR_* variables).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			opt.Config = cfg
			opt.Brokers = brokers
			if verbose {
				opt.ServiceLog = cmd.ErrOrStderr()
			}
			if !quiet {
				opt.Progress = cmd.ErrOrStderr()
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				opt.CPUProfile = f
			}
			rep, err := loadtest.Run(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.WriteTable(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Events, "events", loadtest.DefaultEvents, "N: events pre-produced for the throughput phases")
	f.IntVar(&opt.Rate, "rate", loadtest.DefaultRate, "R: events/s produced in the latency phases")
	f.DurationVar(&opt.Duration, "duration", loadtest.DefaultDuration, "D: length of each latency phase")
	f.IntVar(&opt.MVs, "mvs", loadtest.DefaultMVs, "M: MVs in the catalog (each reads one table)")
	f.IntVar(&opt.Tables, "tables", loadtest.DefaultTables, "T: base tables the MVs read (each event repairs every MV of its table)")
	f.IntVar(&opt.Partitions, "partitions", loadtest.DefaultPartitions, "P: partitions each MV recorded of its table")
	f.IntVar(&opt.TopicPartitions, "topic-partitions", loadtest.DefaultTopicPartitions, "kafka.partitions of the input topics the run creates")
	f.IntVar(&opt.Batch, "batch", 0, fmt.Sprintf("batch.max_events (default: the configuration's, %d built in)", config.Default().Batch.MaxEvents))
	f.DurationVar(&opt.BatchWait, "batch-wait", 0, fmt.Sprintf("batch.max_wait (default: the configuration's, %s built in)", config.Default().Batch.MaxWait))
	f.DurationVar(&opt.TailMaxWait, "tail-max-wait", loadtest.DefaultTailMaxWait, "fetch max wait of the latency tails (part of the measured latency)")
	f.StringSliceVar(&brokers, "brokers", nil, "run against these brokers (host:port,...) instead of an embedded one")
	f.BoolVar(&opt.SkipLatency, "skip-latency", false, "measure throughput only")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the repair throughput phase to this file")
	f.BoolVarP(&verbose, "verbose", "v", false, "show the service's logs (at log.level) on stderr")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}
