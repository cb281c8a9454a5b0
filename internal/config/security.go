package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The keys of the Kafka connection's security settings.
const (
	keyTLSEnabled       = "kafka.tls.enabled"
	keyTLSCAFile        = "kafka.tls.ca_file"
	keyTLSCertFile      = "kafka.tls.cert_file"
	keyTLSKeyFile       = "kafka.tls.key_file"
	keyTLSServerName    = "kafka.tls.server_name"
	keyTLSInsecure      = "kafka.tls.insecure_skip_verify"
	keySASLMechanism    = "kafka.sasl.mechanism"
	keySASLUsername     = "kafka.sasl.username"
	keySASLPassword     = "kafka.sasl.password"
	keySASLPasswordFile = "kafka.sasl.password_file"
	keyIsolationLevel   = "kafka.isolation_level"
)

// SASLEnabled reports whether kafka.sasl.mechanism asks for SASL.
func (c *Config) SASLEnabled() bool { return c.Kafka.SASL.Mechanism != SASLNone }

// SASLPassword returns the SASL password: kafka.sasl.password, or the
// content of kafka.sasl.password_file with one trailing newline ("\n" or
// "\r\n") removed, so that `echo secret > file` works. The file is read on
// every call (a rotated secret is picked up by the next connection that
// asks). It returns "" when SASL is off.
//
// Errors are [*KeyError]s naming the key (and the file's path); they never
// contain the password or any part of the file.
func (c *Config) SASLPassword() (string, error) {
	s := &c.Kafka.SASL
	if !c.SASLEnabled() {
		return "", nil
	}
	if s.PasswordFile == "" {
		if !s.Password.IsSet() {
			return "", &KeyError{Key: keySASLPassword, Err: fmt.Errorf("must be set with %s %s (or set %s)", keySASLMechanism, s.Mechanism, keySASLPasswordFile)}
		}
		return s.Password.Reveal(), nil
	}
	raw, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", &KeyError{Key: keySASLPasswordFile, Err: fileError(s.PasswordFile, err)}
	}
	pw := string(raw)
	if p, ok := strings.CutSuffix(pw, "\n"); ok {
		pw = strings.TrimSuffix(p, "\r")
	}
	if pw == "" {
		return "", &KeyError{Key: keySASLPasswordFile, Err: fmt.Errorf("%s is empty", s.PasswordFile)}
	}
	return pw, nil
}

// Warnings returns the settings that work but that an operator should know
// about, one sentence each naming its key; the service logs each at WARN
// when it starts. Nil when there are none.
func (c *Config) Warnings() []string {
	var out []string
	k := &c.Kafka
	if k.TLS.Enabled && k.TLS.InsecureSkipVerify {
		out = append(out, keyTLSInsecure+" is true: the brokers' certificates are not verified, "+
			"so anyone on the network path can impersonate a broker (and read the SASL credentials); use it in tests only")
	}
	if k.SASL.Mechanism == SASLPlain && !k.TLS.Enabled {
		out = append(out, keySASLMechanism+" is PLAIN without "+keyTLSEnabled+
			": the password crosses the network in clear text; enable TLS or use SCRAM-SHA-512")
	}
	if k.IsolationLevel == IsolationReadUncommitted {
		out = append(out, keyIsolationLevel+" is read_uncommitted: records of aborted or still-open "+
			"transactions are applied and journaled (docs/design.md §4 asks for read_committed)")
	}
	return out
}

