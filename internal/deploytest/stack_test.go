package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mvrepair/mvrepair/internal/config"
)

// The compose files: the plaintext stack, and the override that secures it.
const (
	composeBase = "docker-compose.yml"
	composeSASL = "docker-compose.sasl.yml"
)

// generatedDir is where deploy/gen-certs.sh writes the TLS material and
// secrets the secured stack mounts (git- and docker-ignored: made on each
// machine). The tests stand a fresh gen-certs.sh output in for it.
const generatedDir = "deploy/tls"

// generated is that fresh output, made once for the package by TestMain
// with the flags the README gives (--for-containers); genErr says why it is
// missing. Set before any test runs and only read afterwards.
var generated struct {
	dir string
	err error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploytest-tls-")
	if err == nil {
		generated.dir = filepath.Join(dir, "tls")
		out, gerr := exec.Command("bash", filepath.Join("..", "..", "deploy", "gen-certs.sh"), "--for-containers", generated.dir).CombinedOutput()
		if gerr != nil {
			generated.err = fmt.Errorf("deploy/gen-certs.sh: %v\n%s", gerr, out)
		}
	} else {
		generated.err = err
	}
	code := m.Run()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// generatedOutput returns the gen-certs.sh output standing in for
// generatedDir; it skips the test when openssl is missing (the script needs
// it) and fails it when the script failed otherwise.
func generatedOutput(t *testing.T) string {
	t.Helper()
	if generated.err != nil {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skipf("no openssl for deploy/gen-certs.sh: %v", generated.err)
		}
		t.Fatal(generated.err)
	}
	return generated.dir
}

// secretRef is a service's secrets entry: "name" or {source, target, ...}.
type secretRef struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
	UID    string `yaml:"uid"`
	GID    string `yaml:"gid"`
	Mode   any    `yaml:"mode"`
}

func (r *secretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		r.Source = n.Value
		return nil
	}
	type plain secretRef
	return n.Decode((*plain)(r))
}

// target is where the secret appears in the container.
func (r secretRef) target() string {
	switch {
	case r.Target == "":
		return "/run/secrets/" + r.Source
	case strings.HasPrefix(r.Target, "/"):
		return r.Target
	default:
		return "/run/secrets/" + r.Target
	}
}

// secretDef is a top-level secrets entry (file-based: what Compose without
// Swarm supports).
type secretDef struct {
	File string `yaml:"file"`
}

// decodeCompose strictly parses one compose file of the repository.
func decodeCompose(t *testing.T, name string) *composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var cf composeFile
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &cf
}

// stacks returns every way the repository runs: docker-compose.yml alone,
// and merged with the docker-compose.sasl.yml override, as `docker compose
// -f docker-compose.yml -f docker-compose.sasl.yml` would merge them.
func stacks(t *testing.T) []*composeFile {
	t.Helper()
	return []*composeFile{loadCompose(t), loadSASLStack(t)}
}

// forEachStack runs f as a subtest per stack.
func forEachStack(t *testing.T, f func(t *testing.T, cf *composeFile)) {
	t.Helper()
	for _, cf := range stacks(t) {
		t.Run(cf.label, func(t *testing.T) { f(t, cf) })
	}
}

// loadSASLStack is docker-compose.yml merged with docker-compose.sasl.yml.
func loadSASLStack(t *testing.T) *composeFile {
	t.Helper()
	over := decodeCompose(t, composeSASL)
	for name := range over.Services {
		if loadCompose(t).Services[name] == nil {
			t.Errorf("%s changes service %q, which %s does not have", composeSASL, name, composeBase)
		}
	}
	cf := mergeCompose(loadCompose(t), over)
	cf.label = composeBase + "+" + composeSASL
	cf.link(t)
	return cf
}

// link gives each service its name and file (for env's path mapping).
func (cf *composeFile) link(t *testing.T) {
	t.Helper()
	for name, s := range cf.Services {
		s.name, s.file = name, cf
	}
}

