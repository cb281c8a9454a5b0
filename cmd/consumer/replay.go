package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
)

// replayOptions are the flags of `consumer replay`.
type replayOptions struct {
	fromOffset int64
	fromTime   string
	topic      string
	partition  int
	dryRun     bool
	force      bool
}

func newReplayCmd(g *globals) *cobra.Command {
	o := &replayOptions{partition: -1}
	cmd := &cobra.Command{
		Use:   "replay --from-offset N | --from-time T [--topic T] [--partition P] [--dry-run]",
		Short: "Rewind the (stopped) consumer group and the store's applied offsets so events are consumed again",
		Long: `Rewind the consumer group's committed offsets and the store's applied offsets of one
topic (partition-version-changed unless --topic names another) to --from-offset N or to
the first record at or after --from-time T (RFC 3339, or epoch milliseconds). Every
instance of the group must be stopped: the command refuses while the group has members.

Replayed events go through the rules again: repairs already applied find the version
moved and emit nothing; repairs skipped before (say the catalog arrived late) are
applied now. Rewinding the catalog topic re-applies old MV snapshots over newer state,
so it is refused without --force. Moving offsets forward skips events: also --force.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("from-offset") == cmd.Flags().Changed("from-time") {
				return &cli.ExitError{Code: 2, Err: errors.New("replay: give exactly one of --from-offset and --from-time")}
			}
			cfg, log, err := g.loadWithLogger(cmd)
			if err != nil {
				return err
			}
			if o.topic == "" {
				o.topic = cfg.Kafka.Topics.Input
			}
			if o.topic != cfg.Kafka.Topics.Input && o.topic != cfg.Kafka.Topics.Catalog {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("replay: --topic %q is neither kafka.topics.input (%s) nor kafka.topics.catalog (%s)",
					o.topic, cfg.Kafka.Topics.Input, cfg.Kafka.Topics.Catalog)}
			}
			if o.topic == cfg.Kafka.Topics.Catalog && !o.force {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("replay: rewinding %s re-applies old MV snapshots over newer state; add --force if that is what you want", o.topic)}
			}
			svc, err := service.Open(cmd.Context(), cfg, log.Level(errorLevel(cfg)))
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			defer svc.Close()
			return replay(cmd.Context(), cmd.OutOrStdout(), svc, cfg.Kafka.GroupID, o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.fromOffset, "from-offset", 0, "rewind every selected partition to this offset (clamped to the partition's range)")
	f.StringVar(&o.fromTime, "from-time", "", "rewind to the first record at or after this time (RFC 3339 or epoch ms)")
	f.StringVar(&o.topic, "topic", "", "topic to rewind (default kafka.topics.input)")
	f.Var(partitionFlag{&o.partition}, "partition", "only this partition")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan; change nothing")
	f.BoolVar(&o.force, "force", false, "allow rewinding the catalog topic, and moving offsets forward")
	return cmd
}

// planRow is one partition's move.
type planRow struct {
	partition           int
	groupOld, storeOld  int64
	target, first, last int64
}

func replay(ctx context.Context, w io.Writer, svc *service.Service, group string, o *replayOptions) error {
	admin := svc.Admin()
	info, err := admin.DescribeGroup(ctx, group)
	if err != nil {
		return fmt.Errorf("replay: describe group %s: %w", group, err)
	}
	if len(info.Members) > 0 {
		names := make([]string, 0, len(info.Members))
		for _, m := range info.Members {
			names = append(names, m.ClientID+"@"+m.Host)
		}
		return &cli.ExitError{Code: 3, Err: fmt.Errorf("replay: group %s has %d active member(s) (%s); stop every instance first",
			group, len(info.Members), strings.Join(names, ", "))}
	}
	rows, err := replayPlan(ctx, svc, group, o)
	if err != nil {
		return err
	}
	if forward := printPlan(w, group, o.topic, rows); forward && !o.force {
		return &cli.ExitError{Code: 2, Err: errors.New("replay: the plan moves offsets forward, which skips events; add --force if that is what you want")}
	}
	if o.dryRun {
		fmt.Fprintln(w, "dry run: nothing changed")
		return nil
	}
	target := map[int]int64{}
	for _, r := range rows {
		target[r.partition] = r.target
	}
	if err := admin.CommitGroupOffsets(ctx, group, map[string]map[int]int64{o.topic: target}); err != nil {
		if errors.Is(err, kafkaio.ErrGroupNotEmpty) {
			return &cli.ExitError{Code: 3, Err: fmt.Errorf("replay: group %s became active; stop every instance and retry: %w", group, err)}
		}
		return fmt.Errorf("replay: commit group offsets: %w", err)
	}
	// The store's applied offsets and its record of what it last committed
	// to the group (pipeline.GroupMarkTopic) go back together: the next
	// start sees a deliberate replay, not a rewind by a foreign tool.
	_, err = svc.Store().Commit(ctx, store.Batch{Reset: map[string]map[int]int64{o.topic: target, pipeline.GroupMarkTopic(o.topic): target}})
	if err != nil {
		return fmt.Errorf("replay: group rewound but the store's applied offsets were not (run replay again): %w", err)
	}
	fmt.Fprintf(w, "rewound %d partition(s); start the service to replay\n", len(rows))
	return nil
}

// replayPlan is the move of every selected partition of the topic, by
// partition: from the group's and the store's offsets to the target,
// clamped to the partition's range.
func replayPlan(ctx context.Context, svc *service.Service, group string, o *replayOptions) ([]planRow, error) {
	admin := svc.Admin()
	offs, err := admin.ListOffsets(ctx, o.topic)
	if err != nil {
		return nil, fmt.Errorf("replay: list offsets of %s: %w", o.topic, err)
	}
	var byTime map[int]int64
	if o.fromTime != "" {
		t, err := parseTime(o.fromTime)
		if err != nil {
			return nil, &cli.ExitError{Code: 2, Err: err}
		}
		if byTime, err = admin.OffsetsForTime(ctx, o.topic, t); err != nil {
			return nil, fmt.Errorf("replay: offsets for time: %w", err)
		}
	}
	committed, err := admin.CommittedOffsets(ctx, group, []string{o.topic})
	if err != nil {
		return nil, fmt.Errorf("replay: committed offsets: %w", err)
	}
	var rows []planRow
	for p, po := range offs {
		if o.partition >= 0 && p != o.partition {
			continue
		}
		target := o.fromOffset
		if byTime != nil {
			target = byTime[p]
		}
		target = max(po.First, min(target, po.Last))
		rows = append(rows, planRow{partition: p, groupOld: committed[o.topic][p],
			storeOld: svc.Store().State().AppliedOffset(o.topic, p), target: target, first: po.First, last: po.Last})
	}
	if len(rows) == 0 {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("replay: %s has no partition %d", o.topic, o.partition)}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].partition < rows[j].partition })
	return rows, nil
}

// printPlan prints the plan and reports whether it moves a partition
// forward (which skips events).
func printPlan(w io.Writer, group, topic string, rows []planRow) (forward bool) {
	fmt.Fprintf(w, "replay plan for group %s, topic %s:\n", group, topic)
	fmt.Fprintf(w, "  %-9s %-12s %-12s %-8s %s\n", "PARTITION", "GROUP", "STORE", "→ NEW", "RANGE")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-9d %-12s %-12s → %-6d [%d, %d)\n", r.partition, offStr(r.groupOld), offStr(r.storeOld), r.target, r.first, r.last)
		if r.target > max(r.groupOld, r.storeOld) && max(r.groupOld, r.storeOld) >= 0 {
			forward = true
		}
	}
	return forward
}

func offStr(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

// parseTime accepts RFC 3339 or epoch milliseconds.
func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--from-time %q: want RFC 3339 (2024-01-02T15:04:05Z) or epoch milliseconds", s)
	}
	return t, nil
}
