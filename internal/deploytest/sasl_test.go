package deploytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/internal/config"
)

// saslClients names the services of the secured stack that connect to the
// broker with the consumer's settings.
func saslClients(cf *composeFile) []string {
	return append([]string{topicInitService}, cf.consumerServices()...)
}

// readFile returns a file's content, failing the test when it cannot.
func readFile(t *testing.T, p string) string {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestComposeSASL_is_an_override_with_its_own_project_name(t *testing.T) {
	base, over := decodeCompose(t, composeBase), decodeCompose(t, composeSASL)
	if over.Name == "" || over.Name == base.Name {
		t.Errorf("%s name = %q: give it a project name of its own (not %q), so a broker formatted without SCRAM users is never reused",
			composeSASL, over.Name, base.Name)
	}
	for name, s := range over.Services {
		if s.Build != nil || s.Image != "" {
			t.Errorf("%s: service %s sets build/image; the override should only secure the services of %s", composeSASL, name, composeBase)
		}
	}
}

func TestComposeSASL_clients_use_SASL_SSL_with_the_password_from_a_compose_secret(t *testing.T) {
	cf := loadSASLStack(t)
	kafka := cf.service(t, kafkaService)
	kenv := kafka.containerEnv(t)
	scramSecret, _, ok := kafka.hostPath(t, kenv["SCRAM_PASSWORD_FILE"])
	if !ok || scramSecret.secret == "" {
		t.Fatalf("kafka: SCRAM_PASSWORD_FILE %q is not a mounted compose secret", kenv["SCRAM_PASSWORD_FILE"])
	}
	wantPassword := strings.TrimSuffix(readFile(t, filepath.Join(generatedOutput(t), "sasl.password")), "\n")

	for _, name := range saslClients(cf) {
		t.Run(name, func(t *testing.T) {
			s := cf.service(t, name)
			raw := s.containerEnv(t)
			cfg := loadConfig(t, name, s.env(t))
			k := cfg.Kafka
			if !k.TLS.Enabled || k.TLS.CAFile == "" || k.TLS.InsecureSkipVerify {
				t.Errorf("kafka.tls = %+v: want enabled, verifying against the mounted CA", k.TLS)
			}
			if k.SASL.Mechanism != config.SASLScramSHA512 {
				t.Errorf("kafka.sasl.mechanism = %q, want SCRAM-SHA-512", k.SASL.Mechanism)
			}
			if _, inline := raw[config.PasswordEnv]; inline {
				t.Errorf("%s is set: the password belongs in a secret file (kafka.sasl.password_file), not in the environment", config.PasswordEnv)
			}
			m, _, ok := s.hostPath(t, raw[config.EnvName("kafka.sasl.password_file")])
			if !ok || m.secret == "" {
				t.Errorf("kafka.sasl.password_file %q is not a compose secret", raw[config.EnvName("kafka.sasl.password_file")])
			} else if m.secret != scramSecret.secret {
				t.Errorf("the password comes from secret %q, but the broker creates the user from %q", m.secret, scramSecret.secret)
			}
			if ca, _, ok := s.hostPath(t, raw[config.EnvName("kafka.tls.ca_file")]); !ok || !ca.readOnly {
				t.Errorf("the CA %q is not mounted read-only", raw[config.EnvName("kafka.tls.ca_file")])
			}
			if k.SASL.Username != kenv["SCRAM_USERNAME"] {
				t.Errorf("kafka.sasl.username %q, but the broker creates the user %q", k.SASL.Username, kenv["SCRAM_USERNAME"])
			}
			if got, err := cfg.SASLPassword(); err != nil || got != wantPassword {
				t.Errorf("SASLPassword() = %v (error %v), want the content of %s/sasl.password", got != "", err, generatedDir)
			}
			if w := cfg.Warnings(); len(w) > 0 {
				t.Errorf("config warnings: %q", w)
			}
		})
	}
}

// protocolMap parses KAFKA_LISTENER_SECURITY_PROTOCOL_MAP.
func protocolMap(list string) map[string]string {
	out := make(map[string]string)
	for _, pair := range strings.Split(list, ",") {
		name, proto, _ := strings.Cut(strings.TrimSpace(pair), ":")
		out[name] = proto
	}
	return out
}

func TestComposeSASL_broker_serves_clients_only_over_SASL_SSL_with_a_certificate_for_every_advertised_name(t *testing.T) {
	cf := loadSASLStack(t)
	kafka := cf.service(t, kafkaService)
	env := kafka.containerEnv(t)
	protos := protocolMap(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
	ctrl := env["KAFKA_CONTROLLER_LISTENER_NAMES"]
	for name, addr := range listeners(t, env["KAFKA_LISTENERS"]) {
		if name == ctrl || loopbackListener(addr) {
			continue
		}
		if protos[name] != "SASL_SSL" {
			t.Errorf("listener %s (%s) is %s: every listener reachable from outside the container must be SASL_SSL", name, addr, protos[name])
		}
	}
	if mechs := strings.Split(env["KAFKA_SASL_ENABLED_MECHANISMS"], ","); !slices.Contains(mechs, config.SASLScramSHA512) {
		t.Errorf("KAFKA_SASL_ENABLED_MECHANISMS = %q, want SCRAM-SHA-512", env["KAFKA_SASL_ENABLED_MECHANISMS"])
	}

	// JAAS: SCRAM, from a mounted file holding no secret.
	jaasPath, ok := strings.CutPrefix(env["KAFKA_OPTS"], "-Djava.security.auth.login.config=")
	if !ok {
		t.Fatalf("KAFKA_OPTS = %q, want -Djava.security.auth.login.config=<file> (the image requires it for SASL)", env["KAFKA_OPTS"])
	}
	if _, host, ok := kafka.hostPath(t, jaasPath); !ok {
		t.Errorf("the JAAS file %s is not mounted", jaasPath)
	} else if jaas := readFile(t, host); !strings.Contains(jaas, "KafkaServer") || !strings.Contains(jaas, "ScramLoginModule required") ||
		strings.Contains(jaas, "password") {
		t.Errorf("%s: want a KafkaServer section with ScramLoginModule and no password:\n%s", jaasPath, jaas)
	}

	// The image's SSL convention: files under /etc/kafka/secrets.
	ks := map[string]string{}
	for _, v := range []string{"KAFKA_SSL_KEYSTORE_FILENAME", "KAFKA_SSL_KEYSTORE_CREDENTIALS", "KAFKA_SSL_KEY_CREDENTIALS"} {
		_, host, ok := kafka.hostPath(t, "/etc/kafka/secrets/"+env[v])
		if env[v] == "" || !ok {
			t.Errorf("%s = %q is not mounted under /etc/kafka/secrets", v, env[v])
			continue
		}
		if _, err := os.Stat(host); err != nil {
			t.Errorf("%s: %v (made by deploy/gen-certs.sh?)", v, err)
		}
		ks[v] = host
	}
	if len(ks) == 3 {
		out, err := exec.Command("openssl", "pkcs12", "-in", ks["KAFKA_SSL_KEYSTORE_FILENAME"], "-passin", "file:"+ks["KAFKA_SSL_KEYSTORE_CREDENTIALS"], "-noout").CombinedOutput()
		if err != nil {
			t.Errorf("the keystore does not open with its credentials file: %v\n%s", err, out)
		}
	}

	// The broker certificate (the one in the keystore) verifies against the
	// CA the clients mount, for every name a client dials.
	dir := generatedOutput(t)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(readFile(t, filepath.Join(dir, "ca.pem")))) {
		t.Fatal("ca.pem holds no certificate")
	}
	block, _ := pem.Decode([]byte(readFile(t, filepath.Join(dir, "broker.pem"))))
	if block == nil {
		t.Fatal("broker.pem holds no certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range listeners(t, env["KAFKA_ADVERTISED_LISTENERS"]) {
		if protos[name] != "SASL_SSL" {
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("advertised %s listener %s: the broker certificate does not verify for %q: %v", name, addr, host, err)
		}
	}

	// The health check uses the loopback PLAINTEXT listener (no credentials).
	hc := strings.Join(kafka.Healthcheck.Test, " ")
	inter := env["KAFKA_INTER_BROKER_LISTENER_NAME"]
	if addr := listeners(t, env["KAFKA_LISTENERS"])[inter]; !loopbackListener(addr) || protos[inter] != "PLAINTEXT" ||
		!strings.Contains(hc, "localhost:"+listenPort(t, addr)) {
		t.Errorf("health check %q: want the loopback PLAINTEXT inter-broker listener (%s %s)", hc, inter, addr)
	}
}

// stubStorage stands in for kafka-storage.sh: it logs its arguments and
// keeps a copy of the -c properties file; it fails when $STUB_FAIL is set.
const stubStorage = `#!/bin/sh
prev=
for a in "$@"; do
	printf '%s\n' "$a" >>"$STUB_DIR/storage.args"
	[ "$prev" = -c ] && cp "$a" "$STUB_DIR/storage.properties"
	prev=$a
done
[ -z "${STUB_FAIL:-}" ]
`

// runKafkaEntrypoint runs the kafka service's entrypoint of the secured
// stack with its environment, stubs for kafka-storage.sh and the image's run
// script, and the password file at passwordFile.
func runKafkaEntrypoint(t *testing.T, passwordFile string, extra ...string) (dir, stderr string, err error) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	cf := loadSASLStack(t)
	kafka := cf.service(t, kafkaService)
	if len(kafka.Entrypoint) != 2 || kafka.Entrypoint[0] != "/bin/bash" {
		t.Fatalf("kafka entrypoint = %q, want [/bin/bash <script>]", kafka.Entrypoint)
	}
	m, script, ok := kafka.hostPath(t, kafka.Entrypoint[1])
	if !ok || !m.readOnly {
		t.Fatalf("kafka entrypoint %s is not mounted read-only", kafka.Entrypoint[1])
	}
	dir = t.TempDir()
	stub := filepath.Join(dir, "kafka-storage.sh")
	if err := os.WriteFile(stub, []byte(stubStorage), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "STUB_DIR=" + dir, "STORAGE_CMD=" + stub,
		"RUN_CMD=" + filepath.Join(dir, "run.sh")}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho ran >\"$STUB_DIR/run.log\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range kafka.containerEnv(t) {
		if k == "SCRAM_PASSWORD_FILE" {
			v = passwordFile
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extra...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	err = cmd.Run()
	return dir, errBuf.String(), err
}

func TestComposeSASL_kafka_entrypoint_formats_with_the_SCRAM_user_then_runs_the_image(t *testing.T) {
	cf := loadSASLStack(t)
	kafka := cf.service(t, kafkaService)
	env := kafka.containerEnv(t)
	_, pwFile, ok := kafka.hostPath(t, env["SCRAM_PASSWORD_FILE"])
	if !ok {
		t.Fatalf("SCRAM_PASSWORD_FILE %s is not mounted", env["SCRAM_PASSWORD_FILE"])
	}
	password := strings.TrimSuffix(readFile(t, pwFile), "\n")

	dir, stderr, err := runKafkaEntrypoint(t, pwFile)
	if err != nil {
		t.Fatalf("entrypoint: %v\n%s", err, stderr)
	}
	args := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "storage.args"))), "\n")
	for _, want := range [][]string{
		{"format"}, {"--ignore-formatted"}, {"--cluster-id", env["CLUSTER_ID"]},
		{"--add-scram", "SCRAM-SHA-512=[name=" + env["SCRAM_USERNAME"] + ",password=" + password + "]"},
	} {
		i := slices.Index(args, want[0])
		if i < 0 || (len(want) == 2 && (i+1 >= len(args) || args[i+1] != want[1])) {
			t.Errorf("kafka-storage.sh was not called with %q (the SCRAM argument holds the secret)", want[0])
		}
	}
	props := readFile(t, filepath.Join(dir, "storage.properties"))
	for _, want := range []string{
		"node.id=" + env["KAFKA_NODE_ID"], "process.roles=" + env["KAFKA_PROCESS_ROLES"],
		"controller.quorum.voters=" + env["KAFKA_CONTROLLER_QUORUM_VOTERS"], "listeners=" + env["KAFKA_LISTENERS"],
		"log.dirs=" + env["KAFKA_LOG_DIRS"],
	} {
		if !slices.Contains(strings.Split(props, "\n"), want) {
			t.Errorf("format properties lack %q:\n%s", want, props)
		}
	}
	if got := readFile(t, filepath.Join(dir, "run.log")); got != "ran\n" {
		t.Errorf("the image's run script did not run after formatting (%q)", got)
	}
	if strings.Contains(stderr, password) {
		t.Errorf("the entrypoint logs the password:\n%s", stderr)
	}
}

