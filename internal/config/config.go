// Package config is the service's typed, validated configuration (docs/design.md
// §6).
//
// Values come from three layers, highest priority first:
//
//  1. environment variables MVREPAIR_<KEY>, the key upper-cased with dots
//     replaced by underscores (kafka.topics.edit_log → MVREPAIR_KAFKA_TOPICS_EDIT_LOG);
//  2. an optional YAML file;
//  3. the built-in defaults of [Default], which the repository's config.yaml
//     mirrors key for key.
//
// Every key is bound explicitly, by walking the [Config] struct, so an
// environment variable overrides a key even when the file does not mention it
// (the trap of spf13/viper#761, where AutomaticEnv alone ignores keys viper
// has not otherwise seen). Unknown keys in the file are an error, as are
// values that do not parse or fail validation; every error names its key.
package config

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment variable that overrides a
// key.
const EnvPrefix = "MVREPAIR_"

// EmbeddedBrokers is the kafka.brokers value that runs an in-process
// Kafka-protocol broker instead of dialing external ones.
const EmbeddedBrokers = "embedded"

// Config is the whole configuration. Each field's `key` tag is its path
// segment and its `help` tag the one-line description shown by [Keys] and in
// config.yaml; the field order is the order of config.yaml.
type Config struct {
	Log             Log           `key:"log"`
	State           State         `key:"state"`
	Kafka           Kafka         `key:"kafka"`
	Batch           Batch         `key:"batch"`
	Retry           Retry         `key:"retry"`
	Checkpoint      Checkpoint    `key:"checkpoint"`
	HTTP            HTTP          `key:"http"`
	Health          Health        `key:"health"`
	ShutdownTimeout time.Duration `key:"shutdown_timeout" help:"Budget for a graceful shutdown: finish the batch in flight, commit, close clients."`
	Metrics         Metrics       `key:"metrics"`
	DryRun          bool          `key:"dry_run" help:"Decide and log repairs without applying or journaling them: state, edit log and offsets stay untouched."`
}

// Log configures logging.
type Log struct {
	Level  string `key:"level" help:"Minimum log level: debug|info|warn|error."`
	Format string `key:"format" help:"Log format: json (one object per line) or console (human-readable)."`
}

// State configures the local state store.
type State struct {
	Dir           string `key:"dir" help:"Directory of the local state store (and of the embedded broker's data)."`
	SnapshotBytes int64  `key:"snapshot_bytes" help:"Write a local snapshot of the state after this many bytes of local log, or twice the last snapshot's size if that is more (bounds the time a restart replays)."`
}

// Kafka configures the Kafka clients, the consumer group and the topics.
type Kafka struct {
	Brokers            string        `key:"brokers" list:"true" help:"Comma-separated bootstrap brokers (host:port), or \"embedded\" for an in-process broker."`
	EmbeddedAddr       string        `key:"embedded_addr" help:"Listen address (host:port) of the embedded broker when kafka.brokers is \"embedded\"."`
	TLS                TLS           `key:"tls"`
	SASL               SASL          `key:"sasl"`
	ClientID           string        `key:"client_id" help:"Kafka client id sent with every request."`
	GroupID            string        `key:"group_id" help:"Consumer group shared by the active instance and its hot standbys."`
	InstanceName       string        `key:"instance_name" help:"This instance's name in the group, logs and metrics; empty means the hostname."`
	Balancer           string        `key:"balancer" help:"Group balancer: single-active (one member owns every input partition) or range."`
	CreateTopics       bool          `key:"create_topics" help:"Create missing topics at start with kafka.partitions and kafka.replication_factor."`
	Partitions         int           `key:"partitions" help:"Partition count of topics created at start."`
	ReplicationFactor  int           `key:"replication_factor" help:"Replication factor of topics created at start."`
	SessionTimeout     time.Duration `key:"session_timeout" help:"Group session timeout: a member silent this long is evicted."`
	HeartbeatInterval  time.Duration `key:"heartbeat_interval" help:"Group heartbeat interval; must be less than kafka.session_timeout."`
	RebalanceTimeout   time.Duration `key:"rebalance_timeout" help:"Time members get to finish their batch and rejoin during a rebalance."`
	ConnectTimeout     time.Duration `key:"connect_timeout" help:"How long start-up waits for the brokers to answer before it fails."`
	Topics             Topics        `key:"topics"`
	EditLogRetentionMs int64         `key:"edit_log_retention_ms" help:"retention.ms of a created edit-log topic; -1 keeps the journal (checkpoints truncate it)."`
	EditLogMaxBytes    int           `key:"edit_log_max_message_bytes" help:"max.message.bytes of a created edit-log topic: the largest journal record (an MV with 10k partitions must fit)."`
	IsolationLevel     string        `key:"isolation_level" help:"How input topics are read: read_committed (records of aborted or open transactions are never applied) or read_uncommitted."`
	Writer             Writer        `key:"writer"`
	Reader             Reader        `key:"reader"`
}

