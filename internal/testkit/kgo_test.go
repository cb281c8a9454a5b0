package testkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// testCA writes a CA certificate to dir/ca.pem and returns the path and a
// server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testkit CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

func TestKgoOpts_reachATLSAndSCRAMBrokerWithTheEnvSettings(t *testing.T) {
	caFile, srv := testCA(t, t.TempDir())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(kafkaio.SASLScramSHA512, "alice", "s3cret"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ping := func(sec kafkaio.Security) error {
		opts, err := kgoOpts(brokers, sec)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(2*time.Second))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	ok := kafkaio.Security{TLS: &kafkaio.TLSConfig{CAFile: caFile},
		SASL: &kafkaio.SASLConfig{Mechanism: "scram-sha-512", Username: "alice", Password: "s3cret"}}
	if err := ping(ok); err != nil {
		t.Fatalf("ping over TLS with SCRAM-SHA-512: %v", err)
	}
	wrong := ok
	wrong.SASL = &kafkaio.SASLConfig{Mechanism: kafkaio.SASLScramSHA512, Username: "alice", Password: "wrong"}
	if err := ping(wrong); err == nil {
		t.Error("ping with a wrong password succeeded: the SASL settings are not used")
	}
	if err := ping(kafkaio.Security{SASL: ok.SASL}); err == nil {
		t.Error("ping in plaintext succeeded against the TLS listener: the TLS settings are not used")
	}
}

func TestKgoOpts_badSettingsAreErrorsNamingThem(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sec  kafkaio.Security
		want string
	}{
		{"missing CA file", kafkaio.Security{TLS: &kafkaio.TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}}, "CA file"},
		{"CA file without PEM", kafkaio.Security{TLS: &kafkaio.TLSConfig{CAFile: notPEM}}, "no PEM certificate"},
		{"bad client certificate", kafkaio.Security{TLS: &kafkaio.TLSConfig{CertFile: notPEM, KeyFile: notPEM}}, "client certificate"},
		{"unknown mechanism", kafkaio.Security{SASL: &kafkaio.SASLConfig{Mechanism: "GSSAPI", Username: "u"}}, `"GSSAPI"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := kgoOpts([]string{"127.0.0.1:1"}, c.sec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("kgoOpts = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
