package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

func errorLevel(cfg *config.Config) zerolog.Level {
	if cfg.Log.Level == "debug" {
		return zerolog.DebugLevel
	}
	return zerolog.ErrorLevel
}

// moveAside renames an existing store file so a new one can be built.
func moveAside(dir string) (string, error) {
	path := filepath.Join(dir, mvstate.FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	bak := path + ".bak-" + time.Now().UTC().Format("20060102T150405Z")
	return bak, os.Rename(path, bak)
}

func newRebuildCmd(g *globals) *cobra.Command {
	var fromEditLog, force, allowGaps bool
	cmd := &cobra.Command{
		Use:   "rebuild --from-edit-log [--force]",
		Short: "Build a new state store from the edit-log topic alone, checking journal continuity and epochs",
		Long: `Read the whole edit-log topic, check that journal ids are continuous and epochs
ordered, drop records a newer writer superseded (late writes of a fenced writer) and
apply the rest into a new store in state.dir. Gaps and fenced records are reported, not
hidden; a gap fails the rebuild unless --allow-gaps. An existing store is refused unless
--force, which keeps it as mvrepair.db.bak-<time>. Stop the service first.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromEditLog {
				return &exitError{code: 2, err: errors.New("rebuild: --from-edit-log is required (the edit log is the only source)")}
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
			st, err := openStore(ctx, "rebuild", cfg.State.Dir)
			if err != nil {
				return err
			}
			if st.JournalID() != 0 || st.Len() != 0 {
				if !force {
					st.Close()
					return &exitError{code: 2, err: fmt.Errorf("rebuild: %s already holds a state (journal id %d, %d MVs); add --force to keep it aside and rebuild",
						cfg.State.Dir, st.JournalID(), st.Len())}
				}
				st.Close()
				bak, err := moveAside(cfg.State.Dir)
				if err != nil {
					return fmt.Errorf("rebuild: keep the old store aside: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "old store kept as %s\n", bak)
				if st, err = mvstate.Open(ctx, cfg.State.Dir, mvstate.Options{}); err != nil {
					return err
				}
			}
			defer st.Close()
			k, err := service.OpenKafka(ctx, cfg, log.Level(errorLevel(cfg)))
			if err != nil {
				return err
			}
			defer k.Close()
			start := time.Now()
			rep, err := recovery.Rebuild(ctx, st, k.EditLogSource(log), allowGaps)
			if rep != nil {
				printReport(cmd.OutOrStdout(), rep, time.Since(start))
			}
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			if len(rep.Gaps) > 0 || len(rep.Undecodable) > 0 {
				return &exitError{code: 4, err: errors.New("rebuild: finished with gaps or undecodable records (see the report)")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromEditLog, "from-edit-log", false, "rebuild from the edit-log topic (required)")
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even if state.dir holds a store (kept aside as a .bak file)")
	cmd.Flags().BoolVar(&allowGaps, "allow-gaps", false, "finish despite journal gaps (records after a gap are not applied)")
	return cmd
}

func printReport(w io.Writer, rep *recovery.Report, d time.Duration) {
	fmt.Fprintf(w, "rebuild report (%s):\n", d.Round(time.Millisecond))
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
				return &exitError{code: 2, err: fmt.Errorf("import: %s is not a state export: %w", file, err)}
			}
			if doc.JournalID == nil {
				return &exitError{code: 2, err: fmt.Errorf("import: %s has no journal_id", file)}
			}
			seen := map[mvstate.MVKey]bool{}
			keys := make([]mvstate.MVKey, 0, len(doc.MVs))
			for i, m := range doc.MVs {
				if m == nil || m.DBID <= 0 || m.MVID <= 0 {
					return &exitError{code: 2, err: fmt.Errorf("import: mvs[%d]: db_id and mv_id must be positive", i)}
				}
				if seen[m.Key()] {
					return &exitError{code: 2, err: fmt.Errorf("import: mvs[%d]: MV %s listed twice", i, m.Key())}
				}
				seen[m.Key()] = true
				keys = append(keys, m.Key())
			}
			ctx := cmd.Context()
			st, err := openStore(ctx, "import", cfg.State.Dir)
			if err != nil {
				return err
			}
			if st.JournalID() != 0 || st.Len() != 0 {
				if !force {
					st.Close()
					return &exitError{code: 2, err: fmt.Errorf("import: %s already holds a state; add --force to keep it aside and import", cfg.State.Dir)}
				}
				st.Close()
				bak, err := moveAside(cfg.State.Dir)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "old store kept as %s\n", bak)
				if st, err = mvstate.Open(ctx, cfg.State.Dir, mvstate.Options{}); err != nil {
					return err
				}
			}
			defer st.Close()
			err = st.Commit(ctx, mvstate.Batch{Touched: keys, Structural: true, Apply: func(tx *mvstate.Tx) error {
				for _, m := range doc.MVs {
					if err := tx.PutMV(m); err != nil {
						return err
					}
				}
				tx.SetJournal(*doc.JournalID, 0)
				return nil
			}})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d MVs at journal_id %d into %s\n", len(doc.MVs), *doc.JournalID, cfg.State.Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "-", "export document (- for stdin)")
	cmd.Flags().BoolVar(&force, "force", false, "import even if state.dir holds a store (kept aside as a .bak file)")
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
				return &exitError{code: 1, err: err}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return &exitError{code: 1, err: fmt.Errorf("%s: %s %s", url, resp.Status, body)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/readyz", "URL to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "request timeout")
	return cmd
}
