package handler

import (
	"fmt"
	"maps"
	"slices"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Catalog events (rule §3.3). Each change is journaled so that the edit log
// alone rebuilds the state; an event that changes nothing journals nothing.

// mvUpserted creates or replaces an MV.
func (b *batch) mvUpserted(i int, ev *events.MVUpserted) {
	k := ev.MV.Key()
	if e := b.ov.get(k); e != nil && e.materialize().Equal(ev.MV) {
		b.skip(i, Skip{Reason: SkipNoChange, MV: k, Detail: fmt.Sprintf("mv %s already holds this definition and state", k)})
		return
	}
	def := ev.MV.Clone()
	b.sealMV(k)
	// The overlay reads def but never writes it; the record owns it.
	b.ov.upsert(def)
	b.emitOther(k, &editlog.Record{
		Op:         editlog.OpUpserted,
		MV:         editlog.MVRef{DBID: k.DBID, MVID: k.MVID, MVName: def.MVName},
		Definition: def,
	}, i)
}

// mvDropped deletes an MV; dropping an unknown MV is a no-op.
func (b *batch) mvDropped(i int, ev *events.MVDropped) {
	k := ev.Key()
	e := b.knownMV(i, k)
	if e == nil {
		return
	}
	name := e.name()
	b.sealMV(k)
	b.ov.drop(k)
	b.emitOther(k, &editlog.Record{
		Op: editlog.OpDropped,
		MV: editlog.MVRef{DBID: k.DBID, MVID: k.MVID, MVName: name},
	}, i)
}

// knownMV returns the overlay of MV k, or skips event i (SkipUnknownMV) and
// returns nil when there is no such MV.
func (b *batch) knownMV(i int, k mvstate.MVKey) *mvOverlay {
	e := b.ov.get(k)
	if e == nil {
		b.skip(i, Skip{Reason: SkipUnknownMV, MV: k, Detail: fmt.Sprintf("mv %s is not known", k)})
	}
	return e
}

// mvRefreshed merges refreshed entries into the MV's version maps, deletes
// the removed names and raises last_refresh_time to max(old, given). The
// record carries only what changes. A name both given and removed ends up
// removed (editlog.Apply merges, then deletes).
func (b *batch) mvRefreshed(i int, ev *events.MVRefreshed) {
	k := ev.Key()
	e := b.knownMV(i, k)
	if e == nil {
		return
	}
	removing, removed := refreshRemovals(e, ev)
	vm := refreshNative(e, ev, removing)
	evm := refreshExternal(e, ev)
	lrt := max(e.lrt, ev.LastRefreshTime)
	if removed == nil && vm == nil && evm == nil && lrt == e.lrt {
		b.skip(i, Skip{Reason: SkipNoChange, MV: k, Detail: fmt.Sprintf("mv %s already holds every refreshed entry", k)})
		return
	}

	// Seal the MV's pending repairs before the overlay moves past them (their
	// records carry the MV's last_refresh_time as it is now).
	b.sealMV(k)
	for t, parts := range vm {
		for name, nv := range parts {
			e.setEntry(t, name, nv)
		}
	}
	for t, names := range removed {
		for _, name := range names {
			e.deleteEntry(t, name)
		}
	}
	for bt, parts := range evm {
		cur, _ := e.extMap(bt)
		m := maps.Clone(cur)
		if m == nil {
			m = make(mvstate.PartitionMap, len(parts))
		}
		maps.Copy(m, parts)
		e.setExtMap(bt, m)
	}
	e.lrt = lrt

	b.emitOther(k, &editlog.Record{
		Op:                 editlog.OpRefreshed,
		MV:                 editlog.MVRef{DBID: k.DBID, MVID: k.MVID, MVName: e.name()},
		VersionMap:         vm,
		ExternalVersionMap: evm,
		Removed:            removed,
		MVLastRefreshTime:  lrt,
	}, i)
}

// refreshRemovals returns the names the event removes, by table
// (removing), and of those the ones the MV has (removed: nil when none).
func refreshRemovals(e *mvOverlay, ev *events.MVRefreshed) (removing map[int64]map[string]bool, removed map[int64][]string) {
	removing = make(map[int64]map[string]bool, len(ev.Removed))
	for _, t := range sortedKeys(ev.Removed) {
		set := make(map[string]bool, len(ev.Removed[t]))
		removing[t] = set
		for _, name := range ev.Removed[t] {
			if set[name] {
				continue
			}
			set[name] = true
			if _, ok := e.entry(t, name); !ok {
				continue
			}
			if removed == nil {
				removed = make(map[int64][]string)
			}
			removed[t] = append(removed[t], name)
		}
	}
	return removing, removed
}

// refreshNative returns the native entries of the event that change the
// MV and are not removed (nil when none).
func refreshNative(e *mvOverlay, ev *events.MVRefreshed, removing map[int64]map[string]bool) mvstate.VersionMap {
	var vm mvstate.VersionMap
	for _, t := range sortedKeys(ev.VersionMap) {
		for name, nv := range ev.VersionMap[t] {
			if removing[t][name] {
				continue
			}
			if cur, ok := e.entry(t, name); ok && cur == nv {
				continue
			}
			if vm == nil {
				vm = make(mvstate.VersionMap)
			}
			if vm[t] == nil {
				vm[t] = make(mvstate.PartitionMap)
			}
			vm[t][name] = nv
		}
	}
	return vm
}

// refreshExternal returns the external entries of the event that change
// the MV (nil when none).
func refreshExternal(e *mvOverlay, ev *events.MVRefreshed) mvstate.ExternalVersionMap {
	var evm mvstate.ExternalVersionMap
	for bt, parts := range ev.ExternalVersionMap {
		cur, _ := e.extMap(bt)
		for name, nv := range parts {
			if old, ok := cur[name]; ok && old == nv {
				continue
			}
			if evm == nil {
				evm = make(mvstate.ExternalVersionMap)
			}
			if evm[bt] == nil {
				evm[bt] = make(mvstate.PartitionMap)
			}
			evm[bt][name] = nv
		}
	}
	return evm
}

func sortedKeys[V any](m map[int64]V) []int64 {
	ks := make([]int64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
