package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// altValues holds a valid non-default value for every key, as an
// environment variable would spell it. The files it names exist (under a
// temporary directory of t).
func altValues(t *testing.T) map[string]string {
	dir := t.TempDir()
	pki := WriteTestPKI(t, dir)
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"log.level":                        "debug",
		"log.format":                       "console",
		"state.dir":                        "/var/lib/mvrepair",
		"state.snapshot_bytes":             "2097152",
		"kafka.connect_timeout":            "5s",
		"kafka.topics.snapshots":           "snap-x",
		"kafka.edit_log_max_message_bytes": "2097152",
		"checkpoint.interval":              "1h",
		"checkpoint.max_records":           "5000",
		"checkpoint.truncate":              "false",
		"health.stall_timeout":             "1m",
		"kafka.brokers":                    "k1:9092,k2:9093",
		"kafka.embedded_addr":              "127.0.0.1:0",
		"kafka.client_id":                  "client-x",
		"kafka.group_id":                   "group-x",
		"kafka.instance_name":              "replica-b",
		"kafka.balancer":                   "range",
		"kafka.create_topics":              "false",
		"kafka.partitions":                 "12",
		"kafka.replication_factor":         "3",
		"kafka.session_timeout":            "45s",
		"kafka.heartbeat_interval":         "3s",
		"kafka.rebalance_timeout":          "1m",
		"kafka.topics.input":               "in-x",
		"kafka.topics.catalog":             "catalog-x",
		"kafka.topics.edit_log":            "journal-x",
		"kafka.topics.dlq":                 "dlq-x",
		"kafka.edit_log_retention_ms":      "604800000",
		"kafka.writer.batch_timeout":       "5ms",
		"kafka.writer.batch_size":          "500",
		"kafka.writer.write_timeout":       "7s",
		"kafka.writer.compression":         "zstd",
		"kafka.reader.max_wait":            "250ms",
		"kafka.reader.max_bytes":           "1048576",
		"kafka.reader.queue_capacity":      "64",
		"batch.max_events":                 "100000",
		"batch.max_wait":                   "1s",
		"retry.initial_interval":           "10ms",
		"retry.max_interval":               "5s",
		"retry.multiplier":                 "1.5",
		"retry.max_elapsed_time":           "59s",
		"http.addr":                        "127.0.0.1:9999",
		"shutdown_timeout":                 "45s",
		"metrics.lag_interval":             "3s",
		"dry_run":                          "true",
		"kafka.tls.enabled":                "true",
		"kafka.tls.ca_file":                pki.CA,
		"kafka.tls.cert_file":              pki.Cert,
		"kafka.tls.key_file":               pki.Key,
		"kafka.tls.server_name":            "kafka.internal",
		"kafka.tls.insecure_skip_verify":   "true",
		"kafka.sasl.mechanism":             "SCRAM-SHA-256",
		"kafka.sasl.username":              "svc-mvrepair",
		"kafka.sasl.password":              "s3cret",
		"kafka.sasl.password_file":         pwFile,
		"kafka.isolation_level":            "read_uncommitted",
	}
}

func TestLoad_every_key_is_overridable_by_env_alone(t *testing.T) {
	alt := altValues(t)
	for _, l := range leafFields() {
		v, ok := alt[l.Key]
		if !ok {
			t.Fatalf("altValues has no value for %s: add one", l.Key)
		}
		if v == l.Default {
			t.Fatalf("altValues[%s] equals the default", l.Key)
		}
	}
	if len(alt) != len(leafFields()) {
		t.Fatalf("altValues has %d keys, Config %d", len(alt), len(leafFields()))
	}

	// kafka.sasl.password and kafka.sasl.password_file exclude each other:
	// each run leaves one of them out.
	for _, left := range []string{"kafka.sasl.password_file", "kafka.sasl.password"} {
		t.Run("without "+left, func(t *testing.T) {
			var env []string
			for _, l := range leafFields() {
				if l.Key != left {
					env = append(env, l.Env+"="+alt[l.Key])
				}
			}
			// No file at all: only defaults and the environment.
			cfg, err := Load("", env)
			if err != nil {
				t.Fatal(err)
			}
			rv := reflect.ValueOf(cfg).Elem()
			for _, l := range leafFields() {
				if l.Key == left {
					continue
				}
				if got := formatValue(rv.FieldByIndex(l.index)); got != alt[l.Key] {
					t.Errorf("%s = %q after %s=%q", l.Key, got, l.Env, alt[l.Key])
				}
			}
		})
	}
}

func TestEditDistance_counts_single_character_edits(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"batchtimeout", "batch_timeout", 1}, {"kitten", "sitting", 3}, {"", "ab", 2}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
