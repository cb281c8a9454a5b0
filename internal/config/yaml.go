package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// yamlHeader opens the rendered defaults.
const yamlHeader = `# mvrepair configuration: every key with its built-in default.
#
# Any key can be overridden by an environment variable MVREPAIR_<KEY>, the key
# upper-cased with dots replaced by underscores, e.g.
#   MVREPAIR_KAFKA_BROKERS=a:9092,b:9092  MVREPAIR_KAFKA_TOPICS_EDIT_LOG=mv-edit-log
# Unknown keys are an error. Durations take a unit: "20ms", "10s", "1m".
#
# Generated from internal/config (Default and the field descriptions); after
# changing them run: go test ./internal/config -run TestConfigYAML -update
`

// DefaultYAML renders the built-in defaults as a commented YAML document:
// every key in [Keys] order, each preceded by its description. The
// repository's config.yaml is exactly this text.
func DefaultYAML() []byte {
	var b bytes.Buffer
	b.WriteString(yamlHeader)
	var open []string // the sections the previous key was in
	for _, l := range leafFields() {
		segs := strings.Split(l.Key, ".")
		sections, name := segs[:len(segs)-1], segs[len(segs)-1]
		common := 0
		for common < len(open) && common < len(sections) && open[common] == sections[common] {
			common++
		}
		if common == 0 {
			b.WriteByte('\n') // a blank line between top-level entries
		}
		for i := common; i < len(sections); i++ {
			fmt.Fprintf(&b, "%s%s:\n", indent(i), sections[i])
		}
		open = sections
		depth := len(sections)
		fmt.Fprintf(&b, "%s# %s\n", indent(depth), l.Description)
		fmt.Fprintf(&b, "%s%s: %s\n", indent(depth), name, yamlScalar(l))
	}
	return b.Bytes()
}

func indent(depth int) string { return strings.Repeat("  ", depth) }

// yamlScalar spells a default value as YAML, quoting strings only when YAML
// would otherwise read them as something else.
func yamlScalar(l leaf) string {
	if l.typ.Kind() != reflect.String || isDuration(l.typ) {
		return l.Default
	}
	s := l.Default
	if s != "" && strings.ContainsRune(":-?[]{},#&*!|>'\"%@`", rune(s[0])) {
		// Valid plain YAML 1.2 in some cases (":8080"), but not to every
		// reader: quote. Go quoting is valid YAML for these ASCII values.
		return strconv.Quote(s)
	}
	out, err := yaml.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(string(out), "\n")
}
