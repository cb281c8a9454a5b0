package config_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/mvrepair/mvrepair/internal/config"
)

// secret is a password that must never show up in any output.
const secret = "hunter2-Zq9xK!sEcReT"

// external returns the defaults on an external cluster.
func external() config.Config {
	c := config.Default()
	c.Kafka.Brokers = "kafka-1:9093,kafka-2:9093"
	return c
}

// writeSecretFile writes content to a file of its own and returns the path.
func writeSecretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// scram configures SASL SCRAM-SHA-512 over TLS with the password inline.
func scram(c *config.Config, pki config.TestPKI) {
	c.Kafka.TLS.Enabled = true
	c.Kafka.TLS.CAFile = pki.CA
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "mvrepair", Password: secret}
}

func TestDefault_is_plaintext_without_SASL_reading_committed(t *testing.T) {
	c := config.Default()
	if c.Kafka.TLS != (config.TLS{}) {
		t.Errorf("kafka.tls = %+v, want all off", c.Kafka.TLS)
	}
	if c.Kafka.SASL.Mechanism != config.SASLNone || c.SASLEnabled() {
		t.Errorf("kafka.sasl.mechanism = %q, want none", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.IsolationLevel != config.IsolationReadCommitted {
		t.Errorf("kafka.isolation_level = %q, want read_committed", c.Kafka.IsolationLevel)
	}
	if w := c.Warnings(); w != nil {
		t.Errorf("Warnings() of the defaults = %q", w)
	}
}

func TestValidate_accepts_secured_setups(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	pwFile := writeSecretFile(t, secret+"\n")
	for name, mutate := range map[string]func(*config.Config){
		"SASL_SSL SCRAM-SHA-512, password file": func(c *config.Config) {
			scram(c, pki)
			c.Kafka.SASL.Password, c.Kafka.SASL.PasswordFile = "", pwFile
		},
		"SASL_SSL SCRAM-SHA-256, inline password": func(c *config.Config) {
			scram(c, pki)
			c.Kafka.SASL.Mechanism = config.SASLScramSHA256
		},
		"mTLS": func(c *config.Config) {
			c.Kafka.TLS = config.TLS{Enabled: true, CAFile: pki.CA, CertFile: pki.Cert, KeyFile: pki.Key, ServerName: "kafka"}
		},
		"TLS with the system roots": func(c *config.Config) { c.Kafka.TLS.Enabled = true },
		"SASL_PLAINTEXT PLAIN (warned about)": func(c *config.Config) {
			c.Kafka.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "u", PasswordFile: pwFile}
		},
		"read_uncommitted": func(c *config.Config) { c.Kafka.IsolationLevel = config.IsolationReadUncommitted },
	} {
		t.Run(name, func(t *testing.T) {
			c := external()
			mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidate_rejects_bad_security_settings_naming_the_key(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	pwFile := writeSecretFile(t, secret+"\n")
	missing := filepath.Join(t.TempDir(), "absent.pem")
	notPEM := writeSecretFile(t, "not a certificate\n")

	tests := []struct {
		name   string
		mutate func(*config.Config)
		want   []string
	}{
		// TLS options without TLS
		{"ca_file without tls.enabled", func(c *config.Config) { c.Kafka.TLS.CAFile = pki.CA },
			[]string{"config: kafka.tls.ca_file: is set but kafka.tls.enabled is false", "MVREPAIR_KAFKA_TLS_ENABLED=true"}},
		{"cert_file without tls.enabled", func(c *config.Config) { c.Kafka.TLS.CertFile, c.Kafka.TLS.KeyFile = pki.Cert, pki.Key },
			[]string{"config: kafka.tls.cert_file: is set but kafka.tls.enabled is false", "config: kafka.tls.key_file: is set but"}},
		{"server_name without tls.enabled", func(c *config.Config) { c.Kafka.TLS.ServerName = "kafka" },
			[]string{"config: kafka.tls.server_name: is set but kafka.tls.enabled is false"}},
		{"insecure_skip_verify without tls.enabled", func(c *config.Config) { c.Kafka.TLS.InsecureSkipVerify = true },
			[]string{"config: kafka.tls.insecure_skip_verify: is set but kafka.tls.enabled is false"}},
		// TLS files
		{"missing CA file", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, CAFile: missing} },
			[]string{"config: kafka.tls.ca_file: file " + missing + " does not exist"}},
		{"CA file is a directory", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, CAFile: t.TempDir()} },
			[]string{"config: kafka.tls.ca_file: cannot read "}},
		{"CA file without a certificate", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, CAFile: notPEM} },
			[]string{"config: kafka.tls.ca_file: " + notPEM + " holds no PEM certificate"}},
		{"cert_file without key_file", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, CertFile: pki.Cert} },
			[]string{"config: kafka.tls.key_file: must be set with kafka.tls.cert_file"}},
		{"key_file without cert_file", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, KeyFile: pki.Key} },
			[]string{"config: kafka.tls.cert_file: must be set with kafka.tls.key_file"}},
		{"missing cert and key files", func(c *config.Config) {
			c.Kafka.TLS = config.TLS{Enabled: true, CertFile: missing, KeyFile: missing + ".key"}
		}, []string{"config: kafka.tls.cert_file: file " + missing + " does not exist", "config: kafka.tls.key_file: file " + missing + ".key does not exist"}},
		{"key of another certificate", func(c *config.Config) {
			c.Kafka.TLS = config.TLS{Enabled: true, CertFile: pki.Cert, KeyFile: pki.OtherKey}
		}, []string{"config: kafka.tls.cert_file: " + pki.Cert + " and kafka.tls.key_file " + pki.OtherKey, "private key does not match public key"}},
		{"certificate given as the key", func(c *config.Config) {
			c.Kafka.TLS = config.TLS{Enabled: true, CertFile: pki.Cert, KeyFile: pki.Cert}
		}, []string{"config: kafka.tls.cert_file: ", "are not a usable certificate and key pair"}},
		{"server name with a port", func(c *config.Config) { c.Kafka.TLS = config.TLS{Enabled: true, ServerName: "kafka:9093"} },
			[]string{`config: kafka.tls.server_name: must be a host name (got "kafka:9093")`}},
		// SASL
		{"unknown mechanism", func(c *config.Config) { c.Kafka.SASL.Mechanism = "GSSAPI" },
			[]string{`config: kafka.sasl.mechanism: must be one of none|PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 (got "GSSAPI")`}},
		{"mechanism in lower case", func(c *config.Config) { c.Kafka.SASL.Mechanism = "scram-sha-512" },
			[]string{"config: kafka.sasl.mechanism: must be one of"}},
		{"mechanism without a username", func(c *config.Config) { scram(c, pki); c.Kafka.SASL.Username = "" },
			[]string{"config: kafka.sasl.username: must be set with kafka.sasl.mechanism SCRAM-SHA-512"}},
		{"mechanism without a password", func(c *config.Config) { scram(c, pki); c.Kafka.SASL.Password = "" },
			[]string{"config: kafka.sasl.password_file: must be set (or kafka.sasl.password) with kafka.sasl.mechanism SCRAM-SHA-512"}},
		{"password and password_file", func(c *config.Config) { scram(c, pki); c.Kafka.SASL.PasswordFile = pwFile },
			[]string{"config: kafka.sasl.password: cannot be set together with kafka.sasl.password_file: set exactly one"}},
		{"missing password file", func(c *config.Config) {
			scram(c, pki)
			c.Kafka.SASL.Password, c.Kafka.SASL.PasswordFile = "", missing
		}, []string{"config: kafka.sasl.password_file: file " + missing + " does not exist"}},
		{"empty password file", func(c *config.Config) {
			scram(c, pki)
			c.Kafka.SASL.Password, c.Kafka.SASL.PasswordFile = "", writeSecretFile(t, "\n")
		}, []string{"config: kafka.sasl.password_file: ", " is empty"}},
		{"password with mechanism none", func(c *config.Config) { c.Kafka.SASL.Password = secret },
			[]string{"config: kafka.sasl.password: is set but kafka.sasl.mechanism is none"}},
		{"password_file with mechanism none", func(c *config.Config) { c.Kafka.SASL.PasswordFile = pwFile },
			[]string{"config: kafka.sasl.password_file: is set but kafka.sasl.mechanism is none"}},
		{"username with mechanism none", func(c *config.Config) { c.Kafka.SASL.Username = "u" },
			[]string{"config: kafka.sasl.username: is set but kafka.sasl.mechanism is none"}},
		// the embedded broker
		{"TLS with the embedded broker", func(c *config.Config) { c.Kafka.Brokers = "embedded"; c.Kafka.TLS.Enabled = true },
			[]string{`config: kafka.tls.enabled: cannot be true with kafka.brokers "embedded": the embedded broker is plaintext on loopback`}},
		{"SASL with the embedded broker", func(c *config.Config) {
			scram(c, pki)
			c.Kafka.Brokers, c.Kafka.TLS = "embedded", config.TLS{}
		}, []string{`config: kafka.sasl.mechanism: cannot be SCRAM-SHA-512 with kafka.brokers "embedded"`}},
		// isolation
		{"isolation level", func(c *config.Config) { c.Kafka.IsolationLevel = "committed" },
			[]string{`config: kafka.isolation_level: must be one of read_committed|read_uncommitted (got "committed")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := external()
			tt.mutate(&c)
			err := c.Validate()
			wantErr(t, err, tt.want...)
			var ke *config.KeyError
			if !errors.As(err, &ke) {
				t.Errorf("error %v is not a *KeyError", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestValidate_missing_file_errors_wrap_fs_ErrNotExist(t *testing.T) {
	c := external()
	c.Kafka.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "absent.pem")}
	if err := c.Validate(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Validate() = %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestValidate_unreadable_file_is_an_error_naming_the_key_and_the_path(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	pw := writeSecretFile(t, secret)
	if err := os.Chmod(pw, 0); err != nil {
		t.Fatal(err)
	}
	c := external()
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "u", PasswordFile: pw}
	err := c.Validate()
	wantErr(t, err, "config: kafka.sasl.password_file: file "+pw+" is not readable (permission denied)")
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("%v does not wrap fs.ErrPermission", err)
	}
}

func TestSASLPassword_reads_the_file_and_trims_one_trailing_newline(t *testing.T) {
	for _, tt := range []struct{ content, want string }{
		{secret, secret},
		{secret + "\n", secret},
		{secret + "\r\n", secret},
		{secret + "\n\n", secret + "\n"},
		{" " + secret + " \n", " " + secret + " "},
	} {
		c := external()
		c.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "u", PasswordFile: writeSecretFile(t, tt.content)}
		got, err := c.SASLPassword()
		if err != nil || got != tt.want {
			t.Errorf("file %q: SASLPassword() = %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
}

func TestSASLPassword_returns_the_inline_password_or_nothing_without_SASL(t *testing.T) {
	c := external()
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "u", Password: secret}
	if got, err := c.SASLPassword(); err != nil || got != secret {
		t.Errorf("SASLPassword() = %q, %v; want the inline password", got, err)
	}
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLNone}
	if got, err := c.SASLPassword(); err != nil || got != "" {
		t.Errorf("without SASL: SASLPassword() = %q, %v; want empty", got, err)
	}
}

func TestSASLPassword_errors_name_the_key_and_path_but_not_the_content(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent")
	c := external()
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "u", PasswordFile: missing}
	_, err := c.SASLPassword()
	wantErr(t, err, "config: kafka.sasl.password_file: file "+missing+" does not exist")
	var ke *config.KeyError
	if !errors.As(err, &ke) || ke.Key != "kafka.sasl.password_file" {
		t.Errorf("error %v is not a KeyError of kafka.sasl.password_file", err)
	}

	c.Kafka.SASL.PasswordFile = dir // a directory
	_, err = c.SASLPassword()
	wantErr(t, err, "config: kafka.sasl.password_file: cannot read "+dir)

	c.Kafka.SASL = config.SASL{Mechanism: config.SASLScramSHA512, Username: "u"}
	_, err = c.SASLPassword()
	wantErr(t, err, "config: kafka.sasl.password: must be set")
}

func TestWarnings_flag_insecure_settings_by_key(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	c := external()
	c.Kafka.TLS = config.TLS{Enabled: true, InsecureSkipVerify: true}
	w := c.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "kafka.tls.insecure_skip_verify is true: ") {
		t.Errorf("Warnings() = %q, want one about kafka.tls.insecure_skip_verify", w)
	}

	c = external()
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "u", Password: secret}
	c.Kafka.IsolationLevel = config.IsolationReadUncommitted
	w = c.Warnings()
	if len(w) != 2 || !strings.HasPrefix(w[0], "kafka.sasl.mechanism is PLAIN without kafka.tls.enabled") ||
		!strings.HasPrefix(w[1], "kafka.isolation_level is read_uncommitted") {
		t.Errorf("Warnings() = %q, want PLAIN in clear text and read_uncommitted", w)
	}

	c = external()
	scram(&c, pki)
	if w := c.Warnings(); w != nil {
		t.Errorf("Warnings() of SCRAM over verified TLS = %q, want none", w)
	}
	for _, s := range c.Warnings() {
		if strings.Contains(s, secret) {
			t.Errorf("warning shows the password: %s", s)
		}
	}
}

func TestLoad_reads_the_security_keys_from_env(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	pwFile := writeSecretFile(t, secret+"\n")
	cfg := mustLoad(t, "", []string{
		"MVREPAIR_KAFKA_BROKERS=kafka:9093",
		"MVREPAIR_KAFKA_TLS_ENABLED=true",
		"MVREPAIR_KAFKA_TLS_CA_FILE=" + pki.CA,
		"MVREPAIR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
		"MVREPAIR_KAFKA_SASL_USERNAME=mvrepair",
		"MVREPAIR_KAFKA_SASL_PASSWORD_FILE=" + pwFile,
		"MVREPAIR_KAFKA_ISOLATION_LEVEL=read_uncommitted",
	})
	if got, err := cfg.SASLPassword(); err != nil || got != secret {
		t.Errorf("SASLPassword() = %q, %v", got, err)
	}
	if !cfg.Kafka.TLS.Enabled || cfg.Kafka.TLS.CAFile != pki.CA || cfg.Kafka.IsolationLevel != "read_uncommitted" {
		t.Errorf("kafka = %+v", cfg.Kafka)
	}
	cfg = mustLoad(t, "", []string{
		"MVREPAIR_KAFKA_BROKERS=kafka:9093",
		"MVREPAIR_KAFKA_SASL_MECHANISM=PLAIN",
		"MVREPAIR_KAFKA_SASL_USERNAME=mvrepair",
		config.PasswordEnv + "=" + secret,
	})
	if cfg.Kafka.SASL.Password.Reveal() != secret {
		t.Errorf("%s did not set kafka.sasl.password", config.PasswordEnv)
	}
}

func TestPasswordEnv_is_the_variable_of_kafka_sasl_password(t *testing.T) {
	if got := config.EnvName("kafka.sasl.password"); got != config.PasswordEnv {
		t.Errorf("EnvName(kafka.sasl.password) = %s, PasswordEnv = %s", got, config.PasswordEnv)
	}
}

// leaks reports the forms of the secret found in s: as it is, or hex-encoded.
func leaks(s string) bool {
	return strings.Contains(s, secret) ||
		strings.Contains(strings.ToLower(s), hex.EncodeToString([]byte(secret)))
}

func TestSecret_is_redacted_in_every_rendering_of_the_config(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	c := external()
	scram(&c, pki)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T %v"} {
		for _, v := range []any{c, &c, c.Kafka, c.Kafka.SASL, c.Kafka.SASL.Password, &c.Kafka.SASL.Password} {
			outputs = append(outputs, verb+": "+fmt.Sprintf(verb, v))
		}
	}
	outputs = append(outputs, fmt.Sprint(c), fmt.Sprintln(c), c.Kafka.SASL.Password.String(), c.Kafka.SASL.Password.GoString())

	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, "json: "+string(js))
	ys, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, "yaml: "+string(ys))
	var logged bytes.Buffer
	logger := zerolog.New(&logged)
	logger.Info().Interface("config", c).Stringer("password", c.Kafka.SASL.Password).
		Any("sasl", c.Kafka.SASL).Msg("starting")
	outputs = append(outputs, "zerolog: "+logged.String())

	for _, out := range outputs {
		if leaks(out) {
			t.Errorf("the password shows in %s", out)
		}
	}
	if !strings.Contains(string(js), `"Password":"***"`) {
		t.Errorf("JSON does not show that a password is set (want \"***\"): %s", js)
	}
	if got := fmt.Sprintf("%v|%q|%#v", config.Secret(""), config.Secret(""), config.Secret("")); got != `|""|config.Secret("")` {
		t.Errorf("an empty Secret renders as %s", got)
	}
}

func TestSecret_never_shows_in_load_errors(t *testing.T) {
	pki := config.WriteTestPKI(t, t.TempDir())
	pwFile := writeSecretFile(t, secret)
	envs := map[string][]string{
		"password without a mechanism": {config.PasswordEnv + "=" + secret},
		"password and file":            {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_SASL_MECHANISM=PLAIN", "MVREPAIR_KAFKA_SASL_USERNAME=u", config.PasswordEnv + "=" + secret, "MVREPAIR_KAFKA_SASL_PASSWORD_FILE=" + pwFile},
		"no username":                  {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", config.PasswordEnv + "=" + secret},
		"SASL on the embedded broker":  {"MVREPAIR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "MVREPAIR_KAFKA_SASL_USERNAME=u", config.PasswordEnv + "=" + secret},
		"bad mechanism":                {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_SASL_MECHANISM=" + "X", "MVREPAIR_KAFKA_SASL_USERNAME=u", config.PasswordEnv + "=" + secret},
		"other keys wrong":             {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_SASL_MECHANISM=PLAIN", "MVREPAIR_KAFKA_SASL_USERNAME=u", config.PasswordEnv + "=" + secret, "MVREPAIR_BATCH_MAX_EVENTS=0", "MVREPAIR_KAFKA_PARTITIONS=x"},
		"TLS files wrong":              {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_TLS_ENABLED=true", "MVREPAIR_KAFKA_TLS_CERT_FILE=" + pki.Cert, "MVREPAIR_KAFKA_TLS_KEY_FILE=" + pki.OtherKey, "MVREPAIR_KAFKA_SASL_MECHANISM=PLAIN", "MVREPAIR_KAFKA_SASL_USERNAME=u", config.PasswordEnv + "=" + secret},
		"password file as CA":          {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_TLS_ENABLED=true", "MVREPAIR_KAFKA_TLS_CA_FILE=" + pwFile},
		"password file as key":         {"MVREPAIR_KAFKA_BROKERS=k:1", "MVREPAIR_KAFKA_TLS_ENABLED=true", "MVREPAIR_KAFKA_TLS_CERT_FILE=" + pki.Cert, "MVREPAIR_KAFKA_TLS_KEY_FILE=" + pwFile},
	}
	files := map[string]string{
		"password YAML reads as a date":   "kafka:\n  brokers: k:1\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: 2031-02-03\n",
		"password YAML reads as a number": "kafka:\n  brokers: k:1\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: 0x1F\n",
		"password as a list":              "kafka:\n  sasl:\n    password: [" + secret + "]\n",
		"password as a mapping":           "kafka:\n  sasl:\n    password:\n      value: " + secret + "\n",
		"password in a typo":              "kafka:\n  sasl:\n    pasword: " + secret + "\n",
	}
	for name, env := range envs {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load("", env)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if leaks(err.Error()) || leaks(fmt.Sprintf("%+v", err)) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, content), nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if leaks(err.Error()) || strings.Contains(err.Error(), "2031-02-03") || strings.Contains(err.Error(), "0x1F") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestLoad_unquoted_YAML_password_that_is_not_a_string_is_refused_naming_the_key(t *testing.T) {
	base := "kafka:\n  brokers: k:1\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: "
	for _, v := range []string{"0x1F", "1e3", "12345", "true", "2031-02-03"} {
		_, err := config.Load(writeFile(t, base+v+"\n"), nil)
		wantErr(t, err, "config: kafka.sasl.password: must be a string: quote it")
	}
	cfg := mustLoad(t, writeFile(t, base+"\"0x1F\"\n"), nil)
	if got := cfg.Kafka.SASL.Password.Reveal(); got != "0x1F" {
		t.Errorf("quoted password = %q, want 0x1F as written", got)
	}
}

func TestSecret_JSON_round_trip_keeps_only_the_marker(t *testing.T) {
	// What a child process gets when handed a Config as JSON: it must take
	// the password from PasswordEnv (the itest and hatest harnesses do).
	c := external()
	c.Kafka.SASL = config.SASL{Mechanism: config.SASLPlain, Username: "u", Password: secret}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back config.Config
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Kafka.SASL.Password.Reveal(); got != config.Redacted {
		t.Errorf("password after a JSON round trip = %q, want the marker %q", got, config.Redacted)
	}
	back.Kafka.SASL.Password = c.Kafka.SASL.Password
	if back != c {
		t.Errorf("JSON round trip changed more than the password:\n%+v\n%+v", back, c)
	}
}
