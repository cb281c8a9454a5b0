package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
)

// binary is the consumer built once per test run with `go build`, for the
// tests that need a real process (exit codes, embedded build information).
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// consumerBinary returns the path of the built consumer.
func consumerBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the consumer with")
	}
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "consumer-test-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "consumer")
		out, err := exec.Command(goTool, "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = errors.New(err.Error() + ": " + string(out))
		}
	})
	if binary.err != nil {
		t.Fatalf("go build: %v", binary.err)
	}
	return binary.path
}

// execute runs the command line in-process and returns its stdout, stderr
// and error.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRoot()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// wantExit asserts that err is a *cli.ExitError with code and a message
// containing every part.
func wantExit(t *testing.T, err error, code int, parts ...string) {
	t.Helper()
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != code {
		t.Fatalf("error %v: want exit code %d", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// commands lists every command of the tree but cobra's own help and
// completion, as argument paths ("state", "show").
func commands(root *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(root, nil)
	return out
}

func TestCommands_everyCommandRefusesAStrayArgumentWithExitCode2(t *testing.T) {
	t.Setenv("MVREPAIR_STATE_DIR", t.TempDir())
	paths := commands(newRoot())
	if len(paths) < 12 {
		t.Fatalf("found %d commands: %q", len(paths), paths)
	}
	for _, path := range paths {
		t.Run(strings.Join(append([]string{"consumer"}, path...), " "), func(t *testing.T) {
			root := newRoot()
			c, _, err := root.Find(path)
			if err != nil {
				t.Fatal(err)
			}
			// Were the argument accepted, `run` would start the service:
			// stop at RunE instead.
			c.RunE = func(*cobra.Command, []string) error { return errors.New("ran despite a stray argument") }
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append(path, "stray"))
			err = root.Execute()
			want := `unexpected argument "stray"`
			if c.HasSubCommands() {
				want = `unknown command "stray"`
			}
			wantExit(t, err, 2, want)
		})
	}
}

func TestCommands_strayArgumentSuggestsTheFlagItWasMeantFor(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "config.yaml"}, `run: unexpected argument "config.yaml"; did you mean --config config.yaml?`},
		{[]string{"run", "dry-run"}, `run: unexpected argument "dry-run"; did you mean --dry-run?`},
		{[]string{"state", "show", "10001:50001"}, `state show: unexpected argument "10001:50001"; did you mean --mv 10001:50001?`},
		{[]string{"state", "export", "state.json"}, `did you mean --out state.json?`},
		{[]string{"state", "import", "state.json"}, `did you mean --file state.json?`},
		{[]string{"produce", "events.ndjson"}, `did you mean --file events.ndjson?`},
		{[]string{"replay", "1200"}, `did you mean --from-offset 1200?`},
		{[]string{"replay", "from-offset", "0"}, `unexpected arguments "from-offset" "0"; did you mean --from-offset 0?`},
		{[]string{"replay", "--from-offset", "0", "2024-01-02T00:00:00Z"}, `did you mean --from-time 2024-01-02T00:00:00Z?`},
		{[]string{"healthcheck", "http://127.0.0.1:8080/readyz"}, `did you mean --url http://127.0.0.1:8080/readyz?`},
		{[]string{"demo", os.TempDir()}, `did you mean --state-dir ` + os.TempDir() + `?`},
		{[]string{"state", "show", os.TempDir()}, `did you mean MVREPAIR_STATE_DIR=` + os.TempDir()},
		{[]string{"run", "whatever"}, `run: unexpected argument "whatever": run takes no arguments, only flags (see consumer run --help)`},
		{[]string{"config.yaml"}, `unknown command "config.yaml"; did you mean consumer run --config config.yaml?`},
		{[]string{"stat"}, `unknown command "stat"; did you mean state?`},
		{[]string{"state", "shwo"}, `state: unknown command "shwo"; did you mean show?`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := execute(t, tt.args...)
			wantExit(t, err, 2, tt.want)
		})
	}
}

func TestCommands_unknownFlagIsAUsageError(t *testing.T) {
	_, _, err := execute(t, "run", "--confg", "config.yaml")
	wantExit(t, err, 2, "run: unknown flag: --confg", "consumer run --help")
}

