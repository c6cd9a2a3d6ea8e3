package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
	"github.com/meridian-gslb/meridian/internal/tlsfiles/tlsfilestest"
)

// testCA issues certificates into a test's directory.
type testCA struct {
	t   *testing.T
	dir string
	ca  *tlsfiles.CA
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	now := time.Now()
	ca, err := tlsfiles.NewCA(name, now.Add(-time.Hour), now.Add(10*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")); err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, dir: dir, ca: ca}
}

// issue writes NAME.pem and NAME-key.pem, valid for d from an hour ago,
// for 127.0.0.1 with the usages given, and returns their paths.
func (c *testCA) issue(name string, d time.Duration, usage ...x509.ExtKeyUsage) (cert, key string) {
	c.t.Helper()
	cert, key = filepath.Join(c.dir, name+".pem"), filepath.Join(c.dir, name+"-key.pem")
	now := time.Now()
	if err := c.ca.IssueFiles(cert, key, tlsfiles.Leaf{CommonName: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: usage,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(d)}); err != nil {
		c.t.Fatal(err)
	}
	return cert, key
}

func (c *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.Cert)
	return p
}

// serveTLS serves a handler that answers "ok" over t's configuration on
// loopback and returns its address.
func serveTLS(tb *testing.T, t *TLS) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		TLSConfig: t.Config(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// served is the serial of the certificate the server at addr shows, and
// the error of a GET over the connection.
func served(t *testing.T, addr string, cfg *tls.Config) (string, error) {
	t.Helper()
	cfg = cfg.Clone()
	var serial string
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		serial = cs.PeerCertificates[0].SerialNumber.String()
		return nil
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return serial, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && string(b) != "ok" {
		err = errors.New("answer " + string(b))
	}
	return serial, err
}

// TestTLSReload: a new certificate is served after SIGHUP's Reload and
// after a change of the files' content; files that do not load (a key of
// another certificate, a missing file) leave the certificate loaded
// before serving, and the status and metrics say so until a reload
// succeeds.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key := ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	first := tlsfilestest.Serial(t, cert)
	var logs testlog.Buffer
	tl, err := NewTLS(TLSFiles{CertFile: cert, KeyFile: key}, slogTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, tl)
	client := &tls.Config{RootCAs: ca.pool()}
	check := func(what, want string) {
		t.Helper()
		got, err := served(t, addr, client)
		if err != nil || got != want {
			t.Fatalf("%s: serial %s (%v), want %s", what, got, err, want)
		}
	}
	check("at start", first)

	// SIGHUP: a renewed certificate.
	ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	second := tlsfilestest.Serial(t, cert)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	check("after Reload", second)

	// A key that is not the certificate's: the previous pair serves on.
	_, otherKey := ca.issue("other", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	b, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsfiles.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = tl.Reload()
	if err == nil || !strings.Contains(err.Error(), "api.tls.key_file: "+key+" does not belong to the certificate in "+cert) {
		t.Fatalf("reload with a foreign key: %v", err)
	}
	check("after a failed reload", second)
	st := tl.Status()
	if st.LastError == "" || st.Failures != 1 || st.Reloads != 2 {
		t.Errorf("status after a failed reload: %+v", st)
	}
	if !strings.Contains(logs.String(), "api tls reload failed; the certificate loaded before keeps serving") {
		t.Errorf("the failed reload is not logged:\n%s", logs.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(CertificateCollector(tl.Certificates, tl))
	if n := gauge(t, reg, "meridian_tls_reload_failing"); n != 1 {
		t.Errorf("meridian_tls_reload_failing %v while the files do not load", n)
	}
	// The same broken content is not tried at every poll.
	tl.poll()
	if st := tl.Status(); st.Reloads != 2 {
		t.Errorf("unchanged broken files reloaded again: %+v", st)
	}

	// A missing file (being replaced) is not a change.
	if err := os.Rename(key, key+".away"); err != nil {
		t.Fatal(err)
	}
	tl.poll()
	if st := tl.Status(); st.Reloads != 2 {
		t.Errorf("a missing file was taken for a change: %+v", st)
	}
	if err := os.Rename(key+".away", key); err != nil {
		t.Fatal(err)
	}

	// A renewal written in place: seen at the next poll, no signal.
	ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	third := tlsfilestest.Serial(t, cert)
	tl.poll()
	check("after a change of the files", third)
	if st := tl.Status(); st.LastError != "" || st.Reloads != 3 {
		t.Errorf("status after a good reload: %+v", st)
	}
	if n := gauge(t, reg, "meridian_tls_reload_failing"); n != 0 {
		t.Errorf("meridian_tls_reload_failing %v after a good reload", n)
	}

	// Run polls by itself.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx, 10*time.Millisecond) }()
	ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	fourth := tlsfilestest.Serial(t, cert)
	// The pair is written key first: a poll between the two writes sees
	// a key of another certificate, fails, and the next poll loads the
	// pair. Wait for the third successful reload.
	deadline := time.Now().Add(10 * time.Second)
	for st := tl.Status(); st.Reloads-st.Failures < 3; st = tl.Status() {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the changed files")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check("after Run saw the change", fourth)
}

// gauge is the value of the one metric of a family in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestTLSClientCA: with a client CA, a client without a certificate, or
// with one another CA signed, is refused in the handshake; one the
// client CA signed gets in. Clients older than TLS 1.2 are refused.
func TestTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	clientCA := newTestCA(t, dir, "client-ca")
	other := newTestCA(t, dir, "other-ca")
	cert, key := ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	tl, err := NewTLS(TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: filepath.Join(dir, "client-ca.pem")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, tl)
	pair := func(c *testCA, name string) []tls.Certificate {
		certFile, keyFile := c.issue(name, 24*time.Hour, x509.ExtKeyUsageClientAuth)
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{kp}
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"no client certificate", &tls.Config{RootCAs: ca.pool()}, false},
		{"a certificate of another CA", &tls.Config{RootCAs: ca.pool(), Certificates: pair(other, "mallory")}, false},
		{"a certificate of the client CA", &tls.Config{RootCAs: ca.pool(), Certificates: pair(clientCA, "alice")}, true},
		{"TLS 1.1", &tls.Config{RootCAs: ca.pool(), Certificates: pair(clientCA, "old"), MaxVersion: tls.VersionTLS11}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := served(t, addr, tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("GET: %v, want ok %v", err, tc.ok)
			}
		})
	}
	if st := tl.Status(); !st.ClientAuth {
		t.Errorf("status: %+v", st)
	}
	if names := tl.Certificates(); len(names) != 2 || names[0].Name != "api" || names[1].Name != "api_client_ca" {
		t.Errorf("certificates: %+v", names)
	}
}

// TestTLSFilesCheck: what keeps the API from serving TLS is an error
// naming the field and the file; an end within 30 days is a warning.
func TestTLSFilesCheck(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key := ca.issue("api", 24*365*time.Hour, x509.ExtKeyUsageServerAuth)
	_, otherKey := ca.issue("other", 24*365*time.Hour, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue("client", 24*365*time.Hour, x509.ExtKeyUsageClientAuth)
	soonCert, soonKey := ca.issue("soon", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	caFile := filepath.Join(dir, "ca.pem")
	type want struct {
		field, msg string
		warning    bool
	}
	for _, tc := range []struct {
		name  string
		files TLSFiles
		want  []want
	}{
		{"good", TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: caFile}, nil},
		{"a key of another certificate", TLSFiles{CertFile: cert, KeyFile: otherKey},
			[]want{{"api.tls.key_file", otherKey + " does not belong to the certificate in " + cert, false}}},
		{"a missing certificate", TLSFiles{CertFile: filepath.Join(dir, "none.pem"), KeyFile: key},
			[]want{{"api.tls.cert_file", "none.pem: no such file", false}}},
		{"a client certificate", TLSFiles{CertFile: clientCert, KeyFile: clientKey},
			[]want{{"api.tls.cert_file", "does not allow server authentication", false}}},
		{"the key as client CA", TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: key},
			[]want{{"api.client_ca", "holds a private key, not CA certificates", false}}},
		{"a server certificate as client CA", TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: cert},
			[]want{{"api.client_ca", "is not a CA certificate", false}}},
		{"a certificate ending tomorrow", TLSFiles{CertFile: soonCert, KeyFile: soonKey},
			[]want{{"api.tls.cert_file", "renew it", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.files.Check(time.Now())
			if len(got) != len(tc.want) {
				t.Fatalf("%d problems, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if g := got[i]; g.Field != w.field || !strings.Contains(g.Message, w.msg) || g.Warning != w.warning {
					t.Errorf("problem %d: %+v, want %+v", i, g, w)
				}
			}
			_, err := NewTLS(tc.files, nil)
			if hasError := len(tlsfiles.Errors(got)) > 0; (err != nil) != hasError {
				t.Errorf("NewTLS: %v, want an error %v", err, hasError)
			}
		})
	}
}
