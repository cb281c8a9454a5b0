package enginetest

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// (a) DESIGN.md §5.5: the edit log alone rebuilds the live state. Every
// record the writer committed, encoded (editlog.Encode), decoded and applied
// in order to an empty store — one per commit or several per commit, as a
// follower does — gives a byte-identical export.
func TestProperty_editLogRebuildsLiveState(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(rt, mvstate.NewMemory())
		for _, b := range drawScenario(rt, 60) {
			e.send(b.evs, b.epoch)
		}
		live := export(rt, e.store)
		groups := rapid.SliceOfN(rapid.IntRange(1, 5), 0, len(e.encoded)).Draw(rt, "records per commit")
		rebuilt := replay(rt, e.encoded, groups, nil)
		if got := export(rt, rebuilt); got != live {
			rt.Fatalf("state rebuilt from %d records differs from the live state: %s", len(e.encoded), firstDiff(live, got))
		}
		if rebuilt.JournalID() != e.store.JournalID() || rebuilt.Epoch() != e.store.Epoch() {
			rt.Fatalf("rebuilt journal %d/%d, live %d/%d", rebuilt.JournalID(), rebuilt.Epoch(), e.store.JournalID(), e.store.Epoch())
		}
	})
}

// (a) on disk: a durable store (real fsync) agrees with its own memory after
// every batch (Export vs ExportDurable), with a memory store fed the same
// stream, and — closed and reopened, once mid-stream and once at the end —
// with what it held before: the state, journal id, epoch, applied offsets
// and the unacknowledged outbox. The edit log rebuilds it too.
func TestProperty_durableStoreMatchesLiveAndReopens(t *testing.T) {
	base := t.TempDir()
	defer fewerChecks(t, 4)()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(base, "state")
		if err != nil {
			rt.Fatalf("%v", err)
		}
		defer os.RemoveAll(dir)
		ctx := context.Background()
		open := func() *mvstate.Store {
			s, err := mvstate.Open(ctx, dir, mvstate.Options{})
			if err != nil {
				rt.Fatalf("open: %v", err)
			}
			return s
		}
		disk := newEngine(rt, open())
		defer func() { disk.store.Close() }()
		mem := newEngine(rt, mvstate.NewMemory())
		reopen := func() {
			if err := disk.store.Close(); err != nil {
				rt.Fatalf("close: %v", err)
			}
			disk.setStore(open())
		}

		batches := drawScenario(rt, 30)
		restart := rapid.IntRange(0, len(batches)).Draw(rt, "restart before batch")
		for i, b := range batches {
			if i == restart {
				reopen()
			}
			disk.send(b.evs, b.epoch)
			mem.send(b.evs, b.epoch)
			if live, durable := export(rt, disk.store), exportDurable(rt, disk.store); live != durable {
				rt.Fatalf("after batch %d the store's memory and disk differ: %s", i, firstDiff(live, durable))
			}
		}
		live := export(rt, disk.store)
		if want := export(rt, mem.store); live != want {
			rt.Fatalf("durable store differs from a memory store fed the same stream: %s", firstDiff(want, live))
		}
		offsets, jid, epoch := disk.store.Offsets(), disk.store.JournalID(), disk.store.Epoch()
		if !maps.Equal(offsets, mem.store.Offsets()) {
			rt.Fatalf("offsets %v, memory store %v", offsets, mem.store.Offsets())
		}
		reopen()
		if got := export(rt, disk.store); got != live {
			rt.Fatalf("reopened store differs: %s", firstDiff(live, got))
		}
		if !maps.Equal(disk.store.Offsets(), offsets) || disk.store.JournalID() != jid || disk.store.Epoch() != epoch {
			rt.Fatalf("reopened: offsets %v journal %d epoch %d, before %v %d %d",
				disk.store.Offsets(), disk.store.JournalID(), disk.store.Epoch(), offsets, jid, epoch)
		}
		// Nothing unacknowledged is lost: the last batch's messages (its
		// commit acknowledged everything before) are in the outbox, intact.
		// Whether acknowledged ones are all gone is TestOutboxAck_deletesEveryAcknowledgedMessage.
		outbox, err := disk.store.Outbox(ctx)
		if err != nil {
			rt.Fatalf("outbox: %v", err)
		}
		kept := map[uint64]string{}
		for _, m := range outbox {
			kept[m.Seq] = string(m.Value)
		}
		var lastOutbox []mvstate.OutboxMessage
		if disk.last != nil { // nil when the drawn stream was empty
			lastOutbox = disk.last.Outbox
		}
		for _, m := range lastOutbox {
			if v, ok := kept[m.Seq]; !ok || v != string(m.Value) {
				rt.Fatalf("reopened outbox lost or changed unacknowledged message %d (has %d messages)", m.Seq, len(outbox))
			}
		}
		if got := export(rt, replay(rt, disk.encoded, nil, nil)); got != live {
			rt.Fatalf("edit log rebuilds a different state: %s", firstDiff(live, got))
		}
	})
}

