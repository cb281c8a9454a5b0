// Package embedded runs an in-process Kafka-protocol broker (franz-go's kfake)
// for the `kafka.brokers: embedded` dev mode and for fast hermetic tests
// (docs/design.md §6, §8).
//
// The broker is a single node that listens on the loopback interface only:
// kfake always binds 127.0.0.1 and advertises the address it listens on, so
// it cannot be reached from another host or container. With a DataDir the
// topics, records and committed group offsets survive a Close followed by a
// Start with the same directory (and the same port, so that clients find it
// again).
//
// This package never imports kafka-go; clients talk to the broker over TCP
// through internal/kafkaio like they would to a real cluster.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is the address the dev-mode broker listens on.
const DefaultAddr = "127.0.0.1:9092"

// ErrNonLoopbackAddr is returned by Start when Config.Addr names a host other
// than the loopback interface, which kfake cannot listen on.
var ErrNonLoopbackAddr = errors.New("embedded: kfake listens on 127.0.0.1 only")

// topicAlreadyExists is the message prefix of kerr.TopicAlreadyExists. The
// code is matched on the text to keep franz-go's kerr package (an indirect
// dependency) out of this module's direct imports.
const topicAlreadyExists = "TOPIC_ALREADY_EXISTS"

// Topic is a topic the broker creates at start when it does not exist yet.
type Topic struct {
	// Name of the topic.
	Name string
	// Partitions is the partition count; 0 or less uses
	// Config.DefaultPartitions.
	Partitions int
	// Configs are topic configs such as "retention.ms" or "cleanup.policy".
	Configs map[string]string
}

// Config configures the embedded broker.
type Config struct {
	// Addr is the listen address, "127.0.0.1:9092" by default. Port 0 picks a
	// random free port (see Broker.Addr). The host must be empty, 127.0.0.1
	// or localhost.
	Addr string
	// DataDir keeps the broker's state on disk; "" keeps everything in memory
	// (records live on the heap, roughly 300 bytes each plus the payload).
	DataDir string
	// Topics are created at start if they do not exist. Existing topics (for
	// example reloaded from DataDir) are left as they are.
	Topics []Topic
	// SyncWrites fsyncs every produced batch (only meaningful with DataDir).
	SyncWrites bool
	// DefaultPartitions is the partition count of topics created with no
	// explicit count (Topic.Partitions <= 0, or CreateTopics with -1).
	// 0 means 1, like Apache Kafka's num.partitions.
	DefaultPartitions int
	// MinSessionTimeout is the smallest group session timeout the broker
	// accepts; 0 means 1s so tests can use short session timeouts (kfake's
	// own default is 6s).
	MinSessionTimeout time.Duration
	// TLS, when set, makes the listener serve TLS with this configuration
	// (its certificate): clients then need TLS (for measuring and testing
	// secured clients; the dev mode stays plaintext).
	TLS *tls.Config
	// SASLUsers, when set, makes the listener require SASL authentication as
	// one of these users (over TLS when TLS is set: SASL_SSL).
	SASLUsers []SASLUser
}

// SASLUser is a user of a broker that requires SASL.
type SASLUser struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	User      string
	Password  string
}

// Broker is a running embedded broker.
type Broker struct {
	cluster   *kfake.Cluster
	addr      string
	closeOnce sync.Once
}

// Start starts a single-node broker and creates cfg.Topics. ctx bounds only
// the start itself; the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: start: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	port, err := loopbackPort(addr)
	if err != nil {
		return nil, err
	}
	defParts := cfg.DefaultPartitions
	if defParts <= 0 {
		defParts = 1
	}
	minSession := cfg.MinSessionTimeout
	if minSession <= 0 {
		minSession = time.Second
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(defParts),
		kfake.GroupMinSessionTimeout(minSession),
	}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	if len(cfg.SASLUsers) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.SASLUsers {
			switch u.Mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				return nil, fmt.Errorf("embedded: SASL user %q: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", u.User, u.Mechanism)
			}
			opts = append(opts, kfake.Superuser(u.Mechanism, u.User, u.Password))
		}
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: start broker on %s: %w", addr, err)
	}
	b := &Broker{cluster: cluster}
	addrs := cluster.ListenAddrs()
	if len(addrs) == 0 {
		b.Close()
		return nil, errors.New("embedded: broker reports no listen address")
	}
	b.addr = addrs[0]

	// Topics are created one by one rather than seeded: kfake ignores seed
	// topics when it reloads state from DataDir, and seeds carry no configs.
	for _, t := range cfg.Topics {
		if err := ctx.Err(); err != nil {
			b.Close()
			return nil, fmt.Errorf("embedded: create topics: %w", err)
		}
		if t.Name == "" {
			b.Close()
			return nil, errors.New("embedded: topic with an empty name")
		}
		err := cluster.CreateTopic(t.Name, int32(max(t.Partitions, 0)), t.Configs)
		if err != nil && !strings.HasPrefix(err.Error(), topicAlreadyExists) {
			b.Close()
			return nil, fmt.Errorf("embedded: create topic %q: %w", t.Name, err)
		}
	}
	return b, nil
}

// Addr returns the host:port the broker listens on (useful with port 0).
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, flushing its state to DataDir when set. It is safe
// to call more than once. Clients still connected see their connections
// drop; kafka-go clients reusing pooled connections after a restart get one
// io.ErrUnexpectedEOF per stale connection before they reconnect.
func (b *Broker) Close() {
	b.closeOnce.Do(b.cluster.Close)
}

// loopbackPort validates addr and returns its port.
func loopbackPort(addr string) (int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("embedded: invalid address %q: %w", addr, err)
	}
	switch host {
	case "", "127.0.0.1", "localhost":
	default:
		return 0, fmt.Errorf("%w: got %q", ErrNonLoopbackAddr, addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("embedded: invalid port in %q", addr)
	}
	return port, nil
}
