package deploytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// genCerts runs deploy/gen-certs.sh with args; it skips the test when
// openssl (which the script needs) is missing.
func genCerts(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(moduleRoot(t), "deploy", "gen-certs.sh")}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The files gen-certs.sh makes, and whether each is a secret.
var genCertsFiles = map[string]bool{
	"ca.pem": false, "broker.pem": false, "client.pem": false, "broker.truststore.p12": false,
	"ca.key": true, "broker.key": true, "client.key": true, "keystore.password": true, "sasl.password": true,
	"broker.keystore.p12": true, "client.keystore.p12": true,
}

// snapshot records each file's content and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for f := range genCertsFiles {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = readFile(t, p) + "@" + st.ModTime().Format(time.RFC3339Nano)
	}
	return out
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(readFile(t, p)))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", p)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenCerts_makes_a_CA_broker_and_client_chain_that_openssl_and_Go_verify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if out, err := genCerts(t, dir); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	for f, secret := range genCertsFiles {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if mode := st.Mode().Perm(); secret && mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (a secret)", f, mode)
		}
	}

	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "ca.pem"),
		filepath.Join(dir, "broker.pem"), filepath.Join(dir, "client.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	for _, f := range []string{"broker", "client"} {
		out, err := exec.Command("openssl", "pkcs12", "-in", filepath.Join(dir, f+".keystore.p12"),
			"-passin", "file:"+filepath.Join(dir, "keystore.password"), "-noout").CombinedOutput()
		if err != nil {
			t.Errorf("%s.keystore.p12 does not open with keystore.password: %v\n%s", f, err, out)
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, filepath.Join(dir, "ca.pem")))
	broker := parseCert(t, filepath.Join(dir, "broker.pem"))
	for _, name := range []string{"localhost", "kafka", "127.0.0.1"} {
		if _, err := broker.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the broker certificate does not verify for %s: %v", name, err)
		}
	}
	if err := broker.VerifyHostname("kafka.example.com"); err == nil {
		t.Error("the broker certificate verifies for a name it should not carry")
	}
	client := parseCert(t, filepath.Join(dir, "client.pem"))
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate does not verify for client auth: %v", err)
	}
	if client.Subject.CommonName != "mvrepair" {
		t.Errorf("client CN = %q, want mvrepair (the mTLS principal)", client.Subject.CommonName)
	}
	for _, f := range []string{"broker", "client"} {
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, f+".pem"), filepath.Join(dir, f+".key")); err != nil {
			t.Errorf("%s.pem and %s.key do not load as a pair: %v", f, f, err)
		}
	}
	if pw := strings.TrimSpace(readFile(t, filepath.Join(dir, "sasl.password"))); len(pw) < 32 {
		t.Errorf("sasl.password has %d characters, want a long random one", len(pw))
	}
}

func TestGenCerts_is_idempotent_and_reissues_only_what_changed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if out, err := genCerts(t, dir); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	first := snapshot(t, dir)
	if out, err := genCerts(t, dir); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	for f, v := range snapshot(t, dir) {
		if v != first[f] {
			t.Errorf("the second run rewrote %s", f)
		}
	}

	// A new name re-issues the broker certificate (and its keystore) only.
	if out, err := genCerts(t, "--san", "kafka-2.internal", "--san", "10.1.2.3", dir); err != nil {
		t.Fatalf("--san run: %v\n%s", err, out)
	}
	after := snapshot(t, dir)
	for f := range genCertsFiles {
		changed := after[f] != first[f]
		if want := f == "broker.pem" || f == "broker.key" || f == "broker.keystore.p12"; changed != want {
			t.Errorf("%s changed=%v after adding a broker name, want %v", f, changed, want)
		}
	}
	broker := parseCert(t, filepath.Join(dir, "broker.pem"))
	if broker.VerifyHostname("kafka-2.internal") != nil || broker.VerifyHostname("10.1.2.3") != nil || broker.VerifyHostname("kafka") != nil {
		t.Errorf("broker names after --san: %v %v", broker.DNSNames, broker.IPAddresses)
	}

	// A lost CA key means a new CA: everything it signed is made again.
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if out, err := genCerts(t, dir); err != nil {
		t.Fatalf("run without ca.key: %v\n%s", err, out)
	}
	again := snapshot(t, dir)
	for _, f := range []string{"ca.pem", "broker.pem", "client.pem", "broker.keystore.p12", "client.keystore.p12", "broker.truststore.p12"} {
		if again[f] == after[f] {
			t.Errorf("%s was kept although the CA is new", f)
		}
	}
	if again["sasl.password"] != after["sasl.password"] {
		t.Error("sasl.password was replaced; it is kept unless --force")
	}
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "ca.pem"),
		filepath.Join(dir, "broker.pem"), filepath.Join(dir, "client.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify after a new CA: %v\n%s", err, out)
	}
}

func TestGenCerts_for_containers_makes_secrets_readable_but_keeps_the_CA_key_private(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if out, err := genCerts(t, "--for-containers", dir); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	for f, secret := range genCertsFiles {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if f == "ca.key" {
			want = 0o600
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s (secret=%v) has mode %v, want %v", f, secret, got, want)
		}
	}
}

func TestGenCerts_rejects_bad_arguments(t *testing.T) {
	for _, args := range [][]string{{}, {"--days", "0", t.TempDir()}, {"--bogus", t.TempDir()}, {"a", "b"}, {"--client-cn", "a b", t.TempDir()}} {
		if out, err := genCerts(t, args...); err == nil {
			t.Errorf("gen-certs.sh %q succeeded:\n%s", args, out)
		}
	}
}
