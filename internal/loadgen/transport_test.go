package loadgen

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
)

func TestRun_transports_runEachCaseOncePerTransportVerified(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers and the service on each")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := Case{Name: "tiny", Title: "tiny", MVs: 8, Tables: 4, Partitions: 3, TopicPartitions: 2}
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Cases: []Case{c}, Events: 400, Rounds: 1, SkipLatency: true,
		Transports: Transports(), Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if len(rep.Cases) != 3 {
		t.Fatalf("%d case reports, want one per transport", len(rep.Cases))
	}
	for i, cr := range rep.Cases {
		if cr.Transport != Transports()[i] {
			t.Errorf("report %d is over %q, want %q", i, cr.Transport, Transports()[i])
		}
		if !cr.Repair.Verified || cr.PassThrough.Events != 400 {
			t.Errorf("%s: repair verified=%v (%s), pass-through %d events", caseName(cr.Case.Name, cr.Transport),
				cr.Repair.Verified, cr.Repair.VerifyError, cr.PassThrough.Events)
		}
	}
	var b bytes.Buffer
	rep.WriteTable(&b)
	for _, want := range []string{"== tiny [sasl_ssl]", "transports: each case over plaintext, tls, sasl_ssl",
		"tiny [tls] vs plaintext", "tiny [sasl_ssl] vs plaintext"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRun_refusesBadTransports(t *testing.T) {
	c := Case{Name: "tiny", MVs: 1, Tables: 1, Partitions: 1, TopicPartitions: 1}
	for name, opt := range map[string]Options{
		"unknown":           {Transports: []string{"ssl"}},
		"twice":             {Transports: []string{TransportTLS, TransportTLS}},
		"with real brokers": {Transports: []string{TransportTLS}, Brokers: []string{"127.0.0.1:1"}},
	} {
		opt.Cases = []Case{c}
		if _, err := Run(t.Context(), opt); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: Run = %v, want ErrOptions", name, err)
		}
	}
}

func TestSecure_setsBothSidesAndReportsAnUnwritableDir(t *testing.T) {
	dir := t.TempDir()
	var bc embedded.Config
	cfg := config.Default()
	if err := secure(TransportSASLSSL, dir, &bc, &cfg); err != nil {
		t.Fatal(err)
	}
	if bc.TLS == nil || len(bc.SASLUsers) != 1 || !cfg.Kafka.TLS.Enabled || cfg.Kafka.TLS.CAFile == "" ||
		cfg.Kafka.SASL.Username != bc.SASLUsers[0].User || cfg.Kafka.SASL.Password.Reveal() != bc.SASLUsers[0].Password {
		t.Errorf("sasl_ssl: broker %+v, client %+v", bc, cfg.Kafka)
	}
	bc, cfg = embedded.Config{}, config.Default()
	cfg.Kafka.TLS.Enabled = true // a base configuration for real brokers
	if err := secure(TransportPlaintext, dir, &bc, &cfg); err != nil || bc.TLS != nil || cfg.Kafka.TLS.Enabled {
		t.Errorf("plaintext: %v, broker TLS %v, client TLS %v", err, bc.TLS != nil, cfg.Kafka.TLS.Enabled)
	}
	if err := secure(TransportTLS, filepath.Join(dir, "missing"), &bc, &cfg); err == nil {
		t.Error("secure wrote a CA file into a directory that does not exist")
	}
}