// (b) DESIGN.md §5.2: re-processing changes nothing and journals nothing.
//
//   - At a new position, the rules themselves make a second processing a
//     no-op: after each batch, the inputs no later input of the batch
//     interferes with (see interferes) are sent again, at new offsets.
//   - At the same position, every input is skipped as already applied: at
//     the end the whole stream is re-sent with its original offsets, in new
//     batch cuts, to handler.Process directly (each outcome must be exactly
//     one already_applied skip) and through the writer.
func TestProperty_reprocessingChangesNothing(t *testing.T) {
	resentApplied := 0 // re-sent inputs that had changed the state the first time
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(rt, mvstate.NewMemory())
		epoch := int64(1)
		for i, b := range drawScenario(rt, 50) {
			epoch = b.epoch
			first := e.send(b.evs, b.epoch)
			again := quiescent(b.evs)
			if len(again) == 0 || !rapid.Bool().Draw(rt, "re-send at new positions") {
				continue
			}
			for j, o := range first.Outcomes {
				if o.Applied() && slices.Contains(again, b.evs[j]) {
					resentApplied++
				}
			}
			before, jid := export(rt, e.store), e.store.JournalID()
			out := e.send(again, b.epoch)
			if len(out.Records) > 0 || len(out.Outbox) > 0 {
				rt.Fatalf("batch %d: re-sending %d settled inputs emitted %d records: first %s of %s",
					i, len(again), len(out.Records), out.Records[0].Op, out.Records[0].MV.Key())
			}
			for _, o := range out.Outcomes {
				if o.Applied() || o.Repaired > 0 || o.DLQ != nil {
					rt.Fatalf("batch %d: re-sent %s (%s) was applied again: %+v", i, o.Input.Event.Kind(), o.Input.Source.EventID, o)
				}
			}
			if got := export(rt, e.store); got != before || e.store.JournalID() != jid {
				rt.Fatalf("batch %d: re-sending settled inputs changed the state: %s", i, firstDiff(before, got))
			}
		}

		final, offsets, jid := export(rt, e.store), e.store.Offsets(), e.store.JournalID()
		msgs := slices.Clone(e.msgs)
		for len(msgs) > 0 {
			n := min(len(msgs), rapid.IntRange(1, 10).Draw(rt, "replay batch"))
			chunk := msgs[:n]
			msgs = msgs[n:]
			in := make([]handler.Input, len(chunk))
			for i, m := range chunk {
				ev := e.byPos[position{m.Topic, m.Partition, m.Offset}]
				in[i] = handler.Input{Event: ev, Source: editlog.Cause{EventID: ev.ID(), Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}}
			}
			res := handler.Process(e.store, in, handler.Options{NextJournalID: e.store.JournalID() + 1, Epoch: epoch, Now: fixedNow.UnixMilli()})
			if len(res.Records) > 0 {
				rt.Fatalf("handler decided %d records for already-applied inputs", len(res.Records))
			}
			for _, o := range res.Outcomes {
				if len(o.Skips) != 1 || o.Skips[0].Reason != handler.SkipAlreadyApplied || o.DLQ != nil || o.Repaired != 0 {
					rt.Fatalf("already-applied input %+v: outcome %+v", o.Input.Source, o)
				}
			}
			if out := e.process(chunk, epoch); len(out.Records) > 0 || len(out.Outbox) > 0 {
				rt.Fatalf("writer emitted %d records for already-applied inputs", len(out.Records))
			}
		}
		if got := export(rt, e.store); got != final || e.store.JournalID() != jid || !maps.Equal(e.store.Offsets(), offsets) {
			rt.Fatalf("re-consuming the stream changed the state: %s", firstDiff(final, got))
		}
	})
	if resentApplied == 0 {
		t.Errorf("no input that had changed the state was re-sent at a new position")
	}
	t.Logf("%d re-sent inputs had changed the state the first time", resentApplied)
}

