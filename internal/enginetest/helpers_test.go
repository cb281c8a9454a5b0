package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"pgregory.net/rapid"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/mvstate"
)

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// The topics (DESIGN.md §4). The input topic has 3 partitions, the catalog 2.
const (
	topicInput   = "partition-version-changed"
	topicCatalog = "mv-catalog"
	topicEditLog = "mv-edit-log"
	topicDLQ     = "mv-repair-dlq"
)

var topics = pipeline.Topics{Input: topicInput, Catalog: topicCatalog, EditLog: topicEditLog, DLQ: topicDLQ}

// fixedNow pins the records' "at" (not part of the export anyway).
var fixedNow = time.UnixMilli(1732400000456)

// ---- the universe of random catalogs -------------------------------------------
//
// Small on purpose, so that random events hit the catalog often: three native
// tables shared by up to five MVs (and a fourth table no MV lists), two Hive
// tables that get recreated under three identifiers, four partitions per
// native table and three per Hive table.

var (
	nativeTables  = []int64{201, 202, 203}
	unlistedTable = int64(204)
	partNames     = []string{"p1", "p2", "p3", "p4"}
	hiveTables    = []string{"events", "clicks"}
	hiveIdents    = []string{"1", "2", "3"}
	dtNames       = []string{"dt1", "dt2", "dt3"}
	// initialKeys are upserted at the start of a scenario (most of them);
	// lateKey only by a later random upsert; unknownKey never.
	initialKeys = []mvstate.MVKey{{DBID: 1, MVID: 501}, {DBID: 1, MVID: 502}, {DBID: 1, MVID: 503}, {DBID: 2, MVID: 504}}
	lateKey     = mvstate.MVKey{DBID: 2, MVID: 505}
	unknownKey  = mvstate.MVKey{DBID: 1, MVID: 999}
	nativeTypes = []string{"olap", "cloud_native", "materialized_view", "cloud_native_materialized_view"}
	// otherTypes are table types rule §3.1 ignores (warning, no change).
	otherTypes = []string{"hive", "iceberg", "external", "lake"}
)

func allKeys() []mvstate.MVKey { return append(slices.Clone(initialKeys), lateKey) }

// partID is the partition id a native partition really has.
func partID(table int64, name string) int64 { return table*100 + int64(name[1]-'0') }

func nativeBT(table int64) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: table, DBName: "sales",
		TableName: fmt.Sprintf("t%d", table)}
}

func hiveBT(table, ident string) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: table, TableIdentifier: table + ":" + ident}
}

// drawTime draws a time on a coarse grid so that comparisons tie often.
func drawTime(t *rapid.T, label string) int64 { return 10 * rapid.Int64Range(1, 30).Draw(t, label) }

type tablePart struct {
	table int64
	name  string
}

// world is the generator's idea of the outside world: each native
// partition's current visible version (so that most version changes chain
// v→v+1 from what the MVs recorded), each Hive table's current identifier, and
// every MV definition sent so far (old snapshots are sometimes re-sent).
type world struct {
	ver       map[tablePart]int64
	ident     map[string]string
	snapshots []*mvstate.MV
	seq       int
}

func newWorld(t *rapid.T) *world {
	w := &world{ver: map[tablePart]int64{}, ident: map[string]string{}}
	for _, tid := range append(slices.Clone(nativeTables), unlistedTable) {
		for _, n := range partNames {
			w.ver[tablePart{tid, n}] = rapid.Int64Range(1, 3).Draw(t, "initial version")
		}
	}
	for _, h := range hiveTables {
		w.ident[h] = rapid.SampledFrom(hiveIdents).Draw(t, "initial ident")
	}
	return w
}

func (w *world) eventID(kind string) string {
	w.seq++
	return fmt.Sprintf("%s-%d", kind, w.seq)
}

