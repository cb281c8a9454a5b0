package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/mvstate"
)

func newStateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect the local state store (read-only: it works beside a running service, which also serves GET /v1/state)",
		Args:  subcommandArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newStateExportCmd(g), newStateShowCmd(g), newImportCmd(g))
	return cmd
}

func newStateExportCmd(g *globals) *cobra.Command {
	var out, exportMV string
	export := &cobra.Command{
		Use:   "export",
		Short: `Write the whole state as canonical JSON {"journal_id":N,"mvs":[...]} (byte-identical for equal states)`,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			st, err := openReadOnly(cmd.Context(), "state export", cfg.State.Dir)
			if err != nil {
				return err
			}
			s := st.State()
			write := func(w io.Writer) error { return s.Export(cmd.Context(), w) }
			if exportMV != "" {
				key, err := findMV(s, exportMV)
				if err != nil {
					return err
				}
				write = func(w io.Writer) error { return s.ExportMVs(cmd.Context(), w, []mvstate.MVKey{key}) }
			}
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriter(f)
				if err := write(bw); err != nil {
					return err
				}
				return bw.Flush()
			}
			return write(cmd.OutOrStdout())
		},
	}
	export.Flags().StringVarP(&out, "out", "o", "-", "output file (- for stdout)")
	export.Flags().StringVar(&exportMV, "mv", "", "only this MV: DB_ID:MV_ID, or MV_ID when unique")
	return export
}

func newStateShowCmd(g *globals) *cobra.Command {
	var mv string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a summary of every MV, or one MV in full (--mv DB_ID:MV_ID or MV_ID)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			st, err := openReadOnly(cmd.Context(), "state show", cfg.State.Dir)
			if err != nil {
				return err
			}
			s := st.State()
			w := cmd.OutOrStdout()
			if mv != "" {
				key, err := findMV(s, mv)
				if err != nil {
					return err
				}
				b, err := json.MarshalIndent(s.Get(key), "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			fmt.Fprintf(w, "journal_id %d, epoch %d, %d MVs\n", s.JournalID(), s.Epoch(), s.Len())
			fmt.Fprintf(w, "%-8s %-8s %-28s %-7s %-15s %s\n", "DB_ID", "MV_ID", "NAME", "ACTIVE", "LAST_REFRESH", "PARTITIONS")
			for _, k := range s.Keys() {
				s.WithMV(k, func(m *mvstate.MV, _ int64) {
					fmt.Fprintf(w, "%-8d %-8d %-28s %-7t %-15d %d\n", m.DBID, m.MVID, m.MVName, m.Active, m.LastRefreshTime, m.Entries())
				})
			}
			return nil
		},
	}
	show.Flags().StringVar(&mv, "mv", "", "one MV: DB_ID:MV_ID, or MV_ID when unique")
	return show
}

// findMV resolves "db:mv" or a bare mv id.
func findMV(s *mvstate.State, spec string) (mvstate.MVKey, error) {
	if db, id, ok := strings.Cut(spec, ":"); ok {
		d, err1 := strconv.ParseInt(db, 10, 64)
		m, err2 := strconv.ParseInt(id, 10, 64)
		if err1 != nil || err2 != nil {
			return mvstate.MVKey{}, fmt.Errorf("--mv %q: want DB_ID:MV_ID", spec)
		}
		k := mvstate.MVKey{DBID: d, MVID: m}
		if s.Get(k) == nil {
			return k, fmt.Errorf("--mv %s: no such MV", spec)
		}
		return k, nil
	}
	id, err := strconv.ParseInt(spec, 10, 64)
	if err != nil {
		return mvstate.MVKey{}, fmt.Errorf("--mv %q: want DB_ID:MV_ID or MV_ID", spec)
	}
	var found []mvstate.MVKey
	for _, k := range s.Keys() {
		if k.MVID == id {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return mvstate.MVKey{}, fmt.Errorf("--mv %s: no such MV", spec)
	case 1:
		return found[0], nil
	}
	return mvstate.MVKey{}, fmt.Errorf("--mv %s: %d MVs have that id; use DB_ID:MV_ID", spec, len(found))
}
