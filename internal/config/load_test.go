package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"

	"github.com/mvrepair/mvrepair/internal/config"
)

func TestLoadWithWarnings_unknown_MVREPAIR_variables_warn_with_the_closest_name(t *testing.T) {
	cfg, warnings, err := config.LoadWithWarnings("", []string{
		"MVREPAIR_KAFKA_BROKER=k1:9092", // one letter short
		"MVREPAIR_kafka_group_id=lower", // names are case-sensitive
		"MVREPAIR_TOTALLY_UNRELATED=1",  // nothing close
		"MVREPAIR_KAFKA_GROUP_ID=g",     // a real key: no warning
		"PATH=/bin",                     // not ours: no warning
		"MVREPAIR_KAFKA_TOPICS_EDITLOG=j",
	})
	if err != nil {
		t.Fatalf("an unknown variable must not fail the load: %v", err)
	}
	want := []config.Warning{
		{Var: "MVREPAIR_KAFKA_BROKER", Suggestion: "MVREPAIR_KAFKA_BROKERS"},
		{Var: "MVREPAIR_KAFKA_TOPICS_EDITLOG", Suggestion: "MVREPAIR_KAFKA_TOPICS_EDIT_LOG"},
		{Var: "MVREPAIR_TOTALLY_UNRELATED"},
		{Var: "MVREPAIR_kafka_group_id", Suggestion: "MVREPAIR_KAFKA_GROUP_ID"},
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Fatalf("warnings = %+v\nwant %+v", warnings, want)
	}
	if cfg.Kafka.GroupID != "g" || !cfg.Embedded() || cfg.Kafka.Topics.EditLog != config.Default().Kafka.Topics.EditLog {
		t.Errorf("the unknown variables changed the config, or the known one was lost: %+v", cfg.Kafka)
	}
	if got := warnings[0].String(); got != "config: unknown environment variable MVREPAIR_KAFKA_BROKER (ignored); did you mean MVREPAIR_KAFKA_BROKERS?" {
		t.Errorf("String() = %q", got)
	}
	if got := warnings[2].String(); got != "config: unknown environment variable MVREPAIR_TOTALLY_UNRELATED (ignored)" {
		t.Errorf("String() without a suggestion = %q", got)
	}
}

func TestLoadWithWarnings_every_key_variable_is_known(t *testing.T) {
	var env []string
	for _, k := range config.Keys() {
		env = append(env, k.Env+"="+k.Default)
	}
	_, warnings, err := config.LoadWithWarnings("", env)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings for key variables: %v", warnings)
	}
}

func TestLoadWithWarnings_returns_the_warnings_with_an_error_too(t *testing.T) {
	// The typo is why the value is wrong: the operator needs both.
	_, warnings, err := config.LoadWithWarnings("", []string{
		"MVREPAIR_KAFKA_SESION_TIMEOUT=30s",
		"MVREPAIR_KAFKA_HEARTBEAT_INTERVAL=15s",
	})
	wantErr(t, err, "config: kafka.heartbeat_interval: must be less than kafka.session_timeout")
	if len(warnings) != 1 || warnings[0].Suggestion != "MVREPAIR_KAFKA_SESSION_TIMEOUT" {
		t.Fatalf("warnings = %+v", warnings)
	}
}

// The YAML parser's own messages (gopkg.in/yaml.v3) put these errors one
// line too early ("line 3" for the bracket opened on line 4 and the
// mistake found on line 5).
func TestLoad_yaml_syntax_error_names_the_file_line_of_the_problem(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unclosed flow sequence",
			"log:\n  level: info\nkafka:\n  brokers: [a:9092\n  group_id: x\n",
			[]string{"line 5, column 11: did not find expected ',' or ']'", "(while parsing a flow sequence started at line 4, column 12)"}},
		{"sequence item in a mapping",
			"log:\n  level: info\nkafka:\n  group_id: x\n- a\n",
			[]string{"line 5, column 1: did not find expected key"}},
		{"unclosed flow sequence on the first line",
			"kafka: [unclosed\n",
			[]string{"line 2, column 1: ", "started at line 1, column 8"}},
		{"tab indentation",
			"log:\n  level: info\nkafka:\n\tgroup_id: x\n",
			[]string{"line 4, column 1: found character that cannot start any token"}},
		{"over-indented key",
			"kafka:\n  group_id: x\n   client_id: y\n",
			[]string{"line 3, column 13: mapping values are not allowed in this context"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			_, err := config.Load(path, nil)
			wantErr(t, err, append([]string{"config: parse " + path + ": "}, tt.want...)...)
			var le *yaml.LoadError
			if !errors.As(err, &le) {
				t.Errorf("error %v does not wrap the parser's *yaml.LoadError", err)
			}
			if strings.Contains(err.Error(), path+": yaml: ") {
				t.Errorf("error repeats the parser's own line: %v", err)
			}
		})
	}
}

func TestLoad_value_of_the_wrong_type_names_its_file_line(t *testing.T) {
	path := writeFile(t, "log:\n  level: info\n\nbatch:\n  max_wait: 5ms\n  max_events: abc\nretry:\n  multiplier: [1, 2]\n")
	_, err := config.Load(path, nil)
	wantErr(t, err,
		`config: batch.max_events: invalid integer "abc" (from `+path+` line 6)`,
		`config: retry.multiplier: invalid number a list (from `+path+` line 8)`)
}

func TestLoad_value_out_of_range_in_the_file_names_its_line(t *testing.T) {
	path := writeFile(t, "# a comment\nbatch:\n\n  max_events: 0\n")
	_, err := config.Load(path, nil)
	wantErr(t, err, "config: batch.max_events: must be between 1 and 100000 (got 0) ("+path+" line 4)")
	var ke *config.KeyError
	if !errors.As(err, &ke) || ke.Key != "batch.max_events" {
		t.Errorf("errors.As(KeyError) = %+v", ke)
	}

	// The same value from a variable keeps its message: the file is not at fault.
	_, err = config.Load(path, []string{"MVREPAIR_BATCH_MAX_EVENTS=0"})
	if err == nil || err.Error() != "config: batch.max_events: must be between 1 and 100000 (got 0)" {
		t.Fatalf("Load error = %v", err)
	}
}

func TestLoad_key_given_twice_in_the_file_is_an_error_naming_both_lines(t *testing.T) {
	path := writeFile(t, "kafka:\n  group_id: a\n  client_id: c\n  GROUP_ID: b\n")
	_, err := config.Load(path, nil)
	wantErr(t, err, "config: kafka.group_id: given twice ("+path+" lines 2 and 4)")
}
