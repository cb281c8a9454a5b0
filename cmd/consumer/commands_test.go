package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

// eventCounter counts the events of the pipeline's reports (a dry run
// moves no metric).
type eventCounter struct{ n atomic.Int64 }

func (c *eventCounter) OnBatch(r *pipeline.Report) { c.n.Add(int64(len(r.Events))) }

func TestRun_dryRunDecidesButChangesPublishesAndCommitsNothing(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.DryRun = true
	decided := &eventCounter{}
	svc, err := service.Open(ctx, cfg, zerolog.Nop(), service.Options{Hooks: pipeline.Hooks{decided}})
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
		if n := decided.n.Load(); n < int64(len(msgs)) {
			return fmt.Errorf("%v of %d events handled", n, len(msgs))
		}
		return nil
	})
	stop()
	if st := svc.Store().State(); st.Len() != 0 || st.JournalID() != 0 || len(st.Offsets()) != 0 {
		t.Fatalf("dry run changed the store: %d MVs, journal %d", st.Len(), st.JournalID())
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
	st := mvstate.NewState()
	for _, m := range demo.Catalog() {
		st.LoadMV(m, 42)
	}
	st.LoadMeta(42, 3, nil)
	var want bytes.Buffer
	if err := st.Export(ctx, &want); err != nil {
		t.Fatal(err)
	}
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
