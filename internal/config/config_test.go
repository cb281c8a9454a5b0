package config_test

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mvrepair/mvrepair/internal/config"
)

// repoConfigYAML is the repository's config.yaml, relative to this package.
const repoConfigYAML = "../../config.yaml"

var update = flag.Bool("update", false, "rewrite the repository's config.yaml from DefaultYAML")

// writeFile writes content to a temporary config file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string, env []string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// wantErr asserts that err is non-nil and its message contains every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestLoad_without_a_file_returns_the_builtin_defaults(t *testing.T) {
	cfg := mustLoad(t, "", nil)
	if want := config.Default(); !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("Load(\"\") = %+v\nwant %+v", *cfg, want)
	}
}

func TestLoad_file_overrides_only_the_keys_it_names(t *testing.T) {
	path := writeFile(t, `
kafka:
  group_id: repair-prod
  topics:
    edit_log: journal
batch:
  max_events: 50
  max_wait: 5ms
`)
	cfg := mustLoad(t, path, nil)
	want := config.Default()
	want.Kafka.GroupID = "repair-prod"
	want.Kafka.Topics.EditLog = "journal"
	want.Batch.MaxEvents = 50
	want.Batch.MaxWait = 5 * time.Millisecond
	if !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("got %+v\nwant %+v", *cfg, want)
	}
}

func TestLoad_empty_file_returns_the_builtin_defaults(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "comment only": "# nothing\n", "null": "~\n"} {
		t.Run(name, func(t *testing.T) {
			cfg := mustLoad(t, writeFile(t, content), nil)
			if !reflect.DeepEqual(*cfg, config.Default()) {
				t.Fatalf("got %+v, want the defaults", *cfg)
			}
		})
	}
}

func TestLoad_env_overrides_the_file(t *testing.T) {
	path := writeFile(t, "kafka:\n  group_id: from-file\n  client_id: from-file\n")
	cfg := mustLoad(t, path, []string{"MVREPAIR_KAFKA_GROUP_ID=from-env"})
	if cfg.Kafka.GroupID != "from-env" {
		t.Errorf("kafka.group_id = %q, want the env value", cfg.Kafka.GroupID)
	}
	if cfg.Kafka.ClientID != "from-file" {
		t.Errorf("kafka.client_id = %q, want the file value", cfg.Kafka.ClientID)
	}
}

func TestLoad_env_alone_overrides_keys_the_file_does_not_mention(t *testing.T) {
	// spf13/viper#761: AutomaticEnv ignores keys viper has not seen. Here
	// the file names no kafka.writer key at all.
	path := writeFile(t, "log:\n  level: debug\n")
	cfg := mustLoad(t, path, []string{
		"MVREPAIR_KAFKA_WRITER_BATCH_TIMEOUT=7ms",
		"MVREPAIR_KAFKA_TOPICS_EDIT_LOG=journal",
		"MVREPAIR_STATE_DIR=/var/lib/mvrepair",
		"MVREPAIR_HTTP_ADDR=127.0.0.1:0",
		"MVREPAIR_DRY_RUN=true",
	})
	if cfg.Kafka.Writer.BatchTimeout != 7*time.Millisecond {
		t.Errorf("kafka.writer.batch_timeout = %v, want 7ms", cfg.Kafka.Writer.BatchTimeout)
	}
	if cfg.Kafka.Topics.EditLog != "journal" || cfg.State.Dir != "/var/lib/mvrepair" ||
		cfg.HTTP.Addr != "127.0.0.1:0" || !cfg.DryRun || cfg.Log.Level != "debug" {
		t.Errorf("env overrides not applied: %+v", *cfg)
	}
}