// (c) DESIGN.md §5.6: no native entry ever moves unless rule §3.1 held for
// it. Checked on every record, against the state just before it (the state
// before its batch, or after the records before it in the batch — the edit
// log replayed in order; TestProperty_editLogRebuildsLiveState shows that is
// the live state):
//
//   - only mv_version_repaired (and the catalog ops mv_upserted and
//     mv_refreshed) change native entries; mv_version_repaired changes
//     exactly the entries it names, of its table, to the values it names;
//   - each named entry's previous value is the state's; replaying the
//     record's causes — partition_version_changed events of that native
//     table — through rule §3.1 by hand (id == recorded id, last_version ==
//     recorded version, last_version_time absent or <= recorded
//     last_refresh_time, then {partition_id, new_version, new_version_time,
//     -1, -1}) moves it, at least once, to exactly the recorded value;
//   - the MV's last_refresh_time never decreases (except by mv_upserted,
//     which replaces the MV, and mv_dropped) and a repair record's
//     mv_last_refresh_time is at least every new_version_time it applied;
//     mv_base_table_info_repaired leaves it as it is.
func TestProperty_repairsOnlyWhenRule31Held(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(rt, mvstate.NewMemory())
		for _, b := range drawScenario(rt, 60) {
			e.send(b.evs, b.epoch)
		}
		check := func(before *mvstate.MV, r *editlog.Record, after *mvstate.MV) {
			if before != nil && after != nil && r.Op != editlog.OpUpserted && after.LastRefreshTime < before.LastRefreshTime {
				rt.Fatalf("record %d (%s) moved mv %s last_refresh_time back from %d to %d",
					r.JournalID, r.Op, r.MV.Key(), before.LastRefreshTime, after.LastRefreshTime)
			}
			changed := nativeChanges(before, after)
			switch r.Op {
			case editlog.OpUpserted, editlog.OpRefreshed, editlog.OpDropped:
				return // catalog: the FE's word
			case editlog.OpBaseTableInfoRepaired:
				if len(changed) > 0 {
					rt.Fatalf("record %d (%s) changed native entries %v", r.JournalID, r.Op, changed)
				}
				if before == nil || after.LastRefreshTime != before.LastRefreshTime {
					rt.Fatalf("record %d (%s) on mv %s: last_refresh_time changed or mv missing", r.JournalID, r.Op, r.MV.Key())
				}
				return
			case editlog.OpVersionRepaired:
			default:
				rt.Fatalf("record %d: op %q", r.JournalID, r.Op)
			}
			if before == nil {
				rt.Fatalf("record %d repairs mv %s, which the state does not hold", r.JournalID, r.MV.Key())
			}
			if r.BaseTable == nil || !r.BaseTable.IsNative() {
				rt.Fatalf("record %d repairs a non-native table %+v", r.JournalID, r.BaseTable)
			}
			tid := r.BaseTable.TableID
			if len(r.Partitions) == 0 || !sameNames(r.Partitions, r.Previous) {
				rt.Fatalf("record %d: partitions %v, previous %v", r.JournalID, r.Partitions, r.Previous)
			}
			var want []string
			for n := range r.Partitions {
				if before.VersionMap[tid][n] != r.Partitions[n] || after.VersionMap[tid][n] != r.Partitions[n] {
					want = append(want, formatTP(tid, n))
				}
				if after.VersionMap[tid][n] != r.Partitions[n] {
					rt.Fatalf("record %d: entry %s is %+v after apply, record says %+v", r.JournalID, n, after.VersionMap[tid][n], r.Partitions[n])
				}
			}
			slices.Sort(want)
			if !slices.Equal(changed, want) {
				rt.Fatalf("record %d changed native entries %v, it names %v", r.JournalID, changed, want)
			}

			var causes []*events.PartitionVersionChanged
			for _, c := range r.Causes {
				ev, ok := e.byPos[posOf(c)].(*events.PartitionVersionChanged)
				if !ok {
					rt.Fatalf("record %d: cause %+v is %T, not partition_version_changed", r.JournalID, c, e.byPos[posOf(c)])
				}
				if ev.TableID != tid || !events.IsNativeTableType(ev.TableType) {
					rt.Fatalf("record %d on table %d: cause %s is on table %d type %q", r.JournalID, tid, ev.EventID, ev.TableID, ev.TableType)
				}
				causes = append(causes, ev)
			}
			maxTime := int64(math.MinInt64)
			for n, prev := range r.Previous {
				cur, ok := before.VersionMap[tid][n]
				if !ok || cur != prev {
					rt.Fatalf("record %d: previous %s = %+v, the state held %+v (present %v)", r.JournalID, n, prev, cur, ok)
				}
				steps := 0
				for _, ev := range causes {
					for _, p := range ev.Partitions {
						if p.PartitionName != n || p.PartitionID != cur.ID || p.LastVersion != cur.Version ||
							(p.LastVersionTime != nil && *p.LastVersionTime > cur.LastRefreshTime) {
							continue
						}
						cur = mvstate.NewBasePartitionInfo(p.PartitionID, p.NewVersion, p.NewVersionTime)
						maxTime = max(maxTime, p.NewVersionTime)
						steps++
					}
				}
				if steps == 0 || cur != r.Partitions[n] {
					rt.Fatalf("record %d: rule 3.1 over its causes takes %s from %+v to %+v in %d steps, the record says %+v",
						r.JournalID, n, prev, cur, steps, r.Partitions[n])
				}
			}
			if r.MVLastRefreshTime < before.LastRefreshTime || r.MVLastRefreshTime < maxTime ||
				after.LastRefreshTime != r.MVLastRefreshTime {
				rt.Fatalf("record %d: mv_last_refresh_time %d, mv had %d, repairs up to %d, mv has %d after",
					r.JournalID, r.MVLastRefreshTime, before.LastRefreshTime, maxTime, after.LastRefreshTime)
			}
		}
		replay(rt, e.encoded, nil, check)
	})
}

