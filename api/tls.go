package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// TLSFiles names the API's TLS files (api.tls, api.client_ca).
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the CAs whose client certificates
	// the API accepts; every connection must show one.
	ClientCAFile string
}

// The fields of the configuration that name TLSFiles, as problems and
// errors name them.
const (
	fieldCert     = "api.tls.cert_file"
	fieldKey      = "api.tls.key_file"
	fieldClientCA = "api.client_ca"
)

// Check reads the files as the running user and reports what would keep
// the API from serving TLS (errors) and what would not yet (warnings: an
// expiry within 30 days, a key every user can read). Fields are named as
// in the configuration (api.tls.cert_file).
func (f TLSFiles) Check(now time.Time) []tlsfiles.Problem {
	probs, _, _ := tlsfiles.CheckPair(tlsfiles.Pair{CertField: fieldCert, CertFile: f.CertFile, KeyField: fieldKey, KeyFile: f.KeyFile,
		Usage: x509.ExtKeyUsageServerAuth, UsageHint: "clients refuse it: it needs serverAuth (deploy/certs.sh server)"}, now)
	if f.ClientCAFile != "" {
		ca, _ := tlsfiles.CheckCA(fieldClientCA, f.ClientCAFile, now)
		probs = append(probs, ca...)
	}
	return probs
}

// TLS serves the API's certificate and, with a client CA, asks every
// client for a certificate it signed. The files are read again on Reload
// (SIGHUP) and when their content changes (Run); files that do not load
// leave the ones loaded before serving, and Status says why.
//
// TLS 1.2 is the oldest version spoken, with Go's default cipher suites
// (no CBC or RC4 suites for TLS 1.2; TLS 1.3's own). HTTP/2 is not
// offered: the connection limit and timeouts of the HTTP server
// (Listener) count connections, which HTTP/2 would multiplex.
type TLS struct {
	files TLSFiles
	log   *slog.Logger
	cur   atomic.Pointer[tlsLoaded]

	mu     sync.Mutex // serialises loads; guards the fields below
	seen   [sha256.Size]byte
	status apitypes.TLSStatus
}

// tlsLoaded is one version of the files, ready to serve.
type tlsLoaded struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool
	certs    []apitypes.CertificateInfo
}

// NewTLS loads the files; it fails, naming the file, the field and the
// reason, when they cannot serve (missing, unreadable, a key that is not
// the certificate's, a certificate not for servers, a client CA file
// without CA certificates). A nil logger discards log output.
func NewTLS(files TLSFiles, log *slog.Logger) (*TLS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{files: files, log: log}
	l, sum, err := t.load()
	if err != nil {
		return nil, err
	}
	t.cur.Store(l)
	t.seen = sum
	t.status = apitypes.TLSStatus{ClientAuth: files.ClientCAFile != "", Loaded: time.Now()}
	t.logLoaded("api tls certificate loaded", l)
	return t, nil
}

// load reads the files once and builds what serves them; sum identifies
// their content.
func (t *TLS) load() (*tlsLoaded, [sha256.Size]byte, error) {
	read := func(field, path string) ([]byte, error) {
		b, err := tlsfiles.Read(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return b, nil
	}
	var sum [sha256.Size]byte
	certPEM, err := read(fieldCert, t.files.CertFile)
	if err != nil {
		return nil, sum, err
	}
	keyPEM, err := read(fieldKey, t.files.KeyFile)
	if err != nil {
		return nil, sum, err
	}
	var caPEM []byte
	if t.files.ClientCAFile != "" {
		if caPEM, err = read(fieldClientCA, t.files.ClientCAFile); err != nil {
			return nil, sum, err
		}
	}
	sum = sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM, caPEM}, []byte{0}))
	// The check's words for what is wrong: it reads the files again,
	// which changes nothing but the time it takes.
	if errs := tlsfiles.Errors(t.files.Check(time.Now())); len(errs) > 0 {
		var out []error
		for _, p := range errs {
			out = append(out, fmt.Errorf("%s: %s", p.Field, p.Message))
		}
		return nil, sum, errors.Join(out...)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil { // the files changed between the reads
		return nil, sum, fmt.Errorf("%s: %w", fieldKey, err)
	}
	l := &tlsLoaded{cert: &cert}
	chain, err := tlsfiles.ParseCertChain(certPEM)
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", fieldCert, err)
	}
	l.certs = append(l.certs, certInfo("api", t.files.CertFile, chain))
	if caPEM != nil {
		pool, cas, err := tlsfiles.ParseCABundle(caPEM)
		if err != nil {
			return nil, sum, fmt.Errorf("%s: %s: %w", fieldClientCA, t.files.ClientCAFile, err)
		}
		l.clientCA = pool
		l.certs = append(l.certs, certInfo("api_client_ca", t.files.ClientCAFile, cas))
	}
	return l, sum, nil
}

