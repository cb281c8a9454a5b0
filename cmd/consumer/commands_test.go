package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

func eventsHandled(t *testing.T, svc *service.Service) float64 {
	fams, err := svc.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() == "mvrepair_events_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func TestRun_dryRunDecidesButChangesPublishesAndCommitsNothing(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.DryRun = true
	svc, err := service.Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	recs, err := demo.Stream()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafkaio.Message
	for _, r := range recs {
		topic := cfg.Kafka.Topics.Input
		if r.Catalog {
			topic = cfg.Kafka.Topics.Catalog
		}
		msgs = append(msgs, kafkaio.Message{Topic: topic, Key: []byte(r.Key), Value: r.Value})
	}
	stop := running(t, svc)
	if err := svc.Producer().Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event decided", func() error {
		if n := eventsHandled(t, svc); n < float64(len(msgs)) {
			return fmt.Errorf("%v of %d events handled", n, len(msgs))
		}
		return nil
	})
	stop()
	if svc.Store().Len() != 0 || svc.Store().JournalID() != 0 || len(svc.Store().Offsets()) != 0 {
		t.Fatalf("dry run changed the store: %d MVs, journal %d", svc.Store().Len(), svc.Store().JournalID())
	}
	for _, topic := range []string{cfg.Kafka.Topics.EditLog, cfg.Kafka.Topics.DLQ} {
		if n := hwm(t, svc, topic); n != 0 {
			t.Fatalf("dry run published %d records to %s", n, topic)
		}
	}
	committed, err := svc.Admin().CommittedOffsets(ctx, cfg.Kafka.GroupID, []string{cfg.Kafka.Topics.Input})
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range committed[cfg.Kafka.Topics.Input] {
		if off >= 0 {
			t.Fatalf("dry run committed offset %d on partition %d", off, p)
		}
	}
}

func TestStateImport_ofAnExportGivesAByteIdenticalExport(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	st, err := mvstate.Open(ctx, src, mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mvs := demo.Catalog()
	keys := make([]mvstate.MVKey, len(mvs))
	for i, m := range mvs {
		keys[i] = m.Key()
	}
	if err := st.Commit(ctx, mvstate.Batch{Touched: keys, Structural: true, Apply: func(tx *mvstate.Tx) error {
		for _, m := range mvs {
			if err := tx.PutMV(m); err != nil {
				return err
			}
		}
		tx.SetJournal(42, 3)
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := st.Export(ctx, &want); err != nil {
		t.Fatal(err)
	}
	st.Close()
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, want.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := newRoot()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	t.Setenv("MVREPAIR_STATE_DIR", dst)
	if out, err := run("state", "import", "--file", file); err != nil || !strings.Contains(out, "imported 3 MVs at journal_id 42") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	got, err := run("state", "export")
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Fatalf("export after import differs:\n%s\nwant\n%s", got, want.String())
	}
	one, err := run("state", "export", "--mv", "10001:50002")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(one, `{"journal_id":42,"mvs":[`) || strings.Count(one, `"mv_id":`) != 1 || !strings.Contains(one, `"mv_id":50002`) {
		t.Fatalf("export --mv: %s", one)
	}
	if _, err := run("state", "import", "--file", file); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second import into a non-empty store must be refused, got %v", err)
	}
}
