package deploytest

import (
	"encoding/base64"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mvrepair/mvrepair/internal/config"
)

// The compose services this package knows by name.
const (
	kafkaService     = "kafka"
	topicInitService = "topic-init"
	consumerService  = "consumer"
	standbyService   = "consumer-standby"
)

// composeFile is the part of the Compose specification docker-compose.yml
// uses. Decoding is strict (KnownFields): a misspelt service key is an error
// here rather than silently ignored by an old Compose.
type composeFile struct {
	Name     string                     `yaml:"name"`
	Services map[string]*composeService `yaml:"services"`
	Volumes  map[string]any             `yaml:"volumes"`
	Secrets  map[string]*secretDef      `yaml:"secrets"`
	// Extensions are the top-level x-* blocks (the YAML anchors).
	Extensions map[string]any `yaml:",inline"`

	label string // the files it was read from, e.g. "docker-compose.yml"
}

type composeService struct {
	Image           string               `yaml:"image"`
	Build           *buildSpec           `yaml:"build"`
	Hostname        string               `yaml:"hostname"`
	Profiles        []string             `yaml:"profiles"`
	DependsOn       map[string]dependsOn `yaml:"depends_on"`
	Entrypoint      []string             `yaml:"entrypoint"`
	Command         []string             `yaml:"command"`
	Environment     map[string]any       `yaml:"environment"`
	Volumes         []string             `yaml:"volumes"`
	Ports           []string             `yaml:"ports"`
	Healthcheck     *healthcheck         `yaml:"healthcheck"`
	Restart         string               `yaml:"restart"`
	StopSignal      string               `yaml:"stop_signal"`
	StopGracePeriod string               `yaml:"stop_grace_period"`
	Secrets         []secretRef          `yaml:"secrets"`

	name string       // its key under services:
	file *composeFile // the stack it belongs to
}

// buildSpec is `build: <context>` or `build: {context, dockerfile}`.
type buildSpec struct {
	Context    string
	Dockerfile string
}

func (b *buildSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	var m struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	b.Context, b.Dockerfile = m.Context, m.Dockerfile
	return nil
}

type dependsOn struct {
	Condition string `yaml:"condition"`
}

type healthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// moduleRoot is the repository root, where go.mod, the Dockerfile and
// docker-compose.yml live.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// loadCompose parses docker-compose.yml, resolving anchors and merge keys.
func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	cf := decodeCompose(t, composeBase)
	for _, name := range []string{kafkaService, topicInitService, consumerService, standbyService} {
		if cf.Services[name] == nil {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	cf.label = composeBase
	cf.link(t)
	return cf
}

// service returns the named service, failing the test when it is missing.
func (cf *composeFile) service(t *testing.T, name string) *composeService {
	t.Helper()
	s := cf.Services[name]
	if s == nil {
		t.Fatalf("%s has no service %q", cf.label, name)
	}
	return s
}

// consumerServices names the services that run the consumer image (they are
// built from the Dockerfile), sorted.
func (cf *composeFile) consumerServices() []string {
	var names []string
	for name, s := range cf.Services {
		if s.Build != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// environ renders env in os.Environ form, sorted.
func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// loadConfig loads the configuration a process with env would run with.
func loadConfig(t *testing.T, what string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", environ(env))
	if err != nil {
		t.Fatalf("%s: the MVREPAIR_* settings do not load: %v", what, err)
	}
	return cfg
}

// listenPort returns the port of a [host]:port listen address.
func listenPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// portMapping is one short-syntax ports entry: [ip:]host:container[/proto].
type portMapping struct{ host, container string }

func parsePort(t *testing.T, spec string) portMapping {
	t.Helper()
	s, _, _ := strings.Cut(spec, "/")
	parts := strings.Split(s, ":")
	if len(parts) < 2 {
		t.Fatalf("ports entry %q: want host:container (an unpublished port is reachable only inside the network)", spec)
	}
	return portMapping{host: parts[len(parts)-2], container: parts[len(parts)-1]}
}

// volumeMount is one short-syntax volumes entry: source:target[:mode].
type volumeMount struct{ source, target, mode string }

func parseVolume(t *testing.T, spec string) volumeMount {
	t.Helper()
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		t.Fatalf("volumes entry %q: want source:target[:mode]", spec)
	}
	v := volumeMount{source: parts[0], target: parts[1]}
	if len(parts) == 3 {
		v.mode = parts[2]
	}
	return v
}

// isBind reports whether a volume source is a host path rather than a
// named volume.
func (v volumeMount) isBind() bool {
	return strings.HasPrefix(v.source, ".") || strings.HasPrefix(v.source, "/") || strings.HasPrefix(v.source, "~")
}

// mountAt returns the mount whose target is dir.
func (s *composeService) mountAt(t *testing.T, dir string) (volumeMount, bool) {
	t.Helper()
	for _, spec := range s.Volumes {
		if v := parseVolume(t, spec); path.Clean(v.target) == path.Clean(dir) {
			return v, true
		}
	}
	return volumeMount{}, false
}

// listeners parses a Kafka listener list ("NAME://host:port,...") into
// name → host:port.
func listeners(t *testing.T, list string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, item := range strings.Split(list, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(item), "://")
		if !ok {
			t.Fatalf("listener %q: want NAME://host:port", item)
		}
		out[name] = addr
	}
	return out
}

// loopbackListener reports whether a listener address is on loopback.
func loopbackListener(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && (host == "localhost" || net.ParseIP(host).IsLoopback())
}

var envVarRE = regexp.MustCompile(`\b` + config.EnvPrefix + `[A-Z0-9_]+`)

// configEnvKeys maps every configuration variable to its key.
func configEnvKeys(t *testing.T) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, k := range config.Keys() {
		if got := config.EnvName(k.Key); got != k.Env {
			t.Fatalf("config.EnvName(%q) = %q, but Keys() says %q", k.Key, got, k.Env)
		}
		m[k.Env] = k.Key
	}
	return m
}

