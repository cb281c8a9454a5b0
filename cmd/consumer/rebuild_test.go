package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// dirTree lists every file under dir with a hash of its content ("LOCK"
// aside: an empty lock file), to tell whether a command changed anything.
func dirTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if de.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// oldState fills the store of stateDir with a state of its own (the demo
// catalog at journal id 7) and returns its export.
func oldState(t *testing.T, stateDir string) string {
	t.Helper()
	withStore(t, stateDir, func(st *store.Store) {
		if err := st.Load(context.Background(), 7, 1, nil, func(add func(*mvstate.MV, int64)) error {
			for _, m := range demo.Catalog() {
				add(m, 7)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	return exportOf(t, stateDir)
}

func TestRebuild_withNoBrokerReachableLeavesTheOldStoreUntouched(t *testing.T) {
	dir := t.TempDir()
	before := oldState(t, dir)
	tree := dirTree(t, dir)
	t.Setenv("MVREPAIR_STATE_DIR", dir)
	t.Setenv("MVREPAIR_KAFKA_BROKERS", closedPort(t))
	t.Setenv("MVREPAIR_KAFKA_CONNECT_TIMEOUT", "1s")
	t.Setenv("MVREPAIR_LOG_LEVEL", "error")
	for _, args := range [][]string{{"rebuild", "--from-edit-log", "--force"}, {"rebuild", "--from-edit-log", "--full", "--force"}} {
		_, _, err := execute(t, args...)
		if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("%s with no broker: %v, want an error saying nothing was changed", strings.Join(args, " "), err)
		}
		if got := dirTree(t, dir); !slices.Equal(got, tree) {
			t.Fatalf("%s with no broker changed the state dir:\n%s\nbefore:\n%s", strings.Join(args, " "), strings.Join(got, "\n"), strings.Join(tree, "\n"))
		}
		if got := exportOf(t, dir); got != before {
			t.Fatalf("the old store changed: %s", testkit.FirstDiff(got, before))
		}
	}
}

// cliEnv points the commands at cfg's brokers, topics and state dir.
func cliEnv(t *testing.T, cfg *config.Config, stateDir string) {
	t.Helper()
	if cfg.Kafka.TLS.Enabled || cfg.SASLEnabled() {
		t.Skip("the command-line tests pass no TLS or SASL settings to the commands")
	}
	tp := cfg.Kafka.Topics
	for k, v := range map[string]string{
		"MVREPAIR_STATE_DIR":              stateDir,
		"MVREPAIR_KAFKA_BROKERS":          cfg.Kafka.Brokers,
		"MVREPAIR_KAFKA_GROUP_ID":         cfg.Kafka.GroupID,
		"MVREPAIR_KAFKA_TOPICS_INPUT":     tp.Input,
		"MVREPAIR_KAFKA_TOPICS_CATALOG":   tp.Catalog,
		"MVREPAIR_KAFKA_TOPICS_EDIT_LOG":  tp.EditLog,
		"MVREPAIR_KAFKA_TOPICS_DLQ":       tp.DLQ,
		"MVREPAIR_KAFKA_TOPICS_SNAPSHOTS": tp.Snapshots,
		"MVREPAIR_LOG_LEVEL":              "error",
	} {
		t.Setenv(k, v)
	}
}

// demoMessages returns the demo stream as catalog and input messages of cfg.
func demoMessages(t *testing.T, cfg *config.Config) (catalog, input []kafkaio.Message) {
	t.Helper()
	recs, err := demo.Stream()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Catalog {
			catalog = append(catalog, kafkaio.Message{Topic: cfg.Kafka.Topics.Catalog, Key: []byte(r.Key), Value: r.Value})
		} else {
			input = append(input, kafkaio.Message{Topic: cfg.Kafka.Topics.Input, Key: []byte(r.Key), Value: r.Value})
		}
	}
	return catalog, input
}

// openAside loads a store moved aside (store.old-<time>) read-only.
func openAside(t *testing.T, aside string) string {
	t.Helper()
	tmp := t.TempDir()
	if err := os.Symlink(aside, filepath.Join(tmp, "store")); err != nil {
		t.Fatal(err)
	}
	return exportOf(t, tmp)
}

func TestRebuild_forceReplacesTheStoreAndKeepsTheOldOneAside(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("rebuild")
	e.EnsureTopics(cfg)
	catalog, input := demoMessages(t, cfg)
	in := e.StartService(cfg, "service")
	e.Publish(catalog...)
	e.WaitApplied(in.State, cfg.Kafka.Topics.Catalog)
	e.Publish(input...)
	e.WaitCaughtUp(cfg)
	in.Stop()
	want := exportOf(t, cfg.State.Dir) // the live state the edit log holds
	if strings.HasPrefix(want, `{"journal_id":0,`) {
		t.Fatal("the service journaled nothing")
	}

	dir := t.TempDir()
	old := oldState(t, dir)
	cliEnv(t, cfg, dir)
	_, _, err := execute(t, "rebuild", "--from-edit-log", "--full")
	wantExit(t, err, 2, "already holds a state", "--force")
	if got := exportOf(t, dir); got != old {
		t.Fatalf("a refused rebuild changed the store: %s", testkit.FirstDiff(got, old))
	}

	var asides []string
	for _, args := range [][]string{{"rebuild", "--from-edit-log", "--full", "--force"}, {"rebuild", "--from-edit-log", "--force"}} {
		out, _, err := execute(t, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if got := exportOf(t, dir); got != want {
			t.Fatalf("%s: the store differs from the service's state: %s\n%s", strings.Join(args, " "), testkit.FirstDiff(got, want), out)
		}
		_, aside, ok := strings.Cut(out, "old store kept as ")
		aside = strings.TrimSpace(aside)
		if !ok || filepath.Dir(aside) != dir || !strings.HasPrefix(filepath.Base(aside), "store.old-") {
			t.Fatalf("%s does not say where the old store went:\n%s", strings.Join(args, " "), out)
		}
		asides = append(asides, aside)
	}
	// The first rebuild kept the old state aside, the second the first
	// rebuild's; nothing of a build is left.
	if got := openAside(t, asides[0]); got != old {
		t.Fatalf("the store kept aside is not the old one: %s", testkit.FirstDiff(got, old))
	}
	if got := openAside(t, asides[1]); got != want {
		t.Fatalf("the store kept aside by the second rebuild is not the first one's: %s", testkit.FirstDiff(got, want))
	}
	if _, err := os.Stat(filepath.Join(dir, "store.new")); !os.IsNotExist(err) {
		t.Fatalf("store.new left after a rebuild: %v", err)
	}
}

func TestStateExport_besideARunningServiceShowsItsState(t *testing.T) {
	e := testkit.NewEnv(t)
	cfg := e.Config("export")
	e.EnsureTopics(cfg)
	catalog, input := demoMessages(t, cfg)
	in := e.StartService(cfg, "service")
	e.Publish(catalog...)
	e.WaitApplied(in.State, cfg.Kafka.Topics.Catalog)
	e.Publish(input...)
	e.WaitCaughtUp(cfg)
	cliEnv(t, cfg, cfg.State.Dir)
	// The service holds the state dir: the read-only commands need no lock.
	out, _, err := execute(t, "state", "export")
	if err != nil {
		t.Fatalf("state export beside the service: %v", err)
	}
	testkit.SameText(t, "state export beside the service vs its live state", out, testkit.ExportOf(t, in.State()))
	show, _, err := execute(t, "state", "show")
	if err != nil || !strings.HasPrefix(show, fmt.Sprintf("journal_id %d, epoch %d, %d MVs\n", in.State().JournalID(), in.State().Epoch(), in.State().Len())) {
		t.Fatalf("state show beside the service: %v\n%s", err, show)
	}
	// A command that writes the store is refused while the service holds it.
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = execute(t, "state", "import", "--force", "--file", file)
	wantExit(t, err, 3, "in use by another mvrepair process", "stop it first")
	if got := testkit.ExportOf(t, in.State()); got != out {
		t.Fatalf("a refused import changed the service's state: %s", testkit.FirstDiff(got, out))
	}
}
