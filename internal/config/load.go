package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/viper"
	yaml "go.yaml.in/yaml/v4"
)

// KeyError is a problem with one key's value. Its message always starts
// with "config: <key>: ".
type KeyError struct {
	// Key is the dotted key at fault.
	Key string
	// Err says what is wrong.
	Err error
}

// Error implements error.
func (e *KeyError) Error() string { return "config: " + e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *KeyError) Unwrap() error { return e.Err }

// Warning is a problem in the configuration's sources that does not stop a
// start. Today that is an MVREPAIR_* environment variable that names no key.
//
// Unknown keys in the file are errors, but unknown variables only warnings:
// the file belongs to this deployment of this version, while an environment
// is shared and outlives versions. A container spec or a Helm chart often
// sets variables for a newer (or older) version during a rolling upgrade or a
// rollback, and scripts around the service (deploy/create-topics.sh, test
// harnesses) read MVREPAIR_* variables of their own. Refusing to start on
// those would turn a harmless leftover into an outage; a WARN line with a
// "did you mean" still catches the typo.
type Warning struct {
	// Var is the environment variable, e.g. "MVREPAIR_KAFKA_BROKER".
	Var string
	// Suggestion is the known variable closest to Var, or "" when none is
	// close enough to be a likely typo.
	Suggestion string
}

// String is the warning as one line, e.g. `config: unknown environment
// variable MVREPAIR_KAFKA_BROKER (ignored); did you mean
// MVREPAIR_KAFKA_BROKERS?`.
func (w Warning) String() string {
	msg := "config: unknown environment variable " + w.Var + " (ignored)"
	if w.Suggestion != "" {
		msg += "; did you mean " + w.Suggestion + "?"
	}
	return msg
}

// Load is [LoadWithWarnings] without the warnings, for callers with no one
// to tell (tests, checks of a deployment's settings). Commands that start
// the service use LoadWithWarnings and log what it returns.
func Load(path string, env []string) (*Config, error) {
	cfg, _, err := LoadWithWarnings(path, env)
	return cfg, err
}

// LoadWithWarnings reads the configuration: the built-in defaults, overlaid
// by the YAML file at path when path is not empty, overlaid by the
// MVREPAIR_* variables found in env (in os.Environ form, "NAME=value"; a
// later duplicate wins, as with exec.Cmd). Pass os.Environ() in production
// and a literal slice in tests; a nil env overrides nothing.
//
// A key written in the file with an empty value (`max_events:`) keeps its
// default. Each key is bound to its variable explicitly, so env-only overrides work
// for every key (spf13/viper#761 does not apply). The returned Config has
// passed [Config.Validate]. Errors name the key at fault, and the file line
// when the file is at fault; when several keys are wrong they are all
// reported, joined with errors.Join.
//
// The warnings (one per MVREPAIR_* variable that is not a key, see
// [Warning]) are returned with a nil error and with a non-nil one alike: a
// misspelt variable is often why a value is missing or invalid.
func LoadWithWarnings(path string, env []string) (*Config, []Warning, error) {
	leaves := leafFields()
	vars := envMap(env)
	warnings := unknownVars(vars, leaves)

	v := viper.New()
	v.SetConfigType("yaml")
	for _, l := range leaves {
		v.SetDefault(l.Key, l.def)
	}

	var lines map[string]int // the file line of each key the file sets
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, warnings, fmt.Errorf("config: read config file: %w", err)
		}
		if lines, err = checkFileKeys(data, path, leaves); err != nil {
			return nil, warnings, err
		}
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, warnings, fmt.Errorf("config: parse %s: %w", path, err)
		}
	}

	sources := make([]string, len(leaves))
	for i, l := range leaves {
		switch val, ok := vars[l.Env]; {
		case ok:
			v.Set(l.Key, val)
			sources[i] = "from " + l.Env
		case path != "" && v.InConfig(l.Key):
			sources[i] = "from " + path
			if n := lines[l.Key]; n > 0 {
				sources[i] += fmt.Sprintf(" line %d", n)
			}
		default:
			sources[i] = "default"
		}
	}

	cfg := new(Config)
	rv := reflect.ValueOf(cfg).Elem()
	var errs []error
	for i, l := range leaves {
		raw := v.Get(l.Key)
		if _, isString := raw.(string); l.typ == reflect.TypeFor[Secret]() && !isString && raw != nil {
			// YAML reads an unquoted 0x1F, 1e3 or 2024-01-01 as a number or
			// a date: the secret would change, and the error would show it.
			errs = append(errs, &KeyError{Key: l.Key, Err: fmt.Errorf(
				"must be a string: quote it, or YAML reads it as a number, date or boolean and changes it (%s)", sources[i])})
			continue
		}
		val, err := convert(raw, l.typ, l.list)
		if err != nil {
			errs = append(errs, &KeyError{Key: l.Key, Err: fmt.Errorf("%w (%s)", err, sources[i])})
			continue
		}
		rv.FieldByIndex(l.index).Set(val)
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, warnings, withFileLines(err, path, lines, vars)
	}
	return cfg, warnings, nil
}

// withFileLines appends "(path line N)" to each [*KeyError] of err (one, or
// several joined) whose key's value came from the file, so that a value out
// of range is found as quickly as one of the wrong type. Other errors, and
// keys set by a variable or left at their default, are returned unchanged.
func withFileLines(err error, path string, lines map[string]int, vars map[string]string) error {
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	changed := false
	out := make([]error, len(parts))
	for i, e := range parts {
		out[i] = e
		ke, ok := e.(*KeyError)
		if !ok || lines[ke.Key] == 0 {
			continue
		}
		if _, fromEnv := vars[EnvName(ke.Key)]; fromEnv {
			continue
		}
		out[i] = &KeyError{Key: ke.Key, Err: fmt.Errorf("%w (%s line %d)", ke.Err, path, lines[ke.Key])}
		changed = true
	}
	if !changed {
		return err
	}
	return errors.Join(out...)
}