func TestCompose_parses_strictly_with_only_x_extensions_besides_services_and_volumes(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for k := range cf.Extensions {
			if !strings.HasPrefix(k, "x-") {
				t.Errorf("top-level key %q is neither a Compose key nor an x- extension", k)
			}
		}
		if _, ok := cf.Extensions["x-consumer-env"]; !ok {
			t.Error("the consumers' shared settings should live in the x-consumer-env anchor")
		}
	})
}

func TestCompose_every_MVREPAIR_variable_names_a_config_key(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		known := configEnvKeys(t)
		for name, s := range cf.Services {
			for k := range s.env(t) {
				if strings.HasPrefix(k, config.EnvPrefix) && known[k] == "" {
					t.Errorf("service %s: %s is not the variable of any config key (config.Keys)", name, k)
				}
			}
		}
		// The topic-init script reads the consumer's variables too.
		scripts, err := filepath.Glob(filepath.Join(moduleRoot(t), "deploy", "*.sh"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range scripts {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range envVarRE.FindAllString(string(raw), -1) {
				if known[v] == "" {
					t.Errorf("%s reads %s, which is not the variable of any config key", filepath.Base(p), v)
				}
			}
		}
	})
}

func TestCompose_MVREPAIR_settings_of_every_service_pass_config_validation(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for name, s := range cf.Services {
			env := s.env(t)
			hasMV := false
			for k := range env {
				hasMV = hasMV || strings.HasPrefix(k, config.EnvPrefix)
			}
			if hasMV {
				loadConfig(t, "service "+name, env)
			}
		}
	})
}

func TestCompose_consumers_set_every_deployment_setting_explicitly(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		required := []string{
			"kafka.brokers", "kafka.create_topics", "kafka.group_id", "kafka.instance_name",
			"kafka.topics.input", "kafka.topics.catalog", "kafka.topics.edit_log", "kafka.topics.dlq",
			"log.format", "http.addr", "shutdown_timeout", "state.dir",
		}
		for _, name := range cf.consumerServices() {
			env := cf.Services[name].env(t)
			for _, key := range required {
				if _, ok := env[config.EnvName(key)]; !ok {
					t.Errorf("service %s does not set %s (%s)", name, config.EnvName(key), key)
				}
			}
		}
	})
}

