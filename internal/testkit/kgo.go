package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
)

// KgoOpts returns the options of a franz-go (kgo) client that reaches the
// test's brokers with the same TLS and SASL settings as the Env's own
// clients (KAFKA_SECURITY_PROTOCOL and friends), for what kafkaio does not
// do, such as a transactional producer. kgo is a test-only client: the
// service and the CLI use kafkaio (kafka-go).
func (e *Env) KgoOpts() []kgo.Opt {
	e.T.Helper()
	opts, err := kgoOpts(e.Brokers, service.Security(&e.base))
	if err != nil {
		e.T.Fatal(err)
	}
	return opts
}

// kgoOpts maps kafkaio's security settings to kgo options.
func kgoOpts(brokers []string, sec kafkaio.Security) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if t := sec.TLS; t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName,
			InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // as configured: a test-only option
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("testkit: kgo TLS CA file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("testkit: kgo TLS CA file %s: no PEM certificate in it", t.CAFile)
			}
		}
		if t.CertFile != "" || t.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("testkit: kgo TLS client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if s := sec.SASL; s != nil {
		var m sasl.Mechanism
		switch strings.ToUpper(strings.TrimSpace(s.Mechanism)) {
		case kafkaio.SASLPlain:
			m = plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
		case kafkaio.SASLScramSHA256:
			m = scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
		case kafkaio.SASLScramSHA512:
			m = scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("testkit: kgo: unknown SASL mechanism %q", s.Mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}
