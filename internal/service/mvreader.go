package service

import (
	"encoding/json"

	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/mvstate"
)

// MVReader serves the read-only MV API from a store.
type MVReader struct{ Store *mvstate.Store }

// ListMVs returns a summary of every MV, ordered by (db_id, mv_id).
func (r MVReader) ListMVs() []httpserver.MVSummary {
	keys := r.Store.Keys()
	out := make([]httpserver.MVSummary, 0, len(keys))
	for _, k := range keys {
		r.Store.WithMV(k, func(m *mvstate.MV) {
			n := 0
			for _, pm := range m.VersionMap {
				n += len(pm)
			}
			for _, pm := range m.ExternalVersionMap {
				n += len(pm)
			}
			out = append(out, httpserver.MVSummary{DBID: m.DBID, MVID: m.MVID, DBName: m.DBName, MVName: m.MVName,
				Active: m.Active, LastRefreshTime: m.LastRefreshTime, Partitions: n})
		})
	}
	return out
}

// GetMV returns one MV as canonical JSON.
func (r MVReader) GetMV(dbID, mvID int64) (json.RawMessage, bool) {
	var out json.RawMessage
	ok := r.Store.WithMV(mvstate.MVKey{DBID: dbID, MVID: mvID}, func(m *mvstate.MV) {
		out, _ = json.Marshal(m)
	})
	return out, ok && out != nil
}