func TestComposeSASL_kafka_entrypoint_stops_before_the_broker_on_a_bad_password_or_format(t *testing.T) {
	good := filepath.Join(generatedOutput(t), "sasl.password")
	for name, tc := range map[string]struct {
		password string // content of the password file ("-" = no file)
		extra    []string
		want     string
	}{
		"missing password file":         {"-", nil, "cannot read SCRAM_PASSWORD_FILE"},
		"empty password file":           {"\n", nil, "is empty"},
		"password breaking --add-scram": {"a,b=c]\n", nil, "must not contain"},
		"format fails":                  {"", []string{"STUB_FAIL=1"}, "kafka-storage format failed"},
	} {
		t.Run(name, func(t *testing.T) {
			pw := good
			switch tc.password {
			case "":
			case "-":
				pw = filepath.Join(t.TempDir(), "absent")
			default:
				pw = filepath.Join(t.TempDir(), "pw")
				if err := os.WriteFile(pw, []byte(tc.password), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			dir, stderr, err := runKafkaEntrypoint(t, pw, tc.extra...)
			if err == nil {
				t.Fatal("the entrypoint succeeded")
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "run.log")); err == nil {
				t.Error("the broker was started anyway")
			}
		})
	}
}

// properties parses the Java properties our scripts write (key=value lines,
// values escaped with backslashes only for \\ and \n).
func properties(t *testing.T, text string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("properties line %q is not key=value", line)
		}
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
				if v[i] == 'n' {
					b.WriteByte('\n')
					continue
				}
			}
			b.WriteByte(v[i])
		}
		out[k] = b.String()
	}
	return out
}

