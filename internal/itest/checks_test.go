package itest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/mvstate"
)

// exportOf returns the store's canonical export.
func exportOf(t testing.TB, st *mvstate.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.String()
}

// mvsOf drops the journal id from an export: the number of journal records
// depends on how the input was batched (one repair record per MV and table
// per batch), the MVs do not.
func mvsOf(t testing.TB, export string) string {
	t.Helper()
	i := strings.Index(export, `,"mvs":[`)
	if !strings.HasPrefix(export, `{"journal_id":`) || i < 0 {
		t.Fatalf("unexpected export shape: %.80q", export)
	}
	return export[i:]
}

// expectedMVs applies the input to a fresh in-memory store through the same
// decoder, rules and edit-log code as the service (catalog first, then the
// input, each topic in order) and returns the MVs of the export: the state a
// crash-free run must reach.
func expectedMVs(t testing.TB, topics pipeline.Topics, catalog, input []kafkaio.Message) string {
	t.Helper()
	st := mvstate.NewMemory()
	p := &pipeline.Processor{Store: st, Topics: topics, Log: zerolog.Nop()}
	for _, part := range []struct {
		topic string
		msgs  []kafkaio.Message
	}{{topics.Catalog, catalog}, {topics.Input, input}} {
		batch := make([]kafkaio.Message, len(part.msgs))
		for i, m := range part.msgs {
			batch[i] = kafkaio.Message{Topic: part.topic, Partition: 0, Offset: int64(i), Key: m.Key, Value: m.Value}
		}
		if _, err := p.Process(context.Background(), batch, 1, 0); err != nil {
			t.Fatalf("expected state: %v", err)
		}
	}
	return mvsOf(t, exportOf(t, st))
}

// journal is the edit log deduplicated by journal id.
type journal struct {
	records []*editlog.Record // records[i] has journal id i+1
	values  [][]byte
	total   int // records read, duplicates included
}

// checkEditLog verifies the edit-log contract on msgs (the whole topic in
// offset order): each record decodes, its journal-id header and key match its
// body, journal ids first appear in increasing order, a repeated journal id
// is a byte-identical copy, and the ids are exactly 1..max with no gap.
func checkEditLog(t testing.TB, msgs []kafkaio.Message) journal {
	t.Helper()
	j := journal{total: len(msgs)}
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
			if !bytes.Equal(j.values[i], m.Value) {
				t.Fatalf("edit log offset %d: journal id %d delivered twice with different content:\n%s\n%s",
					m.Offset, r.JournalID, j.values[i], m.Value)
			}
			continue
		}
		if n := len(j.records); n > 0 && r.JournalID < j.records[n-1].JournalID {
			t.Fatalf("edit log offset %d: journal id %d first appears after %d", m.Offset, r.JournalID, j.records[n-1].JournalID)
		}
		seen[r.JournalID] = len(j.records)
		j.records = append(j.records, r)
		j.values = append(j.values, m.Value)
	}
	for i, r := range j.records {
		if r.JournalID != int64(i+1) {
			t.Fatalf("edit log has a gap: journal id %d follows %d", r.JournalID, i)
		}
	}
	return j
}

// rebuild applies the journal to an empty store and returns it (DESIGN.md
// §5.5: a state rebuilt from the edit log alone equals the live state).
func rebuild(t testing.TB, j journal) *mvstate.Store {
	t.Helper()
	st := mvstate.NewMemory()
	keys, structural := editlog.Touches(j.records)
	err := st.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		for _, r := range j.records {
			res, err := editlog.Apply(tx, r)
			if err != nil {
				return err
			}
			if res != editlog.Applied {
				return fmt.Errorf("journal id %d (epoch %d): %s", r.JournalID, r.Epoch, res)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("rebuild from the edit log: %v", err)
	}
	return st
}

// sameText fails with the first differing line of two documents.
func sameText(t testing.TB, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
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
			t.Fatalf("%s differs at line %d:\n got: %.600s\nwant: %.600s", what, i+1, gl, wl)
		}
	}
	t.Fatalf("%s differs", what)
}

// openStore opens a stopped service's state dir.
func openStore(t testing.TB, dir string) *mvstate.Store {
	t.Helper()
	st, err := mvstate.Open(context.Background(), dir, mvstate.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// metric sums a counter or gauge family over the series whose labels include
// match.
func metric(t testing.TB, m *metrics.Metrics, name string, match map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for k, v := range match {
				if labelValue(s, k) != v {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				sum += s.GetCounter().GetValue()
			case s.Gauge != nil:
				sum += s.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func labelValue(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// checkDeadLettered verifies that every undecodable input record reached the
// DLQ at least once, with its source position.
func checkDeadLettered(t testing.TB, input, dlq []kafkaio.Message) {
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