func TestCompose_consumers_use_the_compose_broker_and_leave_topic_creation_to_topic_init(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		kafka := cf.service(t, kafkaService)
		kenv := kafka.env(t)
		advertised := listeners(t, kenv["KAFKA_ADVERTISED_LISTENERS"])
		protos := protocolMap(kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
		listenerAt := make(map[string]string) // address -> listener name
		for name, addr := range advertised {
			listenerAt[addr] = name
		}
		for _, name := range cf.consumerServices() {
			cfg := loadConfig(t, name, cf.Services[name].env(t))
			if cfg.Embedded() {
				t.Errorf("service %s runs the embedded broker; it should use the kafka service", name)
			}
			// What the client speaks must be what the listener expects.
			want := map[[2]bool]string{{false, false}: "PLAINTEXT", {true, false}: "SSL", {false, true}: "SASL_PLAINTEXT", {true, true}: "SASL_SSL"}[[2]bool{cfg.Kafka.TLS.Enabled, cfg.SASLEnabled()}]
			for _, b := range cfg.BrokerList() {
				l, ok := listenerAt[b]
				switch {
				case !ok:
					t.Errorf("service %s: broker %q is not an advertised listener of the kafka service (%v)", name, b, advertised)
				case protos[l] != want:
					t.Errorf("service %s dials %s (listener %s, %s) speaking %s", name, b, l, protos[l], want)
				}
			}
			if cfg.Kafka.CreateTopics {
				t.Errorf("service %s creates topics itself; topic-init does (MVREPAIR_KAFKA_CREATE_TOPICS=false)", name)
			}
			if cfg.Log.Format != "json" {
				t.Errorf("service %s logs %q; containers log json", name, cfg.Log.Format)
			}
			if cfg.Kafka.Balancer != config.BalancerSingleActive {
				t.Errorf("service %s uses balancer %q; one active writer needs %q", name, cfg.Kafka.Balancer, config.BalancerSingleActive)
			}
		}
	})
}

func TestCompose_consumer_instances_share_a_group_but_not_a_name_or_a_state_volume(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		names := cf.consumerServices()
		if !slices.Equal(names, []string{consumerService, standbyService}) {
			t.Fatalf("services built from the Dockerfile = %v, want [%s %s]", names, consumerService, standbyService)
		}
		groups := make(map[string]bool)
		instances := make(map[string]string)
		volumes := make(map[string]string)
		for _, name := range names {
			s := cf.Services[name]
			cfg := loadConfig(t, name, s.env(t))
			groups[cfg.Kafka.GroupID] = true
			inst := cfg.Kafka.InstanceName
			if inst == "" {
				t.Errorf("service %s: set MVREPAIR_KAFKA_INSTANCE_NAME (the container hostname is a random id)", name)
			} else if other, dup := instances[inst]; dup {
				t.Errorf("services %s and %s share the instance name %q", other, name, inst)
			}
			instances[inst] = name

			m, ok := s.mountAt(t, cfg.State.Dir)
			switch {
			case !ok:
				t.Errorf("service %s: nothing is mounted at its state dir %s; the store would die with the container", name, cfg.State.Dir)
			case m.isBind():
				t.Errorf("service %s: the state dir is a bind mount %q; use a named volume (the image's user owns it)", name, m.source)
			case volumes[m.source] != "":
				t.Errorf("services %s and %s share the state volume %q (a store is locked by one process)", volumes[m.source], name, m.source)
			default:
				volumes[m.source] = name
			}
		}
		if len(groups) != 1 {
			t.Errorf("the consumers are in groups %v; the active one and its standbys must share one", groups)
		}
		if got := cf.Services[standbyService].Profiles; !slices.Equal(got, []string{"standby"}) {
			t.Errorf("%s profiles = %v, want [standby] (optional)", standbyService, got)
		}
	})
}

func TestCompose_named_volumes_are_declared(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for name, s := range cf.Services {
			for _, spec := range s.Volumes {
				v := parseVolume(t, spec)
				if v.isBind() {
					continue
				}
				if _, ok := cf.Volumes[v.source]; !ok {
					t.Errorf("service %s mounts volume %q, which is not declared under volumes:", name, v.source)
				}
			}
		}
	})
}

func TestCompose_consumer_HTTP_port_is_published_and_probed_by_the_healthcheck(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		entrypoint := dockerfile(t).final().entrypoint(t)
		hostPorts := make(map[string]string)
		for name, s := range cf.Services {
			for _, spec := range s.Ports {
				p := parsePort(t, spec)
				if other, dup := hostPorts[p.host]; dup {
					t.Errorf("services %s and %s both publish host port %s", other, name, p.host)
				}
				hostPorts[p.host] = name
			}
		}
		for _, name := range cf.consumerServices() {
			s := cf.Services[name]
			cfg := loadConfig(t, name, s.env(t))
			port := listenPort(t, cfg.HTTP.Addr)

			published := false
			for _, spec := range s.Ports {
				published = published || parsePort(t, spec).container == port
			}
			if !published {
				t.Errorf("service %s listens on %s but its ports %v publish no container port %s", name, cfg.HTTP.Addr, s.Ports, port)
			}

			if s.Healthcheck == nil {
				t.Errorf("service %s has no healthcheck", name)
				continue
			}
			test := s.Healthcheck.Test
			if len(test) < 3 || test[0] != "CMD" || test[1] != entrypoint[0] || test[2] != "healthcheck" {
				t.Errorf("service %s healthcheck = %q, want [CMD %s healthcheck ...] (distroless has no shell)", name, test, entrypoint[0])
				continue
			}
			target := healthcheckURL(t, test)
			u, err := url.Parse(target)
			if err != nil {
				t.Fatalf("service %s healthcheck URL %q: %v", name, target, err)
			}
			if u.Port() != port || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") || u.Path != "/readyz" {
				t.Errorf("service %s probes %s, want http://127.0.0.1:%s/readyz", name, target, port)
			}
			for _, d := range []string{s.Healthcheck.Interval, s.Healthcheck.Timeout, s.Healthcheck.StartPeriod} {
				if _, err := time.ParseDuration(d); err != nil {
					t.Errorf("service %s healthcheck duration %q: %v", name, d, err)
				}
			}
		}
	})
}