// TLS configures TLS on the connections to the brokers (docs/design.md §6). Every
// key but enabled requires enabled: true.
type TLS struct {
	Enabled            bool   `key:"enabled" help:"Connect to the brokers over TLS (the SSL or SASL_SSL listener)."`
	CAFile             string `key:"ca_file" help:"PEM file of the CA certificates the brokers' certificates must chain to; empty means the system roots."`
	CertFile           string `key:"cert_file" help:"PEM client certificate for mutual TLS (mTLS); set together with kafka.tls.key_file."`
	KeyFile            string `key:"key_file" help:"PEM private key of kafka.tls.cert_file (unencrypted; mount it from a secret)."`
	ServerName         string `key:"server_name" help:"Name the brokers' certificates must carry; empty means the host of each broker address."`
	InsecureSkipVerify bool   `key:"insecure_skip_verify" help:"Do not verify the brokers' certificates: anyone on the path can impersonate the broker. Tests only; logged as a warning."`
}

// SASL configures SASL authentication (docs/design.md §6).
type SASL struct {
	Mechanism    string `key:"mechanism" help:"SASL mechanism: none|PLAIN|SCRAM-SHA-256|SCRAM-SHA-512."`
	Username     string `key:"username" help:"SASL user name; required with a mechanism."`
	Password     Secret `key:"password" help:"SASL password; never shown in logs, errors or dumps. Prefer kafka.sasl.password_file; set exactly one of the two."`
	PasswordFile string `key:"password_file" help:"File holding the SASL password (one trailing newline is ignored), e.g. a mounted Kubernetes or compose secret."`
}

// Topics names the topics the service reads and writes.
type Topics struct {
	Input     string `key:"input" help:"Input topic of partition-version-changed and external-table-recreated events."`
	Catalog   string `key:"catalog" help:"Catalog topic of mv_upserted, mv_refreshed and mv_dropped events."`
	EditLog   string `key:"edit_log" help:"Edit-log topic: the journal of every state change, tailed by followers."`
	DLQ       string `key:"dlq" help:"Dead-letter topic for input records that cannot be decoded or applied."`
	Snapshots string `key:"snapshots" help:"Snapshot topic (compacted): the state as of the latest checkpoint, read by restores."`
}

// Writer configures the Kafka producers (edit log and DLQ).
type Writer struct {
	BatchTimeout time.Duration `key:"batch_timeout" help:"Longest a produced record waits for its batch to fill."`
	BatchSize    int           `key:"batch_size" help:"Most records per produce batch."`
	WriteTimeout time.Duration `key:"write_timeout" help:"Timeout of one produce request."`
	Compression  string        `key:"compression" help:"Produce compression: none|gzip|snappy|lz4|zstd."`
}

// Reader configures the Kafka consumers.
type Reader struct {
	MaxWait       time.Duration `key:"max_wait" help:"Longest a fetch waits for kafka.reader.max_bytes to accumulate."`
	MaxBytes      int           `key:"max_bytes" help:"Most bytes per fetch response."`
	QueueCapacity int           `key:"queue_capacity" help:"Messages buffered ahead of the consumer per reader."`
}

// Batch configures how input events are grouped into one local commit.
type Batch struct {
	MaxEvents int           `key:"max_events" help:"Most events per batch (1-100000)."`
	MaxWait   time.Duration `key:"max_wait" help:"Longest the first event of a batch waits for more."`
}

// Retry configures the exponential backoff of transient failures.
type Retry struct {
	InitialInterval time.Duration `key:"initial_interval" help:"First backoff interval."`
	MaxInterval     time.Duration `key:"max_interval" help:"Largest backoff interval."`
	Multiplier      float64       `key:"multiplier" help:"Growth factor of the backoff interval (>= 1)."`
	MaxElapsedTime  time.Duration `key:"max_elapsed_time" help:"Give up retrying after this long; must be less than kafka.rebalance_timeout."`
}

// HTTP configures the operator HTTP server.
type HTTP struct {
	Addr string `key:"addr" help:"Listen address of /livez, /readyz, /metrics and /v1/mvs."`
}

// Checkpoint configures the checkpoints of the snapshot topic.
type Checkpoint struct {
	Interval   time.Duration `key:"interval" help:"The active writer writes a checkpoint this often (0 disables time-based checkpoints; with max_records 0 too, only consumer checkpoint writes them)."`
	MaxRecords int64         `key:"max_records" help:"... or after this many edit-log records since the last one (0 disables)."`
	Truncate   bool          `key:"truncate" help:"Delete edit-log records below the previous durable checkpoint, so the journal stays bounded."`
}

// Health configures readiness.
type Health struct {
	StallTimeout time.Duration `key:"stall_timeout" help:"/readyz turns 503 when the writer or follower makes no progress this long while work is pending or an operation keeps failing."`
}

// Metrics configures metric collection.
type Metrics struct {
	LagInterval time.Duration `key:"lag_interval" help:"How often consumer lag per partition is measured."`
}