// drawMV draws an MV definition: some shared native tables (listed and
// recorded, listed and not recorded, recorded with no partitions), entries at
// the current version or one behind (a stale MV), now and then a wrong
// partition id, and some Hive tables under their current or another
// identifier. About one MV in four is inactive.
func (w *world) drawMV(t *rapid.T, k mvstate.MVKey) *mvstate.MV {
	m := &mvstate.MV{Active: rapid.IntRange(0, 3).Draw(t, "active") > 0, DBID: k.DBID,
		DBName: fmt.Sprintf("db%d", k.DBID), MVID: k.MVID, MVName: fmt.Sprintf("mv_%d", k.MVID),
		LastRefreshTime: drawTime(t, "mv lrt"), BaseTables: []mvstate.BaseTableInfo{},
		VersionMap: mvstate.VersionMap{}, ExternalVersionMap: mvstate.ExternalVersionMap{}}
	for _, tid := range nativeTables {
		if rapid.IntRange(0, 9).Draw(t, "lists table") >= 6 {
			continue
		}
		m.BaseTables = append(m.BaseTables, nativeBT(tid))
		if rapid.IntRange(0, 9).Draw(t, "records table") == 0 {
			continue // listed, not in version_map
		}
		parts := mvstate.PartitionMap{}
		for _, n := range partNames {
			if rapid.IntRange(0, 9).Draw(t, "records partition") >= 7 {
				continue
			}
			id := partID(tid, n)
			if rapid.IntRange(0, 19).Draw(t, "wrong id") == 0 {
				id += 50
			}
			v := w.ver[tablePart{tid, n}]
			if rapid.IntRange(0, 3).Draw(t, "behind") == 0 {
				v = max(1, v-1) // a stale MV
			}
			parts[n] = mvstate.NewBasePartitionInfo(id, v, drawTime(t, "entry lrt"))
		}
		m.VersionMap[tid] = parts
	}
	for _, h := range hiveTables {
		if rapid.IntRange(0, 9).Draw(t, "lists hive") >= 4 {
			continue
		}
		ident := w.ident[h]
		if rapid.IntRange(0, 3).Draw(t, "other ident") == 0 {
			ident = rapid.SampledFrom(hiveIdents).Draw(t, "ident")
		}
		bt := hiveBT(h, ident)
		m.BaseTables = append(m.BaseTables, bt)
		if rapid.IntRange(0, 9).Draw(t, "records hive") >= 7 {
			continue
		}
		parts := mvstate.PartitionMap{}
		for _, d := range dtNames {
			if rapid.Bool().Draw(t, "records dt") {
				at := drawTime(t, "dt time")
				parts[d] = mvstate.BasePartitionInfo{ID: -1, Version: at, LastRefreshTime: at,
					ExtLastFileModifiedTime: at, FileNumber: rapid.Int64Range(1, 5).Draw(t, "files")}
			}
		}
		m.ExternalVersionMap[bt] = parts
	}
	m.BaseTables = rapid.Permutation(m.BaseTables).Draw(t, "base table order")
	return m
}

func (w *world) upsert(t *rapid.T, k mvstate.MVKey) events.Event {
	m := w.drawMV(t, k)
	w.snapshots = append(w.snapshots, m)
	return &events.MVUpserted{EventID: w.eventID("upsert"), MV: m.Clone()}
}

// pvc draws a partition_version_changed event: mostly the next link of the
// partition's version chain (v→v+1, sometimes v→v+2), otherwise a version
// the MVs do not hold; distinct partitions per event; last_version_time
// absent, or before or after what an MV recorded.
func (w *world) pvc(t *rapid.T) events.Event {
	table := rapid.SampledFrom(append(slices.Clone(nativeTables), nativeTables[0], unlistedTable)).Draw(t, "table")
	typ := rapid.SampledFrom(nativeTypes).Draw(t, "native type")
	if rapid.IntRange(0, 6).Draw(t, "non-native") == 0 {
		typ = rapid.SampledFrom(otherTypes).Draw(t, "other type")
	}
	ev := &events.PartitionVersionChanged{EventID: w.eventID("pvc"), Source: "compaction", DBID: 1, TableID: table,
		TableName: fmt.Sprintf("t%d", table), TableType: typ, EmittedAt: 1732400000123}
	names := rapid.SliceOfNDistinct(rapid.SampledFrom(partNames), 1, 3, func(s string) string { return s }).Draw(t, "names")
	for _, n := range names {
		tp := tablePart{table, n}
		id := partID(table, n)
		if rapid.IntRange(0, 9).Draw(t, "wrong id") == 0 {
			id += 50
		}
		var last, next int64
		if rapid.IntRange(0, 9).Draw(t, "chain") < 7 {
			last = w.ver[tp]
			next = last + rapid.Int64Range(1, 2).Draw(t, "step")
			w.ver[tp] = next
		} else {
			last = max(1, w.ver[tp]+rapid.Int64Range(-1, 2).Draw(t, "off by"))
			next = last + 1
		}
		pr := events.PartitionRepair{PartitionID: id, PartitionName: n, LastVersion: last, NewVersion: next,
			NewVersionTime: drawTime(t, "new version time")}
		if rapid.IntRange(0, 2).Draw(t, "has last_version_time") > 0 {
			at := drawTime(t, "last_version_time")
			pr.LastVersionTime = &at
		}
		ev.Partitions = append(ev.Partitions, pr)
	}
	return ev
}