func TestLoad_env_brokers_list_gives_each_broker(t *testing.T) {
	cfg := mustLoad(t, "", []string{"MVREPAIR_KAFKA_BROKERS=a:9092,b:9092"})
	if cfg.Embedded() {
		t.Error("Embedded() = true for an explicit broker list")
	}
	if got, want := cfg.BrokerList(), []string{"a:9092", "b:9092"}; !slices.Equal(got, want) {
		t.Errorf("BrokerList() = %q, want %q", got, want)
	}
}

func TestLoad_yaml_broker_sequence_is_accepted_as_a_list(t *testing.T) {
	cfg := mustLoad(t, writeFile(t, "kafka:\n  brokers: [a:9092, \"b:9093\"]\n"), nil)
	if got, want := cfg.BrokerList(), []string{"a:9092", "b:9093"}; !slices.Equal(got, want) {
		t.Errorf("BrokerList() = %q, want %q", got, want)
	}
}

func TestLoad_env_later_duplicate_wins_and_unrelated_vars_are_ignored(t *testing.T) {
	cfg := mustLoad(t, "", []string{
		"MVREPAIR_KAFKA_GROUP_ID=first",
		"PATH=/bin",
		"MVREPAIR_NOT_A_KEY=1",
		"malformed",
		"MVREPAIR_KAFKA_GROUP_ID=second",
	})
	if cfg.Kafka.GroupID != "second" {
		t.Errorf("kafka.group_id = %q, want the later value", cfg.Kafka.GroupID)
	}
}

func TestLoad_durations_parse_from_file_and_env(t *testing.T) {
	path := writeFile(t, "batch:\n  max_wait: 20ms\nretry:\n  max_interval: 1m30s\n")
	cfg := mustLoad(t, path, []string{"MVREPAIR_SHUTDOWN_TIMEOUT=1m"})
	if cfg.Batch.MaxWait != 20*time.Millisecond || cfg.Retry.MaxInterval != 90*time.Second ||
		cfg.ShutdownTimeout != time.Minute {
		t.Errorf("durations = %v, %v, %v", cfg.Batch.MaxWait, cfg.Retry.MaxInterval, cfg.ShutdownTimeout)
	}
}

func TestLoad_duration_without_a_unit_is_an_error_naming_the_key(t *testing.T) {
	_, err := config.Load(writeFile(t, "batch:\n  max_wait: 20\n"), nil)
	wantErr(t, err, "config: batch.max_wait: ", "unit")
}

func TestLoad_unparsable_env_value_names_the_key_and_the_variable(t *testing.T) {
	_, err := config.Load("", []string{"MVREPAIR_KAFKA_PARTITIONS=six"})
	wantErr(t, err, "config: kafka.partitions: ", `"six"`, "MVREPAIR_KAFKA_PARTITIONS")
	var ke *config.KeyError
	if !errors.As(err, &ke) || ke.Key != "kafka.partitions" {
		t.Errorf("errors.As(KeyError) = %v, %+v", errors.As(err, &ke), ke)
	}
}

func TestLoad_unparsable_file_value_names_the_key_and_the_file(t *testing.T) {
	path := writeFile(t, "dry_run: maybe\nretry:\n  multiplier: fast\n")
	_, err := config.Load(path, nil)
	wantErr(t, err, "config: dry_run: ", "config: retry.multiplier: ", path)
}

func TestLoad_unknown_key_in_the_file_is_an_error_naming_it(t *testing.T) {
	path := writeFile(t, "kafka:\n  writer:\n    batchtimeout: 5ms\n  topics:\n    editlog: x\n")
	_, err := config.Load(path, nil)
	wantErr(t, err,
		`unknown key "kafka.writer.batchtimeout"`, `did you mean "kafka.writer.batch_timeout"?`,
		`unknown key "kafka.topics.editlog"`, `did you mean "kafka.topics.edit_log"?`,
		"line 3")
}

func TestLoad_unknown_top_level_key_is_an_error(t *testing.T) {
	_, err := config.Load(writeFile(t, "totally_unrelated: 1\n"), nil)
	wantErr(t, err, `unknown key "totally_unrelated"`)
	if strings.Contains(err.Error(), "did you mean") {
		t.Errorf("suggested a key for an unrelated name: %v", err)
	}
}

