package kafkaio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TLS and SASL against kfake's TLS listener and SASL users (the embedded
// broker stays plaintext).

// pki is a test CA with a server and a client certificate, as PEM files.
type pki struct {
	caFile     string
	caPool     *x509.CertPool
	server     tls.Certificate
	clientCert string // PEM files of the client certificate and key
	clientKey  string
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := issue(2, "broker", x509.ExtKeyUsageServerAuth, true)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(3, "mvrepair", x509.ExtKeyUsageClientAuth, false)
	p.clientCert, p.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, p.clientCert, "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientKey, "EC PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverTLS is the broker side: its certificate, and with mtls the client
// certificates it requires.
func (p *pki) serverTLS(mtls bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if mtls {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.caPool
	}
	return cfg
}

// startKfake starts a one-broker kfake with topic "sec" and opts.
func startKfake(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "sec"), kfake.GroupMinSessionTimeout(time.Second)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// Users of the SASL broker.
const (
	plainUser, plainPass   = "alice", "alice-s3cret"
	scram256User, scram256 = "bob", "bob-s3cret"
	scram512User, scram512 = "carol", "carol-s3cret"
)

func saslOpts() []kfake.Opt {
	return []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser(SASLPlain, plainUser, plainPass),
		kfake.Superuser(SASLScramSHA256, scram256User, scram256),
		kfake.Superuser(SASLScramSHA512, scram512User, scram512),
	}
}