func TestMain_exitsWith2AndTheMessageOnAStrayArgument(t *testing.T) {
	cmd := exec.Command(consumerBinary(t), "run", "config.yaml")
	cmd.Env = append(os.Environ(), "MVREPAIR_STATE_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; stderr:\n%s", err, stderr.String())
	}
	if want := "consumer: run: unexpected argument \"config.yaml\"; did you mean --config config.yaml?\n"; stderr.String() != want {
		t.Fatalf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestFlags_helpShowsAtMostOneDefaultPerFlag(t *testing.T) {
	root := newRoot()
	for _, path := range commands(root) {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			fs := pflag.NewFlagSet("", pflag.ContinueOnError)
			fs.AddFlag(f)
			line := fs.FlagUsages()
			if n := strings.Count(strings.ToLower(line), "default"); n > 1 {
				t.Errorf("consumer %s --%s: %d defaults in %q", strings.Join(path, " "), f.Name, n, strings.TrimSpace(line))
			}
		})
	}
}

func TestReplay_partitionFlagDefaultsToAllAndTakesANumberOrAll(t *testing.T) {
	cmd := newReplayCmd(&globals{})
	f := cmd.Flags().Lookup("partition")
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.AddFlag(f)
	if got := strings.Join(strings.Fields(fs.FlagUsages()), " "); got != "--partition int only this partition (default all)" {
		t.Errorf("help = %q", got)
	}
	var p int
	v := partitionFlag{&p}
	for _, tt := range []struct {
		in   string
		want int
	}{{"3", 3}, {"0", 0}, {"all", -1}} {
		if err := v.Set(tt.in); err != nil || p != tt.want {
			t.Errorf("Set(%q) = %v, partition %d; want %d", tt.in, err, p, tt.want)
		}
	}
	for _, bad := range []string{"-1", "x", ""} {
		if err := v.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	_, _, err := execute(t, "replay", "--from-offset", "0", "--partition", "-2")
	wantExit(t, err, 2, `invalid argument "-2" for "--partition"`)
}

func TestVersion_textNamesModuleRevisionTimeAndGo(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/mvrepair/mvrepair", Version: "v0.0.0-20261202130741-a398aeb8d1b8+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "a398aeb8d1b865a179319c76415134f702916ec6"},
			{Key: "vcs.time", Value: "2026-12-02T13:07:41Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := `consumer (mvrepair) v0.0.0-20261202130741-a398aeb8d1b8+dirty
  module:   github.com/mvrepair/mvrepair
  revision: a398aeb8d1b865a179319c76415134f702916ec6 (modified: built with uncommitted changes)
  time:     2026-12-02T13:07:41Z
  go:       go1.26.8 linux/arm64
`
	if got := versionText(info, true); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// `go run`, -buildvcs=false, a build outside a checkout: nothing stamped.
	info = &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/mvrepair/mvrepair", Version: "(devel)"}}
	got := versionText(info, true)
	for _, part := range []string{"consumer (mvrepair) (devel)\n", "revision: unknown", "go:       go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(got, part) {
			t.Errorf("%q lacks %q", got, part)
		}
	}
	if got := versionText(nil, false); !strings.Contains(got, "no build information") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("without build info: %q", got)
	}
}

func TestVersion_flagAndCommandPrintTheBinarysBuildInfo(t *testing.T) {
	bin := consumerBinary(t)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := versionText(info, true)
	if !strings.Contains(want, "module:   github.com/mvrepair/mvrepair") || !strings.Contains(want, info.GoVersion) {
		t.Fatalf("unexpected build info text %q", want)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("consumer %s: %v", args[0], err)
		}
		if string(out) != want {
			t.Errorf("consumer %s printed\n%s\nwant\n%s", args[0], out, want)
		}
	}
}

func TestVersion_worksUnderGoRun(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goTool, "run", ".", "version").CombinedOutput()
	if err != nil {
		t.Fatalf("go run . version: %v\n%s", err, out)
	}
	for _, part := range []string{"consumer (mvrepair) ", "module:   github.com/mvrepair/mvrepair\n", "revision: ", "go:       go1."} {
		if !strings.Contains(string(out), part) {
			t.Errorf("go run . version printed %q, lacking %q", out, part)
		}
	}
}

func TestState_readOnlyCommandsOnAMissingOrEmptyStateDirFailAndCreateNothing(t *testing.T) {
	for _, sub := range []string{"show", "export"} {
		t.Run(sub+" on a missing dir", func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "mistyped")
			t.Setenv("MVREPAIR_STATE_DIR", dir)
			args := []string{"state", sub}
			if sub == "export" {
				args = append(args, "--out", filepath.Join(parent, "out.json")) // not created either
			}
			_, _, err := execute(t, args...)
			wantExit(t, err, 2, "state "+sub+": state.dir", dir, "does not exist", "state.dir key", "MVREPAIR_STATE_DIR")
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("created %v", entries)
			}
		})
		t.Run(sub+" on an empty dir", func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("MVREPAIR_STATE_DIR", dir)
			_, _, err := execute(t, "state", sub)
			wantExit(t, err, 2, "state "+sub+": state.dir", dir, "holds no state store", "state.dir key")
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("created %v in the empty dir", entries)
			}
		})
	}
	t.Run("show on a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("MVREPAIR_STATE_DIR", file)
		_, _, err := execute(t, "state", "show")
		wantExit(t, err, 2, "is not a directory")
	})
}

// newStore creates an empty state store in a new state dir and returns the
// dir.
func newStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	withStore(t, dir, func(*store.Store) {})
	return dir
}

// withStore takes the state dir, opens its store (creating it) for fn and
// closes both.
func withStore(t *testing.T, stateDir string, fn func(st *store.Store)) {
	t.Helper()
	testkit.WithStore(t, stateDir, fn)
}

// exportOf is the `state export` document of the store of a state dir.
func exportOf(t *testing.T, stateDir string) string {
	t.Helper()
	return testkit.ExportOf(t, testkit.OpenStore(t, stateDir))
}

func TestState_showOnAnExistingStoreStillWorks(t *testing.T) {
	t.Setenv("MVREPAIR_STATE_DIR", newStore(t))
	out, _, err := execute(t, "state", "show")
	if err != nil || !strings.HasPrefix(out, "journal_id 0, epoch 0, 0 MVs\n") {
		t.Fatalf("state show: %v\n%s", err, out)
	}
}

func TestCommands_warnAboutUnknownMVREPAIRVariables(t *testing.T) {
	t.Setenv("MVREPAIR_STATE_DIR", newStore(t))
	t.Setenv("MVREPAIR_KAFKA_BROKER", "k1:9092")
	const warning = "consumer: warning: config: unknown environment variable MVREPAIR_KAFKA_BROKER (ignored); did you mean MVREPAIR_KAFKA_BROKERS?\n"
	out, stderr, err := execute(t, "state", "show")
	if err != nil {
		t.Fatalf("a warning must not fail the command: %v", err)
	}
	// Contains, not equal: the environment may hold other MVREPAIR_* variables.
	if !strings.Contains(stderr, warning) || !strings.HasPrefix(out, "journal_id 0") {
		t.Fatalf("stderr = %q, want %q; stdout %q", stderr, warning, out)
	}

	// With a configuration error the warning is printed too: it may be the cause.
	t.Setenv("MVREPAIR_BATCH_MAX_EVENTS", "0")
	_, stderr, err = execute(t, "state", "show")
	wantExit(t, err, 2, "config: batch.max_events: ")
	if !strings.Contains(stderr, warning) {
		t.Fatalf("stderr = %q, want %q", stderr, warning)
	}
}

func TestRun_logsConfigWarningsAsWarnLines(t *testing.T) {
	var buf bytes.Buffer
	_, warnings, err := config.LoadWithWarnings("", []string{"MVREPAIR_LOG_LEVL=debug"})
	if err != nil {
		t.Fatal(err)
	}
	logWarnings(zerolog.New(&buf), warnings)
	want := `{"level":"warn","env":"MVREPAIR_LOG_LEVL","did_you_mean":"MVREPAIR_LOG_LEVEL","message":"config: unknown environment variable MVREPAIR_LOG_LEVL (ignored); did you mean MVREPAIR_LOG_LEVEL?"}` + "\n"
	if buf.String() != want {
		t.Fatalf("logged %q\nwant   %q", buf.String(), want)
	}
}
