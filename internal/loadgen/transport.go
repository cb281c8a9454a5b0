package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// The transports a case can run over on the embedded broker
// (Options.Transports).
const (
	// TransportPlaintext: no TLS, no authentication (the dev mode's).
	TransportPlaintext = "plaintext"
	// TransportTLS: a TLS listener (a throwaway CA and a certificate for
	// 127.0.0.1, ECDSA P-256), no authentication.
	TransportTLS = "tls"
	// TransportSASLSSL: TLS and SASL SCRAM-SHA-512 (the CI broker's).
	TransportSASLSSL = "sasl_ssl"
)

// Transports lists the transports in the order of their names' help.
func Transports() []string {
	return []string{TransportPlaintext, TransportTLS, TransportSASLSSL}
}

// checkTransports refuses unknown and repeated transports, and transports
// with real brokers (whose listeners the configuration describes).
func checkTransports(ts, brokers []string) error {
	for i, tr := range ts {
		if !slices.Contains(Transports(), tr) {
			return fmt.Errorf("%w: unknown transport %q (want %s)", ErrOptions, tr, strings.Join(Transports(), ", "))
		}
		if slices.Contains(ts[:i], tr) {
			return fmt.Errorf("%w: transport %q given twice", ErrOptions, tr)
		}
	}
	if len(ts) > 0 && len(brokers) > 0 {
		return fmt.Errorf("%w: transports are for the embedded broker; with real brokers the configuration's kafka.tls.* and kafka.sasl.* say how to connect (run once per listener)", ErrOptions)
	}
	return nil
}

// secure sets up the transport of an embedded broker in dir: the listener's
// side (TLS, SASL users) for embedded.Config and the client's side in cfg.
// Plaintext (or none) leaves both plaintext.
func secure(transport, dir string, bc *embedded.Config, cfg *config.Config) error {
	def := config.Default()
	cfg.Kafka.TLS, cfg.Kafka.SASL = def.Kafka.TLS, def.Kafka.SASL // the embedded broker is plaintext unless told
	if transport == "" || transport == TransportPlaintext {
		return nil
	}
	caFile := filepath.Join(dir, "ca.pem")
	srv, err := embedded.LoopbackTLS(caFile)
	if err != nil {
		return err
	}
	bc.TLS = srv
	cfg.Kafka.TLS.Enabled, cfg.Kafka.TLS.CAFile = true, caFile
	if transport == TransportSASLSSL {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		pw := hex.EncodeToString(b)
		bc.SASLUsers = []embedded.SASLUser{{Mechanism: kafkaio.SASLScramSHA512, User: "loadgen", Password: pw}}
		cfg.Kafka.SASL.Mechanism, cfg.Kafka.SASL.Username, cfg.Kafka.SASL.Password = kafkaio.SASLScramSHA512, "loadgen", config.Secret(pw)
	}
	return nil
}