// recreated draws an external_table_recreated event, mostly from the table's
// current identifier.
func (w *world) recreated(t *rapid.T) events.Event {
	h := rapid.SampledFrom(hiveTables).Draw(t, "hive table")
	old := w.ident[h]
	if rapid.IntRange(0, 3).Draw(t, "stale old ident") == 0 {
		old = rapid.SampledFrom(hiveIdents).Draw(t, "old ident")
	}
	var others []string
	for _, id := range hiveIdents {
		if id != old {
			others = append(others, id)
		}
	}
	nw := rapid.SampledFrom(others).Draw(t, "new ident")
	if old == w.ident[h] {
		w.ident[h] = nw
	}
	ev := &events.ExternalTableRecreated{EventID: w.eventID("recreated"), Catalog: "hive", DBName: "ods", TableName: h,
		OldTableIdentifier: h + ":" + old, NewTableIdentifier: h + ":" + nw,
		Partitions: map[string]events.ExternalPartition{}, UpdatedPartitions: []string{}}
	for _, d := range append(slices.Clone(dtNames), "dt9") {
		if rapid.IntRange(0, 9).Draw(t, "in new table") < 6 {
			ev.Partitions[d] = events.ExternalPartition{ModifiedTime: drawTime(t, "modified")}
		}
		if rapid.IntRange(0, 3).Draw(t, "updated") == 0 {
			ev.UpdatedPartitions = append(ev.UpdatedPartitions, d)
		}
	}
	return ev
}