// envMap indexes the MVREPAIR_* entries of env by name; later entries win.
func envMap(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) {
			m[name] = val
		}
	}
	return m
}

// unknownVars returns a warning for every variable of vars that overrides
// no key, sorted by name, each with the closest known variable. Names
// compare case-insensitively for the suggestion (MVREPAIR_kafka_brokers
// suggests MVREPAIR_KAFKA_BROKERS), and only the part after the prefix
// counts towards the edits [suggest] allows.
func unknownVars(vars map[string]string, leaves []leaf) []Warning {
	known := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		known[l.Env] = true
	}
	var names []string
	for name := range vars {
		if !known[name] {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	suffixes := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		suffixes[strings.TrimPrefix(l.Env, EnvPrefix)] = true
	}
	out := make([]Warning, len(names))
	for i, name := range names {
		out[i] = Warning{Var: name}
		if s := suggest(strings.ToUpper(strings.TrimPrefix(name, EnvPrefix)), suffixes); s != "" {
			out[i].Suggestion = EnvPrefix + s
		}
	}
	return out
}

// checkFileKeys rejects keys of the YAML document that are not configuration
// keys (typo safety), keys given twice, sections given a scalar and keys
// given a mapping. Keys compare case-insensitively, as viper reads them. It
// returns the line of each key's value, for messages about values.
//
// The document is parsed with go.yaml.in/yaml/v4, not with the yaml.v3 that
// viper uses: yaml.v3 reports many syntax errors one line too early (it
// prints a 0-based line, go-yaml/yaml#205), and its errors are bare strings.
// v4's [yaml.LoadError] carries 1-based positions of the problem and of the
// construct it was found in.
func checkFileKeys(data []byte, path string, leaves []leaf) (map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s line %d: the top level must be a mapping of keys", path, root.Line)
	}

	isLeaf := make(map[string]bool, len(leaves))
	isSection := make(map[string]bool)
	for _, l := range leaves {
		isLeaf[l.Key] = true
		for i := range len(l.Key) {
			if l.Key[i] == '.' {
				isSection[l.Key[:i]] = true
			}
		}
	}

	lines := make(map[string]int)
	seen := make(map[string]int) // key or section → line of its first occurrence
	var errs []error
	var walk func(m *yaml.Node, prefix string)
	walk = func(m *yaml.Node, prefix string) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], resolve(m.Content[i+1])
			key := prefix + strings.ToLower(k.Value)
			if first, dup := seen[key]; dup && (isLeaf[key] || isSection[key]) {
				errs = append(errs, &KeyError{Key: key, Err: fmt.Errorf("given twice (%s lines %d and %d)", path, first, k.Line)})
				continue
			}
			seen[key] = k.Line
			switch {
			case isLeaf[key]:
				if val.Kind == yaml.MappingNode {
					errs = append(errs, &KeyError{Key: key, Err: fmt.Errorf("must be a single value, not a mapping (%s line %d)", path, val.Line)})
				}
				if val.Kind != yaml.ScalarNode || val.Tag != "!!null" {
					lines[key] = val.Line // an empty value keeps the default: no line
				}
			case isSection[key]:
				switch {
				case val.Kind == yaml.MappingNode:
					walk(val, key+".")
				case val.Kind == yaml.ScalarNode && val.Tag == "!!null":
					// An empty section: its keys keep their defaults.
				default:
					errs = append(errs, &KeyError{Key: key, Err: fmt.Errorf("must be a mapping of keys (%s line %d)", path, val.Line)})
				}
			default:
				msg := fmt.Sprintf("config: unknown key %q (%s line %d)", key, path, k.Line)
				if s := suggest(key, isLeaf, isSection); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				errs = append(errs, errors.New(msg))
			}
		}
	}
	walk(root, "")
	return lines, errors.Join(errs...)
}

// syntaxError describes a YAML parse error of the file at path by its
// position: "config: parse config.yaml: line 5, column 11: did not find
// expected ',' or ']' (while parsing a flow sequence started at line 4,
// column 12)". It wraps err.
func syntaxError(path string, err error) error {
	var le *yaml.LoadError
	if !errors.As(err, &le) || le.Mark.Line == 0 {
		return fmt.Errorf("config: parse %s: %w", path, err)
	}
	msg := strings.TrimPrefix(le.Message, "yaml: ")
	where := le.Mark.String()
	if le.ContextMsg != "" && le.ContextMark.Line > 0 && le.ContextMark != le.Mark {
		msg += fmt.Sprintf(" (%s started at %s)", le.ContextMsg, le.ContextMark)
	}
	return &parseError{msg: fmt.Sprintf("config: parse %s: %s: %s", path, where, msg), err: err}
}

// parseError is a syntax error said by its position, wrapping the parser's
// error (a [*yaml.LoadError]).
type parseError struct {
	msg string
	err error
}

func (e *parseError) Error() string { return e.msg }
func (e *parseError) Unwrap() error { return e.err }

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// suggest returns the known key closest to key, if it is close enough to be
// a likely typo.
func suggest(key string, sets ...map[string]bool) string {
	limit := min(3, max(1, len(key)/4)) // edits allowed: 1 for short keys, 3 at most
	best, bestDist := "", limit+1
	for _, set := range sets {
		for k := range set {
			if d := editDistance(key, k); d < bestDist || (d == bestDist && k < best) {
				best, bestDist = k, d
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
