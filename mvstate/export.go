package mvstate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
)

// Export writes the whole state as canonical JSON:
//
//	{"journal_id":N,"mvs":[...]}
//
// MVs sorted by (db_id, mv_id), every object's keys sorted, one MV per line
// after the first. Two equal states export byte-identical documents; applied
// input offsets are not part of the export (a state rebuilt from the edit
// log has none). The document is one consistent read (a Snapshot): commits
// go on while it is written.
func (s *State) Export(ctx context.Context, w io.Writer) error {
	return s.export(ctx, w, Selection{})
}

// ExportMVs is Export limited to the given MVs (unknown keys are left out):
// the same document shape, so `state export --mv` output is canonical too.
func (s *State) ExportMVs(ctx context.Context, w io.Writer, keys []MVKey) error {
	if keys == nil {
		keys = []MVKey{}
	}
	return s.export(ctx, w, Selection{Keys: keys})
}

func (s *State) export(ctx context.Context, w io.Writer, sel Selection) error {
	sn, err := s.Snapshot(sel)
	if err != nil {
		return err
	}
	defer sn.Close()
	return WriteExport(ctx, w, sn)
}

// WriteExport writes the export document of a snapshot (see Export).
func WriteExport(ctx context.Context, w io.Writer, sn *Snapshot) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(`{"journal_id":` + strconv.FormatInt(sn.JournalID, 10) + `,"mvs":[`); err != nil {
		return err
	}
	var buf []byte
	n := 0
	err := sn.Each(ctx, func(v SnapMV) error {
		if v.MV == nil {
			return nil
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		bw.WriteByte('\n')
		buf = AppendMV(buf[:0], v.MV, FullEntries)
		_, err := bw.Write(buf)
		return err
	})
	if err != nil {
		return fmt.Errorf("mvstate: export: %w", err)
	}
	if n > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
