package kafkaio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms accepted by SASLConfig.Mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Network timeouts of every client the package builds.
const (
	// dialTimeout bounds establishing a connection: TCP connect, TLS
	// handshake, API version negotiation and SASL authentication.
	dialTimeout = 5 * time.Second
	// tlsHandshakeTimeout bounds the TLS handshake alone: a TLS client on a
	// plaintext listener can wait forever for a server hello.
	tlsHandshakeTimeout = 3 * time.Second
	// probeTimeout bounds the second connection that names the cause of a
	// failed handshake (see netConfig.probePlaintext / probeTLS).
	probeTimeout = time.Second
)

// Security configures encryption and authentication towards the brokers. The
// zero value is plaintext without authentication.
type Security struct {
	// TLS enables TLS; nil means plaintext.
	TLS *TLSConfig
	// SASL enables SASL authentication; nil means none.
	SASL *SASLConfig
}

// TLSConfig configures TLS. Certificates and keys are PEM files, loaded when
// the client is built (a file that cannot be loaded is an error naming it).
type TLSConfig struct {
	// CAFile is the CA bundle that signs the brokers' certificates; empty
	// means the system pool.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key for mutual
	// TLS; both or neither must be set.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked against the broker certificates
	// (default: the host of the address dialed).
	ServerName string
	// InsecureSkipVerify disables the verification of the brokers'
	// certificates. For tests only.
	InsecureSkipVerify bool
}

// SASLConfig configures SASL authentication with kafka-go's sasl/plain and
// sasl/scram mechanisms. Its String, GoString and MarshalJSON methods redact
// the password, so that printing or logging a configuration never shows it.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string
	Username  string
	Password  string
}

// String describes the configuration without the password.
func (c SASLConfig) String() string {
	return fmt.Sprintf("SASL %s as %q (password redacted)", c.Mechanism, c.Username)
}

// GoString is String, for %#v.
func (c SASLConfig) GoString() string { return c.String() }

// MarshalJSON encodes the configuration with the password redacted.
func (c SASLConfig) MarshalJSON() ([]byte, error) {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return json.Marshal(struct{ Mechanism, Username, Password string }{c.Mechanism, c.Username, pw})
}

// netConfig is how every client of this package connects: the one place
// that turns (ClientID, Security) into kafka-go's Transport (admin, producer,
// fetchers) and Dialer (consumer group).
//
// TLS is done in our own dial function rather than through kafka-go's TLS
// settings, so that a failed handshake is reported with its cause (untrusted
// certificate, plaintext listener...) as ErrSecurity instead of a bare EOF or
// timeout. SASL is kafka-go's (sasl/plain, sasl/scram).
type netConfig struct {
	clientID string
	tls      *tls.Config    // nil: plaintext
	mech     sasl.Mechanism // nil: no SASL
	saslDesc string         // "SCRAM-SHA-256 as \"alice\"", for errors
}

// newNetConfig loads the TLS material and builds the SASL mechanism. Errors
// wrap ErrSecurity and name the file or setting at fault.
func newNetConfig(clientID string, sec Security) (*netConfig, error) {
	registerProtocol()
	n := &netConfig{clientID: clientID}
	if sec.TLS != nil {
		cfg, err := sec.TLS.build()
		if err != nil {
			return nil, err
		}
		n.tls = cfg
	}
	if sec.SASL != nil {
		mech, err := sec.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		n.mech = mech
		n.saslDesc = fmt.Sprintf("%s as %q", mech.Name(), sec.SASL.Username)
	}
	return n, nil
}

// build loads the CA and the client certificate.
func (c *TLSConfig) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // an explicit, documented test-only option
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS CA file: %w", ErrSecurity, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLS CA file %s: no PEM certificate in it", ErrSecurity, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
	case c.CertFile == "" || c.KeyFile == "":
		return nil, fmt.Errorf("%w: TLS client certificate: both a certificate file and a key file are needed (got cert %q, key %q)",
			ErrSecurity, c.CertFile, c.KeyFile)
	default:
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS certificate file: %w", ErrSecurity, err)
		}
		keyPEM, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS key file: %w", ErrSecurity, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS certificate file %s with key file %s: %w", ErrSecurity, c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// mechanism builds the kafka-go SASL mechanism. Errors never carry the