// jaasOption returns the value of a quoted option of a JAAS line.
func jaasOption(t *testing.T, jaas, name string) string {
	t.Helper()
	i := strings.Index(jaas, " "+name+"=\"")
	if i < 0 {
		t.Fatalf("JAAS %q has no %s", jaas, name)
	}
	var b strings.Builder
	for j := i + len(name) + 3; j < len(jaas); j++ {
		switch jaas[j] {
		case '\\':
			j++
			b.WriteByte(jaas[j])
		case '"':
			return b.String()
		default:
			b.WriteByte(jaas[j])
		}
	}
	t.Fatalf("JAAS %q: unterminated %s", jaas, name)
	return ""
}

func TestTopicInit_connects_to_the_secured_stack_with_a_command_config(t *testing.T) {
	cf := loadSASLStack(t)
	s := cf.service(t, topicInitService)
	env := s.env(t)
	calls, stderr, err := runTopicInit(t, env)
	if err != nil {
		t.Fatalf("topic-init: %v\n%s", err, stderr)
	}
	cfg := loadConfig(t, topicInitService, env)
	password, err := cfg.SASLPassword()
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 {
		t.Fatal("no kafka-topics.sh calls")
	}
	for _, c := range calls {
		if c.commandConfig == "" {
			t.Errorf("kafka-topics.sh --topic %s ran without --command-config", c.topic)
			continue
		}
		p := properties(t, c.commandConfig)
		for k, want := range map[string]string{
			"security.protocol":       "SASL_SSL",
			"sasl.mechanism":          cfg.Kafka.SASL.Mechanism,
			"ssl.truststore.type":     "PEM",
			"ssl.truststore.location": cfg.Kafka.TLS.CAFile,
		} {
			if p[k] != want {
				t.Errorf("command config %s = %q, want %q", k, p[k], want)
			}
		}
		jaas := p["sasl.jaas.config"]
		if !strings.HasPrefix(jaas, "org.apache.kafka.common.security.scram.ScramLoginModule required ") || !strings.HasSuffix(jaas, ";") {
			t.Errorf("sasl.jaas.config = %q: want the SCRAM login module", jaas)
		}
		if jaasOption(t, jaas, "username") != cfg.Kafka.SASL.Username || jaasOption(t, jaas, "password") != password {
			t.Error("sasl.jaas.config does not carry the consumer's username and password")
		}
	}
	if strings.Contains(stderr, password) {
		t.Errorf("topic-init logs the password:\n%s", stderr)
	}
}

