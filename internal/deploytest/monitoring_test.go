package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mvrepair/mvrepair/internal/metrics"
)

// The monitoring files (README "Alerts and dashboard").
const (
	alertsFile     = "deploy/prometheus/alerts.yml"
	alertTestsFile = "deploy/prometheus/alerts_test.yml"
	dashboardFile  = "deploy/grafana/mvrepair.json"
)

// ruleFile is a Prometheus rule file. Decoding is strict: a misspelt key is
// an error here, as it is for Prometheus.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

func loadRules(t *testing.T) *ruleFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), alertsFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return &rf
}

// selector is one reference to a series in a PromQL expression: its name
// and the label names its matchers use.
type selector struct {
	name   string
	labels []string
}

var (
	identRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// matcherRE is one label matcher: name, operator, quoted value.
	matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" + `)\s*,?`)
)

// mvrepairSelectors returns the mvrepair_* series an expression selects, with
// the label names of their matchers. It is a lexical scan, not a parser
// (promtool checks the syntax): string literals are skipped, and an
// identifier followed by "{" is read with its matchers.
func mvrepairSelectors(expr string) ([]selector, error) {
	var out []selector
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := i + 1
			for end < len(expr) && expr[end] != c {
				if expr[end] == '\\' && c != '`' {
					end++
				}
				end++
			}
			if end >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i = end + 1
		case c == '#': // a comment runs to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case identRE.MatchString(expr[i:]) && (i == 0 || !isIdentByte(expr[i-1])):
			id := identRE.FindString(expr[i:])
			i += len(id)
			if !strings.HasPrefix(id, metrics.Namespace+"_") {
				continue
			}
			sel := selector{name: id}
			rest := strings.TrimLeft(expr[i:], " \t\n")
			if strings.HasPrefix(rest, "{") {
				i = len(expr) - len(rest) + 1
				for {
					tail := expr[i:]
					if t := strings.TrimLeft(tail, " \t\n"); strings.HasPrefix(t, "}") {
						i += len(tail) - len(t) + 1
						break
					}
					m := matcherRE.FindStringSubmatch(tail)
					if m == nil {
						return nil, fmt.Errorf("cannot read the matchers of %s at %q", id, tail)
					}
					sel.labels = append(sel.labels, m[1])
					i += len(m[0])
				}
			}
			out = append(out, sel)
		default:
			i++
		}
	}
	return out, nil
}