// refreshed draws an mv_refreshed event: merged entries (current, stale or
// new versions), removed names (never also merged), sometimes Hive entries.
func (w *world) refreshed(t *rapid.T) events.Event {
	k := rapid.SampledFrom(append(allKeys(), unknownKey)).Draw(t, "refreshed mv")
	ev := &events.MVRefreshed{EventID: w.eventID("refreshed"), DBID: k.DBID, MVID: k.MVID,
		LastRefreshTime: drawTime(t, "refresh lrt"), VersionMap: mvstate.VersionMap{},
		ExternalVersionMap: mvstate.ExternalVersionMap{}, Removed: map[int64][]string{}}
	if rapid.IntRange(0, 4).Draw(t, "refresh lrt zero") == 0 {
		ev.LastRefreshTime = 0
	}
	for _, tid := range nativeTables {
		for _, n := range partNames {
			switch rapid.IntRange(0, 5).Draw(t, "refresh op") {
			case 0, 1:
				if ev.VersionMap[tid] == nil {
					ev.VersionMap[tid] = mvstate.PartitionMap{}
				}
				v := max(1, w.ver[tablePart{tid, n}]-rapid.Int64Range(0, 1).Draw(t, "refreshed behind"))
				ev.VersionMap[tid][n] = mvstate.NewBasePartitionInfo(partID(tid, n), v, drawTime(t, "refreshed at"))
			case 2:
				ev.Removed[tid] = append(ev.Removed[tid], n)
			}
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "refresh hive") == 0 {
		h := rapid.SampledFrom(hiveTables).Draw(t, "refresh hive table")
		bt := hiveBT(h, w.ident[h])
		at := drawTime(t, "hive at")
		ev.ExternalVersionMap[bt] = mvstate.PartitionMap{rapid.SampledFrom(dtNames).Draw(t, "dt"): {
			ID: -1, Version: at, LastRefreshTime: at, ExtLastFileModifiedTime: at, FileNumber: 2}}
	}
	return ev
}

func (w *world) drawEvent(t *rapid.T) events.Event {
	switch n := rapid.IntRange(0, 99).Draw(t, "kind"); {
	case n < 55:
		return w.pvc(t)
	case n < 63:
		return w.recreated(t)
	case n < 78:
		if len(w.snapshots) > 0 && rapid.IntRange(0, 3).Draw(t, "old snapshot") == 0 {
			// An old catalog snapshot at a new position: it legitimately
			// rolls the MV back (DESIGN.md §5.2 dedupes by offset only).
			m := rapid.SampledFrom(w.snapshots).Draw(t, "snapshot")
			return &events.MVUpserted{EventID: w.eventID("upsert"), MV: m.Clone()}
		}
		return w.upsert(t, rapid.SampledFrom(allKeys()).Draw(t, "upserted mv"))
	case n < 95:
		return w.refreshed(t)
	default:
		k := rapid.SampledFrom(append(allKeys(), unknownKey)).Draw(t, "dropped mv")
		return &events.MVDropped{EventID: w.eventID("dropped"), DBID: k.DBID, MVID: k.MVID}
	}
}

// batch is a slice of the input stream processed by one Processor.Process.
type batch struct {
	evs   []events.Event
	epoch int64
}

// drawScenario draws a catalog (upserts of most initial MVs, sometimes
// arriving after the first version changes), up to maxEvents random events,
// and cuts the stream into random batches; the writer's epoch now and then
// moves up between batches (a new group generation).
func drawScenario(t *rapid.T, maxEvents int) []batch {
	w := newWorld(t)
	var catalog []events.Event
	for _, k := range initialKeys {
		if rapid.IntRange(0, 4).Draw(t, "initially defined") > 0 {
			catalog = append(catalog, w.upsert(t, k))
		}
	}
	var evs []events.Event
	for range rapid.IntRange(0, maxEvents).Draw(t, "events") {
		evs = append(evs, w.drawEvent(t))
	}
	at := 0
	if rapid.IntRange(0, 3).Draw(t, "catalog late") == 0 {
		at = rapid.IntRange(0, len(evs)).Draw(t, "catalog position")
	}
	evs = slices.Insert(evs, at, catalog...)

	var out []batch
	epoch := int64(1)
	for len(evs) > 0 {
		n := min(len(evs), rapid.IntRange(1, 8).Draw(t, "batch size"))
		if rapid.IntRange(0, 9).Draw(t, "new epoch") == 0 {
			epoch++
		}
		out = append(out, batch{evs: evs[:n:n], epoch: epoch})
		evs = evs[n:]
	}
	return out
}

// ---- the live writer ---------------------------------------------------------------

type position struct {
	topic     string
	partition int
	offset    int64
}

func posOf(c editlog.Cause) position { return position{c.Topic, c.Partition, c.Offset} }

// engine drives a store through the live writer's path, pipeline.Processor:
// Kafka messages are decoded, deduplicated by applied offset, decided by
// handler.Process on the store, and committed with editlog.Apply, the outbox
// and the input offsets in one Store.Commit. It keeps every message sent and
// every record committed (with its encoding, editlog.Encode).
type engine struct {
	t     tb
	store *mvstate.Store
	proc  *pipeline.Processor
	next  map[mvstate.TopicPartition]int64
	ack   uint64

	msgs    []kafkaio.Message
	byPos   map[position]events.Event // decoded, as the handler saw it
	records []*editlog.Record
	encoded [][]byte
	last    *pipeline.Outcome
	// skips counts the skip reasons of every outcome (generator coverage).
	skips map[handler.SkipReason]int
}

func newEngine(t tb, s *mvstate.Store) *engine {
	e := &engine{t: t, next: map[mvstate.TopicPartition]int64{}, byPos: map[position]events.Event{},
		skips: map[handler.SkipReason]int{}}
	e.setStore(s)
	return e
}

func (e *engine) setStore(s *mvstate.Store) {
	e.store = s
	e.proc = &pipeline.Processor{Store: s, Topics: topics, Log: zerolog.Nop(), Now: func() time.Time { return fixedNow }}
}

// message places an event at the next offset of its topic partition: the
// input topic is keyed by table (3 partitions), the catalog by MV (2).
func (e *engine) message(ev events.Event) kafkaio.Message {
	e.t.Helper()
	key := events.Key(ev)
	value, err := events.Encode(ev)
	if err != nil {
		e.t.Fatalf("encode %T: %v", ev, err)
	}
	topic, parts := topicInput, 3
	if events.TopicRoleOf(ev.Kind()) == events.TopicRoleCatalog {
		topic, parts = topicCatalog, 2
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	tp := mvstate.TopicPartition{Topic: topic, Partition: int(h.Sum32() % uint32(parts))}
	off := e.next[tp]
	e.next[tp] = off + 1
	return kafkaio.Message{Topic: tp.Topic, Partition: tp.Partition, Offset: off, Key: []byte(key), Value: value}
}

// send processes events as one batch at new positions.
func (e *engine) send(evs []events.Event, epoch int64) *pipeline.Outcome {
	e.t.Helper()
	msgs := make([]kafkaio.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = e.message(ev)
	}
	return e.process(msgs, epoch)
}

// process runs one batch of messages through the Processor and checks the
// writer's own contract: no DLQ (the generator draws valid events only),
// journal ids gap-free from the store's, the outbox carrying exactly
// editlog.Encode of each record. The outbox counts as published and acked by
// the next commit.
func (e *engine) process(msgs []kafkaio.Message, epoch int64) *pipeline.Outcome {
	e.t.Helper()
	for _, m := range msgs {
		ev, err := events.Decode(m.Value)
		if err != nil {
			e.t.Fatalf("generated an invalid event %s: %v", m.Value, err)
		}
		p := position{m.Topic, m.Partition, m.Offset}
		if _, seen := e.byPos[p]; !seen {
			e.byPos[p] = ev
			e.msgs = append(e.msgs, m)
		}
	}
	jid := e.store.JournalID()
	out, err := e.proc.Process(context.Background(), msgs, epoch, e.ack)
	if err != nil {
		e.t.Fatalf("process batch: %v", err)
	}
	if out.DLQ != 0 {
		e.t.Fatalf("%d inputs dead-lettered", out.DLQ)
	}
	if len(out.Outbox) != len(out.Records) {
		e.t.Fatalf("outbox has %d messages for %d records", len(out.Outbox), len(out.Records))
	}
	for i, r := range out.Records {
		if r.JournalID != jid+int64(i)+1 || r.Epoch != epoch {
			e.t.Fatalf("record %d: journal id %d epoch %d, want %d and %d", i, r.JournalID, r.Epoch, jid+int64(i)+1, epoch)
		}
		b, err := editlog.Encode(r)
		if err != nil {
			e.t.Fatalf("encode record %d: %v", r.JournalID, err)
		}
		if m := out.Outbox[i]; !bytes.Equal(m.Value, b) || m.Topic != topicEditLog || string(m.Key) != r.Key() ||
			m.Headers[editlog.HeaderJournalID] != r.JournalHeader() {
			e.t.Fatalf("outbox message %d does not carry record %d", i, r.JournalID)
		}
		e.records = append(e.records, r)
		e.encoded = append(e.encoded, b)
	}
	if got := e.store.JournalID(); got != jid+int64(len(out.Records)) {
		e.t.Fatalf("store journal id %d after %d records from %d", got, len(out.Records), jid)
	}
	for _, o := range out.Outcomes {
		for _, sk := range o.Skips {
			e.skips[sk.Reason]++
		}
	}
	e.ack = max(e.ack, out.LastSeq())
	e.last = out
	return out
}

// ---- rebuild from the edit log ----------------------------------------------------

// recordCheck inspects one record as it is applied: the MV before and after
// (deep copies; nil when absent).
type recordCheck func(before *mvstate.MV, r *editlog.Record, after *mvstate.MV)

// replay decodes the encoded records and applies them in order to a new
// memory store, as a follower or a rebuild does: groups gives the number of
// records per commit (nil: one each).
func replay(t tb, encoded [][]byte, groups []int, check recordCheck) *mvstate.Store {
	t.Helper()
	s := mvstate.NewMemory()
	for i := 0; i < len(encoded); {
		n := 1
		if len(groups) > 0 {
			n, groups = groups[0], groups[1:]
		}
		n = max(1, min(n, len(encoded)-i))
		recs := make([]*editlog.Record, n)
		for j := range recs {
			r, err := editlog.Decode(encoded[i+j])
			if err != nil {
				t.Fatalf("decode record %d: %v\n%s", i+j, err, encoded[i+j])
			}
			again, err := editlog.Encode(r)
			if err != nil || !bytes.Equal(again, encoded[i+j]) {
				t.Fatalf("record %d does not re-encode to the same bytes (%v):\n%s\n%s", i+j, err, encoded[i+j], again)
			}
			recs[j] = r
		}
		keys, structural := editlog.Touches(recs)
		err := s.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
			for _, r := range recs {
				var before *mvstate.MV
				if check != nil {
					before = tx.MV(r.MV.Key()).Clone()
				}
				res, err := editlog.Apply(tx, r)
				if err != nil {
					return err
				}
				if res != editlog.Applied {
					return fmt.Errorf("record %d: %s", r.JournalID, res)
				}
				if check != nil {
					check(before, r, tx.MV(r.MV.Key()).Clone())
				}
			}
			return nil
		}})
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		i += n
	}
	return s
}

