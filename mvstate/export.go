package mvstate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Export writes the whole state as canonical JSON:
//
//	{"journal_id":N,"mvs":[...]}
//
// MVs sorted by (db_id, mv_id), every object's keys sorted, one MV per line
// after the first. Two equal states export byte-identical documents; applied
// input offsets and the outbox are not part of the export (a state rebuilt
// from the edit log has none). Export blocks commits while it runs.
//
// Locks: commitMu → mu (read) → each entry.mu (read), one at a time.
func (s *Store) Export(ctx context.Context, w io.Writer) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.exportLocked(ctx, w)
}

// ExportDurable exports what is on disk (a bbolt read snapshot), not what is
// in memory. It equals Export whenever no commit is in flight; tests use it to
// prove that memory and disk agree. A memory-only store exports its memory.
func (s *Store) ExportDurable(ctx context.Context, w io.Writer) error {
	if s.db == nil {
		return s.Export(ctx, w)
	}
	snap := &Store{}
	if err := s.db.View(func(tx *bolt.Tx) error { return snap.load(tx) }); err != nil {
		return fmt.Errorf("mvstate: read snapshot: %w", err)
	}
	return snap.exportLocked(ctx, w)
}

// ExportMVs is Export limited to the given MVs (unknown keys are left out):
// the same document shape, so `state export --mv` output is canonical too.
func (s *Store) ExportMVs(ctx context.Context, w io.Writer, keys []MVKey) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	want := make(map[MVKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	return s.export(ctx, w, func(k MVKey) bool { return want[k] })
}

func (s *Store) exportLocked(ctx context.Context, w io.Writer) error {
	return s.export(ctx, w, nil)
}

// export writes the document for the MVs keep accepts (all when nil).
func (s *Store) export(ctx context.Context, w io.Writer, keep func(MVKey) bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	s.metaMu.RLock()
	jid := s.journalID
	s.metaMu.RUnlock()
	if _, err := bw.WriteString(`{"journal_id":` + strconv.FormatInt(jid, 10) + `,"mvs":[`); err != nil {
		return err
	}
	keys := make([]MVKey, 0, len(s.mvs))
	for k := range s.mvs {
		if keep == nil || keep(k) {
			keys = append(keys, k)
		}
	}
	for i, k := range sortKeys(keys) {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := s.mvs[k]
		e.mu.RLock()
		b, err := json.Marshal(e.mv)
		e.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("mvstate: export mv %s: %w", k, err)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		bw.Write(b)
	}
	if len(keys) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