// Default returns the built-in defaults. The repository's config.yaml holds
// exactly these values (a test keeps the two equal).
func Default() Config {
	return Config{
		Log:   Log{Level: "info", Format: "json"},
		State: State{Dir: "./data", SnapshotBytes: 64 << 20},
		Kafka: Kafka{
			Brokers:           EmbeddedBrokers,
			EmbeddedAddr:      "127.0.0.1:9092",
			TLS:               TLS{Enabled: false, InsecureSkipVerify: false},
			SASL:              SASL{Mechanism: SASLNone},
			ClientID:          "mvrepair",
			GroupID:           "mvrepair",
			InstanceName:      "",
			Balancer:          BalancerSingleActive,
			CreateTopics:      true,
			Partitions:        6,
			ReplicationFactor: 1,
			SessionTimeout:    10 * time.Second,
			HeartbeatInterval: time.Second,
			RebalanceTimeout:  30 * time.Second,
			ConnectTimeout:    30 * time.Second,
			Topics: Topics{
				Input:     "partition-version-changed",
				Catalog:   "mv-catalog",
				EditLog:   "mv-edit-log",
				DLQ:       "mv-repair-dlq",
				Snapshots: "mv-snapshots",
			},
			EditLogRetentionMs: -1,
			EditLogMaxBytes:    16 << 20,
			IsolationLevel:     IsolationReadCommitted,
			Writer: Writer{
				BatchTimeout: 2 * time.Millisecond,
				BatchSize:    1000,
				WriteTimeout: 10 * time.Second,
				Compression:  "none",
			},
			Reader: Reader{
				MaxWait:       100 * time.Millisecond,
				MaxBytes:      10 << 20,
				QueueCapacity: 1000,
			},
		},
		Batch: Batch{MaxEvents: 1000, MaxWait: 20 * time.Millisecond},
		Retry: Retry{
			InitialInterval: 50 * time.Millisecond,
			MaxInterval:     2 * time.Second,
			Multiplier:      2,
			MaxElapsedTime:  20 * time.Second,
		},
		Checkpoint:      Checkpoint{Interval: 5 * time.Minute, MaxRecords: 100000, Truncate: true},
		HTTP:            HTTP{Addr: ":8080"},
		Health:          Health{StallTimeout: 15 * time.Second},
		ShutdownTimeout: 20 * time.Second,
		Metrics:         Metrics{LagInterval: 10 * time.Second},
		DryRun:          false,
	}
}

// The kafka.balancer values.
const (
	// BalancerSingleActive gives every input partition to one member, so the
	// group protocol elects the active writer (docs/design.md §7).
	BalancerSingleActive = "single-active"
	// BalancerRange is kafka-go's range balancer (for experiments only: it
	// splits partitions across members).
	BalancerRange = "range"
)

// The kafka.sasl.mechanism values.
const (
	// SASLNone turns SASL off.
	SASLNone = "none"
	// SASLPlain sends the password as it is: use it only over TLS.
	SASLPlain = "PLAIN"
	// SASLScramSHA256 is SCRAM (RFC 5802, RFC 7677) with SHA-256.
	SASLScramSHA256 = "SCRAM-SHA-256"
	// SASLScramSHA512 is SCRAM with SHA-512.
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// The kafka.isolation_level values.
const (
	// IsolationReadCommitted reads only records of committed transactions
	// (and non-transactional ones), up to the last stable offset.
	IsolationReadCommitted = "read_committed"
	// IsolationReadUncommitted reads every record up to the high watermark,
	// including those of aborted and still-open transactions.
	IsolationReadUncommitted = "read_uncommitted"
)

// PasswordEnv is the environment variable of kafka.sasl.password. Since
// every dump of a Config redacts the password, code that hands a Config to
// a child process as JSON passes the password in this variable.
const PasswordEnv = EnvPrefix + "KAFKA_SASL_PASSWORD"

// Embedded reports whether kafka.brokers asks for the in-process broker.
func (c *Config) Embedded() bool {
	return strings.EqualFold(strings.TrimSpace(c.Kafka.Brokers), EmbeddedBrokers)
}

// BrokerList returns the bootstrap addresses clients should dial: the
// kafka.brokers list split on commas (blanks trimmed, empty items dropped),
// or kafka.embedded_addr alone when the brokers are [EmbeddedBrokers].
func (c *Config) BrokerList() []string {
	if c.Embedded() {
		return []string{c.Kafka.EmbeddedAddr}
	}
	return splitList(c.Kafka.Brokers)
}

// InstanceName returns kafka.instance_name, or the hostname when it is empty,
// or "mvrepair-<pid>" when the hostname is unknown.
func (c *Config) InstanceName() string {
	if n := strings.TrimSpace(c.Kafka.InstanceName); n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "mvrepair-" + strconv.Itoa(os.Getpid())
}

// All returns the topic names in a fixed order: input, catalog, edit log,
// DLQ, snapshots.
func (t Topics) All() []string {
	return []string{t.Input, t.Catalog, t.EditLog, t.DLQ, t.Snapshots}
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// validHostPort reports whether s is host:port with a numeric port of at
// least minPort (an empty host means every interface).
func validHostPort(s string, minPort int) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(host, " \t") {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= minPort && p <= 65535
}