// password (xdg-go/scram quotes it in its SASLprep errors, so they are not
// passed on).
func (c *SASLConfig) mechanism() (sasl.Mechanism, error) {
	if c.Username == "" {
		return nil, fmt.Errorf("%w: SASL: empty username", ErrSecurity)
	}
	var algo scram.Algorithm
	switch m := strings.ToUpper(strings.TrimSpace(c.Mechanism)); m {
	case SASLPlain:
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case SASLScramSHA256:
		algo = scram.SHA256
	case SASLScramSHA512:
		algo = scram.SHA512
	default:
		return nil, fmt.Errorf("%w: SASL: unknown mechanism %q (want %s, %s or %s)",
			ErrSecurity, c.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	mech, err := scram.Mechanism(algo, c.Username, c.Password)
	if err != nil {
		return nil, fmt.Errorf("%w: SASL %s as %q: the username or password is not valid SASLprep text",
			ErrSecurity, algo.Name(), c.Username)
	}
	return mech, nil
}

// transport is the connection pool of an admin, producer or fetcher: its
// own, never kafka.DefaultTransport, so that a stale pool after a broker
// restart stays local.
func (n *netConfig) transport() *kafka.Transport {
	return &kafka.Transport{
		Dial:        n.dial,
		ClientID:    n.clientID,
		DialTimeout: dialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 6 * time.Second,
		SASL:        n.mech,
	}
}

// dialer is the dialer of coordinator and partition-leader connections of a
// consumer group.
func (n *netConfig) dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      n.clientID,
		Timeout:       10 * time.Second,
		DialFunc:      n.dial,
		SASLMechanism: n.mech,
	}
}

// classify wraps err with ErrSecurity when it is a SASL failure (kafka-go
// reports those with Kafka error codes), naming the mechanism and user.
// Other errors are returned as they are.
func (n *netConfig) classify(err error) error {
	if err == nil || errors.Is(err, ErrSecurity) || !isSecurityCode(err) {
		return err
	}
	if n.saslDesc == "" {
		return fmt.Errorf("%w: SASL failure without SASL configured: %w", ErrSecurity, err)
	}
	return fmt.Errorf("%w: SASL authentication %s failed: %w", ErrSecurity, n.saslDesc, err)
}

// dial opens a TCP connection and, when configured, completes the TLS
// handshake on it; kafka-go then negotiates versions and SASL.
func (n *netConfig) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if n.tls == nil {
		return &plainConn{Conn: raw, n: n, network: network, addr: addr}, nil
	}
	cfg := n.tls
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = raw.Close()
		return nil, n.handshakeError(ctx, network, addr, err)
	}
	return &tlsConn{Conn: tc, n: n, addr: addr}, nil
}

// handshakeError names the cause of a failed TLS handshake.
func (n *netConfig) handshakeError(ctx context.Context, network, addr string, err error) error {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalid    x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		headerErr  tls.RecordHeaderError
		alertErr   *net.OpError
		timeoutErr interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w: TLS to %s: the broker's certificate is signed by an unknown authority (check the CA file): %w", ErrSecurity, addr, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("%w: TLS to %s: the broker's certificate is not valid for this name (set the server name?): %w", ErrSecurity, addr, err)
	case errors.As(err, &invalid), errors.As(err, &verifyErr):
		return fmt.Errorf("%w: TLS to %s: the broker's certificate is not trusted: %w", ErrSecurity, addr, err)
	case errors.As(err, &headerErr):
		return fmt.Errorf("%w: TLS to %s: the broker did not answer with TLS (a plaintext listener?): %v", ErrSecurity, addr, err)
	case isRemoteAlert(err, &alertErr):
		return fmt.Errorf("%w: TLS to %s: the broker refused the handshake (%v)", ErrSecurity, addr, alertErr)
	}
	if ctx.Err() != nil { // the caller gave up: not a handshake problem
		return fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &timeoutErr) && timeoutErr.Timeout()) {
		// A plaintext Kafka listener either closes the connection (Apache
		// Kafka: the client hello reads as an oversized request) or waits
		// for the rest of that "request" (kfake). Ask it in plaintext.
		if n.probePlaintext(network, addr) {
			return fmt.Errorf("%w: TLS to %s: the listener speaks plaintext Kafka, not TLS (handshake: %v)", ErrSecurity, addr, err)
		}
		return fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return fmt.Errorf("%w: TLS to %s: handshake failed: %w", ErrSecurity, addr, err)
}

// isRemoteAlert reports whether err is a TLS alert sent by the peer (crypto/tls
// reports those as a *net.OpError with Op "remote error").
func isRemoteAlert(err error, target **net.OpError) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		if target != nil {
			*target = op
		}
		return true
	}
	return false
}

// probePlaintext reports whether addr answers a plaintext Kafka ApiVersions
// request within probeTimeout.
func (n *netConfig) probePlaintext(network, addr string) bool {
	return probe(network, addr, func(_ context.Context, c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(probeTimeout))
		_, err := protocol.NewConn(c, n.clientID).RoundTrip(&apiversions.Request{})
		return err == nil
	})
}