// certInfo describes the certificate of certs that ends first, under
// name: the one that matters for an alert.
func certInfo(name, file string, certs []*x509.Certificate) apitypes.CertificateInfo {
	first := certs[0]
	for _, c := range certs[1:] {
		if c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	return apitypes.CertificateInfo{Name: name, File: file, Subject: first.Subject.String(), NotAfter: first.NotAfter.UTC()}
}

// CertificateInfos describes the certificates in the PEM files given
// (name → file), for Status and the expiry metric; a file that cannot be
// read is left out.
func CertificateInfos(files map[string]string) []apitypes.CertificateInfo {
	var out []apitypes.CertificateInfo
	for _, name := range slices.Sorted(maps.Keys(files)) {
		file := files[name]
		if file == "" {
			continue
		}
		if certs, err := tlsfiles.ReadCertificates(file); err == nil {
			out = append(out, certInfo(name, file, certs))
		}
	}
	return out
}

func (t *TLS) logLoaded(msg string, l *tlsLoaded) {
	c := l.certs[0]
	args := []any{"cert_file", t.files.CertFile, "subject", c.Subject, "not_after", c.NotAfter, "client_auth", l.clientCA != nil}
	if time.Until(c.NotAfter) < tlsfiles.ExpirySoon {
		t.log.Warn(msg+"; it ends soon: renew it", args...)
		return
	}
	t.log.Info(msg, args...)
}

// Config is the TLS configuration of the HTTP server: every handshake
// takes the files loaded last.
func (t *TLS) Config() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		l := t.cur.Load()
		c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{*l.cert}}
		if l.clientCA != nil {
			c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, l.clientCA
		}
		return c, nil
	}
	return base
}

// Reload reads the files again and serves them. When they do not load,
// the files loaded before keep serving; the reason is logged, kept for
// Status and returned.
func (t *TLS) Reload() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reloadLocked()
}

func (t *TLS) reloadLocked() error {
	l, sum, err := t.load()
	t.status.Reloads++
	if sum != ([sha256.Size]byte{}) {
		t.seen = sum
	}
	if err != nil {
		t.status.Failures++
		t.status.LastError, t.status.LastErrorTime = err.Error(), time.Now()
		t.log.Error("api tls reload failed; the certificate loaded before keeps serving", "err", err)
		return err
	}
	t.cur.Store(l)
	t.status.Loaded, t.status.LastError, t.status.LastErrorTime = time.Now(), "", time.Time{}
	t.logLoaded("api tls certificate reloaded", l)
	return nil
}

// DefaultTLSPoll is how often Run reads the files for a change.
const DefaultTLSPoll = time.Minute

// Run reads the files every interval (DefaultTLSPoll when not positive)
// and reloads them when their content changed: a renewal is served
// without a signal. Content that failed to load is not tried again until
// it changes. It returns when ctx ends.
func (t *TLS) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultTLSPoll
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.poll()
		}
	}
}

// poll reloads the files if their content is not the content read last.
func (t *TLS) poll() {
	var parts [][]byte
	for _, p := range []string{t.files.CertFile, t.files.KeyFile, t.files.ClientCAFile} {
		var b []byte
		if p != "" {
			var err error
			if b, err = tlsfiles.Read(p); err != nil {
				return // missing while being replaced, or unreadable: SIGHUP reports it
			}
		}
		parts = append(parts, b)
	}
	sum := sha256.Sum256(bytes.Join(parts, []byte{0}))
	t.mu.Lock()
	defer t.mu.Unlock()
	if sum != t.seen {
		_ = t.reloadLocked() // logged, and kept for Status
	}
}

// Status is the TLS part of /v1/status.
func (t *TLS) Status() apitypes.TLSStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// Certificates describes the certificate and client CA being served.
func (t *TLS) Certificates() []apitypes.CertificateInfo {
	return append([]apitypes.CertificateInfo(nil), t.cur.Load().certs...)
}

var (
	descCertExpiry = prometheus.NewDesc("meridian_tls_certificate_expiry_timestamp_seconds",
		"When a certificate the server uses ends (Unix time; for a file with several, the first to end): api (api.tls), api_client_ca (api.client_ca), etcd_ca and etcd_client (etcd's TLS files), embedded_etcd_ca, embedded_etcd_member and embedded_etcd_client (the embedded etcd's).",
		[]string{"cert"}, nil)
	descTLSFailing = prometheus.NewDesc("meridian_tls_reload_failing",
		"1 while the API's TLS files on disk do not load and the ones loaded before keep serving.", nil, nil)
	descTLSReloads = prometheus.NewDesc("meridian_tls_reloads_total",
		"Reloads of the API's TLS files (on SIGHUP, or a change seen), by result.", []string{"result"}, nil)
)

// CertificateCollector exposes the ends of the certificates certs lists
// (at every scrape) as meridian_tls_certificate_expiry_timestamp_seconds,
// and with t (nil without api.tls) its reloads.
func CertificateCollector(certs func() []apitypes.CertificateInfo, t *TLS) prometheus.Collector {
	return certCollector{certs: certs, t: t}
}

type certCollector struct {
	certs func() []apitypes.CertificateInfo
	t     *TLS
}

func (c certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCertExpiry
	if c.t != nil {
		ch <- descTLSFailing
		ch <- descTLSReloads
	}
}

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, ci := range c.certs() {
		if seen[ci.Name] {
			continue
		}
		seen[ci.Name] = true
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(ci.NotAfter.Unix()), ci.Name)
	}
	if c.t == nil {
		return
	}
	st := c.t.Status()
	failing := 0.0
	if st.LastError != "" {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(descTLSFailing, prometheus.GaugeValue, failing)
	ch <- prometheus.MustNewConstMetric(descTLSReloads, prometheus.CounterValue, float64(st.Reloads-st.Failures), "ok")
	ch <- prometheus.MustNewConstMetric(descTLSReloads, prometheus.CounterValue, float64(st.Failures), "failed")
}
