package handler

import (
	"fmt"
	"slices"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Process decides a batch of inputs against v and returns the edit-log
// records to apply and journal (in journal order, ids from opt.NextJournalID
// without gaps) and one outcome per input, in input order.
//
// Process is pure: it does no I/O and never mutates anything reachable from v
// or in, and no returned record shares a map or slice with them (or with
// another record). Inputs later in the batch see the effects of earlier ones
// through a private overlay over v, exactly as if the records decided so far
// had been applied with editlog.Apply.
//
// Repairs of native partitions (rule §3.1) are grouped: one
// mv_version_repaired record per (MV, base table) per batch, carrying only the
// changed entries. Such a record is emitted ("sealed") just before any later
// record of another op for the same MV, so that each MV's effects keep their
// order; the rest are emitted at the end in (MV key, table id) order.
func Process(v View, in []Input, opt Options) Result {
	b := &batch{
		ov:       newOverlay(v),
		opt:      opt,
		next:     opt.NextJournalID,
		outcomes: make([]Outcome, len(in)),
	}
	for i := range in {
		b.outcomes[i].Input = in[i]
		b.process(i)
	}
	b.sealAll()
	return Result{Records: b.records, Outcomes: b.outcomes}
}

// batch is the state of one Process call.
type batch struct {
	ov       overlay
	opt      Options
	next     int64
	records  []*editlog.Record
	outcomes []Outcome

	// open lists the MVs that have (or had) open mv_version_repaired
	// records, in first-touch order; the records themselves hang off each
	// MV's overlay (mvOverlay.pending), found by a short linear scan. An MV
	// may be listed twice (repaired again after a seal); sealing empties it.
	// No map: a one-repair batch must stay a handful of allocations.
	open []*mvOverlay
}

type pendingKey struct {
	mv    mvstate.MVKey
	table int64
}

// pendingRepair is an mv_version_repaired record being built.
type pendingRepair struct {
	key       pendingKey
	mv        editlog.MVRef
	baseTable mvstate.BaseTableInfo
	// parts holds the final values of the changed entries; prev their values
	// before the record's first change. Both are owned by the record.
	parts   mvstate.PartitionMap
	prev    mvstate.PartitionMap
	causes  []editlog.Cause
	inputs  []int // outcome indices of the contributing inputs
	overlay *mvOverlay
	// Inline room for the common case of one contributing input; the
	// record takes over causes (and the base table) with p when sealed.
	causeBuf [1]editlog.Cause
	inputBuf [1]int
}

func (b *batch) process(i int) {
	out := &b.outcomes[i]
	switch ev := out.Input.Event.(type) {
	case *events.PartitionVersionChanged:
		if ev == nil {
			b.dlq(out, events.ReasonInvalidEvent, "nil partition_version_changed event")
			return
		}
		b.partitionVersionChanged(i, ev)
	case *events.ExternalTableRecreated:
		if ev == nil {
			b.dlq(out, events.ReasonInvalidEvent, "nil external_table_recreated event")
			return
		}
		b.externalTableRecreated(i, ev)
	case *events.MVUpserted:
		if ev == nil || ev.MV == nil {
			b.dlq(out, events.ReasonInvalidEvent, "mv_upserted without mv")
			return
		}
		b.mvUpserted(i, ev)
	case *events.MVRefreshed:
		if ev == nil {
			b.dlq(out, events.ReasonInvalidEvent, "nil mv_refreshed event")
			return
		}
		b.mvRefreshed(i, ev)
	case *events.MVDropped:
		if ev == nil {
			b.dlq(out, events.ReasonInvalidEvent, "nil mv_dropped event")
			return
		}
		b.mvDropped(i, ev)
	default:
		b.dlq(out, events.ReasonUnknownKind, fmt.Sprintf("event type %T is not handled", out.Input.Event))
	}
}

func (b *batch) dlq(out *Outcome, r events.Reason, msg string) {
	out.DLQ = &events.DecodeError{Reason: r, Msg: msg}
}

func (b *batch) skip(i int, s Skip) {
	b.outcomes[i].Skips = append(b.outcomes[i].Skips, s)
}

// emit stamps rec with the next journal id, the epoch and the time, appends
// it, and lists its id in the outcomes of the contributing inputs.
func (b *batch) emit(rec *editlog.Record, inputs ...int) {
	rec.JournalID = b.next
	b.next++
	rec.Epoch = b.opt.Epoch
	rec.At = b.opt.Now
	b.records = append(b.records, rec)
	for _, i := range inputs {
		ids := b.outcomes[i].Records
		if len(ids) == 0 || ids[len(ids)-1] != rec.JournalID {
			b.outcomes[i].Records = append(ids, rec.JournalID)
		}
	}
}

// emitOther emits a record of an op other than mv_version_repaired for MV k
// from input i. The caller seals k's pending repairs before it changes the
// overlay (sealing reads the MV's current last_refresh_time); sealing here
// again is a no-op that keeps the order guarantee local.
func (b *batch) emitOther(k mvstate.MVKey, rec *editlog.Record, i int) {
	b.sealMV(k)
	rec.Causes = []editlog.Cause{b.outcomes[i].Input.Source}
	b.emit(rec, i)
}

// pendingFor returns the open repair record of (MV e, table), creating it.
func (b *batch) pendingFor(e *mvOverlay, table int64, bt mvstate.BaseTableInfo) *pendingRepair {
	for _, p := range e.pending {
		if p.key.table == table {
			return p
		}
	}
	p := &pendingRepair{
		key:       pendingKey{mv: e.key, table: table},
		mv:        editlog.MVRef{DBID: e.key.DBID, MVID: e.key.MVID, MVName: e.name()},
		baseTable: bt,
		parts:     make(mvstate.PartitionMap, 1),
		prev:      make(mvstate.PartitionMap, 1),
		overlay:   e,
	}
	p.causes, p.inputs = p.causeBuf[:0], p.inputBuf[:0]
	if len(e.pending) == 0 {
		b.open = append(b.open, e)
		e.pending = e.pendingBuf[:0]
	}
	e.pending = append(e.pending, p)
	return p
}

// contribute notes that input i changed something in p.
func (p *pendingRepair) contribute(i int, src editlog.Cause) {
	if n := len(p.inputs); n == 0 || p.inputs[n-1] != i {
		p.inputs = append(p.inputs, i)
	}
	// Inputs are handled one after the other, so a cause repeats only
	// consecutively: comparing with the last one dedupes in O(1).
	if n := len(p.causes); n == 0 || p.causes[n-1] != src {
		p.causes = append(p.causes, src)
	}
}

// sealMV emits MV k's pending repair records in table id order. They hang
// off k's current overlay: an MV's overlay is only replaced (upsert, drop)
// after its pending records were sealed.
func (b *batch) sealMV(k mvstate.MVKey) {
	e := b.ov.mvs[k]
	if e == nil || len(e.pending) == 0 {
		return
	}
	ps := e.pending
	e.pending = nil
	slices.SortFunc(ps, func(x, y *pendingRepair) int { return cmpInt64(x.key.table, y.key.table) })
	for _, p := range ps {
		b.sealOne(p)
	}
}

// sealAll emits every pending repair record in (MV key, table id) order.
func (b *batch) sealAll() {
	var ps []*pendingRepair
	if len(b.open) == 1 {
		ps = b.open[0].pending // the common case: no copy
		b.open[0].pending = nil
	} else {
		for _, e := range b.open {
			ps = append(ps, e.pending...)
			e.pending = nil
		}
	}
	b.open = nil
	slices.SortFunc(ps, func(x, y *pendingRepair) int {
		if c := x.key.mv.Compare(y.key.mv); c != 0 {
			return c
		}
		return cmpInt64(x.key.table, y.key.table)
	})
	for _, p := range ps {
		b.sealOne(p)
	}
}

func (b *batch) sealOne(p *pendingRepair) {
	rec := &editlog.Record{
		Op:         editlog.OpVersionRepaired,
		MV:         p.mv,
		BaseTable:  &p.baseTable, // p is done with: the record owns it now
		Partitions: p.parts,
		Previous:   p.prev,
		// The MV's last_refresh_time as it results from everything decided
		// so far: any other op on this MV would have sealed p first.
		MVLastRefreshTime: p.overlay.lrt,
		Causes:            p.causes,
	}
	p.overlay = nil // the record keeps p alive; not the batch's overlay
	b.emit(rec, p.inputs...)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
