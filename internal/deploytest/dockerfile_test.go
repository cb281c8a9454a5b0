package deploytest

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper-cased, e.g. "RUN"
	args string
	line int
}

// stage is one FROM ... [AS name] section.
type stage struct {
	base, name string
	instrs     []instruction
}

type dockerfileDoc struct{ stages []*stage }

// dockerfile parses the repository's Dockerfile.
func dockerfile(t *testing.T) *dockerfileDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerfile(string(raw))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return d
}

// parseDockerfile understands the subset of the Dockerfile syntax that is
// enough to check ours: comments, backslash continuations, stages.
func parseDockerfile(text string) (*dockerfileDoc, error) {
	d := &dockerfileDoc{}
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // comments may sit inside a continued instruction too
		}
		if cur.Len() == 0 {
			start = n
		}
		body, continued := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`)
		cur.WriteString(body)
		cur.WriteByte(' ')
		if continued {
			continue
		}
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 0 {
				return nil, fmt.Errorf("line %d: FROM without an image", start)
			}
			s := &stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			d.stages = append(d.stages, s)
			continue
		}
		if len(d.stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s before the first FROM", start, in.cmd)
		}
		st := d.stages[len(d.stages)-1]
		st.instrs = append(st.instrs, in)
	}
	if cur.Len() > 0 {
		return nil, errors.New("the last instruction ends in a continuation")
	}
	if len(d.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return d, sc.Err()
}

// final is the stage that becomes the image.
func (d *dockerfileDoc) final() *stage { return d.stages[len(d.stages)-1] }

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm parses a JSON-array (exec form) argument list.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile line %d: %s %s: want the exec form [\"...\"] (no shell in distroless)", in.line, in.cmd, in.args)
	}
	return argv
}

// entrypoint is the stage's last ENTRYPOINT, in exec form.
func (s *stage) entrypoint(t *testing.T) []string {
	t.Helper()
	eps := s.all("ENTRYPOINT")
	if len(eps) == 0 {
		t.Fatal("the final Dockerfile stage has no ENTRYPOINT")
	}
	return execForm(t, eps[len(eps)-1])
}

// env collects the stage's ENV variables.
func (s *stage) env(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, in := range s.all("ENV") {
		words := shellWords(t, in.args)
		if len(words) > 0 && !strings.Contains(words[0], "=") { // legacy ENV key value
			out[words[0]] = strings.Join(words[1:], " ")
			continue
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				t.Fatalf("Dockerfile line %d: ENV word %q is not KEY=value", in.line, w)
			}
			out[k] = v
		}
	}
	return out
}

// list collects the values of VOLUME or EXPOSE instructions (JSON or plain).
func (s *stage) list(t *testing.T, cmd string) []string {
	t.Helper()
	var out []string
	for _, in := range s.all(cmd) {
		if strings.HasPrefix(in.args, "[") {
			out = append(out, execForm(t, in)...)
		} else {
			out = append(out, strings.Fields(in.args)...)
		}
	}
	return out
}

// user is the stage's effective user: its last USER, else what a
// distroless ":nonroot" base sets (65532).
func (s *stage) user() string {
	if us := s.all("USER"); len(us) > 0 {
		return us[len(us)-1].args
	}
	if strings.HasSuffix(s.base, ":nonroot") {
		return "65532"
	}
	return ""
}

// copyInstr is a parsed COPY.
type copyInstr struct {
	from, chown string
	srcs        []string
	dst         string
}

func (s *stage) copies(t *testing.T) []copyInstr {
	t.Helper()
	var out []copyInstr
	for _, in := range s.all("COPY") {
		var c copyInstr
		words := shellWords(t, in.args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			if v, ok := strings.CutPrefix(words[0], "--from="); ok {
				c.from = v
			}
			if v, ok := strings.CutPrefix(words[0], "--chown="); ok {
				c.chown = v
			}
			words = words[1:]
		}
		if len(words) < 2 {
			t.Fatalf("Dockerfile line %d: COPY %s: want sources and a destination", in.line, in.args)
		}
		c.srcs, c.dst = words[:len(words)-1], words[len(words)-1]
		out = append(out, c)
	}
	return out
}

// uidOf is the user part of "user[:group]".
func uidOf(u string) string {
	id, _, _ := strings.Cut(u, ":")
	return id
}

// shellWords splits a shell command line into words, honouring single and
// double quotes and backslashes (no expansion: enough for our RUN lines).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				t.Fatalf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// goBuildStep is the Dockerfile's `go build` command.
type goBuildStep struct {
	stage  *stage
	env    []string // VAR=value words before `go`
	args   []string // after `go build`
	output string   // the -o path
	pkg    string   // the package built
}

var envWordRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// goBuild finds the single RUN that runs `go build`.
func goBuild(t *testing.T, d *dockerfileDoc) goBuildStep {
	t.Helper()
	var found []goBuildStep
	for _, st := range d.stages {
		for _, in := range st.all("RUN") {
			words := shellWords(t, in.args)
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=...
				words = words[1:]
			}
			for i := 0; i+1 < len(words); i++ {
				if words[i] != "go" || words[i+1] != "build" {
					continue
				}
				g := goBuildStep{stage: st}
				for j := i - 1; j >= 0 && envWordRE.MatchString(words[j]); j-- {
					g.env = append([]string{words[j]}, g.env...)
				}
				for _, w := range words[i+2:] {
					if w == "&&" || w == ";" || w == "||" || w == "|" {
						break
					}
					g.args = append(g.args, w)
				}
				found = append(found, g)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("the Dockerfile runs go build %d times, want once", len(found))
	}
	g := found[0]
	for i, a := range g.args {
		if a == "-o" && i+1 < len(g.args) {
			g.output = g.args[i+1]
		} else if v, ok := strings.CutPrefix(a, "-o="); ok {
			g.output = v
		}
	}
	if last := g.args[len(g.args)-1]; !strings.HasPrefix(last, "-") && last != g.output {
		g.pkg = last
	}
	if g.output == "" || g.pkg == "" {
		t.Fatalf("go build %q: want -o <binary> and a package", g.args)
	}
	return g
}

// withOutput returns the go build arguments with -o pointing at out.
func (g goBuildStep) withOutput(out string) []string {
	args := slices.Clone(g.args)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = out
		} else if strings.HasPrefix(a, "-o=") {
			args[i] = "-o=" + out
		}
	}
	return args
}

// ldflags returns the value of -ldflags.
func (g goBuildStep) ldflags() string {
	for i, a := range g.args {
		if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			return v
		}
		if a == "-ldflags" && i+1 < len(g.args) {
			return g.args[i+1]
		}
	}
	return ""
}

func TestDockerfile_final_stage_runs_as_a_non_root_user(t *testing.T) {
	f := dockerfile(t).final()
	switch uid := uidOf(f.user()); uid {
	case "", "0", "root":
		t.Errorf("the final stage (FROM %s) runs as %q; want a non-root user such as 65532", f.base, f.user())
	}
	if strings.HasSuffix(f.base, ":latest") || !strings.Contains(f.base, ":") {
		t.Errorf("final base image %q is not pinned to a tag", f.base)
	}
}

func TestDockerfile_entrypoint_is_the_static_binary_built_from_cmd_consumer(t *testing.T) {
	d := dockerfile(t)
	g := goBuild(t, d)
	if g.pkg != "./cmd/consumer" {
		t.Errorf("go build builds %q, want ./cmd/consumer", g.pkg)
	}
	if !slices.Contains(g.env, "CGO_ENABLED=0") {
		t.Errorf("go build env %q: want CGO_ENABLED=0 (distroless/static has no libc)", g.env)
	}
	if !slices.Contains(g.args, "-trimpath") {
		t.Errorf("go build %q: want -trimpath", g.args)
	}
	if lf := strings.Fields(g.ldflags()); !slices.Contains(lf, "-s") || !slices.Contains(lf, "-w") {
		t.Errorf("go build -ldflags %q: want -s -w", g.ldflags())
	}
	if g.stage == d.final() || g.stage.name == "" {
		t.Fatal("go build must run in a named builder stage, not in the final image")
	}

	f := d.final()
	ep := f.entrypoint(t)
	copied := false
	for _, c := range f.copies(t) {
		if c.from == g.stage.name && c.dst == ep[0] && slices.Equal(c.srcs, []string{g.output}) {
			copied = true
		}
	}
	if !copied {
		t.Errorf("ENTRYPOINT %s is not COPY --from=%s %s", ep[0], g.stage.name, g.output)
	}
	cmds := f.all("CMD")
	if len(cmds) == 0 || !slices.Equal(execForm(t, cmds[len(cmds)-1]), []string{"run"}) {
		t.Errorf("the image's CMD should be [\"run\"] (consumer run)")
	}
}

var goDirectiveRE = regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`)
var golangTagRE = regexp.MustCompile(`^golang:([0-9]+\.[0-9]+)(\.[0-9]+)?(-[a-z]+)?$`)

