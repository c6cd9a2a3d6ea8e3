package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIssue: what a CA issues loads as a TLS pair, verifies against the
// CA for its usage and addresses, and is written with the key private;
// ParseCA reads a CA back.
func TestIssue(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := NewCA("test CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCA(certPEM, keyPEM)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("ParseCA: %v", err)
	}
	if _, err := ParseCA(certPEM, []byte("junk")); err == nil {
		t.Error("ParseCA took a CA without its key")
	}

	cert, key := filepath.Join(dir, "s.pem"), filepath.Join(dir, "s-key.pem")
	if err := ca.IssueFiles(cert, key, Leaf{CommonName: "s", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{cert: 0o644, key: 0o600, filepath.Join(dir, "ca-key.pem"): 0o600} {
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %04o", file, st.Mode().Perm(), err, want)
		}
	}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the server certificate does not verify: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a server certificate verifies as a client's")
	}
	if ForClientAuth(leaf) || !ForServerAuth(leaf) {
		t.Error("usage checks")
	}

	probs, got, _ := CheckPair(Pair{CertField: "c", CertFile: cert, KeyField: "k", KeyFile: key, Usage: x509.ExtKeyUsageClientAuth, UsageHint: "make a client one"}, now)
	if got == nil || len(Errors(probs)) != 1 || !strings.Contains(probs[len(probs)-1].Message, "does not allow client authentication; make a client one") {
		t.Errorf("a server certificate checked for a client: %+v", probs)
	}
}

// TestWriteFile: a file replaced is never seen in part, and takes the
// mode asked for whatever the umask and the file it replaces.
func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	if err != nil || string(b) != "new" || st.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v %v", b, st.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteFile(filepath.Join(path, "under-a-file"), nil, 0o600); err == nil {
		t.Error("wrote below a file")
	}
}
