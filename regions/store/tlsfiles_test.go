package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// testPKI writes TLS material the way deploy/certs.sh lays it out: a CA
// and certificates it signs, each with its key, as PEM files in dir.
type testPKI struct {
	t    *testing.T
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	now  time.Time
	next int64
}

func newTestPKI(t *testing.T, now time.Time) *testPKI {
	p := &testPKI{t: t, dir: t.TempDir(), now: now}
	p.ca, p.key = p.issue("ca", nil, nil, true, []x509.ExtKeyUsage{}, now.Add(-time.Hour), now.Add(10*365*24*time.Hour))
	return p
}

// issue makes a certificate (signed by parent, or self-signed when parent
// is nil) and writes NAME.pem and NAME-key.pem.
func (p *testPKI) issue(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool, eku []x509.ExtKeyUsage, from, until time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next), Subject: pkix.Name{CommonName: name},
		NotBefore: from, NotAfter: until, ExtKeyUsage: eku,
		BasicConstraintsValid: true, IsCA: isCA, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	p.write(name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// client issues a client certificate valid from an hour ago for d.
func (p *testPKI) client(name string, d time.Duration) {
	p.issue(name, p.ca, p.key, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, p.now.Add(-time.Hour), p.now.Add(d))
}

func (p *testPKI) write(name string, b []byte, mode os.FileMode) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, mode); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		p.t.Fatal(err)
	}
	return path
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

// TestCheckTLSFiles: each bad file is reported on its field, as an error
// when Connect would fail or etcd would refuse the client, as a warning
// when the client would still connect.
func TestCheckTLSFiles(t *testing.T) {
	now := time.Now()
	p := newTestPKI(t, now)
	year := 365 * 24 * time.Hour
	p.client("client", year)
	p.client("soon", 10*24*time.Hour)
	p.issue("expired", p.ca, p.key, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, now.Add(-2*year), now.Add(-year))
	p.issue("server-only", p.ca, p.key, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, now.Add(-time.Hour), now.Add(year))
	otherCA, otherKey := p.issue("other-ca", nil, nil, true, nil, now.Add(-time.Hour), now.Add(year))
	p.issue("foreign", otherCA, otherKey, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, now.Add(-time.Hour), now.Add(year))
	p.client("second", year)
	clientKey, err := os.ReadFile(p.path("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	openKey := p.write("open-key.pem", clientKey, 0o644)
	junk := p.write("junk.pem", []byte("not PEM at all\n"), 0o644)
	openssl := testtool.Need(t, "openssl")
	encrypted := p.path("encrypted-key.pem")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-aes-128-cbc", "-pass", "pass:secret", "-out", encrypted).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}

	good := EtcdConfig{CAFile: p.path("ca.pem"), CertFile: p.path("client.pem"), KeyFile: p.path("client-key.pem")}
	with := func(change func(c *EtcdConfig)) EtcdConfig {
		c := good
		change(&c)
		return c
	}
	type want struct {
		field, msg string
		warning    bool
	}
	cases := []struct {
		name string
		cfg  EtcdConfig
		want []want
	}{
		{"the files certs.sh makes", good, nil},
		{"no TLS at all", EtcdConfig{}, nil},
		{"cert_file missing", with(func(c *EtcdConfig) { c.CertFile = p.path("none.pem") }),
			[]want{{"cert_file", "none.pem: no such file", false}}},
		{"a private key as ca_file", with(func(c *EtcdConfig) { c.CAFile = p.path("ca-key.pem") }),
			[]want{{"ca_file", "holds a private key, not CA certificates", false}}},
		{"the client certificate as ca_file", with(func(c *EtcdConfig) { c.CAFile = p.path("client.pem") }),
			[]want{{"ca_file", "is not a CA certificate", false}}},
		{"not PEM", with(func(c *EtcdConfig) { c.CAFile = junk }),
			[]want{{"ca_file", "no PEM certificate", false}}},
		{"a key as cert_file", with(func(c *EtcdConfig) { c.CertFile = p.path("client-key.pem") }),
			[]want{{"cert_file", "holds a private key, not a certificate", false}}},
		{"a certificate as key_file", with(func(c *EtcdConfig) { c.KeyFile = p.path("client.pem") }),
			[]want{{"key_file", "holds a certificate, not a private key", false}}},
		{"key and certificate do not match", with(func(c *EtcdConfig) { c.KeyFile = p.path("second-key.pem") }),
			[]want{{"key_file", "does not belong to the certificate", false}}},
		{"an encrypted key", with(func(c *EtcdConfig) { c.KeyFile = encrypted }),
			[]want{{"key_file", "the key is encrypted", false}}},
		{"a server-only certificate", with(func(c *EtcdConfig) {
			c.CertFile, c.KeyFile = p.path("server-only.pem"), p.path("server-only-key.pem")
		}), []want{{"cert_file", "does not allow client authentication", false}}},
		{"an expired certificate", with(func(c *EtcdConfig) { c.CertFile, c.KeyFile = p.path("expired.pem"), p.path("expired-key.pem") }),
			[]want{{"cert_file", "expired on", true}}},
		{"a certificate about to expire", with(func(c *EtcdConfig) { c.CertFile, c.KeyFile = p.path("soon.pem"), p.path("soon-key.pem") }),
			[]want{{"cert_file", "renew it", true}}},
		{"a certificate of another CA", with(func(c *EtcdConfig) { c.CertFile, c.KeyFile = p.path("foreign.pem"), p.path("foreign-key.pem") }),
			[]want{{"cert_file", "not signed by a CA in", true}}},
		{"a key every user can read", with(func(c *EtcdConfig) { c.KeyFile = openKey }),
			[]want{{"key_file", "every user of this host can read it (mode 0644)", true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.CheckTLSFiles(now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Field != w.field || !strings.Contains(g.Message, w.msg) || g.Warning != w.warning {
					t.Errorf("problem %d: %+v, want field %s, warning %v, message with %q", i, g, w.field, w.warning, w.msg)
				}
			}
		})
	}

	// Connect reads the CA file the same way.
	for _, name := range []string{"ca-key.pem", "client.pem"} {
		if _, err := Connect(t.Context(), EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, CAFile: p.path(name)}); err == nil {
			t.Errorf("Connect with %s as ca_file: no error", name)
		}
	}
	if c, err := Connect(t.Context(), EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile}); err != nil {
		t.Errorf("Connect with the good files: %v", err)
	} else {
		c.Close()
	}
}