// healthcheckURL returns the --url of a consumer healthcheck command.
func healthcheckURL(t *testing.T, test []string) string {
	t.Helper()
	for i, a := range test {
		if v, ok := strings.CutPrefix(a, "--url="); ok {
			return v
		}
		if a == "--url" && i+1 < len(test) {
			return test[i+1]
		}
	}
	t.Fatalf("healthcheck %q has no --url", test)
	return ""
}

func TestCompose_stop_grace_period_exceeds_the_shutdown_timeout(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for _, name := range cf.consumerServices() {
			s := cf.Services[name]
			cfg := loadConfig(t, name, s.env(t))
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Errorf("service %s stop_grace_period %q: %v (Compose's default is 10s)", name, s.StopGracePeriod, err)
				continue
			}
			if grace <= cfg.ShutdownTimeout {
				t.Errorf("service %s: stop_grace_period %s <= shutdown_timeout %s: Docker would SIGKILL a clean shutdown", name, grace, cfg.ShutdownTimeout)
			}
			if s.StopSignal != "SIGTERM" {
				t.Errorf("service %s stop_signal = %q, want SIGTERM (the signal the consumer shuts down on)", name, s.StopSignal)
			}
		}
	})
}

var pinnedKafkaImage = regexp.MustCompile(`^apache/kafka:3\.9\.[0-9]+$`)

func TestCompose_images_are_pinned_and_kafka_is_a_3_9_release(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		for name, s := range cf.Services {
			if s.Build != nil {
				continue
			}
			repo, tag, ok := strings.Cut(s.Image, ":")
			if !ok || tag == "" || tag == "latest" || strings.Contains(repo, "@") {
				t.Errorf("service %s image %q: pin a version tag", name, s.Image)
			}
		}
		kafka := cf.service(t, kafkaService).Image
		if !pinnedKafkaImage.MatchString(kafka) {
			t.Errorf("kafka image %q: want apache/kafka:3.9.x, a line the CI suite runs against", kafka)
		}
		if got := cf.service(t, topicInitService).Image; got != kafka {
			t.Errorf("topic-init image %q differs from the broker's %q", got, kafka)
		}
	})
}