func TestDockerfile_builder_Go_release_is_the_one_go_mod_asks_for(t *testing.T) {
	d := dockerfile(t)
	g := goBuild(t, d)
	m := golangTagRE.FindStringSubmatch(g.stage.base)
	if m == nil {
		t.Fatalf("builder image %q: want golang:<major.minor>[-variant]", g.stage.base)
	}
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := goDirectiveRE.FindStringSubmatch(string(raw))
	if want == nil {
		t.Fatal("go.mod has no go directive")
	}
	if m[1] != want[1] {
		t.Errorf("builder image %s has Go %s; go.mod says go %s (the image's GOTOOLCHAIN=local will not fetch another)", g.stage.base, m[1], want[1])
	}
}

func TestDockerfile_environment_state_volume_and_port_agree_with_the_config_and_compose(t *testing.T) {
	f := dockerfile(t).final()
	env := f.env(t)
	known := configEnvKeys(t)
	for k := range env {
		if strings.HasPrefix(k, config.EnvPrefix) && known[k] == "" {
			t.Errorf("Dockerfile ENV %s is not the variable of any config key", k)
		}
	}
	cfg := loadConfig(t, "Dockerfile ENV", env)
	for _, k := range []string{"state.dir", "http.addr"} {
		if _, ok := env[config.EnvName(k)]; !ok {
			t.Errorf("Dockerfile does not set ENV %s", config.EnvName(k))
		}
	}

	if !slices.Contains(f.list(t, "VOLUME"), cfg.State.Dir) {
		t.Errorf("the state dir %s is not a VOLUME (%v)", cfg.State.Dir, f.list(t, "VOLUME"))
	}
	port := listenPort(t, cfg.HTTP.Addr)
	exposed := false
	for _, p := range f.list(t, "EXPOSE") {
		exposed = exposed || strings.TrimSuffix(p, "/tcp") == port
	}
	if !exposed {
		t.Errorf("the HTTP port %s is not EXPOSEd (%v)", port, f.list(t, "EXPOSE"))
	}

	// A named volume starts as a copy of the image's directory: it must
	// belong to the user the process runs as, or the store cannot be created.
	owned := false
	for _, c := range f.copies(t) {
		if path.Clean(c.dst) == path.Clean(cfg.State.Dir) {
			owned = c.chown != "" && uidOf(c.chown) == uidOf(f.user())
		}
	}
	if !owned {
		t.Errorf("the state dir %s is not created owned by the runtime user %q (COPY --chown)", cfg.State.Dir, f.user())
	}

	for _, cf := range stacks(t) {
		for _, name := range cf.consumerServices() {
			c := loadConfig(t, cf.label+": "+name, cf.Services[name].env(t))
			if c.State.Dir != cfg.State.Dir {
				t.Errorf("%s: service %s state dir %s differs from the image's VOLUME %s", cf.label, name, c.State.Dir, cfg.State.Dir)
			}
			if c.HTTP.Addr != cfg.HTTP.Addr {
				t.Errorf("%s: service %s http addr %s differs from the image's %s", cf.label, name, c.HTTP.Addr, cfg.HTTP.Addr)
			}
		}
	}
}