// validateSecurity checks the TLS, SASL and isolation settings. File checks
// read the files: a path that is missing, unreadable or of the wrong content
// fails at start, naming the key and the path.
func (v *validator) validateSecurity(c *Config) {
	k := &c.Kafka
	v.oneOf(keyIsolationLevel, k.IsolationLevel, IsolationReadCommitted, IsolationReadUncommitted)

	t := &k.TLS
	if c.Embedded() && t.Enabled {
		v.fail(keyTLSEnabled, "cannot be true with kafka.brokers %q: the embedded broker is plaintext on loopback", EmbeddedBrokers)
	}
	if !t.Enabled {
		for _, s := range []struct {
			key string
			set bool
		}{
			{keyTLSCAFile, t.CAFile != ""},
			{keyTLSCertFile, t.CertFile != ""},
			{keyTLSKeyFile, t.KeyFile != ""},
			{keyTLSServerName, t.ServerName != ""},
			{keyTLSInsecure, t.InsecureSkipVerify},
		} {
			if s.set {
				v.fail(s.key, "is set but %s is false: set %s=true, or remove it", keyTLSEnabled, EnvName(keyTLSEnabled))
			}
		}
	} else {
		if t.CAFile != "" {
			v.caFile(t.CAFile)
		}
		switch {
		case t.CertFile != "" && t.KeyFile == "":
			v.fail(keyTLSKeyFile, "must be set with %s (the client certificate's private key)", keyTLSCertFile)
		case t.CertFile == "" && t.KeyFile != "":
			v.fail(keyTLSCertFile, "must be set with %s (the private key's certificate)", keyTLSKeyFile)
		case t.CertFile != "":
			v.keyPair(t.CertFile, t.KeyFile)
		}
		if t.ServerName != "" && strings.ContainsAny(t.ServerName, " \t/:") {
			v.fail(keyTLSServerName, "must be a host name (got %q)", t.ServerName)
		}
	}

	s := &k.SASL
	v.oneOf(keySASLMechanism, s.Mechanism, SASLNone, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	switch {
	case s.Mechanism == SASLNone:
		for _, x := range []struct {
			key string
			set bool
		}{
			{keySASLUsername, s.Username != ""},
			{keySASLPassword, s.Password.IsSet()},
			{keySASLPasswordFile, s.PasswordFile != ""},
		} {
			if x.set {
				v.fail(x.key, "is set but %s is %s: choose a mechanism (PLAIN|SCRAM-SHA-256|SCRAM-SHA-512), or remove it", keySASLMechanism, SASLNone)
			}
		}
	case c.Embedded():
		v.fail(keySASLMechanism, "cannot be %s with kafka.brokers %q: the embedded broker has no SASL (set it to %s)", s.Mechanism, EmbeddedBrokers, SASLNone)
	}
	if s.Mechanism == SASLNone || !v.ok(keySASLMechanism) {
		return
	}
	if strings.TrimSpace(s.Username) == "" {
		v.fail(keySASLUsername, "must be set with %s %s", keySASLMechanism, s.Mechanism)
	}
	switch {
	case s.Password.IsSet() && s.PasswordFile != "":
		v.fail(keySASLPassword, "cannot be set together with %s: set exactly one", keySASLPasswordFile)
	case !s.Password.IsSet() && s.PasswordFile == "":
		v.fail(keySASLPasswordFile, "must be set (or %s) with %s %s", keySASLPassword, keySASLMechanism, s.Mechanism)
	case s.PasswordFile != "":
		if _, err := c.SASLPassword(); err != nil {
			v.errs = append(v.errs, err)
		}
	}
}

// ok reports whether no error was recorded for key so far.
func (v *validator) ok(key string) bool {
	for _, err := range v.errs {
		var ke *KeyError
		if errors.As(err, &ke) && ke.Key == key {
			return false
		}
	}
	return true
}

// caFile checks that kafka.tls.ca_file holds at least one PEM certificate.
func (v *validator) caFile(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		v.errs = append(v.errs, &KeyError{Key: keyTLSCAFile, Err: fileError(path, err)})
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		v.fail(keyTLSCAFile, "%s holds no PEM certificate", path)
	}
}

// keyPair checks that the client certificate and key files are readable
// and belong together. The key file's content never reaches the message.
func (v *validator) keyPair(certPath, keyPath string) {
	okFiles := true
	for _, f := range []struct{ key, path string }{{keyTLSCertFile, certPath}, {keyTLSKeyFile, keyPath}} {
		fh, err := os.Open(f.path)
		if err != nil {
			v.errs = append(v.errs, &KeyError{Key: f.key, Err: fileError(f.path, err)})
			okFiles = false
			continue
		}
		_ = fh.Close()
	}
	if !okFiles {
		return
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		v.fail(keyTLSCertFile, "%s and %s %s are not a usable certificate and key pair: %s",
			certPath, keyTLSKeyFile, keyPath, keyPairReason(err))
	}
}

// keyPairReason turns a tls.LoadX509KeyPair error into a short reason. Its
// messages name PEM block types and mismatches, never key material, but
// only the known ones are passed on.
func keyPairReason(err error) string {
	msg := err.Error()
	for _, known := range []string{
		"private key does not match public key",
		"failed to find any PEM data in certificate input",
		"failed to find certificate PEM data in certificate input",
		"failed to find any PEM data in key input",
		"failed to find PEM block with type ending in \"PRIVATE KEY\" in key input",
		"failed to parse private key",
		"unknown public key algorithm",
		"found a certificate rather than a key in the PEM for the private key",
	} {
		if strings.Contains(msg, known) {
			return known
		}
	}
	return "they do not parse as a PEM certificate and its PEM private key"
}

// fileError describes why a configured file cannot be read: the path and
// the reason (not found, permission denied, a directory).
func fileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file %s does not exist: %w", path, fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("file %s is not readable (permission denied): %w", path, fs.ErrPermission)
	default:
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
}
