package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

func TestStart_random_port_and_topics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := embedded.Start(ctx, embedded.Config{
		Addr:              "127.0.0.1:0",
		DefaultPartitions: 2,
		Topics:            []embedded.Topic{{Name: "three", Partitions: 3}, {Name: "dflt"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Addr() == "" || b.Addr() == "127.0.0.1:0" {
		t.Fatalf("addr = %q", b.Addr())
	}
	admin, err := kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: []string{b.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for topic, want := range map[string]int{"three": 3, "dflt": 2} {
		ps, err := admin.Partitions(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != want {
			t.Errorf("%s: partitions %v, want %d", topic, ps, want)
		}
	}
	b.Close()
	b.Close() // idempotent
}

func TestStart_rejects_bad_addresses(t *testing.T) {
	ctx := context.Background()
	if _, err := embedded.Start(ctx, embedded.Config{Addr: "0.0.0.0:0"}); !errors.Is(err, embedded.ErrNonLoopbackAddr) {
		t.Errorf("0.0.0.0: %v, want ErrNonLoopbackAddr", err)
	}
	if _, err := embedded.Start(ctx, embedded.Config{Addr: "nonsense"}); err == nil {
		t.Error("address without port accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := embedded.Start(cancelled, embedded.Config{Addr: "127.0.0.1:0"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

// Records, topics and committed group offsets survive Close + Start with the
// same DataDir and port.
func TestStart_data_survives_restart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := embedded.Config{
		Addr:    "127.0.0.1:0",
		DataDir: dir,
		Topics:  []embedded.Topic{{Name: "durable", Partitions: 2, Configs: map[string]string{"retention.ms": "-1"}}},
	}
	b, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	brokers := []string{addr}

	p, err := kafkaio.NewProducer(kafkaio.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafkaio.Message
	for i := 0; i < 20; i++ {
		msgs = append(msgs, kafkaio.Message{Topic: "durable", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	_ = p.Close(ctx)

	admin, err := kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	before, err := admin.ListOffsets(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CommitGroupOffsets(ctx, "g", map[string]map[int]int64{"durable": {0: 1, 1: 2}}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	// Same directory and port; the topic list is applied again (no error for
	// the existing topic) plus a new one.
	cfg.Addr = addr
	cfg.Topics = append(cfg.Topics, embedded.Topic{Name: "added", Partitions: 1})
	b2, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", b2.Addr(), addr)
	}

	// The same Admin is reused on purpose: its pooled connections are dead,
	// and it must recover from the io.ErrUnexpectedEOF they produce.
	after, err := admin.ListOffsets(ctx, "durable")
	if err != nil {
		t.Fatalf("list offsets after restart: %v", err)
	}
	var total int64
	for part, po := range before {
		if after[part] != po {
			t.Errorf("partition %d offsets %v after restart, %v before", part, after[part], po)
		}
		total += po.Last
	}
	if total != 20 {
		t.Errorf("%d records before restart, want 20", total)
	}
	committed, err := admin.CommittedOffsets(ctx, "g", []string{"durable"})
	if err != nil {
		t.Fatal(err)
	}
	if committed["durable"][0] != 1 || committed["durable"][1] != 2 {
		t.Errorf("committed offsets after restart = %v", committed)
	}
	if ps, err := admin.Partitions(ctx, "added"); err != nil || len(ps) != 1 {
		t.Errorf("new topic after restart: %v, %v", ps, err)
	}

	f, err := kafkaio.NewTopicTail(ctx, kafkaio.FetcherConfig{Brokers: brokers}, "durable", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(m.Value)] = true
	}
	if len(seen) != 20 {
		t.Errorf("read %d distinct records after restart, want 20", len(seen))
	}
}

func TestStart_TLSAndSASL_secureTheListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := embedded.LoopbackTLS(caFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", TLS: srv,
		SASLUsers: []embedded.SASLUser{{Mechanism: kafkaio.SASLScramSHA512, User: "loadgen", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	admin := func(sec kafkaio.Security) *kafkaio.Admin {
		a, err := kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: []string{b.Addr()}, Security: sec})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		return a
	}
	tlsOnly := kafkaio.Security{TLS: &kafkaio.TLSConfig{CAFile: caFile}}
	both := tlsOnly
	both.SASL = &kafkaio.SASLConfig{Mechanism: kafkaio.SASLScramSHA512, Username: "loadgen", Password: "s3cret"}
	if err := admin(both).EnsureTopics(ctx, []kafkaio.TopicSpec{{Name: "t", Partitions: 1, ReplicationFactor: 1}}); err != nil {
		t.Fatalf("SASL_SSL with the CA file and the user: %v", err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if _, err := embedded.LoopbackTLS(otherCA); err != nil {
		t.Fatal(err)
	}
	for name, sec := range map[string]kafkaio.Security{"plaintext": {SASL: both.SASL},
		"another CA": {TLS: &kafkaio.TLSConfig{CAFile: otherCA}, SASL: both.SASL}} {
		if err := admin(sec).Ping(ctx); !errors.Is(err, kafkaio.ErrSecurity) {
			t.Errorf("%s: ping = %v, want ErrSecurity", name, err)
		}
	}
	// Without SASL the broker answers nothing but the handshake's requests.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if ps, err := admin(tlsOnly).Partitions(short, "t"); err == nil {
		t.Errorf("TLS without SASL: partitions %v, want an error", ps)
	}
}

func TestStart_unknownSASLMechanism_isAnError(t *testing.T) {
	_, err := embedded.Start(context.Background(), embedded.Config{Addr: "127.0.0.1:0",
		SASLUsers: []embedded.SASLUser{{Mechanism: "GSSAPI", User: "u"}}})
	if err == nil || !strings.Contains(err.Error(), `"GSSAPI"`) {
		t.Fatalf("Start = %v, want an error naming the mechanism", err)
	}
}

func TestLoopbackTLS_unwritableCAFile_isAnError(t *testing.T) {
	if _, err := embedded.LoopbackTLS(filepath.Join(t.TempDir(), "missing", "ca.pem")); err == nil {
		t.Fatal("LoopbackTLS wrote into a directory that does not exist")
	}
}