func TestTopicInit_escapes_the_password_for_JAAS_and_properties(t *testing.T) {
	const password = `p"a\ss w$rd\n`
	calls, stderr, err := runTopicInit(t, map[string]string{
		"MVREPAIR_KAFKA_BROKERS":        "kafka:9092",
		"MVREPAIR_KAFKA_SASL_MECHANISM": "PLAIN",
		"MVREPAIR_KAFKA_SASL_USERNAME":  `we"ird\user`,
		config.PasswordEnv:              password,
	})
	if err != nil {
		t.Fatalf("topic-init: %v\n%s", err, stderr)
	}
	p := properties(t, calls[0].commandConfig)
	if p["security.protocol"] != "SASL_PLAINTEXT" || !strings.HasPrefix(p["sasl.jaas.config"], "org.apache.kafka.common.security.plain.PlainLoginModule required") {
		t.Errorf("command config = %q", calls[0].commandConfig)
	}
	if got := jaasOption(t, p["sasl.jaas.config"], "password"); got != password {
		t.Errorf("password reads back as %q, want %q", got, password)
	}
	if got := jaasOption(t, p["sasl.jaas.config"], "username"); got != `we"ird\user` {
		t.Errorf("username reads back as %q", got)
	}
}

func TestTopicInit_passes_the_client_certificate_for_mutual_TLS(t *testing.T) {
	dir := generatedOutput(t)
	cert, key := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	calls, stderr, err := runTopicInit(t, map[string]string{
		"MVREPAIR_KAFKA_BROKERS":         "kafka:9093",
		"MVREPAIR_KAFKA_TLS_ENABLED":     "true",
		"MVREPAIR_KAFKA_TLS_CA_FILE":     filepath.Join(dir, "ca.pem"),
		"MVREPAIR_KAFKA_TLS_CERT_FILE":   cert,
		"MVREPAIR_KAFKA_TLS_KEY_FILE":    key,
		"MVREPAIR_KAFKA_CREATE_TOPICS":   "false",
		"MVREPAIR_KAFKA_TOPICS_EDIT_LOG": "journal",
	})
	if err != nil {
		t.Fatalf("topic-init: %v\n%s", err, stderr)
	}
	p := properties(t, calls[0].commandConfig)
	if p["security.protocol"] != "SSL" || p["ssl.keystore.type"] != "PEM" {
		t.Errorf("command config = %q", calls[0].commandConfig)
	}
	if p["ssl.keystore.certificate.chain"] != readFile(t, cert) || p["ssl.keystore.key"] != readFile(t, key) {
		t.Error("the inlined certificate chain or key differs from the files")
	}
	if _, err := tls.X509KeyPair([]byte(p["ssl.keystore.certificate.chain"]), []byte(p["ssl.keystore.key"])); err != nil {
		t.Errorf("the inlined PEM pair does not load: %v", err)
	}
}

