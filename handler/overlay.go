package handler

import (
	"slices"

	"github.com/mvrepair/mvrepair/mvstate"
)

// overlay is the private, batch-local view of the state: the View plus the
// effects of the records decided so far in the batch. It never mutates
// anything reachable from the View; every change is kept in maps it owns.
//
// Changes are kept per entry (not per MV) so that a one-partition repair on an
// MV with a huge version map costs O(1) map work: nothing is copied.
type overlay struct {
	v   View
	mvs map[mvstate.MVKey]*mvOverlay
	// redefined lists, in first-touch order, the MVs whose base_tables may
	// differ from the View's (upserted, dropped, external table repaired):
	// the related-MV indexes are corrected for them.
	redefined []mvstate.MVKey
}

func newOverlay(v View) overlay {
	return overlay{v: v, mvs: make(map[mvstate.MVKey]*mvOverlay)}
}

// entryPatch is one partition entry changed in the batch: a new value, or a
// deletion.
type entryPatch struct {
	v   mvstate.BasePartitionInfo
	del bool
}

// tablePatch holds the changed entries of one native base table.
type tablePatch struct {
	table int64
	// created is set when the batch added the table key to version_map
	// (mv_refreshed merging a table the MV had not recorded).
	created bool
	entries map[string]entryPatch
}

// extPatch replaces the whole partition map of one external base table (nil
// map and del set: the key was removed). m is owned by the overlay and never
// shared with a record.
type extPatch struct {
	m   mvstate.PartitionMap
	del bool
}

// mvOverlay is one MV as the batch sees it: a read-only base (the View's MV,
// or a definition upserted earlier in the batch) plus the changes since.
type mvOverlay struct {
	key  mvstate.MVKey
	base *mvstate.MV // never mutated
	gone bool        // dropped in the batch
	// redefined: base_tables may differ from the View's (see overlay.redefined).
	redefined bool

	lrt int64
	// baseTables is the current base_tables. It aliases base.BaseTables until
	// the batch changes it; it is replaced, never written in place.
	baseTables []mvstate.BaseTableInfo
	// native holds one patch per changed native table, in first-change
	// order (an MV has few base tables: a linear scan beats a map here).
	native    []*tablePatch
	nativeBuf [1]*tablePatch
	ext       map[mvstate.BaseTableInfo]*extPatch

	// pending are the MV's open mv_version_repaired records, one per
	// native table (see batch.pendingFor).
	pending    []*pendingRepair
	pendingBuf [1]*pendingRepair
}

// get returns the current state of MV k, or nil when it does not exist.
func (o *overlay) get(k mvstate.MVKey) *mvOverlay {
	if e, ok := o.mvs[k]; ok {
		if e.gone {
			return nil
		}
		return e
	}
	m := o.v.MV(k)
	if m == nil {
		return nil
	}
	e := &mvOverlay{key: k, base: m, lrt: m.LastRefreshTime, baseTables: m.BaseTables}
	o.mvs[k] = e
	return e
}

// markRedefined records that k's base_tables may now differ from the View's.
func (o *overlay) markRedefined(e *mvOverlay) {
	if !e.redefined {
		e.redefined = true
		o.redefined = append(o.redefined, e.key)
	}
}

// upsert makes def (owned by the caller, never mutated afterwards) the
// current definition and refresh state of its MV.
func (o *overlay) upsert(def *mvstate.MV) {
	k := def.Key()
	e := &mvOverlay{key: k, base: def, lrt: def.LastRefreshTime, baseTables: def.BaseTables}
	if old, ok := o.mvs[k]; ok && old.redefined {
		e.redefined = true
	}
	o.mvs[k] = e
	o.markRedefined(e)
}

// drop deletes MV k.
func (o *overlay) drop(k mvstate.MVKey) {
	e := &mvOverlay{key: k, gone: true}
	if old, ok := o.mvs[k]; ok && old.redefined {
		e.redefined = true
	}
	o.mvs[k] = e
	o.markRedefined(e)
}

// relatedMVs is View.RelatedMVs corrected for the batch's changes.
func (o *overlay) relatedMVs(tableID int64) []mvstate.MVKey {
	return o.index(o.v.RelatedMVs(tableID), func(e *mvOverlay) bool { return hasNativeBase(e.baseTables, tableID) })
}

// mvsWithExternal is View.MVsWithExternal corrected for the batch's changes.
func (o *overlay) mvsWithExternal(ref mvstate.ExternalRef) []mvstate.MVKey {
	return o.index(o.v.MVsWithExternal(ref), func(e *mvOverlay) bool { return externalIndex(e.baseTables, ref) >= 0 })
}

// index merges the View's answer with the redefined MVs that match. The
// View's slice is read, never written.
func (o *overlay) index(fromView []mvstate.MVKey, match func(*mvOverlay) bool) []mvstate.MVKey {
	if len(o.redefined) == 0 {
		return fromView // nothing to correct; callers only read it
	}
	out := make([]mvstate.MVKey, 0, len(fromView))
	for _, k := range fromView {
		if e, ok := o.mvs[k]; ok && e.redefined {
			continue // decided below from its current definition
		}
		out = append(out, k)
	}
	added := false
	for _, k := range o.redefined {
		if e := o.mvs[k]; !e.gone && match(e) {
			out = append(out, k)
			added = true
		}
	}
	if added {
		slices.SortFunc(out, mvstate.MVKey.Compare)
		out = slices.Compact(out)
	}
	return out
}

