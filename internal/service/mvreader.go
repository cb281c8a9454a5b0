package service

import (
	"context"
	"encoding/json"
	"io"

	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/mvstate"
)

// MVReader serves the read-only MV API from the service's live store (it
// follows the store across a standby's self-rebuild).
type MVReader struct{ Svc *Service }

// ListMVs returns a summary of every MV, ordered by (db_id, mv_id).
func (r MVReader) ListMVs() []httpserver.MVSummary {
	st := r.Svc.Store().State()
	keys := st.Keys()
	out := make([]httpserver.MVSummary, 0, len(keys))
	for _, k := range keys {
		st.WithMV(k, func(m *mvstate.MV, _ int64) {
			out = append(out, httpserver.MVSummary{DBID: m.DBID, MVID: m.MVID, DBName: m.DBName, MVName: m.MVName,
				Active: m.Active, LastRefreshTime: m.LastRefreshTime, Partitions: m.Entries()})
		})
	}
	return out
}

// GetMV returns one MV as canonical JSON.
func (r MVReader) GetMV(dbID, mvID int64) (json.RawMessage, bool) {
	var out json.RawMessage
	ok := r.Svc.Store().State().WithMV(mvstate.MVKey{DBID: dbID, MVID: mvID}, func(m *mvstate.MV, _ int64) {
		out = mvstate.AppendMV(nil, m, mvstate.FullEntries)
	})
	return out, ok && out != nil
}

// ExportState streams the state export document of the live store, from
// one consistent read (GET /v1/state).
func (r MVReader) ExportState(ctx context.Context, w io.Writer) error {
	return r.Svc.Store().State().Export(ctx, w)
}