func formatTP(table int64, name string) string { return fmt.Sprintf("%d/%s", table, name) }

// The live store and its durable export agree after random sequences, also
// when a commit fails half-way (the commit hook fails it after Apply ran,
// before bbolt commits): the undo log must restore memory to what is on disk.
func TestProperty_liveAndDurableExportAgree(t *testing.T) {
	base := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(base, "state")
		if err != nil {
			rt.Fatalf("%v", err)
		}
		s, err := mvstate.Open(context.Background(), dir, mvstate.Options{NoSync: true})
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		defer func() { s.Close(); os.RemoveAll(dir) }()
		e := newEngine(rt, s)
		for i, b := range drawScenario(rt, 40) {
			if rapid.IntRange(0, 4).Draw(rt, "fail commit") == 0 {
				before := export(rt, s)
				msgs := make([]kafkaio.Message, len(b.evs))
				next := maps.Clone(e.next)
				for j, ev := range b.evs {
					msgs[j] = e.message(ev)
				}
				e.next = next // the failed batch will be re-delivered at the same offsets
				s.SetCommitHook(func() error { return errInjected })
				_, err := e.proc.Process(context.Background(), msgs, b.epoch, e.ack)
				s.SetCommitHook(nil)
				if err == nil {
					rt.Fatalf("batch %d: injected commit failure was not reported", i)
				}
				if got := export(rt, s); got != before {
					rt.Fatalf("batch %d: a failed commit left changes in memory: %s", i, firstDiff(before, got))
				}
			}
			e.send(b.evs, b.epoch)
			if live, durable := export(rt, s), exportDurable(rt, s); live != durable {
				rt.Fatalf("after batch %d: Export and ExportDurable differ: %s", i, firstDiff(live, durable))
			}
		}
		// A failed commit left no journal gap: the edit log still rebuilds it.
		if live, got := export(rt, s), export(rt, replay(rt, e.encoded, nil, nil)); live != got {
			rt.Fatalf("edit log rebuilds a different state: %s", firstDiff(live, got))
		}
	})
}

var errInjected = injectedError("injected commit failure")

type injectedError string

func (e injectedError) Error() string { return string(e) }

