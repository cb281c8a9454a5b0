package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

func errorLevel(cfg *config.Config) zerolog.Level {
	if cfg.Log.Level == "debug" {
		return zerolog.DebugLevel
	}
	return zerolog.ErrorLevel
}

func newRebuildCmd(g *globals) *cobra.Command {
	var fromEditLog, force, allowGaps, full bool
	cmd := &cobra.Command{
		Use:   "rebuild --from-edit-log [--full] [--force]",
		Short: "Build a new state store from Kafka: the latest checkpoint and the edit log after it (--full: the whole edit log)",
		Long: `Build a new state store from Kafka alone: the latest checkpoint of the snapshot topic and
the edit log after it, or with --full the whole edit log (which must still hold the whole
history: checkpoints truncate it). Journal ids must be continuous and epochs ordered;
records a newer writer superseded (late writes of a fenced writer) are dropped. Gaps and
fenced records are reported, not hidden; a gap fails the rebuild unless --allow-gaps.

The new store is built beside the old one and replaces it only when it is complete (the
old one is kept as store.old-<time> in state.dir); until then nothing is changed, so a
rebuild that fails (a broker unreachable, a gap) leaves the old store in place. An
existing store is only replaced with --force. Progress is shown while it runs. Stop the
service first (a standby that finds its store forked rebuilds itself the same way).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromEditLog {
				return &cli.ExitError{Code: 2, Err: errors.New("rebuild: --from-edit-log is required (the edit log is the source of truth)")}
			}
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			log, err := logger(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			d, err := lockStateDir("rebuild", cfg.State.Dir)
			if err != nil {
				return err
			}
			defer d.Close()
			var old *store.Store
			if d.HasStore() {
				old, err = d.Open(ctx)
			}
			switch {
			case old == nil && err == nil: // no store yet: nothing to replace
			case errors.Is(err, store.ErrCorrupt):
				fmt.Fprintf(cmd.ErrOrStderr(), "rebuild: the current store is corrupt (%v); it will be replaced\n", err)
			case err != nil:
				return fmt.Errorf("rebuild: %w", err)
			default:
				empty := old.State().Empty()
				jid, n := old.State().JournalID(), old.State().Len()
				old.Close(ctx, false)
				if !empty && !force {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("rebuild: %s already holds a state (journal id %d, %d MVs); add --force to rebuild it (the old store is kept aside)",
						cfg.State.Dir, jid, n)}
				}
			}
			// Reach Kafka before building anything.
			k, err := service.OpenKafka(ctx, cfg, log.Level(errorLevel(cfg)))
			if err != nil {
				return fmt.Errorf("rebuild: %w (nothing was changed)", err)
			}
			defer k.Close()
			nw, err := d.Build(ctx)
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			installed := false
			defer func() {
				if !installed {
					nw.Close(context.Background(), false)
				}
			}()
			start := time.Now()
			opt := recovery.Options{AllowGaps: allowGaps, Progress: newProgressPrinter(cmd.ErrOrStderr(), log)}
			var rep *recovery.Report
			if full {
				rep, err = recovery.Rebuild(ctx, nw, k.EditLogSource(log), opt)
			} else {
				rep, err = recovery.Restore(ctx, nw, k.SnapshotSource(log), k.EditLogSource(log), opt)
			}
			if rep != nil {
				printReport(cmd.OutOrStdout(), rep, time.Since(start))
			}
			if err != nil {
				return fmt.Errorf("rebuild: %w (the old store was not changed)", err)
			}
			aside, err := d.Install(ctx, nw)
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			installed = true
			if err := nw.Close(ctx, false); err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			if aside != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "old store kept as %s\n", aside)
			}
			if len(rep.Gaps) > 0 || len(rep.Undecodable) > 0 {
				return &cli.ExitError{Code: 4, Err: errors.New("rebuild: finished with gaps or undecodable records (see the report)")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromEditLog, "from-edit-log", false, "rebuild from Kafka: the latest checkpoint and the edit log (required)")
	cmd.Flags().BoolVar(&full, "full", false, "ignore checkpoints: read the whole edit log")
	cmd.Flags().BoolVar(&force, "force", false, "replace a store that holds a state (it is kept aside as store.old-<time>)")
	cmd.Flags().BoolVar(&allowGaps, "allow-gaps", false, "finish despite journal gaps (records after a gap are not applied)")
	return cmd
}

// newProgressPrinter shows a restore's progress: one line rewritten in
// place on a terminal, log lines every few seconds otherwise.
func newProgressPrinter(w io.Writer, log zerolog.Logger) func(recovery.Progress) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	var last time.Time
	return func(p recovery.Progress) {
		rate := float64(p.Entries) / max(p.Elapsed.Seconds(), 0.001)
		eta := ""
		if p.Total > 0 && p.Done > 0 && p.Done < p.Total {
			left := time.Duration(float64(p.Elapsed) * float64(p.Total-p.Done) / float64(p.Done))
			eta = ", ETA " + left.Round(time.Second).String()
		}
		if tty {
			fmt.Fprintf(w, "\r%-8s %d records, %d entries (%.0f entries/s)%s, %s   ", p.Phase, p.Done, p.Entries, rate, eta,
				p.Elapsed.Round(time.Second))
			if p.Done == p.Total && p.Total > 0 {
				fmt.Fprintln(w)
			}
			return
		}
		if time.Since(last) < 5*time.Second && !(p.Done == p.Total && p.Total > 0) {
			return
		}
		last = time.Now()
		log.Info().Str("phase", p.Phase).Int64("records", p.Done).Int64("total", p.Total).Int64("entries", p.Entries).
			Float64("entries_per_s", rate).Str("eta", strings.TrimPrefix(eta, ", ETA ")).Dur("elapsed", p.Elapsed).Msg("rebuilding")
	}
}

func printReport(w io.Writer, rep *recovery.Report, d time.Duration) {
	fmt.Fprintf(w, "rebuild report (%s):\n", d.Round(time.Millisecond))
	if c := rep.Checkpoint; c != nil {
		fmt.Fprintf(w, "  checkpoint:         journal_id %d at edit-log offset %d (%d MV snapshots loaded)\n", c.JournalID, c.EditLogOffset, rep.Snapshots)
	} else {
		fmt.Fprintf(w, "  checkpoint:         none (the whole edit log was read)\n")
	}
	fmt.Fprintf(w, "  records read:       %d\n", rep.Records)
	fmt.Fprintf(w, "  applied:            %d\n", rep.Applied)
	fmt.Fprintf(w, "  duplicates:         %d (redelivered journal ids, ignored)\n", rep.Duplicates)
	fmt.Fprintf(w, "  fenced (superseded): %d\n", len(rep.Fenced))
	for _, f := range rep.Fenced {
		fmt.Fprintf(w, "      journal_id %d epoch %d at offset %d: written by a writer a newer epoch had replaced\n", f.JournalID, f.Epoch, f.Offset)
	}
	fmt.Fprintf(w, "  undecodable:        %d %v\n", len(rep.Undecodable), rep.Undecodable)
	fmt.Fprintf(w, "  gaps:               %d\n", len(rep.Gaps))
	for _, g := range rep.Gaps {
		fmt.Fprintf(w, "      %s\n", g.Error())
	}
	fmt.Fprintf(w, "  result:             journal_id %d, epoch %d, %d MVs\n", rep.JournalID, rep.Epoch, rep.MVs)
}

func newImportCmd(g *globals) *cobra.Command {
	var file string
	var force bool
	cmd := &cobra.Command{
		Use:   "import --file state.json",
		Short: "Load a `state export` document into an empty store (journal id included)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			r, closeInput, err := openInput(cmd, file)
			if err != nil {
				return err
			}
			defer closeInput()
			var doc struct {
				JournalID *int64        `json:"journal_id"`
				MVs       []*mvstate.MV `json:"mvs"`
			}
			dec := json.NewDecoder(r)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("import: %s is not a state export: %w", file, err)}
			}
			if doc.JournalID == nil {
				return &cli.ExitError{Code: 2, Err: fmt.Errorf("import: %s has no journal_id", file)}
			}
			seen := map[mvstate.MVKey]bool{}
			for i, m := range doc.MVs {
				if m == nil || m.DBID <= 0 || m.MVID <= 0 {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("import: mvs[%d]: db_id and mv_id must be positive", i)}
				}
				if seen[m.Key()] {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("import: mvs[%d]: MV %s listed twice", i, m.Key())}
				}
				seen[m.Key()] = true
			}
			ctx := cmd.Context()
			d, err := lockStateDir("import", cfg.State.Dir)
			if err != nil {
				return err
			}
			defer d.Close()
			if old, err := d.Open(ctx); err == nil {
				empty := old.State().Empty()
				old.Close(ctx, false)
				if !empty && !force {
					return &cli.ExitError{Code: 2, Err: fmt.Errorf("import: %s already holds a state; add --force to replace it (the old store is kept aside)", cfg.State.Dir)}
				}
			} else if !errors.Is(err, store.ErrCorrupt) {
				return fmt.Errorf("import: %w", err)
			}
			nw, err := d.Build(ctx)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			err = nw.Load(ctx, *doc.JournalID, 0, nil, func(add func(*mvstate.MV, int64)) error {
				for _, m := range doc.MVs {
					add(m, *doc.JournalID)
				}
				return nil
			})
			if err == nil {
				var aside string
				if aside, err = d.Install(ctx, nw); err == nil && aside != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "old store kept as %s\n", aside)
				}
			}
			nw.Close(ctx, false)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d MVs at journal_id %d into %s\n", len(doc.MVs), *doc.JournalID, cfg.State.Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "-", "export document (- for stdin)")
	cmd.Flags().BoolVar(&force, "force", false, "replace a store that holds a state (it is kept aside as store.old-<time>)")
	return cmd
}

func newHealthcheckCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [--url http://127.0.0.1:8080/readyz]",
		Short: "Exit 0 if the URL answers 200 (for container health checks in images with no shell)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := &http.Client{Timeout: timeout}
			resp, err := c.Get(url)
			if err != nil {
				return &cli.ExitError{Code: 1, Err: err}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return &cli.ExitError{Code: 1, Err: fmt.Errorf("%s: %s %s", url, resp.Status, body)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/readyz", "URL to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "request timeout")
	return cmd
}
