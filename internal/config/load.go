package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
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

// Load reads the configuration: the built-in defaults, overlaid by the YAML
// file at path when path is not empty, overlaid by the MVREPAIR_* variables
// found in env (in os.Environ form, "NAME=value"; a later duplicate wins,
// as with exec.Cmd). Pass os.Environ() in production and a literal slice in
// tests; a nil env overrides nothing.
//
// A key written in the file with an empty value (`max_events:`) keeps its
// default. Each key is bound to its variable explicitly, so env-only overrides work
// for every key (spf13/viper#761 does not apply). The returned Config has
// passed [Config.Validate]. Errors name the key at fault; when several keys
// are wrong they are all reported, joined with errors.Join.
func Load(path string, env []string) (*Config, error) {
	leaves := leafFields()

	v := viper.New()
	v.SetConfigType("yaml")
	for _, l := range leaves {
		v.SetDefault(l.Key, l.def)
	}

	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read config file: %w", err)
		}
		if err := checkFileKeys(data, path, leaves); err != nil {
			return nil, err
		}
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: parse %s: %w", path, err)
		}
	}

	vars := envMap(env)
	sources := make([]string, len(leaves))
	for i, l := range leaves {
		switch val, ok := vars[l.Env]; {
		case ok:
			v.Set(l.Key, val)
			sources[i] = "from " + l.Env
		case path != "" && v.InConfig(l.Key):
			sources[i] = "from " + path
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
		return nil, errors.Join(errs...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
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

// checkFileKeys rejects keys of the YAML document that are not configuration
// keys (typo safety), and sections given a scalar or keys given a mapping.
// Keys compare case-insensitively, as viper reads them.
func checkFileKeys(data []byte, path string, leaves []leaf) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: parse %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s: the top level must be a mapping of keys (line %d)", path, root.Line)
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

	var errs []error
	var walk func(m *yaml.Node, prefix string)
	walk = func(m *yaml.Node, prefix string) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], resolve(m.Content[i+1])
			key := prefix + strings.ToLower(k.Value)
			switch {
			case isLeaf[key]:
				if val.Kind == yaml.MappingNode {
					errs = append(errs, &KeyError{Key: key, Err: fmt.Errorf("must be a single value, not a mapping (%s line %d)", path, val.Line)})
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
	return errors.Join(errs...)
}

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
