package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
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
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the service's INFO logs (one line per repaired MV)")
	return cmd
}

func runDemo(ctx context.Context, w io.Writer, cfg *config.Config, log zerolog.Logger) error {
	svc, err := service.Open(ctx, cfg, log)
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
	return summarise(ctx, w, svc, cfg, before)
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
			for p, o := range offs {
				if o.Last > 0 && svc.Store().AppliedOffset(topic, p) < o.Last {
					ok = false
				}
			}
			if ok && count(svc.Topics().EditLog) >= svc.Store().JournalID() && count(svc.Topics().DLQ) >= wantDLQ {
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

func summarise(ctx context.Context, w io.Writer, svc *service.Service, cfg *config.Config, before map[mvstate.MVKey]*mvstate.MV) error {
	fams, err := svc.Metrics.Registry().Gather()
	if err != nil {
		return err
	}
	repairs := counter(fams, "mvrepair_repairs_total", "")
	skips := counter(fams, "mvrepair_skips_total", "reason")
	dlq := counter(fams, "mvrepair_dlq_total", "reason")
	events := counter(fams, "mvrepair_events_total", "outcome")
	st := svc.Store()
	fmt.Fprintf(w, "\nSummary\n")
	fmt.Fprintf(w, "  events:    %s\n", joinCounts(events))
	fmt.Fprintf(w, "  repaired:  %.0f partition entries\n", repairs[""])
	fmt.Fprintf(w, "  skipped:   %s\n", joinCounts(skips))
	fmt.Fprintf(w, "  DLQ'd:     %s  (topic %s)\n", joinCounts(dlq), cfg.Kafka.Topics.DLQ)
	el, err := svc.Admin().ListOffsets(ctx, cfg.Kafka.Topics.EditLog)
	if err != nil {
		return err
	}
	var journaled int64
	for _, o := range el {
		journaled += o.Last - o.First
	}
	fmt.Fprintf(w, "  journaled: %d edit-log records on %s (journal_id 1..%d)\n", journaled, cfg.Kafka.Topics.EditLog, st.JournalID())
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

// counter sums a counter family by one label ("" sums everything).
func counter(fams []*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

func joinCounts(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	var total float64
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, ", "))
}
