package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// KeyInfo describes one configuration key.
type KeyInfo struct {
	// Key is the dotted path, e.g. "kafka.topics.edit_log".
	Key string
	// Default is the built-in default as it is written in config.yaml
	// (durations like "20ms", an empty string for an empty default).
	Default string
	// Env is the environment variable that overrides the key, e.g.
	// "MVREPAIR_KAFKA_TOPICS_EDIT_LOG".
	Env string
	// Description is a one-line explanation.
	Description string
}

// Keys lists every configuration key in config.yaml order, with its default,
// its environment variable and its description.
func Keys() []KeyInfo {
	leaves := leafFields()
	out := make([]KeyInfo, len(leaves))
	for i, l := range leaves {
		out[i] = l.KeyInfo
	}
	return out
}

// EnvName returns the environment variable that overrides key:
// [EnvPrefix] followed by the key upper-cased with dots as underscores.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// leaf is one key of the Config struct.
type leaf struct {
	KeyInfo
	index []int        // reflect field index path from Config
	typ   reflect.Type // the field's type
	list  bool         // a YAML sequence is accepted and joined with commas
	def   any          // the default value, typed
}

// isDuration reports whether t is time.Duration.
func isDuration(t reflect.Type) bool { return t == reflect.TypeFor[time.Duration]() }

// leafFields walks Config depth-first in field order.
func leafFields() []leaf {
	def := reflect.ValueOf(Default())
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("key")
			if name == "" {
				panic(fmt.Sprintf("config: field %s.%s has no key tag", t.Name(), f.Name))
			}
			key := prefix + name
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".", idx)
				continue
			}
			dv := def.FieldByIndex(idx)
			defVal := dv.Interface()
			if dv.Kind() == reflect.String {
				defVal = dv.String() // a plain string for viper (Secret is a string type)
			}
			out = append(out, leaf{
				KeyInfo: KeyInfo{
					Key:         key,
					Default:     formatValue(dv),
					Env:         EnvName(key),
					Description: f.Tag.Get("help"),
				},
				index: idx,
				typ:   f.Type,
				list:  f.Tag.Get("list") == "true",
				def:   defVal,
			})
		}
	}
	walk(def.Type(), "", nil)
	return out
}

// formatValue renders a leaf value the way config.yaml spells it.
func formatValue(v reflect.Value) string {
	if isDuration(v.Type()) {
		return formatDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	default:
		panic(fmt.Sprintf("config: unsupported field type %s", v.Type()))
	}
}

// formatDuration is time.Duration.String without the zero tails ("1m", not
// "1m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// convert turns a raw value (from viper: a YAML scalar or sequence, a string
// from the environment, or the typed default) into a value of type t.
func convert(raw any, t reflect.Type, list bool) (reflect.Value, error) {
	if isDuration(t) {
		d, err := toDuration(raw)
		return reflect.ValueOf(d), err
	}
	switch t.Kind() {
	case reflect.String:
		s, err := toString(raw, list)
		return reflect.ValueOf(s).Convert(t), err
	case reflect.Bool:
		b, err := toBool(raw)
		return reflect.ValueOf(b).Convert(t), err
	case reflect.Int, reflect.Int64:
		n, err := toInt(raw)
		if err == nil && t.Kind() == reflect.Int && (n < math.MinInt || n > math.MaxInt) {
			err = fmt.Errorf("%d is out of range", n)
		}
		return reflect.ValueOf(n).Convert(t), err
	case reflect.Float64:
		f, err := toFloat(raw)
		return reflect.ValueOf(f).Convert(t), err
	default:
		return reflect.Value{}, fmt.Errorf("unsupported field type %s", t)
	}
}

func toDuration(raw any) (time.Duration, error) {
	switch x := raw.(type) {
	case time.Duration:
		return x, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want a number with a unit, e.g. \"20ms\", \"10s\")", x)
		}
		return d, nil
	case int, int64, uint64, float64:
		if isZero(x) {
			return 0, nil
		}
		return 0, fmt.Errorf("invalid duration %v: a unit is required, e.g. \"%vms\" or \"%vs\"", x, x, x)
	default:
		return 0, fmt.Errorf("invalid duration %s (want a string like \"20ms\")", describe(raw))
	}
}

func toString(raw any, list bool) (string, error) {
	switch x := raw.(type) {
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	case []any:
		if !list {
			return "", fmt.Errorf("must be a string, not a list")
		}
		parts := make([]string, len(x))
		for i, item := range x {
			s, err := toString(item, false)
			if err != nil {
				return "", fmt.Errorf("item %d: %w", i, err)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("must be a string (got %s)", describe(raw))
	}
}

func toBool(raw any) (bool, error) {
	switch x := raw.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("invalid boolean %q (want true or false)", x)
		}
		return b, nil
	default:
		return false, fmt.Errorf("invalid boolean %s (want true or false)", describe(raw))
	}
}

func toInt(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is out of range", x)
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid integer %v", x)
		}
		return int64(x), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid integer %q", x)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("invalid integer %s", describe(raw))
	}
}

func toFloat(raw any) (float64, error) {
	var f float64
	switch x := raw.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case string:
		v, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("invalid number %q", x)
		}
		f = v
	default:
		return 0, fmt.Errorf("invalid number %s", describe(raw))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid number %v", f)
	}
	return f, nil
}

func isZero(x any) bool {
	switch n := x.(type) {
	case int:
		return n == 0
	case int64:
		return n == 0
	case uint64:
		return n == 0
	case float64:
		return n == 0
	}
	return false
}

// describe names a raw value's shape for error messages.
func describe(raw any) string {
	switch raw.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", raw)
	}
}
