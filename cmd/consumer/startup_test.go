package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/store"
)

// startupResult is what a consumer process that failed to start left behind.
type startupResult struct {
	code   int
	stderr string
	took   time.Duration
}

// runBinary runs the built consumer with args and MVREPAIR_* settings (on
// top of a clean environment: no config file, logs at warn) and waits at
// most limit for it to exit.
func runBinary(t *testing.T, limit time.Duration, env map[string]string, args ...string) startupResult {
	t.Helper()
	bin := consumerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir() // no config.yaml to pick up
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"MVREPAIR_LOG_LEVEL=warn", "MVREPAIR_HTTP_ADDR=127.0.0.1:0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	res := startupResult{stderr: stderr.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("consumer %s did not exit within %v; stderr:\n%s", strings.Join(args, " "), limit, res.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("consumer %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// wantStartupError asserts the process exited non-zero without a panic,
// its last stderr line being one "consumer: ..." line that contains every
// part (the cause and the fix).
func wantStartupError(t *testing.T, res startupResult, parts ...string) {
	t.Helper()
	if res.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", res.stderr)
	}
	for _, bad := range []string{"panic:", "goroutine ", "SIGSEGV", "nil pointer"} {
		if strings.Contains(res.stderr, bad) {
			t.Fatalf("stderr shows %q:\n%s", bad, res.stderr)
		}
	}
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "consumer: ") {
		t.Fatalf("last stderr line %q is not the consumer's error line; stderr:\n%s", last, res.stderr)
	}
	for _, p := range parts {
		if !strings.Contains(last, p) {
			t.Errorf("error line %q does not say %q", last, p)
		}
	}
	t.Logf("exit %d after %v: %s", res.code, res.took.Round(time.Millisecond), last)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestStartup_unreachableBrokerIsOneLineNamingTheBrokersAndKey(t *testing.T) {
	for name, brokers := range map[string]string{
		"closed port":       closedPort(t),
		"unresolvable host": "kafka1.invalid:9092,kafka2.invalid:9092",
	} {
		t.Run(name, func(t *testing.T) {
			res := runBinary(t, 60*time.Second, map[string]string{
				"MVREPAIR_KAFKA_BROKERS":         brokers,
				"MVREPAIR_KAFKA_CONNECT_TIMEOUT": "2s",
				"MVREPAIR_STATE_DIR":             filepath.Join(t.TempDir(), "state"),
			}, "run")
			wantStartupError(t, res, strings.Split(brokers, ",")[0], "kafka.brokers")
		})
	}
}

func TestStartup_rebuildAndReplayWithoutABrokerFailInOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"rebuild", "--from-edit-log", "--force"},
		{"replay", "--from-offset", "0"},
	} {
		t.Run(args[0], func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			res := runBinary(t, 60*time.Second, map[string]string{
				"MVREPAIR_KAFKA_BROKERS":         closedPort(t),
				"MVREPAIR_KAFKA_CONNECT_TIMEOUT": "2s",
				"MVREPAIR_STATE_DIR":             dir,
			}, args...)
			wantStartupError(t, res, "kafka.brokers")
			// Nothing was built, moved aside or (for a rebuild) created.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "LOCK" && (args[0] == "rebuild" || e.Name() != "store") {
					t.Errorf("state dir after a failed %s holds %s", args[0], e.Name())
				}
			}
		})
	}
}

func TestStartup_editLogWithSeveralPartitionsIsRefusedByName(t *testing.T) {
	b, err := embedded.Start(context.Background(), embedded.Config{Addr: "127.0.0.1:0",
		Topics: []embedded.Topic{{Name: "edits3", Partitions: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res := runBinary(t, 60*time.Second, map[string]string{
		"MVREPAIR_KAFKA_BROKERS":            b.Addr(),
		"MVREPAIR_KAFKA_TOPICS_EDIT_LOG":    "edits3",
		"MVREPAIR_KAFKA_CONNECT_TIMEOUT":    "5s",
		"MVREPAIR_KAFKA_REPLICATION_FACTOR": "1",
		"MVREPAIR_STATE_DIR":                filepath.Join(t.TempDir(), "state"),
	}, "run")
	wantStartupError(t, res, "edits3", "3 partitions")
}

func TestStartup_compactedEditLogIsRefused(t *testing.T) {
	b, err := embedded.Start(context.Background(), embedded.Config{Addr: "127.0.0.1:0",
		Topics: []embedded.Topic{{Name: "edits-compacted", Partitions: 1, Configs: map[string]string{"cleanup.policy": "compact"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res := runBinary(t, 60*time.Second, map[string]string{
		"MVREPAIR_KAFKA_BROKERS":            b.Addr(),
		"MVREPAIR_KAFKA_TOPICS_EDIT_LOG":    "edits-compacted",
		"MVREPAIR_KAFKA_CONNECT_TIMEOUT":    "5s",
		"MVREPAIR_KAFKA_REPLICATION_FACTOR": "1",
		"MVREPAIR_STATE_DIR":                filepath.Join(t.TempDir(), "state"),
	}, "run")
	wantStartupError(t, res, "edits-compacted", "compact")
}

func TestStartup_lockedStateDirRefusesRunReplayRebuildAndImport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	held, err := store.LockDir(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	export := filepath.Join(t.TempDir(), "export.json")
	if err := os.WriteFile(export, []byte(`{"journal_id":0,"mvs":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run"},
		{"replay", "--from-offset", "0"},
		{"rebuild", "--from-edit-log", "--force"},
		{"state", "import", "--file", export},
	} {
		t.Run(args[0], func(t *testing.T) {
			res := runBinary(t, 60*time.Second, map[string]string{
				"MVREPAIR_KAFKA_BROKERS":         closedPort(t),
				"MVREPAIR_KAFKA_CONNECT_TIMEOUT": "2s",
				"MVREPAIR_STATE_DIR":             dir,
			}, args...)
			wantStartupError(t, res, dir, "in use by another", "stop")
		})
	}
}

func TestStartup_stateDirThatIsAFileOrUnwritableIsNamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"a file":     file,
		"under proc": "/proc/mvrepair-state",
	} {
		t.Run(name, func(t *testing.T) {
			res := runBinary(t, 60*time.Second, map[string]string{"MVREPAIR_STATE_DIR": dir}, "run")
			wantStartupError(t, res, dir)
		})
	}
}

func TestStartup_takenEmbeddedBrokerAddressIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	res := runBinary(t, 60*time.Second, map[string]string{
		"MVREPAIR_KAFKA_EMBEDDED_ADDR": addr,
		"MVREPAIR_STATE_DIR":           filepath.Join(t.TempDir(), "state"),
	}, "run")
	wantStartupError(t, res, addr, "kafka.embedded_addr")
}
