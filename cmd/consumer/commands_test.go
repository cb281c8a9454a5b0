package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

func TestRun_dryRunDecidesButChangesPublishesAndCommitsNothing(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.DryRun = true
	reports := &testkit.Reports{}
	svc, err := service.Open(ctx, cfg, zerolog.Nop(), service.Options{Hooks: pipeline.Hooks{reports}})
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
		if n := reports.Events(); n < len(msgs) {
			return fmt.Errorf("%d of %d events decided (%s)", n, len(msgs), reports)
		}
		return nil
	})
	stop()
	for _, r := range reports.All() {
		if !r.DryRun {
			t.Fatalf("a dry run reported a batch that is not a dry run: %+v", r)
		}
	}
	if reports.Events(pipeline.OutcomeApplied) == 0 {
		t.Fatalf("the dry run decided no repair (%s): the stream must have some for this test to mean anything", reports)
	}
	if st := svc.Store().State(); st.Len() != 0 || st.JournalID() != 0 || len(st.Offsets()) != 0 {
		t.Fatalf("dry run changed the store: %d MVs, journal %d, offsets %v", st.Len(), st.JournalID(), st.Offsets())
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
	withStore(t, src, func(st *store.Store) {
		if err := st.Load(ctx, 42, 3, nil, func(add func(*mvstate.MV, int64)) error {
			for _, m := range demo.Catalog() {
				add(m, 42)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	want := exportOf(t, src)
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	t.Setenv("MVREPAIR_STATE_DIR", dst)
	if out, _, err := execute(t, "state", "import", "--file", file); err != nil || !strings.Contains(out, "imported 3 MVs at journal_id 42") ||
		strings.Contains(out, "kept as") {
		t.Fatalf("import into a new state dir: %v\n%s", err, out)
	}
	if aside, _ := filepath.Glob(filepath.Join(dst, "store.old-*")); len(aside) != 0 {
		t.Fatalf("an import into a new state dir kept a store aside that never existed: %v", aside)
	}
	got, _, err := execute(t, "state", "export")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("export after import differs:\n%s\nwant\n%s", got, want)
	}
	one, _, err := execute(t, "state", "export", "--mv", "10001:50002")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(one, `{"journal_id":42,"mvs":[`) || strings.Count(one, `"mv_id":`) != 1 || !strings.Contains(one, `"mv_id":50002`) {
		t.Fatalf("export --mv: %s", one)
	}
	if _, _, err := execute(t, "state", "import", "--file", file); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second import into a non-empty store must be refused, got %v", err)
	}
	// The import was built beside the live store and swapped in: nothing
	// of the build is left.
	if _, err := os.Stat(filepath.Join(dst, "store.new")); !os.IsNotExist(err) {
		t.Fatalf("store.new left after an import: %v", err)
	}
}
