//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The servers' API certificates, made as docs/deploy.md shows: a CA of
// their own (deploy/certs.sh ca), not etcd's, and a certificate per
// server for the address its API listens on (deploy/certs.sh server).
var apiPKI struct {
	sync.Mutex
	dir, ca string
}

// makeAPICA makes the API's CA, before any test runs: every request of
// the suite to a server's API trusts it (httpClient), and meridian ctl
// is given it (--cacert).
func makeAPICA() error {
	if _, err := exec.LookPath("openssl"); err != nil {
		return fmt.Errorf("openssl is missing (Debian's openssl; scripts/deps.sh test installs it): %w", err)
	}
	apiPKI.dir = filepath.Join(runDir, "api-pki")
	if out, err := exec.Command(filepath.Join(repoRoot, "deploy", "certs.sh"), "ca", apiPKI.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("deploy/certs.sh ca %s: %v\n%s", apiPKI.dir, err, out)
	}
	apiPKI.ca = filepath.Join(apiPKI.dir, "ca.pem")
	b, err := os.ReadFile(apiPKI.ca)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no certificate", apiPKI.ca)
	}
	httpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return nil
}

// apiCert returns s's API certificate and key, made on first use for its
// host address.
func apiCert(t testing.TB, s *nameServer) (cert, key string) {
	t.Helper()
	apiPKI.Lock()
	defer apiPKI.Unlock()
	cert, key = filepath.Join(apiPKI.dir, s.name+".pem"), filepath.Join(apiPKI.dir, s.name+"-key.pem")
	if fileExists(cert) {
		return cert, key
	}
	args := []string{"server", apiPKI.dir, s.name, s.host}
	if out, err := exec.Command(filepath.Join(repoRoot, "deploy", "certs.sh"), args...).CombinedOutput(); err != nil {
		t.Fatalf("deploy/certs.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return cert, key
}

// httpClient makes the suite's requests to the servers' APIs, trusting
// the API's CA (makeAPICA).
var httpClient *http.Client
