package handler

import (
	"fmt"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// partitionVersionChanged applies rule §3.1: move the recorded version of each
// related MV forward when the MV recorded exactly the version the table left
// and has consumed every change before it.
//
// Cost per (MV, partition entry) is O(1) map work whatever the MV's size: the
// overlay records the changed entry, nothing is copied.
func (b *batch) partitionVersionChanged(i int, ev *events.PartitionVersionChanged) {
	if !events.IsNativeTableType(ev.TableType) {
		b.skip(i, Skip{Reason: SkipNonNativeTable, TableID: ev.TableID,
			Detail: fmt.Sprintf("table %d has table_type %q, not a native table or materialized view", ev.TableID, ev.TableType)})
		return
	}
	keys := b.ov.relatedMVs(ev.TableID)
	if len(keys) == 0 {
		b.skip(i, Skip{Reason: SkipNoRelatedMV, TableID: ev.TableID,
			Detail: fmt.Sprintf("no MV lists table %d in base_tables", ev.TableID)})
		return
	}
	src := b.outcomes[i].Input.Source
	for _, k := range keys {
		e := b.ov.get(k)
		if e == nil { // the View's index named an MV it does not hold
			b.skip(i, Skip{Reason: SkipUnknownMV, MV: k, TableID: ev.TableID,
				Detail: fmt.Sprintf("related mv %s of table %d not found", k, ev.TableID)})
			continue
		}
		var p *pendingRepair
		for _, pr := range ev.Partitions {
			if !b.checkRepair(i, e, ev.TableID, &pr) {
				continue
			}
			if p == nil {
				p = b.pendingFor(e, ev.TableID, nativeBaseTable(e, ev))
			}
			name := pr.PartitionName
			if _, seen := p.prev[name]; !seen {
				old, _ := e.entry(ev.TableID, name)
				p.prev[name] = old
			}
			nv := mvstate.NewBasePartitionInfo(pr.PartitionID, pr.NewVersion, pr.NewVersionTime)
			p.parts[name] = nv
			e.setEntry(ev.TableID, name, nv)
			// Never backwards (StarRocks overwrites; docs/design.md §3.1).
			e.lrt = max(e.lrt, pr.NewVersionTime)
			p.contribute(i, src)
			b.outcomes[i].Repaired++
		}
	}
}

// checkRepair runs the four checks of rule §3.1 for one partition entry and
// records the skip when one fails.
func (b *batch) checkRepair(i int, e *mvOverlay, table int64, pr *events.PartitionRepair) bool {
	s := Skip{MV: e.key, TableID: table, Partition: pr.PartitionName}
	if !e.hasTable(table) {
		s.Reason = SkipTableNotInVersionMap
		s.Detail = fmt.Sprintf("mv %s has no version_map entry for table %d", e.key, table)
		b.skip(i, s)
		return false
	}
	cur, ok := e.entry(table, pr.PartitionName)
	if !ok {
		s.Reason = SkipPartitionNotInMap
		s.Detail = fmt.Sprintf("mv %s has no entry for partition %q of table %d", e.key, pr.PartitionName, table)
		b.skip(i, s)
		return false
	}
	if cur.ID != pr.PartitionID || cur.Version != pr.LastVersion {
		s.Reason = SkipVersionMismatch
		s.Detail = fmt.Sprintf("recorded id %d version %d, event partition_id %d last_version %d",
			cur.ID, cur.Version, pr.PartitionID, pr.LastVersion)
		b.skip(i, s)
		return false
	}
	if pr.LastVersionTime != nil && *pr.LastVersionTime > cur.LastRefreshTime {
		s.Reason = SkipUnconsumedChange
		s.Detail = fmt.Sprintf("event last_version_time %d is after recorded last_refresh_time %d",
			*pr.LastVersionTime, cur.LastRefreshTime)
		b.skip(i, s)
		return false
	}
	return true
}

// nativeBaseTable is the MV's BaseTableInfo for the event's table, or one
// built from the event when base_tables does not list it.
func nativeBaseTable(e *mvOverlay, ev *events.PartitionVersionChanged) mvstate.BaseTableInfo {
	if j := nativeIndex(e.baseTables, ev.TableID); j >= 0 {
		return e.baseTables[j]
	}
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: ev.DBID, TableID: ev.TableID, TableName: ev.TableName}
}