// roundTrip checks every client with sec: admin ping, a publish, a fetch of
// that message and a consumer group generation.
func roundTrip(t *testing.T, addr string, sec Security) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	brokers := []string{addr}
	admin, err := NewAdmin(AdminConfig{Brokers: brokers, Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	p, err := NewProducer(ProducerConfig{Brokers: brokers, Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	val := fmt.Sprintf("secure-%d", time.Now().UnixNano())
	m := Message{Topic: "sec", Value: []byte(val)}
	if err := p.Publish(ctx, m); err != nil {
		t.Fatalf("publish: %v", err)
	}
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: brokers, Security: sec}, "sec", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		got, err := f.Fetch(ctx)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if string(got.Value) == val {
			break
		}
	}
	gcfg := fastGroupConfig(addr, fmt.Sprintf("g-%d", time.Now().UnixNano()), "a", "sec")
	gcfg.Security = sec
	g := newTestGroup(t, gcfg)
	if gen := nextActiveGen(t, g, 15*time.Second); len(gen.Assignments()["sec"]) != 1 {
		t.Errorf("group assignments %v", gen.Assignments())
	}
}

// pingFails pings addr with sec and returns the error, which must be
// ErrSecurity, permanent, within a few seconds and on one line.
func pingFails(t *testing.T, addr string, sec Security, secrets ...string) error {
	t.Helper()
	admin, err := NewAdmin(AdminConfig{Brokers: []string{addr}, Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	start := time.Now()
	err = admin.Ping(context.Background()) // no deadline: Ping must not hang
	took := time.Since(start)
	t.Logf("ping after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, ErrSecurity) {
		t.Fatalf("ping: %v, want ErrSecurity", err)
	}
	if IsTransient(err) {
		t.Errorf("IsTransient(%v) = true", err)
	}
	if took > 6*time.Second {
		t.Errorf("ping took %v", took)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message on several lines: %q", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
	return err
}

func TestSecurity_SASLMechanisms_authenticateEveryClient(t *testing.T) {
	addr := startKfake(t, saslOpts()...)
	for _, c := range []SASLConfig{
		{Mechanism: SASLPlain, Username: plainUser, Password: plainPass},
		{Mechanism: SASLScramSHA256, Username: scram256User, Password: scram256},
		{Mechanism: "scram-sha-512", Username: scram512User, Password: scram512},
	} {
		t.Run(c.Mechanism, func(t *testing.T) {
			roundTrip(t, addr, Security{SASL: &c})
		})
	}
}

func TestSecurity_wrongPassword_isErrSecurityEverywhere(t *testing.T) {
	addr := startKfake(t, saslOpts()...)
	for _, c := range []SASLConfig{
		{Mechanism: SASLPlain, Username: plainUser, Password: "wrong-pl41n"},
		{Mechanism: SASLScramSHA256, Username: scram256User, Password: "wrong-5cram"},
		{Mechanism: SASLScramSHA512, Username: "nobody", Password: "wrong-n0b0dy"},
	} {
		t.Run(c.Mechanism, func(t *testing.T) {
			err := pingFails(t, addr, Security{SASL: &c}, c.Password)
			if !strings.Contains(err.Error(), c.Username) || !strings.Contains(err.Error(), strings.ToUpper(c.Mechanism)) {
				t.Errorf("the error does not name the user and mechanism: %v", err)
			}
		})
	}

	// The other clients classify it too, and log no secret.
	bad := Security{SASL: &SASLConfig{Mechanism: SASLScramSHA256, Username: scram256User, Password: "wrong-5cram"}}
	ctx := testCtx(t, 30*time.Second)
	var logs syncBuffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	p, err := NewProducer(ProducerConfig{Brokers: []string{addr}, Security: bad, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Publish(ctx, Message{Topic: "sec", Value: []byte("x")}); !errors.Is(err, ErrSecurity) || IsTransient(err) {
		t.Errorf("publish: %v, want ErrSecurity", err)
	}
	f, err := NewFetcher(ctx, FetcherConfig{Brokers: []string{addr}, Security: bad, Logger: log},
		map[string][]Assignment{"sec": {{Partition: 0, Offset: OffsetFirst}}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Fetch(ctx); !errors.Is(err, ErrSecurity) {
		t.Errorf("fetch: %v, want ErrSecurity", err)
	} else {
		t.Logf("fetch: %v", err)
	}
	gcfg := fastGroupConfig(addr, "g-bad", "a", "sec")
	gcfg.Security, gcfg.Logger = bad, log
	g := newTestGroup(t, gcfg)
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := g.Next(gctx); !errors.Is(err, ErrSecurity) {
		t.Errorf("group: %v, want ErrSecurity", err)
	} else {
		t.Logf("group: %v", err)
	}
	if strings.Contains(logs.String(), "wrong-5cram") {
		t.Errorf("the password was logged:\n%s", logs.String())
	}
}

func TestSecurity_TLS_verifiesTheBroker(t *testing.T) {
	ca := newPKI(t, "good")
	addr := startKfake(t, kfake.TLS(ca.serverTLS(false)))
	roundTrip(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile}})

	t.Run("untrusted CA", func(t *testing.T) {
		other := newPKI(t, "other")
		err := pingFails(t, addr, Security{TLS: &TLSConfig{CAFile: other.caFile}})
		if !strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("the error does not name the cause: %v", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		err := pingFails(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile, ServerName: "kafka.example.com"}})
		if !strings.Contains(err.Error(), "not valid for") {
			t.Errorf("the error does not name the cause: %v", err)
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		err := pingFails(t, addr, Security{})
		if !strings.Contains(err.Error(), "expects TLS") {
			t.Errorf("the error does not name the cause: %v", err)
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		admin, err := NewAdmin(AdminConfig{Brokers: []string{addr}, Security: Security{TLS: &TLSConfig{InsecureSkipVerify: true}}})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if err := admin.Ping(testCtx(t, 10*time.Second)); err != nil {
			t.Errorf("ping: %v", err)
		}
	})
}

func TestSecurity_mutualTLS_requiresTheClientCertificate(t *testing.T) {
	ca := newPKI(t, "mtls")
	addr := startKfake(t, kfake.TLS(ca.serverTLS(true)))
	roundTrip(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile, CertFile: ca.clientCert, KeyFile: ca.clientKey}})

	t.Run("no client certificate", func(t *testing.T) {
		err := pingFails(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile}})
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("the error does not name the cause: %v", err)
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		other := newPKI(t, "other")
		pingFails(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile, CertFile: other.clientCert, KeyFile: other.clientKey}})
	})
}

func TestSecurity_TLSClient_onAPlaintextListener(t *testing.T) {
	ca := newPKI(t, "plain")
	addr := startKfake(t)
	err := pingFails(t, addr, Security{TLS: &TLSConfig{CAFile: ca.caFile}})
	if !strings.Contains(err.Error(), "plaintext") {
		t.Errorf("the error does not name the cause: %v", err)
	}
}

func TestSecurity_SASLOverMutualTLS(t *testing.T) {
	ca := newPKI(t, "both")
	addr := startKfake(t, append(saslOpts(), kfake.TLS(ca.serverTLS(true)))...)
	sec := Security{
		TLS:  &TLSConfig{CAFile: ca.caFile, CertFile: ca.clientCert, KeyFile: ca.clientKey},
		SASL: &SASLConfig{Mechanism: SASLScramSHA512, Username: scram512User, Password: scram512},
	}
	roundTrip(t, addr, sec)
	sec.SASL = &SASLConfig{Mechanism: SASLScramSHA512, Username: scram512User, Password: "nope-n0pe"}
	pingFails(t, addr, sec, "nope-n0pe")
}

func TestSecurity_badConfiguration_failsAtConstructionNamingTheFile(t *testing.T) {
	ca := newPKI(t, "files")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name string
		sec  Security
		want string // in the message
	}{
		{"missing CA file", Security{TLS: &TLSConfig{CAFile: missing}}, missing},
		{"CA file without PEM", Security{TLS: &TLSConfig{CAFile: garbage}}, garbage},
		{"certificate without key", Security{TLS: &TLSConfig{CertFile: ca.clientCert}}, "key file"},
		{"missing key file", Security{TLS: &TLSConfig{CertFile: ca.clientCert, KeyFile: missing}}, missing},
		{"key that does not parse", Security{TLS: &TLSConfig{CertFile: ca.clientCert, KeyFile: garbage}}, garbage},
		{"unknown mechanism", Security{SASL: &SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p4ss"}}, "GSSAPI"},
		{"no username", Security{SASL: &SASLConfig{Mechanism: SASLPlain, Password: "p4ss"}}, "username"},
		// xdg-go/scram quotes the password in this error; ours must not.
		{"password that is not SASLprep text", Security{SASL: &SASLConfig{Mechanism: SASLScramSHA256, Username: "u", Password: "bad\u0007p4ss"}}, "SASLprep"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, build := range []func() error{
				func() error {
					_, err := NewAdmin(AdminConfig{Brokers: []string{"127.0.0.1:1"}, Security: c.sec})
					return err
				},
				func() error {
					_, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Security: c.sec})
					return err
				},
				func() error {
					_, err := NewFetcher(context.Background(), FetcherConfig{Brokers: []string{"127.0.0.1:1"}, Security: c.sec}, nil)
					return err
				},
				func() error {
					_, err := NewGroup(GroupConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Topics: []string{"t"}, Security: c.sec})
					return err
				},
			} {
				err := build()
				if !errors.Is(err, ErrSecurity) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %v, want ErrSecurity naming %q", err, c.want)
				}
				if strings.Contains(fmt.Sprint(err), "p4ss") {
					t.Errorf("the error shows the password: %v", err)
				}
			}
		})
	}
}

func TestSASLConfig_neverPrintsThePassword(t *testing.T) {
	c := SASLConfig{Mechanism: SASLPlain, Username: "alice", Password: "hunter2-s3cret"}
	sec := Security{SASL: &c}
	j, err := json.Marshal(sec)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%+v", *sec.SASL), string(j)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password shown: %s", s)
		}
		if !strings.Contains(s, "alice") {
			t.Errorf("user not shown: %s", s)
		}
	}
}
