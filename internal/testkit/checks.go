package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// ExportOf returns the state's canonical export.
func ExportOf(t testing.TB, st *mvstate.State) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.String()
}

// MVsOf drops the journal id from an export: the number of journal records
// depends on how the input was batched (one repair record per MV and table
// per batch), the MVs do not.
func MVsOf(t testing.TB, export string) string {
	t.Helper()
	i := strings.Index(export, `,"mvs":[`)
	if !strings.HasPrefix(export, `{"journal_id":`) || i < 0 {
		t.Fatalf("unexpected export shape: %.80q", export)
	}
	return export[i:]
}

// TopicsOf returns the pipeline's topic names of cfg.
func TopicsOf(cfg *config.Config) pipeline.Topics {
	k := cfg.Kafka.Topics
	return pipeline.Topics{Input: k.Input, Catalog: k.Catalog, EditLog: k.EditLog, DLQ: k.DLQ}
}

// ExpectedMVs applies the input to a fresh memory store through the same
// decoder, rules and edit-log code as the service (catalog first, then the
// input, each topic in order) and returns the MVs of the export: the state a
// crash-free run must reach.
func ExpectedMVs(t testing.TB, topics pipeline.Topics, catalog, input []kafkaio.Message) string {
	t.Helper()
	st := store.NewMemory()
	p := &pipeline.Processor{Store: st, Topics: topics}
	for _, part := range []struct {
		topic string
		msgs  []kafkaio.Message
	}{{topics.Catalog, catalog}, {topics.Input, input}} {
		batch := make([]kafkaio.Message, len(part.msgs))
		for i, m := range part.msgs {
			batch[i] = kafkaio.Message{Topic: part.topic, Partition: 0, Offset: int64(i), Key: m.Key, Value: m.Value}
		}
		if _, err := p.Process(context.Background(), batch, 1, pipeline.Extra{}); err != nil {
			t.Fatalf("expected state: %v", err)
		}
	}
	return MVsOf(t, ExportOf(t, st.State()))
}

// Journal is the edit log deduplicated by journal id.
type Journal struct {
	Records []*editlog.Record // Records[i] has journal id First+i
	Values  [][]byte
	Total   int // records read, duplicates included
}

// CheckEditLog verifies the edit-log contract on msgs (the topic in offset
// order, from its log start): each record decodes, its journal-id header
// and key match its body, journal ids first appear in increasing order, a
// repeated journal id is a byte-identical copy, and the ids are contiguous
// (from 1 unless the log was truncated below a checkpoint).
func CheckEditLog(t testing.TB, msgs []kafkaio.Message) Journal {
	t.Helper()
	j := Journal{Total: len(msgs)}
	seen := map[int64]int{} // journal id → index in j
	for _, m := range msgs {
		r, err := editlog.Decode(m.Value)
		if err != nil {
			t.Fatalf("edit log offset %d: undecodable: %v", m.Offset, err)
		}
		if h, _ := kafkaio.HeaderValue(m.Headers, editlog.HeaderJournalID); h != strconv.FormatInt(r.JournalID, 10) {
			t.Fatalf("edit log offset %d: journal-id header %q, body journal_id %d", m.Offset, h, r.JournalID)
		}
		if want := fmt.Sprintf("%d:%d", r.MV.DBID, r.MV.MVID); string(m.Key) != want {
			t.Fatalf("edit log offset %d: key %q, want %q", m.Offset, m.Key, want)
		}
		if i, dup := seen[r.JournalID]; dup {
			if !bytes.Equal(j.Values[i], m.Value) {
				t.Fatalf("edit log offset %d: journal id %d delivered twice with different content:\n%s\n%s",
					m.Offset, r.JournalID, j.Values[i], m.Value)
			}
			continue
		}
		if n := len(j.Records); n > 0 && r.JournalID < j.Records[n-1].JournalID {
			t.Fatalf("edit log offset %d: journal id %d first appears after %d", m.Offset, r.JournalID, j.Records[n-1].JournalID)
		}
		seen[r.JournalID] = len(j.Records)
		j.Records = append(j.Records, r)
		j.Values = append(j.Values, m.Value)
	}
	for i, r := range j.Records {
		if r.JournalID != j.Records[0].JournalID+int64(i) {
			t.Fatalf("edit log has a gap: journal id %d follows %d", r.JournalID, j.Records[i-1].JournalID)
		}
	}
	return j
}

// Last returns the journal's last journal id (0 when empty).
func (j Journal) Last() int64 {
	if len(j.Records) == 0 {
		return 0
	}
	return j.Records[len(j.Records)-1].JournalID
}