func TestLoad_section_given_a_value_and_key_given_a_mapping_are_errors(t *testing.T) {
	_, err := config.Load(writeFile(t, "batch: 5\nhttp:\n  addr:\n    port: 1\n"), nil)
	wantErr(t, err, "config: batch: must be a mapping", "config: http.addr: must be a single value")
}

func TestLoad_malformed_yaml_is_an_error_naming_the_file(t *testing.T) {
	path := writeFile(t, "kafka: [unclosed\n")
	_, err := config.Load(path, nil)
	wantErr(t, err, "config: parse "+path)
}

func TestLoad_missing_file_is_an_error(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) error = %v, want one wrapping fs.ErrNotExist", err)
	}
}

func TestLoad_invalid_value_fails_validation(t *testing.T) {
	_, err := config.Load("", []string{"MVREPAIR_BATCH_MAX_EVENTS=0"})
	if err == nil || err.Error() != "config: batch.max_events: must be between 1 and 100000 (got 0)" {
		t.Fatalf("Load error = %v", err)
	}
}

func TestValidate_accepts_the_defaults(t *testing.T) {
	cfg := config.Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate_rejects_bad_values_naming_the_key(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Config)
		want   []string
	}{
		{"log level", func(c *config.Config) { c.Log.Level = "verbose" },
			[]string{`config: log.level: must be one of debug|info|warn|error (got "verbose")`}},
		{"log format", func(c *config.Config) { c.Log.Format = "xml" }, []string{"config: log.format: "}},
		{"empty state dir", func(c *config.Config) { c.State.Dir = " " }, []string{"config: state.dir: must not be empty"}},
		{"empty brokers", func(c *config.Config) { c.Kafka.Brokers = " , " }, []string{"config: kafka.brokers: must list at least one"}},
		{"broker without port", func(c *config.Config) { c.Kafka.Brokers = "a:9092,b" }, []string{`config: kafka.brokers: "b" is not host:port`}},
		{"embedded mixed with brokers", func(c *config.Config) { c.Kafka.Brokers = "embedded,a:9092" }, []string{"config: kafka.brokers: \"embedded\" cannot be combined"}},
		{"embedded addr", func(c *config.Config) { c.Kafka.EmbeddedAddr = "localhost" }, []string{"config: kafka.embedded_addr: "}},
		{"group id", func(c *config.Config) { c.Kafka.GroupID = "" }, []string{"config: kafka.group_id: must not be empty"}},
		{"balancer", func(c *config.Config) { c.Kafka.Balancer = "round-robin" }, []string{"config: kafka.balancer: must be one of single-active|range"}},
		{"partitions", func(c *config.Config) { c.Kafka.Partitions = 0 }, []string{"config: kafka.partitions: must be at least 1 (got 0)"}},
		{"replication factor", func(c *config.Config) { c.Kafka.ReplicationFactor = 0 }, []string{"config: kafka.replication_factor: "}},
		{"heartbeat not below session timeout", func(c *config.Config) { c.Kafka.HeartbeatInterval = c.Kafka.SessionTimeout },
			[]string{"config: kafka.heartbeat_interval: must be less than kafka.session_timeout (10s >= 10s)"}},
		{"zero session timeout", func(c *config.Config) { c.Kafka.SessionTimeout = 0 }, []string{"config: kafka.session_timeout: must be a positive duration (got 0s)"}},
		{"empty topic", func(c *config.Config) { c.Kafka.Topics.DLQ = "" }, []string{"config: kafka.topics.dlq: must not be empty"}},
		{"invalid topic", func(c *config.Config) { c.Kafka.Topics.Input = "a topic" }, []string{"config: kafka.topics.input: "}},
		{"duplicate topics", func(c *config.Config) { c.Kafka.Topics.EditLog = c.Kafka.Topics.Catalog },
			[]string{`config: kafka.topics.edit_log: must differ from kafka.topics.catalog (both are "mv-catalog")`}},
		{"retention zero", func(c *config.Config) { c.Kafka.EditLogRetentionMs = 0 }, []string{"config: kafka.edit_log_retention_ms: must be -1"}},
		{"compression", func(c *config.Config) { c.Kafka.Writer.Compression = "brotli" }, []string{"config: kafka.writer.compression: "}},
		{"writer batch size", func(c *config.Config) { c.Kafka.Writer.BatchSize = 0 }, []string{"config: kafka.writer.batch_size: "}},
		{"reader max bytes", func(c *config.Config) { c.Kafka.Reader.MaxBytes = -1 }, []string{"config: kafka.reader.max_bytes: "}},
		{"batch max events too big", func(c *config.Config) { c.Batch.MaxEvents = 100001 },
			[]string{"config: batch.max_events: must be between 1 and 100000 (got 100001)"}},
		{"batch max wait", func(c *config.Config) { c.Batch.MaxWait = -time.Millisecond }, []string{"config: batch.max_wait: must be a positive duration (got -1ms)"}},
		{"reader max wait", func(c *config.Config) { c.Kafka.Reader.MaxWait = 0 }, []string{"config: kafka.reader.max_wait: must be at least 1ms (got 0s)"}},
		{"reader max wait below the protocol's millisecond", func(c *config.Config) { c.Kafka.Reader.MaxWait = 500 * time.Microsecond },
			[]string{"config: kafka.reader.max_wait: must be at least 1ms (got 500µs)"}},
		{"retry max below initial", func(c *config.Config) { c.Retry.MaxInterval = time.Millisecond }, []string{"config: retry.max_interval: must be at least retry.initial_interval"}},
		{"retry multiplier", func(c *config.Config) { c.Retry.Multiplier = 0.5 }, []string{"config: retry.multiplier: must be at least 1 (got 0.5)"}},
		{"retry outlives rebalance", func(c *config.Config) { c.Retry.MaxElapsedTime = 30 * time.Second },
			[]string{"config: retry.max_elapsed_time: must be less than kafka.rebalance_timeout", "(30s >= 30s)"}},
		{"http addr", func(c *config.Config) { c.HTTP.Addr = "8080" }, []string{`config: http.addr: must be [host]:port (got "8080")`}},
		{"shutdown timeout", func(c *config.Config) { c.ShutdownTimeout = 0 }, []string{"config: shutdown_timeout: "}},
		{"lag interval", func(c *config.Config) { c.Metrics.LagInterval = 0 }, []string{"config: metrics.lag_interval: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			wantErr(t, err, tt.want...)
			var ke *config.KeyError
			if !errors.As(err, &ke) {
				t.Errorf("error %v is not a *KeyError", err)
			}
		})
	}
}

