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

// rebuildOptions are the flags of `consumer rebuild`.
type rebuildOptions struct {
	fromEditLog, force, allowGaps, full bool
}

func newRebuildCmd(g *globals) *cobra.Command {
	o := &rebuildOptions{}
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runRebuild(cmd, g, o) },
	}
	cmd.Flags().BoolVar(&o.fromEditLog, "from-edit-log", false, "rebuild from Kafka: the latest checkpoint and the edit log (required)")
	cmd.Flags().BoolVar(&o.full, "full", false, "ignore checkpoints: read the whole edit log")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace a store that holds a state (it is kept aside as store.old-<time>)")
	cmd.Flags().BoolVar(&o.allowGaps, "allow-gaps", false, "finish despite journal gaps (records after a gap are not applied)")
	return cmd
}

func runRebuild(cmd *cobra.Command, g *globals, o *rebuildOptions) error {
	if !o.fromEditLog {
		return &cli.ExitError{Code: 2, Err: errors.New("rebuild: --from-edit-log is required (the edit log is the source of truth)")}
	}
	cfg, log, err := g.loadWithLogger(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	d, err := lockStateDir("rebuild", cfg.State.Dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := checkReplaceable(ctx, cmd.ErrOrStderr(), "rebuild", d, cfg.State.Dir, o.force); err != nil {
		return err
	}
	// Reach Kafka before building anything.
	k, err := service.OpenKafka(ctx, cfg, log.Level(errorLevel(cfg)))
	if err != nil {
		return fmt.Errorf("rebuild: %w (nothing was changed)", err)
	}
	defer k.Close()
	rep, err := rebuildStore(ctx, cmd, d, k, log, o)
	if err != nil {
		return err
	}
	if len(rep.Gaps) > 0 || len(rep.Undecodable) > 0 {
		return &cli.ExitError{Code: 4, Err: errors.New("rebuild: finished with gaps or undecodable records (see the report)")}
	}
	return nil
}

// checkReplaceable refuses op (rebuild, import) over a store that holds a
// state, unless force. A corrupt store is replaced (and said so on stderr).
// Where there is no store it opens none (Open would create one, which the
// install would then keep aside as if it had been replaced).
func checkReplaceable(ctx context.Context, stderr io.Writer, op string, d *store.Dir, dir string, force bool) error {
	if !d.HasStore() {
		return nil // no store yet: nothing to replace
	}
	old, err := d.Open(ctx)
	switch {
	case errors.Is(err, store.ErrCorrupt):
		fmt.Fprintf(stderr, "%s: the current store is corrupt (%v); it will be replaced\n", op, err)
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	}
	empty := old.State().Empty()
	jid, n := old.State().JournalID(), old.State().Len()
	old.Close(ctx, false)
	if !empty && !force {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("%s: %s already holds a state (journal id %d, %d MVs); add --force to replace it (the old store is kept aside)",
			op, dir, jid, n)}
	}
	return nil
}

// rebuildStore builds a new store in d from Kafka, prints the report, and
// installs the store in place of the old one, which it keeps aside. A
// failed rebuild leaves the old store as it was.
func rebuildStore(ctx context.Context, cmd *cobra.Command, d *store.Dir, k *service.Kafka, log zerolog.Logger, o *rebuildOptions) (*recovery.Report, error) {
	nw, err := d.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	installed := false
	defer func() {
		if !installed {
			nw.Close(context.Background(), false)
		}
	}()
	start := time.Now()
	opt := recovery.Options{AllowGaps: o.allowGaps, Progress: newProgressPrinter(cmd.ErrOrStderr(), log)}
	var rep *recovery.Report
	if o.full {
		rep, err = recovery.Rebuild(ctx, nw, k.EditLogSource(log), opt)
	} else {
		rep, err = recovery.Restore(ctx, nw, k.SnapshotSource(log), k.EditLogSource(log), opt)
	}
	if rep != nil {
		printReport(cmd.OutOrStdout(), rep, time.Since(start))
	}
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w (the old store was not changed)", err)
	}
	aside, err := d.Install(ctx, nw)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	installed = true
	if err := nw.Close(ctx, false); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if aside != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "old store kept as %s\n", aside)
	}
	return rep, nil
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
			doc, err := readExport(cmd, file)
			if err != nil {
				return err
			}
			return importState(cmd.Context(), cmd.OutOrStdout(), cfg.State.Dir, doc, force)
		},
	}
	cmd.Flags().StringVar(&file, "file", "-", "export document (- for stdin)")
	cmd.Flags().BoolVar(&force, "force", false, "replace a store that holds a state (it is kept aside as store.old-<time>)")
	return cmd
}

// exportDoc is a `state export` document.
type exportDoc struct {
	JournalID *int64        `json:"journal_id"`
	MVs       []*mvstate.MV `json:"mvs"`
}

// readExport reads and checks the export document of file ("-": stdin).
func readExport(cmd *cobra.Command, file string) (*exportDoc, error) {
	r, closeInput, err := openInput(cmd, file)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	var doc exportDoc
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("import: %s is not a state export: %w", file, err)}
	}
	if doc.JournalID == nil {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("import: %s has no journal_id", file)}
	}
	seen := map[mvstate.MVKey]bool{}
	for i, m := range doc.MVs {
		if m == nil || m.DBID <= 0 || m.MVID <= 0 {
			return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("import: mvs[%d]: db_id and mv_id must be positive", i)}
		}
		if seen[m.Key()] {
			return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("import: mvs[%d]: MV %s listed twice", i, m.Key())}
		}
		seen[m.Key()] = true
	}
	return &doc, nil
}

// importState builds a store of doc in the state dir and installs it, in
// place of an empty or corrupt one, or with force of any (kept aside).
func importState(ctx context.Context, w io.Writer, dir string, doc *exportDoc, force bool) error {
	d, err := lockStateDir("import", dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := checkReplaceable(ctx, w, "import", d, dir, force); err != nil {
		return err
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
			fmt.Fprintf(w, "old store kept as %s\n", aside)
		}
	}
	nw.Close(ctx, false)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(w, "imported %d MVs at journal_id %d into %s\n", len(doc.MVs), *doc.JournalID, dir)
	return nil
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
