package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

func newDemoCmd(g *globals) *cobra.Command {
	var stateDir, addr string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded broker with a sample catalog and a compaction stream, then summarise",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			if stateDir == "" {
				dir, err := os.MkdirTemp("", "mvrepair-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				stateDir = dir
			}
			cfg.State.Dir = stateDir
			cfg.Kafka.Brokers = config.EmbeddedBrokers
			cfg.Kafka.EmbeddedAddr = addr
			cfg.Kafka.Partitions = 3
			cfg.Batch.MaxWait = 5 * time.Millisecond
			level := "error"
			if verbose {
				level = "info"
			}
			log, err := logging.New(cmd.ErrOrStderr(), level, "console")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			return runDemo(ctx, cmd.OutOrStdout(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "keep the state (and the broker's data) here (default: a temporary dir, removed after)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "embedded broker address (port 0: any free port)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the service's logs (INFO: summaries, WARN: dead letters and problems)")
	return cmd
}

func runDemo(ctx context.Context, w io.Writer, cfg *config.Config, log zerolog.Logger) error {
	tally := &demoTally{}
	svc, err := service.Open(ctx, cfg, log, service.Options{Hooks: pipeline.Hooks{tally}})
	if err != nil {
		return err
	}
	defer svc.Close()
	before := map[mvstate.MVKey]*mvstate.MV{}
	for _, m := range demo.Catalog() {
		before[m.Key()] = m
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()

	recs, err := demo.Stream()
	if err != nil {
		stop()
		return err
	}
	fmt.Fprintf(w, "mvrepair demo: embedded broker on %s, state in %s\n\n", svc.Brokers()[0], cfg.State.Dir)
	fmt.Fprintf(w, "Sent %d records:\n", len(recs))
	msgs := make([]kafkaio.Message, 0, len(recs))
	for i, r := range recs {
		topic := cfg.Kafka.Topics.Input
		if r.Catalog {
			topic = cfg.Kafka.Topics.Catalog
		}
		msgs = append(msgs, kafkaio.Message{Topic: topic, Key: []byte(r.Key), Value: r.Value})
		fmt.Fprintf(w, "  %2d. %-20s %s\n", i+1, topic, r.Note)
	}
	// The catalog first, so the compaction events find their MVs.
	nCatalog := len(demo.Catalog())
	if err := svc.Producer().Publish(ctx, msgs[:nCatalog]...); err != nil {
		stop()
		return err
	}
	if err := waitApplied(ctx, svc, cfg.Kafka.Topics.Catalog, 0); err != nil {
		stop()
		return err
	}
	if err := svc.Producer().Publish(ctx, msgs[nCatalog:]...); err != nil {
		stop()
		return err
	}
	if err := waitApplied(ctx, svc, cfg.Kafka.Topics.Input, 3); err != nil {
		stop()
		return err
	}
	stop()
	if err := <-done; err != nil {
		return err
	}
	return summarise(w, svc, cfg, before, tally)
}

// demoTally collects what this run's batches did (a reused state dir's
// earlier runs are not counted).
type demoTally struct {
	mu                sync.Mutex
	events            map[string]int
	skips, dlq        map[string]int
	repairs, records  int
	firstJID, lastJID int64
}

// OnBatch implements pipeline.BatchHook.
func (d *demoTally) OnBatch(r *pipeline.Report) {
	if r.Role != pipeline.RoleWriter {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events == nil {
		d.events, d.skips, d.dlq = map[string]int{}, map[string]int{}, map[string]int{}
	}
	for _, e := range r.Events {
		d.events[string(e.Outcome)]++
		d.repairs += e.Repaired
		for _, s := range e.Skips {
			d.skips[string(s.Reason)]++
		}
	}
	for _, x := range r.DeadLetters {
		d.dlq[string(x.Reason)]++
	}
	if n := len(r.Records); n > 0 {
		if d.firstJID == 0 {
			d.firstJID = r.Records[0].JournalID
		}
		d.lastJID = r.Records[n-1].JournalID
		d.records += n
	}
}

// waitApplied polls until every record produced to topic is applied, every
// journal record is on the edit-log topic, and at least wantDLQ records
// reached the DLQ.
func waitApplied(ctx context.Context, svc *service.Service, topic string, wantDLQ int64) error {
	deadline := time.Now().Add(60 * time.Second)
	count := func(t string) int64 {
		offs, err := svc.Admin().ListOffsets(ctx, t)
		if err != nil {
			return -1
		}
		var n int64
		for _, o := range offs {
			n += o.Last - o.First
		}
		return n
	}
	for {
		offs, err := svc.Admin().ListOffsets(ctx, topic)
		if err == nil {
			ok := true
			st := svc.Store().State()
			for p, o := range offs {
				if o.Last > 0 && st.AppliedOffset(topic, p) < o.Last {
					ok = false
				}
			}
			if ok && count(svc.Topics().EditLog) >= st.JournalID() && count(svc.Topics().DLQ) >= wantDLQ {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("demo: events were not processed within 60s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func summarise(w io.Writer, svc *service.Service, cfg *config.Config, before map[mvstate.MVKey]*mvstate.MV, t *demoTally) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := svc.Store().State()
	fmt.Fprintf(w, "\nSummary\n")
	fmt.Fprintf(w, "  events:    %s\n", joinCounts(t.events))
	fmt.Fprintf(w, "  repaired:  %d partition entries\n", t.repairs)
	fmt.Fprintf(w, "  skipped:   %s\n", joinCounts(t.skips))
	fmt.Fprintf(w, "  DLQ'd:     %s  (topic %s)\n", joinCounts(t.dlq), cfg.Kafka.Topics.DLQ)
	if t.records > 0 {
		fmt.Fprintf(w, "  journaled: %d edit-log records on %s (journal_id %d..%d)\n", t.records, cfg.Kafka.Topics.EditLog, t.firstJID, t.lastJID)
	} else {
		fmt.Fprintf(w, "  journaled: nothing new on %s\n", cfg.Kafka.Topics.EditLog)
	}
	fmt.Fprintf(w, "\nWhat changed per MV (recorded version / last refresh time):\n")
	for _, k := range st.Keys() {
		after := st.Get(k)
		b := before[k]
		fmt.Fprintf(w, "  %s (%s, active=%t)\n", after.MVName, k, after.Active)
		for _, line := range diff(b, after) {
			fmt.Fprintf(w, "      %s\n", line)
		}
		if b != nil && b.LastRefreshTime != after.LastRefreshTime {
			fmt.Fprintf(w, "      mv last_refresh_time %d → %d\n", b.LastRefreshTime, after.LastRefreshTime)
		}
	}
	fmt.Fprintf(w, "\nRun `consumer state export` on a kept --state-dir for the canonical state.\n")
	return nil
}

func diff(a, b *mvstate.MV) []string {
	var out []string
	if a == nil {
		return out
	}
	ids := make([]int64, 0, len(b.VersionMap))
	for id := range b.VersionMap {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		names := make([]string, 0, len(b.VersionMap[id]))
		for n := range b.VersionMap[id] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			old, nw := a.VersionMap[id][n], b.VersionMap[id][n]
			if old != nw {
				out = append(out, fmt.Sprintf("table %d %s: v%d → v%d (time %d → %d)", id, n, old.Version, nw.Version, old.LastRefreshTime, nw.LastRefreshTime))
			}
		}
	}
	for i, bt := range b.BaseTables {
		if i < len(a.BaseTables) && a.BaseTables[i] != bt {
			out = append(out, fmt.Sprintf("external table %s.%s.%s identifier %s → %s", bt.Catalog, bt.DBName, bt.TableName,
				a.BaseTables[i].TableIdentifier, bt.TableIdentifier))
			for n, nw := range b.ExternalVersionMap[bt] {
				old := a.ExternalVersionMap[a.BaseTables[i]][n]
				if old != nw {
					out = append(out, fmt.Sprintf("  %s: version %d → %d", n, old.Version, nw.Version))
				}
			}
		}
	}
	if len(out) == 0 {
		out = append(out, "(unchanged)")
	}
	return out
}

func joinCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	var total int
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