// The generator is not vacuous: over a run of random scenarios, every skip
// reason of rules §3.1–§3.3 occurs, every record op is journaled, repairs
// happen on shared tables and inactive MVs, and some records carry a chain
// (several causes for one partition).
func TestScenarioCoverage(t *testing.T) {
	skips := map[handler.SkipReason]int{}
	ops := map[editlog.Op]int{}
	var inactiveRepairs, multiCause, sharedTableEvents, nEvents, nBatches int
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(rt, mvstate.NewMemory())
		for _, b := range drawScenario(rt, 60) {
			nEvents += len(b.evs)
			nBatches++
			out := e.send(b.evs, b.epoch)
			for _, o := range out.Outcomes {
				if ev, ok := o.Input.Event.(*events.PartitionVersionChanged); ok && len(e.store.RelatedMVs(ev.TableID)) > 1 && o.Repaired > 0 {
					sharedTableEvents++
				}
			}
			for _, r := range out.Records {
				if r.Op == editlog.OpVersionRepaired {
					if m := e.store.Get(r.MV.Key()); m != nil && !m.Active {
						inactiveRepairs++
					}
					if len(r.Causes) > 1 {
						multiCause++
					}
				}
			}
		}
		for r, n := range e.skips {
			skips[r] += n
		}
		for _, r := range e.records {
			ops[r.Op]++
		}
	})
	t.Logf("%d events in %d batches", nEvents, nBatches)
	t.Logf("skips %v", skips)
	t.Logf("ops %v; repairs of inactive MVs %d, multi-cause repair records %d, repairing events on shared tables %d",
		ops, inactiveRepairs, multiCause, sharedTableEvents)
	for _, r := range []handler.SkipReason{handler.SkipNonNativeTable, handler.SkipNoRelatedMV, handler.SkipTableNotInVersionMap,
		handler.SkipPartitionNotInMap, handler.SkipVersionMismatch, handler.SkipUnconsumedChange, handler.SkipNoMVWithExternal,
		handler.SkipUnknownMV, handler.SkipNoChange} {
		if skips[r] == 0 {
			t.Errorf("no scenario hit skip reason %s", r)
		}
	}
	for _, op := range []editlog.Op{editlog.OpVersionRepaired, editlog.OpBaseTableInfoRepaired, editlog.OpUpserted, editlog.OpRefreshed, editlog.OpDropped} {
		if ops[op] == 0 {
			t.Errorf("no scenario journaled %s", op)
		}
	}
	if inactiveRepairs == 0 || multiCause == 0 || sharedTableEvents == 0 {
		t.Errorf("coverage: inactive repairs %d, multi-cause records %d, shared-table repairs %d", inactiveRepairs, multiCause, sharedTableEvents)
	}
}

// fewerChecks divides rapid's number of checks (-rapid.checks, default 100)
// by div for one test whose checks are slow (fsync); it returns the undo.
func fewerChecks(t *testing.T, div int) func() {
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return func() {}
	}
	old := f.Value.String()
	n, err := strconv.Atoi(old)
	if err != nil {
		t.Fatalf("rapid.checks = %q", old)
	}
	if err := f.Value.Set(strconv.Itoa(max(1, n/div))); err != nil {
		t.Fatal(err)
	}
	return func() { f.Value.Set(old) }
}

// Regression: a commit that acknowledges outbox messages (Tx.AckOutbox) must
// delete every message up to the acknowledged sequence. Two messages, then a
// commit that adds a third and acknowledges the first two: only the third may
// be left, or a restarted writer publishes acknowledged records (and DLQ
// records) again.
func TestOutboxAck_deletesEveryAcknowledgedMessage(t *testing.T) {
	ctx := context.Background()
	s, err := mvstate.Open(ctx, t.TempDir(), mvstate.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add := func(ack uint64, values ...string) {
		t.Helper()
		if err := s.Commit(ctx, mvstate.Batch{Apply: func(tx *mvstate.Tx) error {
			for _, v := range values {
				tx.AddOutbox(mvstate.OutboxMessage{Topic: topicDLQ, Key: []byte("k"), Value: []byte(v)})
			}
			tx.AckOutbox(ack)
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
	}
	add(0, "a", "b")
	add(2, "c")
	out, err := s.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, m := range out {
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(seqs, []uint64{3}) {
		t.Fatalf("outbox after acknowledging through 2 holds %v, want [3]", seqs)
	}
}