func export(t tb, s *mvstate.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Export(context.Background(), &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.String()
}

func exportDurable(t tb, s *mvstate.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.ExportDurable(context.Background(), &b); err != nil {
		t.Fatalf("export durable: %v", err)
	}
	return b.String()
}

// firstDiff shows where two exports part.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, x, y)
		}
	}
	return "no difference"
}

// interferes reports whether processing later after ev (in the same batch)
// may change what re-processing ev would do. It is conservative: a false
// answer means ev's second processing must be a no-op by the rules.
func interferes(later, ev events.Event) bool {
	switch ev := ev.(type) {
	case *events.PartitionVersionChanged:
		switch l := later.(type) {
		case *events.PartitionVersionChanged:
			return l.TableID == ev.TableID
		case *events.ExternalTableRecreated:
			return false // external tables only
		}
		return true // any catalog change may add, drop or rewrite a related MV
	case *events.ExternalTableRecreated:
		switch l := later.(type) {
		case *events.PartitionVersionChanged:
			return false // native entries only
		case *events.ExternalTableRecreated:
			return l.Catalog == ev.Catalog && l.DBName == ev.DBName && l.TableName == ev.TableName
		}
		return true
	default:
		k := catalogKey(ev)
		switch l := later.(type) {
		case *events.PartitionVersionChanged, *events.ExternalTableRecreated:
			// A repair of the MV makes a re-sent snapshot or refresh move it
			// back; a dropped MV stays dropped.
			_, dropped := ev.(*events.MVDropped)
			return !dropped
		default:
			return catalogKey(l) == k
		}
	}
}