// mergeCompose applies Compose's merge rules for the keys these files use:
// mappings merge key by key, command/entrypoint/healthcheck.test are
// replaced, volumes merge by target, secrets by target, ports and profiles
// are unioned, scalars are replaced.
func mergeCompose(base, over *composeFile) *composeFile {
	out := &composeFile{
		Name:       cmpOr(over.Name, base.Name),
		Services:   make(map[string]*composeService),
		Volumes:    mergeMaps(base.Volumes, over.Volumes),
		Secrets:    mergeMaps(base.Secrets, over.Secrets),
		Extensions: mergeMaps(base.Extensions, over.Extensions),
	}
	for name, s := range base.Services {
		c := *s
		out.Services[name] = &c
	}
	for name, o := range over.Services {
		b, ok := out.Services[name]
		if !ok {
			c := *o
			out.Services[name] = &c
			continue
		}
		m := *b
		m.Image = cmpOr(o.Image, b.Image)
		if o.Build != nil {
			m.Build = o.Build
		}
		m.Hostname = cmpOr(o.Hostname, b.Hostname)
		m.Profiles = unionStrings(b.Profiles, o.Profiles)
		m.DependsOn = mergeMaps(b.DependsOn, o.DependsOn)
		if o.Entrypoint != nil {
			m.Entrypoint = o.Entrypoint
		}
		if o.Command != nil {
			m.Command = o.Command
		}
		m.Environment = mergeMaps(b.Environment, o.Environment)
		m.Volumes = mergeByKey(b.Volumes, o.Volumes, func(spec string) string {
			parts := strings.Split(spec, ":")
			if len(parts) < 2 {
				return spec
			}
			return path.Clean(parts[1])
		})
		m.Secrets = mergeByKey(b.Secrets, o.Secrets, secretRef.target)
		m.Ports = unionStrings(b.Ports, o.Ports)
		if o.Healthcheck != nil {
			h := healthcheck{}
			if b.Healthcheck != nil {
				h = *b.Healthcheck
			}
			if o.Healthcheck.Test != nil {
				h.Test = o.Healthcheck.Test
			}
			h.Interval = cmpOr(o.Healthcheck.Interval, h.Interval)
			h.Timeout = cmpOr(o.Healthcheck.Timeout, h.Timeout)
			h.StartPeriod = cmpOr(o.Healthcheck.StartPeriod, h.StartPeriod)
			if o.Healthcheck.Retries != 0 {
				h.Retries = o.Healthcheck.Retries
			}
			m.Healthcheck = &h
		}
		m.Restart = cmpOr(o.Restart, b.Restart)
		m.StopSignal = cmpOr(o.StopSignal, b.StopSignal)
		m.StopGracePeriod = cmpOr(o.StopGracePeriod, b.StopGracePeriod)
		out.Services[name] = &m
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func mergeMaps[V any](base, over map[string]V) map[string]V {
	if base == nil && over == nil {
		return nil
	}
	out := make(map[string]V, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func mergeByKey[E any](base, over []E, key func(E) string) []E {
	var out []E
	for _, b := range base {
		if !slices.ContainsFunc(over, func(o E) bool { return key(o) == key(b) }) {
			out = append(out, b)
		}
	}
	return append(out, over...)
}

func unionStrings(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// hostSource maps a compose-relative source path to the host: the
// repository file, or the gen-certs.sh output for files of generatedDir.
func hostSource(t *testing.T, source string) string {
	t.Helper()
	rel := path.Clean(strings.TrimPrefix(filepath.ToSlash(source), "./"))
	if rest, ok := strings.CutPrefix(rel, generatedDir+"/"); ok {
		return filepath.Join(generatedOutput(t), filepath.FromSlash(rest))
	}
	if rel == generatedDir {
		return generatedOutput(t)
	}
	return filepath.Join(moduleRoot(t), filepath.FromSlash(rel))
}

// mount is one file or directory a service sees: a bind mount or a secret.
type mount struct {
	target, source string // container path, compose-relative host path
	readOnly       bool
	secret         string // the secret's name, for secrets
}

// mounts lists the service's bind mounts and file secrets.
func (s *composeService) mounts(t *testing.T) []mount {
	t.Helper()
	var out []mount
	for _, spec := range s.Volumes {
		if v := parseVolume(t, spec); v.isBind() {
			out = append(out, mount{target: path.Clean(v.target), source: v.source, readOnly: v.mode == "ro"})
		}
	}
	for _, r := range s.Secrets {
		def := s.file.Secrets[r.Source]
		if def == nil || def.File == "" {
			t.Errorf("service %s uses secret %q, which has no top-level file: definition", s.name, r.Source)
			continue
		}
		out = append(out, mount{target: r.target(), source: def.File, readOnly: true, secret: r.Source})
	}
	return out
}

// hostPath resolves a container path of the service through its mounts; ok
// is false when nothing is mounted there.
func (s *composeService) hostPath(t *testing.T, containerPath string) (m mount, host string, ok bool) {
	t.Helper()
	p := path.Clean(containerPath)
	for _, m := range s.mounts(t) {
		if p == m.target {
			return m, hostSource(t, m.source), true
		}
		if rel, ok := strings.CutPrefix(p, m.target+"/"); ok {
			return m, filepath.Join(hostSource(t, m.source), filepath.FromSlash(rel)), true
		}
	}
	return mount{}, "", false
}

// fileKeys are the config keys whose values are paths of files to read.
func fileKeys() map[string]string {
	out := make(map[string]string)
	for _, k := range config.Keys() {
		if strings.HasSuffix(k.Key, "_file") {
			out[k.Env] = k.Key
		}
	}
	return out
}

// env returns the service's environment as the process in the container
// sees it, with the paths of file-valued MVREPAIR_* settings (ca_file,
// password_file ...) mapped through the service's mounts to the host, so
// that config.Load can read them here. A path nothing is mounted at is a
// test error. Every value must be a YAML string (Compose turns unquoted
// numbers and booleans into strings its own way, so the files quote them).
func (s *composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := s.containerEnv(t)
	files := fileKeys()
	for k, v := range out {
		key, ok := files[k]
		if !ok || v == "" {
			continue
		}
		_, host, ok := s.hostPath(t, v)
		if !ok {
			t.Errorf("service %s: %s=%s (%s), but nothing is mounted there", s.name, k, v, key)
			continue
		}
		out[k] = host
	}
	return out
}

// containerEnv is the service's environment as written.
func (s *composeService) containerEnv(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		str, ok := v.(string)
		if !ok {
			t.Errorf("service %s: environment %s: value %v (%T) must be a quoted string", s.name, k, v, v)
			continue
		}
		out[k] = str
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