func TestCompose_kafka_is_a_single_node_KRaft_broker_that_does_not_autocreate_topics(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		s := cf.service(t, kafkaService)
		env := s.env(t)
		host := s.Hostname
		if host == "" {
			host = kafkaService
		}

		roles := strings.Split(env["KAFKA_PROCESS_ROLES"], ",")
		if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
			t.Errorf("KAFKA_PROCESS_ROLES = %q, want broker,controller", env["KAFKA_PROCESS_ROLES"])
		}
		if id, err := base64.RawURLEncoding.DecodeString(env["CLUSTER_ID"]); err != nil || len(id) != 16 {
			t.Errorf("CLUSTER_ID %q is not a base64url Kafka UUID (16 bytes)", env["CLUSTER_ID"])
		}

		ls := listeners(t, env["KAFKA_LISTENERS"])
		protocols := make(map[string]bool)
		for _, pair := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
			name, _, _ := strings.Cut(pair, ":")
			protocols[name] = true
		}
		for name := range ls {
			if !protocols[name] {
				t.Errorf("listener %s has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", name)
			}
		}
		ctrl := env["KAFKA_CONTROLLER_LISTENER_NAMES"]
		voter := strings.TrimPrefix(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], env["KAFKA_NODE_ID"]+"@")
		if voter == env["KAFKA_CONTROLLER_QUORUM_VOTERS"] {
			t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS %q does not name node %s", env["KAFKA_CONTROLLER_QUORUM_VOTERS"], env["KAFKA_NODE_ID"])
		} else if addr := ls[ctrl]; addr == "" || voter != host+":"+listenPort(t, addr) {
			t.Errorf("the quorum voter %s is not this node's %s listener %q on host %s", voter, ctrl, addr, host)
		}

		adv := listeners(t, env["KAFKA_ADVERTISED_LISTENERS"])
		inter := env["KAFKA_INTER_BROKER_LISTENER_NAME"]
		if inter == "" {
			inter = "PLAINTEXT"
		}
		// The inter-broker listener is dialled by the broker itself (one
		// node): at its service name, or on loopback when it is bound there
		// (the secured stack keeps its PLAINTEXT listener inside the
		// container).
		a, bound := adv[inter], ls[inter]
		if loopbackListener(bound) {
			if !loopbackListener(a) || listenPort(t, a) != listenPort(t, bound) {
				t.Errorf("advertised %s listener %q should be localhost:<port of %q> (it listens on loopback only)", inter, a, bound)
			}
		} else if a == "" || a != host+":"+listenPort(t, bound) {
			t.Errorf("advertised %s listener %q should be %s:<port of %q> (what other containers dial)", inter, a, host, bound)
		}

		for k, want := range map[string]string{
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		} {
			if env[k] != want {
				t.Errorf("%s = %q, want %q", k, env[k], want)
			}
		}

		if m, ok := s.mountAt(t, env["KAFKA_LOG_DIRS"]); !ok || m.isBind() {
			t.Errorf("KAFKA_LOG_DIRS %q is not on a named volume", env["KAFKA_LOG_DIRS"])
		}

		if s.Healthcheck == nil {
			t.Fatal("kafka has no healthcheck; service_healthy needs one")
		}
		test := strings.Join(s.Healthcheck.Test, " ")
		wantBootstrap := "--bootstrap-server localhost:" + listenPort(t, ls[inter])
		if !strings.Contains(test, "/opt/kafka/bin/kafka-") || !strings.Contains(test, wantBootstrap) {
			t.Errorf("kafka healthcheck %q: want a /opt/kafka/bin tool with %s", test, wantBootstrap)
		}
	})
}

func TestCompose_start_order_is_healthy_kafka_then_completed_topic_init_then_consumers(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		ti := cf.service(t, topicInitService)
		if got := ti.DependsOn[kafkaService].Condition; got != "service_healthy" {
			t.Errorf("topic-init depends_on kafka condition = %q, want service_healthy", got)
		}
		if ti.Restart != "no" {
			t.Errorf("topic-init restart = %q, want \"no\" (one-shot)", ti.Restart)
		}
		for _, name := range cf.consumerServices() {
			s := cf.Services[name]
			if got := s.DependsOn[topicInitService].Condition; got != "service_completed_successfully" {
				t.Errorf("service %s depends_on topic-init condition = %q, want service_completed_successfully", name, got)
			}
			if c, ok := s.DependsOn[kafkaService]; ok && c.Condition != "service_healthy" {
				t.Errorf("service %s depends_on kafka condition = %q, want service_healthy", name, c.Condition)
			}
		}
		for name, s := range cf.Services {
			for dep, d := range s.DependsOn {
				if d.Condition == "service_healthy" && cf.service(t, dep).Healthcheck == nil {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			}
		}
	})
}

func TestCompose_topic_init_runs_the_deploy_script_mounted_read_only(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		script := topicInitScript(t, cf)
		if _, err := os.Stat(script); err != nil {
			t.Errorf("topic-init entrypoint script: %v", err)
		}
	})
}

// topicInitScript maps the script of topic-init's entrypoint
// ([/bin/sh, /mount/x.sh]) through its read-only bind mount to the host path.
func topicInitScript(t *testing.T, cf *composeFile) string {
	t.Helper()
	s := cf.service(t, topicInitService)
	if len(s.Entrypoint) != 2 || s.Entrypoint[0] != "/bin/sh" {
		t.Fatalf("topic-init entrypoint = %q, want [/bin/sh <script>] (the image's shell is busybox sh)", s.Entrypoint)
	}
	inContainer := s.Entrypoint[1]
	for _, spec := range s.Volumes {
		v := parseVolume(t, spec)
		rel, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(v.target, "/")+"/")
		if !ok || !v.isBind() {
			continue
		}
		if v.mode != "ro" {
			t.Errorf("topic-init mounts %s as %q, want read-only", v.source, spec)
		}
		return filepath.Join(moduleRoot(t), filepath.FromSlash(v.source), filepath.FromSlash(rel))
	}
	t.Fatalf("topic-init entrypoint %s is not under any of its bind mounts %v", inContainer, s.Volumes)
	return ""
}