// Rebuild applies a journal from journal id 1 to an empty memory store and
// returns its state (docs/design.md §5.5: a state rebuilt from the edit log
// alone equals the live state).
func Rebuild(t testing.TB, j Journal) *mvstate.State {
	t.Helper()
	st := store.NewMemory()
	if _, err := st.Commit(context.Background(), store.Batch{Records: j.Records, Mode: editlog.Strict}); err != nil {
		t.Fatalf("rebuild from the edit log: %v", err)
	}
	return st.State()
}

// SameText fails with the first differing line of two documents.
func SameText(t testing.TB, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	t.Fatalf("%s differs: %s", what, FirstDiff(got, want))
}

// FirstDiff describes the first differing line of two documents.
func FirstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("at line %d:\n got: %.600s\nwant: %.600s", i+1, gl, wl)
		}
	}
	return "(equal lines, different bytes)"
}

// OpenStore loads the state of a state dir read-only (beside a running
// service, or after it stopped).
func OpenStore(t testing.TB, stateDir string) *mvstate.State {
	t.Helper()
	return OpenDurable(t, stateDir).State()
}

// OpenDurable loads the store of a state dir read-only, outbox included.
func OpenDurable(t testing.TB, stateDir string) *store.Store {
	t.Helper()
	st, err := store.OpenReadOnly(context.Background(), stateDir)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

// CheckDeadLettered verifies that every undecodable input record reached the
// DLQ at least once, with its source position.
func CheckDeadLettered(t testing.TB, input, dlq []kafkaio.Message) {
	t.Helper()
	got := map[string]bool{}
	for _, m := range dlq {
		p, _ := kafkaio.HeaderValue(m.Headers, pipeline.HeaderSourcePartition)
		o, _ := kafkaio.HeaderValue(m.Headers, pipeline.HeaderSourceOffset)
		got[p+"/"+o] = true
	}
	bad := 0
	for _, m := range input {
		if json.Valid(m.Value) {
			continue
		}
		bad++
		if pos := fmt.Sprintf("%d/%d", m.Partition, m.Offset); !got[pos] {
			t.Errorf("input record %s (%s) is not on the DLQ", pos, m.Value)
		}
	}
	if bad == 0 {
		t.Fatal("the input has no bad record to check")
	}
}

// CheckFinalState verifies a stopped service's state dir and the topics
// against the crash-free outcome of catalog and input: the same MVs, an edit
// log with no gap whose redeliveries are byte-identical and which rebuilds
// the same state, every bad record dead-lettered, every record committed.
func (e *Env) CheckFinalState(cfg *config.Config, catalog, input []kafkaio.Message) {
	t := e.T
	t.Helper()
	tp := cfg.Kafka.Topics
	if err := e.CaughtUp(cfg); err != nil {
		t.Fatalf("committed offsets are not the high watermarks: %v", err)
	}
	st := OpenStore(t, cfg.State.Dir)
	got := ExportOf(t, st)
	SameText(t, "final state vs a crash-free run", MVsOf(t, got), ExpectedMVs(t, TopicsOf(cfg), catalog, input))
	j := CheckEditLog(t, e.ReadTopic(tp.EditLog))
	if j.Last() != st.JournalID() {
		t.Fatalf("edit log has journal ids up to %d, the store %d", j.Last(), st.JournalID())
	}
	if len(j.Records) > 0 && j.Records[0].JournalID == 1 {
		SameText(t, "state rebuilt from the edit log vs final state", ExportOf(t, Rebuild(t, j)), got)
	}
	CheckDeadLettered(t, e.ReadTopic(tp.Input), e.ReadTopic(tp.DLQ))
	t.Logf("edit log: %d records, %d distinct journal ids (%d redelivered)", j.Total, len(j.Records), j.Total-len(j.Records))
}

// WithStore opens a stopped service's store for writing, calls fn and
// closes it.
func WithStore(t testing.TB, stateDir string, fn func(st *store.Store)) {
	t.Helper()
	d, err := store.LockDir(stateDir, store.Options{})
	if err != nil {
		t.Fatalf("lock state dir: %v", err)
	}
	defer d.Close()
	st, err := d.Open(context.Background())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	fn(st)
	if err := st.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

// Events counts the writer's input records of reports (every outcome);
// with outcomes given, only those.
func (r *Reports) Events(outcomes ...pipeline.Outcome) int {
	n := 0
	for o, c := range r.Outcomes() {
		if len(outcomes) == 0 || slices.Contains(outcomes, o) {
			n += c
		}
	}
	return n
}

// Gauge returns the value of the metric family name whose labels include
// every pair of labels (name=value, ...) on m's registry, and whether one
// was found.
func Gauge(t testing.TB, m *metrics.Metrics, name string, labels ...string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range s.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case s.GetGauge() != nil:
				return s.GetGauge().GetValue(), true
			case s.GetCounter() != nil:
				return s.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}