// probeTLS reports whether addr speaks TLS: it answers a client hello with a
// server hello or a TLS alert within probeTimeout. The probe verifies nothing
// and sends nothing but the handshake.
func probeTLS(network, addr string) bool {
	return probe(network, addr, func(ctx context.Context, c net.Conn) bool {
		host, _, _ := net.SplitHostPort(addr)
		tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // only asks whether the listener speaks TLS
		err := tc.HandshakeContext(ctx)
		return err == nil || isRemoteAlert(err, nil)
	})
}

// probe dials addr and reports what check says of the connection; both
// within probeTimeout. false when the dial fails.
func probe(network, addr string, check func(ctx context.Context, c net.Conn) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return false
	}
	defer c.Close()
	return check(ctx, c)
}

// requestTracker follows the requests written on a connection (each is a
// 4-byte size, then the API key) to know which one the broker is answering.
type requestTracker struct {
	mu     sync.Mutex
	hdr    [6]byte
	n      int   // bytes of hdr filled
	remain int64 // bytes left of the current request
	key    int16 // API key of the last request started
}

func (t *requestTracker) wrote(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(b) > 0 {
		if t.remain > 0 {
			k := min(t.remain, int64(len(b)))
			t.remain -= k
			b = b[k:]
			continue
		}
		c := copy(t.hdr[t.n:], b)
		t.n += c
		b = b[c:]
		if t.n == len(t.hdr) {
			t.key = int16(binary.BigEndian.Uint16(t.hdr[4:6]))
			t.remain = int64(int32(binary.BigEndian.Uint32(t.hdr[:4]))) - 2
			t.n = 0
		}
	}
}

// inSASL reports whether the last request was a SASL one (SaslHandshake or
// SaslAuthenticate).
func (t *requestTracker) inSASL() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.key == int16(protocol.SaslHandshake) || t.key == int16(protocol.SaslAuthenticate)
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// saslClosed is the error of a broker that closed the connection in the
// middle of SASL authentication: it refused the credentials (kfake does that
// instead of answering error 58; kafka-go reads it as io.ErrUnexpectedEOF
// and would report a transient network error).
func (n *netConfig) saslClosed(addr string, err error) error {
	return fmt.Errorf("%w: SASL authentication %s failed: the broker at %s closed the connection (%v)", ErrSecurity, n.saslDesc, addr, err)
}

// plainConn is a plaintext broker connection that recognizes a TLS listener:
// one answers the first request with a TLS record (Apache Kafka sends an
// alert) or closes the connection without a byte (Go's crypto/tls, kfake);
// and a broker that closes the connection to refuse SASL credentials.
type plainConn struct {
	net.Conn
	n       *netConfig
	network string
	addr    string
	got     atomic.Bool // a byte was read
	reqs    requestTracker
}

func (c *plainConn) Write(b []byte) (int, error) {
	c.reqs.wrote(b)
	return c.Conn.Write(b)
}

func (c *plainConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && isClosed(err) && c.reqs.inSASL() {
		return n, c.n.saslClosed(c.addr, err)
	}
	if c.got.Load() {
		return n, err
	}
	if n > 0 {
		c.got.Store(true)
		// A Kafka response starts with its 4-byte size: a first byte of
		// 0x15 or 0x16 would be a response over 350 MB.
		if n >= 3 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03 && b[2] <= 0x04 {
			return 0, fmt.Errorf("%w: plaintext to %s: the broker answered with TLS: the listener expects TLS", ErrSecurity, c.addr)
		}
		return n, err
	}
	var timeout interface{ Timeout() bool }
	if err != nil && (isClosed(err) || (errors.As(err, &timeout) && timeout.Timeout())) && probeTLS(c.network, c.addr) {
		return 0, fmt.Errorf("%w: plaintext to %s: the listener expects TLS (the broker closed the connection: %v)", ErrSecurity, c.addr, err)
	}
	return n, err
}

// tlsConn reports TLS alerts received after the handshake (with TLS 1.3 a
// broker refuses a missing or untrusted client certificate only then) as
// ErrSecurity, and a broker that closes the connection to refuse SASL
// credentials.
type tlsConn struct {
	net.Conn
	n    *netConfig
	addr string
	reqs requestTracker
}

func (c *tlsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		err = c.check(err)
	}
	return n, err
}

func (c *tlsConn) Write(b []byte) (int, error) {
	c.reqs.wrote(b)
	n, err := c.Conn.Write(b)
	if err != nil {
		err = c.check(err)
	}
	return n, err
}

func (c *tlsConn) check(err error) error {
	var alert *net.OpError
	switch {
	case isRemoteAlert(err, &alert):
		return fmt.Errorf("%w: TLS to %s: the broker refused the session (%v): is the client certificate missing or not trusted?", ErrSecurity, c.addr, alert)
	case isClosed(err) && c.reqs.inSASL():
		return c.n.saslClosed(c.addr, err)
	}
	return err
}