func TestTopicInit_refuses_what_the_Java_tool_cannot_do(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"insecure_skip_verify": {"MVREPAIR_KAFKA_BROKERS": "kafka:9093", "MVREPAIR_KAFKA_TLS_ENABLED": "true", "MVREPAIR_KAFKA_TLS_INSECURE_SKIP_VERIFY": "true"},
		"cert without key":     {"MVREPAIR_KAFKA_BROKERS": "kafka:9093", "MVREPAIR_KAFKA_TLS_ENABLED": "true", "MVREPAIR_KAFKA_TLS_CERT_FILE": "/etc/hosts"},
		"unknown mechanism":    {"MVREPAIR_KAFKA_BROKERS": "kafka:9093", "MVREPAIR_KAFKA_SASL_MECHANISM": "GSSAPI"},
		"no password":          {"MVREPAIR_KAFKA_BROKERS": "kafka:9093", "MVREPAIR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "MVREPAIR_KAFKA_SASL_USERNAME": "u"},
		"unreadable CA":        {"MVREPAIR_KAFKA_BROKERS": "kafka:9093", "MVREPAIR_KAFKA_TLS_ENABLED": "true", "MVREPAIR_KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			calls, _, err := runTopicInit(t, env)
			if err == nil || len(calls) != 0 {
				t.Errorf("err=%v after %d kafka-topics.sh calls; want an error before any", err, len(calls))
			}
		})
	}
}

func TestGenerated_secrets_stay_out_of_git_and_the_image(t *testing.T) {
	root := moduleRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ign := parseDockerignore(t, string(raw))
	for _, f := range []string{"ca.key", "broker.key", "client.key", "sasl.password", "keystore.password", "broker.keystore.p12"} {
		rel := generatedDir + "/" + f
		if !ign.excluded(rel) {
			t.Errorf(".dockerignore lets %s into the consumer's build context", rel)
		}
		if _, err := exec.LookPath("git"); err == nil {
			cmd := exec.Command("git", "check-ignore", "-q", "--no-index", rel)
			cmd.Dir = root
			if err := cmd.Run(); err != nil {
				t.Errorf("git does not ignore %s (.gitignore)", rel)
			}
		}
	}
}

func TestCompose_every_mounted_file_and_secret_exists(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for _, name := range sortedKeys(cf.Services) {
			for _, m := range cf.Services[name].mounts(t) {
				if _, err := os.Stat(hostSource(t, m.source)); err != nil {
					t.Errorf("service %s mounts %s at %s: %v", name, m.source, m.target, err)
				}
			}
		}
		for name, def := range cf.Secrets {
			used := false
			for _, s := range cf.Services {
				used = used || slices.ContainsFunc(s.Secrets, func(r secretRef) bool { return r.Source == name })
			}
			if !used {
				t.Errorf("secret %s (%s) is declared but no service uses it", name, def.File)
			}
		}
	})
}