func hasNativeBase(bts []mvstate.BaseTableInfo, tableID int64) bool {
	return nativeIndex(bts, tableID) >= 0
}

// nativeIndex returns the position of native table tableID in bts, or -1.
func nativeIndex(bts []mvstate.BaseTableInfo, tableID int64) int {
	for i, bt := range bts {
		if bt.IsNative() && bt.TableID == tableID {
			return i
		}
	}
	return -1
}

// externalIndex returns the position of the first external table ref in bts, or -1.
func externalIndex(bts []mvstate.BaseTableInfo, ref mvstate.ExternalRef) int {
	for i, bt := range bts {
		if !bt.IsNative() && bt.ExternalRef() == ref {
			return i
		}
	}
	return -1
}

// name returns the MV's name.
func (e *mvOverlay) name() string { return e.base.MVName }

// hasTable reports whether version_map has a key for native table t.
func (e *mvOverlay) hasTable(t int64) bool {
	if p := e.nativePatch(t); p != nil && p.created {
		return true
	}
	_, ok := e.base.VersionMap[t]
	return ok
}

// entry returns the recorded entry of partition name of native table t.
func (e *mvOverlay) entry(t int64, name string) (mvstate.BasePartitionInfo, bool) {
	if p := e.nativePatch(t); p != nil {
		if ep, ok := p.entries[name]; ok {
			return ep.v, !ep.del
		}
	}
	v, ok := e.base.VersionMap[t][name]
	return v, ok
}

// nativePatch returns the patch of native table t, or nil.
func (e *mvOverlay) nativePatch(t int64) *tablePatch {
	for _, p := range e.native {
		if p.table == t {
			return p
		}
	}
	return nil
}

// tablePatch returns the patch of native table t, creating it.
func (e *mvOverlay) tablePatch(t int64) *tablePatch {
	if p := e.nativePatch(t); p != nil {
		return p
	}
	p := &tablePatch{table: t, entries: make(map[string]entryPatch)}
	if e.native == nil {
		e.native = e.nativeBuf[:0]
	}
	e.native = append(e.native, p)
	return p
}

// setEntry sets partition name of native table t (creating the table key).
func (e *mvOverlay) setEntry(t int64, name string, v mvstate.BasePartitionInfo) {
	p := e.tablePatch(t)
	if _, ok := e.base.VersionMap[t]; !ok {
		p.created = true
	}
	p.entries[name] = entryPatch{v: v}
}

// deleteEntry removes partition name of native table t (the table key stays).
func (e *mvOverlay) deleteEntry(t int64, name string) {
	e.tablePatch(t).entries[name] = entryPatch{del: true}
}

// extMap returns the current partition map of external table bt (read-only:
// it may belong to the View).
func (e *mvOverlay) extMap(bt mvstate.BaseTableInfo) (mvstate.PartitionMap, bool) {
	if p, ok := e.ext[bt]; ok {
		return p.m, !p.del
	}
	m, ok := e.base.ExternalVersionMap[bt]
	return m, ok
}

// setExtMap replaces the partition map of external table bt; m becomes owned
// by the overlay.
func (e *mvOverlay) setExtMap(bt mvstate.BaseTableInfo, m mvstate.PartitionMap) {
	if e.ext == nil {
		e.ext = make(map[mvstate.BaseTableInfo]*extPatch)
	}
	e.ext[bt] = &extPatch{m: m}
}

func (e *mvOverlay) deleteExtMap(bt mvstate.BaseTableInfo) {
	if e.ext == nil {
		e.ext = make(map[mvstate.BaseTableInfo]*extPatch)
	}
	e.ext[bt] = &extPatch{del: true}
}

// materialize returns the MV as the batch sees it, as a deep copy. It costs
// O(size of the MV); only catalog events use it.
func (e *mvOverlay) materialize() *mvstate.MV {
	m := e.base.Clone()
	m.LastRefreshTime = e.lrt
	m.BaseTables = slices.Clone(e.baseTables)
	if m.BaseTables == nil {
		m.BaseTables = []mvstate.BaseTableInfo{}
	}
	for _, p := range e.native {
		t := p.table
		parts, ok := m.VersionMap[t]
		if !ok {
			if !p.created {
				continue
			}
			parts = make(mvstate.PartitionMap, len(p.entries))
			m.VersionMap[t] = parts
		}
		for name, ep := range p.entries {
			if ep.del {
				delete(parts, name)
			} else {
				parts[name] = ep.v
			}
		}
	}
	for bt, p := range e.ext {
		if p.del {
			delete(m.ExternalVersionMap, bt)
		} else {
			m.ExternalVersionMap[bt] = mvstate.ClonePartitions(p.m)
		}
	}
	return m
}