func TestValidate_reports_every_problem_at_once(t *testing.T) {
	cfg := config.Default()
	cfg.Log.Level = "loud"
	cfg.Batch.MaxEvents = 0
	cfg.Kafka.Topics.DLQ = cfg.Kafka.Topics.Input
	err := cfg.Validate()
	wantErr(t, err, "config: log.level: ", "config: batch.max_events: ", "config: kafka.topics.dlq: ")
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Errorf("got %d lines, want 3: %v", n, err)
	}
}

func TestValidate_accepts_ephemeral_ports_for_listeners(t *testing.T) {
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Kafka.EmbeddedAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerList_of_embedded_is_the_embedded_address(t *testing.T) {
	cfg := config.Default()
	if !cfg.Embedded() {
		t.Fatal("default config is not embedded")
	}
	if got := cfg.BrokerList(); !slices.Equal(got, []string{"127.0.0.1:9092"}) {
		t.Errorf("BrokerList() = %q", got)
	}
	cfg.Kafka.Brokers = " a:1 , ,b:2 "
	if got := cfg.BrokerList(); cfg.Embedded() || !slices.Equal(got, []string{"a:1", "b:2"}) {
		t.Errorf("BrokerList() = %q, Embedded() = %v", got, cfg.Embedded())
	}
}

func TestInstanceName_defaults_to_the_hostname(t *testing.T) {
	cfg := config.Default()
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no hostname")
	}
	if got := cfg.InstanceName(); got != host {
		t.Errorf("InstanceName() = %q, want hostname %q", got, host)
	}
	cfg.Kafka.InstanceName = "replica-b"
	if got := cfg.InstanceName(); got != "replica-b" {
		t.Errorf("InstanceName() = %q, want the configured name", got)
	}
}