func TestCompose_consumers_are_built_from_the_repository_Dockerfile(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		root := moduleRoot(t)
		for _, name := range cf.consumerServices() {
			b := cf.Services[name].Build
			ctx := filepath.Join(root, filepath.FromSlash(b.Context))
			if ctx != root {
				t.Errorf("service %s build context %q is not the module root", name, b.Context)
			}
			df := b.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("service %s: %v", name, err)
			}
		}
	})
}

// dockerignore is a .dockerignore matcher (Docker's rules: patterns are
// relative to the context root, `**` spans directories, `!` re-includes, the
// last match wins, and a path is excluded when it or a parent matches).
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

func parseDockerignore(t *testing.T, text string) dockerignore {
	t.Helper()
	var d dockerignore
	for _, line := range strings.Split(text, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			p, exclude = strings.TrimSpace(rest), false
		}
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	return d
}

// excluded reports whether the slash-separated relative path is left out of
// the build context.
func (d dockerignore) excluded(rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for _, p := range d {
		for i := 1; i <= len(parts); i++ {
			if p.re.MatchString(strings.Join(parts[:i], "/")) {
				out = p.exclude
				break
			}
		}
	}
	return out
}

func TestDockerignore_matcher_follows_Docker_rules(t *testing.T) {
	d := parseDockerignore(t, "data\n**/*.test\ndocs\n!docs/keep.md\n")
	for rel, want := range map[string]bool{
		"data":              true,
		"data/x/y":          true,
		"cmd/data/x.go":     false, // patterns are anchored at the root
		"x.test":            true,
		"a/b/x.test":        true,
		"docs/a.md":         true,
		"docs/keep.md":      false,
		"cmd/consumer/a.go": false,
	} {
		if got := d.excluded(rel); got != want {
			t.Errorf("excluded(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestDockerignore_keeps_every_file_the_build_needs(t *testing.T) {
	root := moduleRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ign := parseDockerignore(t, string(raw))

	needed := []string{"go.mod", "go.sum"}
	d := dockerfile(t)
	g := goBuild(t, d)
	for _, c := range g.stage.copies(t) {
		for _, s := range c.srcs {
			if c.from == "" && s != "." {
				needed = append(needed, path.Clean(s))
			}
		}
	}
	// Every source and embedded file of the module's packages in the build.
	cmd := exec.Command("go", "list", "-deps", "-json", g.pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			Dir        string
			GoFiles    []string
			EmbedFiles []string
			Module     *struct{ Main bool }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(p.GoFiles, p.EmbedFiles) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(needed) < 5 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if ign.excluded(f) {
			t.Errorf(".dockerignore excludes %s, which go build %s needs", f, g.pkg)
		}
	}
	for _, f := range []string{".git", "data"} {
		if !ign.excluded(f) {
			t.Errorf(".dockerignore should exclude %s (not part of the build)", f)
		}
	}
}

// TestDockerfile_go_build_flags_produce_a_static_stripped_consumer builds the
// consumer exactly as the Dockerfile does (same env words, same flags) and
// checks the binary suits distroless/static.
func TestDockerfile_go_build_flags_produce_a_static_stripped_consumer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the consumer binary; skipped with -short")
	}
	root := moduleRoot(t)
	g := goBuild(t, dockerfile(t))
	bin := filepath.Join(t.TempDir(), "consumer")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, g.withOutput(bin)...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), g.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", strings.Join(g.env, " "), strings.Join(cmd.Args, " "), err, out)
	}

	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked (has an ELF interpreter); distroless/static has no libc")
			}
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary has a symbol table; -ldflags=-s should strip it")
		}
	}

	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "run") {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}

	t.Run("healthcheck_exits_0_when_ready_and_1_otherwise", func(t *testing.T) {
		testHealthcheck(t, ctx, bin)
	})
}

