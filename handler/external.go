package handler

import (
	"fmt"
	"maps"
	"slices"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// externalTableRecreated applies rule §3.2: an external table was dropped and
// recreated under a new identifier. Each MV reading the old table gets the new
// BaseTableInfo (same position in base_tables), its partition map moved to the
// new key and rebuilt, and one mv_base_table_info_repaired record (StarRocks
// journals nothing here). The MV's last_refresh_time is left as it is.
func (b *batch) externalTableRecreated(i int, ev *events.ExternalTableRecreated) {
	if ev.Catalog == mvstate.DefaultCatalog {
		b.dlq(&b.outcomes[i], events.ReasonInternalCatalog,
			fmt.Sprintf("external_table_recreated names the internal catalog %q", ev.Catalog))
		return
	}
	oldRef := ev.OldRef()
	keys := b.ov.mvsWithExternal(oldRef)
	if len(keys) == 0 {
		b.skip(i, Skip{Reason: SkipNoMVWithExternal,
			Detail: fmt.Sprintf("no MV lists external table %s in base_tables", oldRef)})
		return
	}
	updated := make(map[string]bool, len(ev.UpdatedPartitions))
	for _, n := range ev.UpdatedPartitions {
		updated[n] = true
	}
	for _, k := range keys {
		b.recreateExternalOf(i, k, ev, updated)
	}
}

// recreateExternalOf repairs MV k for event i (rule §3.2): the new
// BaseTableInfo at the old one's position, the partition map moved to it
// (movedEntries), and one record; or a skip when k is unknown, does not
// list the table, or already holds the result.
func (b *batch) recreateExternalOf(i int, k mvstate.MVKey, ev *events.ExternalTableRecreated, updated map[string]bool) {
	oldRef := ev.OldRef()
	e := b.ov.get(k)
	if e == nil {
		b.skip(i, Skip{Reason: SkipUnknownMV, MV: k, Detail: fmt.Sprintf("mv %s listed for %s not found", k, oldRef)})
		return
	}
	j := externalIndex(e.baseTables, oldRef)
	if j < 0 {
		b.skip(i, Skip{Reason: SkipNoMVWithExternal, MV: k,
			Detail: fmt.Sprintf("mv %s does not list external table %s", k, oldRef)})
		return
	}
	oldBT := e.baseTables[j]
	newBT := oldBT
	newBT.TableIdentifier = ev.NewTableIdentifier

	oldMap, _ := e.extMap(oldBT)
	newMap, moved := movedEntries(oldMap, ev, updated)
	if newBT == oldBT && moved == 0 {
		b.skip(i, Skip{Reason: SkipNoChange, MV: k,
			Detail: fmt.Sprintf("mv %s: table %s already has identifier %q and its entries", k, oldRef, ev.NewTableIdentifier)})
		return
	}

	// Overlay: same position in base_tables, the map moved to the new key.
	// The MV's pending repairs are sealed first: their records come before.
	b.sealMV(k)
	bts := slices.Clone(e.baseTables)
	bts[j] = newBT
	e.baseTables = bts
	b.ov.markRedefined(e)
	e.deleteExtMap(oldBT)
	e.setExtMap(newBT, maps.Clone(newMap))

	ob, nb := oldBT, newBT
	prev := maps.Clone(oldMap)
	if prev == nil {
		prev = mvstate.PartitionMap{}
	}
	rec := &editlog.Record{
		Op:           editlog.OpBaseTableInfoRepaired,
		MV:           editlog.MVRef{DBID: k.DBID, MVID: k.MVID, MVName: e.name()},
		OldBaseTable: &ob,
		NewBaseTable: &nb,
		Partitions:   newMap,
		Previous:     prev,
	}
	b.emitOther(k, rec, i)
	b.outcomes[i].Repaired += moved
}

// movedEntries is the old table's partition map as the new table's: an
// entry the event reports unchanged takes the new table's modified time as
// its version and refresh time; one it reports updated, or that the new
// table lacks, is kept as it is (the MV must refresh it). moved counts the
// entries that change.
func movedEntries(oldMap mvstate.PartitionMap, ev *events.ExternalTableRecreated, updated map[string]bool) (mvstate.PartitionMap, int) {
	newMap := make(mvstate.PartitionMap, len(oldMap))
	moved := 0
	for name, old := range oldMap {
		np, inNew := ev.Partitions[name]
		if updated[name] || !inNew {
			// Data changed (the MV must see it and refresh), or the
			// partition is gone from the new table (it will be refreshed).
			newMap[name] = old
			continue
		}
		nv := mvstate.BasePartitionInfo{ID: old.ID, Version: np.ModifiedTime, LastRefreshTime: np.ModifiedTime,
			ExtLastFileModifiedTime: old.ExtLastFileModifiedTime, FileNumber: old.FileNumber}
		if nv != old {
			moved++
		}
		newMap[name] = nv
	}
	return newMap, moved
}