func TestKeys_have_descriptions_and_unique_env_names(t *testing.T) {
	keys := config.Keys()
	if len(keys) != 56 {
		t.Errorf("len(Keys()) = %d, want 56", len(keys))
	}
	seen := map[string]string{}
	for _, k := range keys {
		if k.Description == "" {
			t.Errorf("%s has no description", k.Key)
		}
		if want := "MVREPAIR_" + strings.ToUpper(strings.ReplaceAll(k.Key, ".", "_")); k.Env != want {
			t.Errorf("%s: Env = %q, want %q", k.Key, k.Env, want)
		}
		if prev, dup := seen[k.Env]; dup {
			t.Errorf("%s and %s share env %s", prev, k.Key, k.Env)
		}
		seen[k.Env] = k.Key
	}
}

func TestKeys_defaults_are_spelled_as_in_config_yaml(t *testing.T) {
	want := map[string]string{
		"kafka.brokers":               "embedded",
		"kafka.instance_name":         "",
		"kafka.edit_log_retention_ms": "-1",
		"kafka.writer.batch_timeout":  "2ms",
		"kafka.reader.max_bytes":      "10485760",
		"retry.multiplier":            "2",
		"http.addr":                   ":8080",
		"dry_run":                     "false",
		"kafka.tls.enabled":           "false",
		"kafka.tls.ca_file":           "",
		"kafka.sasl.mechanism":        "none",
		"kafka.sasl.password":         "",
		"kafka.isolation_level":       "read_committed",
	}
	for _, k := range config.Keys() {
		if w, ok := want[k.Key]; ok && k.Default != w {
			t.Errorf("%s: Default = %q, want %q", k.Key, k.Default, w)
		}
	}
}

// flatKeys returns the dotted leaf keys of a YAML document.
func flatKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(sub, prefix+k+".")
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	walk(doc, "")
	slices.Sort(keys)
	return keys
}

func TestConfigYAML_is_the_generated_defaults(t *testing.T) {
	want := config.DefaultYAML()
	if *update {
		if err := os.WriteFile(repoConfigYAML, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(repoConfigYAML)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("config.yaml differs from DefaultYAML(); regenerate with: go test ./internal/config -run TestConfigYAML -update\n--- want\n%s", want)
	}
}

func TestConfigYAML_lists_every_key(t *testing.T) {
	data, err := os.ReadFile(repoConfigYAML)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range config.Keys() {
		want = append(want, k.Key)
	}
	slices.Sort(want)
	if got := flatKeys(t, data); !slices.Equal(got, want) {
		t.Fatalf("config.yaml keys = %q\nKeys() = %q", got, want)
	}
}

func TestConfigYAML_parses_to_exactly_the_builtin_defaults(t *testing.T) {
	// With every key present (TestConfigYAML_lists_every_key), no value
	// here comes from the built-in defaults: the file alone must equal them.
	cfg := mustLoad(t, repoConfigYAML, nil)
	if want := config.Default(); !reflect.DeepEqual(*cfg, want) {
		t.Fatalf("config.yaml = %+v\nDefault() = %+v", *cfg, want)
	}
}