// testHealthcheck runs the consumer service's compose healthcheck command
// against test servers. Docker reads exit 0 as healthy and 1 as unhealthy.
func testHealthcheck(t *testing.T, ctx context.Context, bin string) {
	out, err := exec.CommandContext(ctx, bin, "healthcheck", "--help").CombinedOutput()
	if err != nil && strings.Contains(string(out), `unknown command "healthcheck"`) {
		t.Skip("cmd/consumer has no healthcheck subcommand yet; the compose healthchecks need it")
	}
	cf := loadCompose(t)
	s := cf.service(t, consumerService)
	probe := healthcheckURL(t, s.Healthcheck.Test)
	pu, err := url.Parse(probe)
	if err != nil {
		t.Fatal(err)
	}
	u := pu.Path
	env := append(os.Environ(), environ(s.env(t))...)

	run := func(target string) int {
		argv := slices.Clone(s.Healthcheck.Test[2:]) // after CMD and the binary
		for i, a := range argv {
			if a == probe {
				argv[i] = target
			} else if a == "--url="+probe {
				argv[i] = "--url=" + target
			}
		}
		cmd := exec.CommandContext(ctx, bin, argv...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			t.Logf("%s %s: exit %d: %s", bin, strings.Join(argv, " "), ee.ExitCode(), out)
			return ee.ExitCode()
		default:
			t.Fatalf("%s: %v", bin, err)
			return -1
		}
	}
	server := func(status int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != u {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv
	}

	if code := run(server(http.StatusOK).URL + u); code != 0 {
		t.Errorf("ready (200): exit %d, want 0", code)
	}
	if code := run(server(http.StatusServiceUnavailable).URL + u); code != 1 {
		t.Errorf("not ready (503): exit %d, want 1", code)
	}
	down := server(http.StatusOK)
	addr := down.URL
	down.Close()
	if code := run(addr + u); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}
