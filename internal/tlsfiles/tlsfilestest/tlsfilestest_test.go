package tlsfilestest

import (
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// TestSerial: each certificate written to the file is the one read back.
func TestSerial(t *testing.T) {
	now := time.Now()
	ca, err := tlsfiles.NewCA("test", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem")
	seen := map[string]bool{}
	for range 3 {
		certPEM, keyPEM, err := ca.Issue(tlsfiles.Leaf{CommonName: "a", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tlsfiles.ParseCertChain(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsfiles.WriteFile(key, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := tlsfiles.WriteFile(cert, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		got := Serial(t, cert)
		if want := c[0].SerialNumber.String(); got != want || seen[got] {
			t.Errorf("serial %s, want %s, new", got, want)
		}
		seen[got] = true
	}
}