func catalogKey(ev events.Event) mvstate.MVKey {
	switch ev := ev.(type) {
	case *events.MVUpserted:
		return ev.MV.Key()
	case *events.MVRefreshed:
		return ev.Key()
	case *events.MVDropped:
		return ev.Key()
	}
	panic(fmt.Sprintf("not a catalog event: %T", ev))
}

// quiescent returns the events of a batch that no later event of the batch
// interferes with: re-processing them after the batch must change nothing.
func quiescent(evs []events.Event) []events.Event {
	var out []events.Event
	for i, ev := range evs {
		if !slices.ContainsFunc(evs[i+1:], func(l events.Event) bool { return interferes(l, ev) }) {
			out = append(out, ev)
		}
	}
	return out
}

// nativeChanges lists the native entries that differ between two MVs
// ("table/name"), entries present on one side only included.
func nativeChanges(before, after *mvstate.MV) []string {
	var out []string
	get := func(m *mvstate.MV) mvstate.VersionMap {
		if m == nil {
			return nil
		}
		return m.VersionMap
	}
	b, a := get(before), get(after)
	tables := map[int64]bool{}
	for t := range b {
		tables[t] = true
	}
	for t := range a {
		tables[t] = true
	}
	for t := range tables {
		names := map[string]bool{}
		for n := range b[t] {
			names[n] = true
		}
		for n := range a[t] {
			names[n] = true
		}
		for n := range names {
			x, okx := b[t][n]
			y, oky := a[t][n]
			if okx != oky || x != y {
				out = append(out, fmt.Sprintf("%d/%s", t, n))
			}
		}
	}
	slices.Sort(out)
	return out
}

func sameNames(a, b mvstate.PartitionMap) bool {
	return slices.Equal(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
}