func isIdentByte(b byte) bool {
	return b == '_' || b == ':' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// seriesChecker checks series references against the families the service
// registers (metrics.Families): a histogram's series are its _bucket, _sum
// and _count; matchers may use the family's labels, "le" on _bucket, and
// the target labels job and instance.
type seriesChecker struct {
	fams map[string]metrics.Family
	used map[string]bool // families referenced so far
}

func newSeriesChecker() *seriesChecker {
	c := &seriesChecker{fams: map[string]metrics.Family{}, used: map[string]bool{}}
	for _, f := range metrics.Families() {
		c.fams[f.Name] = f
	}
	return c
}

// check returns an error naming every reference of expr to a series or
// label the service does not export.
func (c *seriesChecker) check(expr string) error {
	sels, err := mvrepairSelectors(expr)
	if err != nil {
		return err
	}
	var errs []string
	for _, s := range sels {
		fam, labels, ok := c.family(s.name)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s is not a series mvrepair registers (internal/metrics)", s.name))
			continue
		}
		c.used[fam.Name] = true
		for _, l := range s.labels {
			if !slices.Contains(labels, l) {
				errs = append(errs, fmt.Sprintf("%s has no label %q (labels: %s)", s.name, l, strings.Join(labels, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// family resolves a series name to its family and the labels it carries.
func (c *seriesChecker) family(name string) (metrics.Family, []string, bool) {
	labels := func(f metrics.Family, extra ...string) []string {
		return append(append([]string{"job", "instance"}, f.Labels...), extra...)
	}
	if f, ok := c.fams[name]; ok && f.Type != "histogram" {
		return f, labels(f), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if f, found := c.fams[base]; ok && found && f.Type == "histogram" {
			if suffix == "_bucket" {
				return f, labels(f, "le"), true
			}
			return f, labels(f), true
		}
	}
	return metrics.Family{}, nil, false
}

func TestSeriesChecker_flags_unknown_series_labels_and_histogram_suffixes(t *testing.T) {
	c := newSeriesChecker()
	good := []string{
		`sum by (reason) (rate(mvrepair_dlq_total{job="x", reason!="record_too_large"}[5m]))`,
		`histogram_quantile(0.99, sum by (le) (rate(mvrepair_batch_duration_seconds_bucket{le!="+Inf"}[5m])))`,
		`mvrepair_batch_size_sum / mvrepair_batch_size_count`,
		`up{job=~"mvrepair_nope_total"} == 0 # mvrepair_in_a_comment`,
		`mvrepair_stalled {component = "writer", instance=~'a.*'}`,
	}
	for _, expr := range good {
		if err := c.check(expr); err != nil {
			t.Errorf("check(%q) = %v, want no error", expr, err)
		}
	}
	bad := map[string]string{
		`rate(mvrepair_nope_total[5m])`:                    "mvrepair_nope_total is not a series",
		`mvrepair_dlq_total{reasn="x"}`:                    `has no label "reasn"`,
		`mvrepair_role_bucket`:                             "mvrepair_role_bucket is not a series",
		`mvrepair_batch_size`:                              "mvrepair_batch_size is not a series", // a histogram has no plain series
		`mvrepair_batch_size_sum{le="1"}`:                  `has no label "le"`,
		`1 + mvrepair_consumer_lag{topic="a",partiton=""}`: `has no label "partiton"`,
		`mvrepair_role{job="x`:                             "cannot read the matchers",
		`mvrepair_role + "x`:                               "unterminated string",
	}
	for expr, want := range bad {
		if err := c.check(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check(%q) = %v, want an error containing %q", expr, err, want)
		}
	}
}

// readmeAnchors returns the GitHub anchors of the README's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

var severities = []string{"critical", "warning"}

func TestAlerts_every_alert_has_a_severity_summary_description_and_a_README_runbook(t *testing.T) {
	rf := loadRules(t)
	anchors := readmeAnchors(t)
	seen := map[string]bool{}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "Mvrepair") {
				t.Errorf("alert %s: names start with Mvrepair, so that routes and silences can match them", r.Alert)
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("alert %s: severity %q, want one of %v", r.Alert, r.Labels["severity"], severities)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s", r.Alert, a)
				}
			}
			if d := r.Annotations["description"]; !strings.Contains(d, "consumer ") && !strings.Contains(d, "README") {
				t.Errorf("alert %s: the description says what to do with neither a consumer command nor a README section", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "README.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("alert %s: runbook %q is not README.md#<a heading of the README>", r.Alert, r.Annotations["runbook"])
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("%s holds %d alerts", alertsFile, n)
	}
}

func TestAlerts_expressions_use_only_series_and_labels_the_service_registers(t *testing.T) {
	c := newSeriesChecker()
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if err := c.check(r.Expr); err != nil {
				t.Errorf("%s: %v", r.Alert+r.Record, err)
			}
		}
	}
	// The failure modes each have a rule.
	for _, name := range []string{"mvrepair_stalled", "mvrepair_ready", "mvrepair_consumer_lag", "mvrepair_dlq_total",
		"mvrepair_follower_lag_records", "mvrepair_forks_total", "mvrepair_table_partition_moves_total",
		"mvrepair_checkpoint_timestamp_seconds", "mvrepair_checkpoint_failures_total", "mvrepair_role"} {
		if !c.used[name] {
			t.Errorf("no alert uses %s", name)
		}
	}
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels returns the panels, with those inside rows.
func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// expressions returns every PromQL expression of the dashboard (targets,
// annotations, variable queries) by where it is.
func (d *dashboard) expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range d.allPanels() {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out[fmt.Sprintf("annotation %q", a.Name)] = a.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		// label_values(metric{...}, label) selects metric.
		inner := strings.TrimSuffix(strings.TrimPrefix(q.Query, "label_values("), ")")
		if i := strings.LastIndex(inner, ","); i >= 0 {
			inner = inner[:i]
		}
		out["variable "+v.Name] = inner
	}
	return out
}

// grafanaVars replaces the dashboard's variables with values PromQL parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", "mvrepair", "$instance", ".+")

func TestDashboard_queries_use_only_registered_series_and_show_every_one(t *testing.T) {
	d := loadDashboard(t)
	c := newSeriesChecker()
	for where, expr := range d.expressions(t) {
		if err := c.check(grafanaVars.Replace(expr)); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	for _, f := range metrics.Families() {
		if !c.used[f.Name] {
			t.Errorf("the dashboard shows no panel of %s (%s)", f.Name, f.Help)
		}
	}
}

func TestDashboard_uses_a_datasource_variable_and_no_hard_coded_datasource_UID(t *testing.T) {
	d := loadDashboard(t)
	hasVar := false
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
			hasVar = true
		}
	}
	if !hasVar {
		t.Fatal(`the dashboard has no variable "datasource" of type datasource (query "prometheus")`)
	}
	check := func(where string, ds *datasourceRef) {
		if ds == nil || ds.UID != "${datasource}" || ds.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want {prometheus ${datasource}}", where, ds)
		}
	}
	ids := map[int]bool{}
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		check(fmt.Sprintf("panel %q", p.Title), p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			check(fmt.Sprintf("panel %q target %d", p.Title, i), tg.Datasource)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			check("variable "+v.Name, v.Datasource)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			check("annotation "+a.Name, a.Datasource)
		}
	}
}

// promtool returns the path of promtool, or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; .ci/run installs it): the rules' syntax and unit tests are not checked here")
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlerts_promtool_checks_the_rules_and_passes_their_unit_tests(t *testing.T) {
	bin := promtool(t)
	root := moduleRoot(t)
	runPromtool(t, bin, "check", "rules", filepath.Join(root, alertsFile))

	// promtool compares annotations verbatim: the unit tests give only the
	// summaries, so they run against a copy of the rules holding only those.
	rf := loadRules(t)
	for gi := range rf.Groups {
		for ri := range rf.Groups[gi].Rules {
			r := &rf.Groups[gi].Rules[ri]
			if r.Alert != "" {
				r.Annotations = map[string]string{"summary": r.Annotations["summary"]}
			}
		}
	}
	dir := t.TempDir()
	stripped, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(root, alertTestsFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"alerts.yml": stripped, "alerts_test.yml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runPromtool(t, bin, "test", "rules", filepath.Join(dir, "alerts_test.yml"))
}

func TestDashboard_promtool_parses_every_query(t *testing.T) {
	bin := promtool(t)
	var rf ruleFile
	rf.Groups = append(rf.Groups, struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}{Name: "dashboard"})
	exprs := loadDashboard(t).expressions(t)
	for _, where := range slices.Sorted(maps.Keys(exprs)) {
		rf.Groups[0].Rules = append(rf.Groups[0].Rules, rule{
			Record: fmt.Sprintf("dashboard:query:%d", len(rf.Groups[0].Rules)),
			Expr:   grafanaVars.Replace(exprs[where]),
		})
	}
	data, err := yaml.Marshal(&rf)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "check", "rules", file)
}
