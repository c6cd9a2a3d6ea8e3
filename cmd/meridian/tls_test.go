package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
	"github.com/meridian-gslb/meridian/internal/tlsfiles/tlsfilestest"
	"github.com/meridian-gslb/meridian/regions/store"
)

// apiPKI is the TLS material of an API: a CA that signs the server's
// certificate (for 127.0.0.1), and another that signs its clients'.
type apiPKI struct {
	dir, ca, clientCA string
	serverCA, clients *tlsfiles.CA
}

func newAPIPKI(t *testing.T) *apiPKI {
	t.Helper()
	p := &apiPKI{dir: t.TempDir()}
	p.ca, p.clientCA = filepath.Join(p.dir, "ca.pem"), filepath.Join(p.dir, "clients.pem")
	now := time.Now()
	for _, c := range []struct {
		ca   **tlsfiles.CA
		name string
	}{{&p.serverCA, "ca"}, {&p.clients, "clients"}} {
		ca, err := tlsfiles.NewCA("test "+c.name, now.Add(-time.Hour), now.Add(10*365*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.WriteFiles(filepath.Join(p.dir, c.name+".pem"), filepath.Join(p.dir, c.name+"-key.pem")); err != nil {
			t.Fatal(err)
		}
		*c.ca = ca
	}
	return p
}

// issue writes NAME.pem and NAME-key.pem, signed by ca, and returns
// their paths.
func (p *apiPKI) issue(t *testing.T, ca *tlsfiles.CA, name string, usage x509.ExtKeyUsage) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	now := time.Now()
	if err := ca.IssueFiles(cert, key, tlsfiles.Leaf{CommonName: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage: []x509.ExtKeyUsage{usage}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// client is the TLS configuration of a client that trusts the server's
// CA, with the client certificate of the files given (none without).
func (p *apiPKI) client(t *testing.T, certKey ...string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.serverCA.Cert)
	c := &tls.Config{RootCAs: pool}
	if len(certKey) == 2 {
		kp, err := tls.LoadX509KeyPair(certKey[0], certKey[1])
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

// servedSerial is the serial number of the certificate the server's API
// shows now, to compare with the file's (tlsfilestest.Serial).
func servedSerial(t *testing.T, ts *testServer, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", ts.HTTP.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// tlsState is a small desired state for the TLS tests.
const tlsState = `regions:
  - name: eu
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.9}
    check: {type: tcp, port: 80}
  - name: na
    vips: [192.0.2.20]
    location: {lat: 38.9, lon: -77.0}
    check: {type: tcp, port: 80}
services:
  - name: tls.example.org.
    ttl: 30
    policy: weighted
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}]
`

// TestServerAPITLS: with api.tls and api.client_ca, meridian ctl reads
// and writes over TLS with a client certificate (flags or environment);
// without one, or without the CA that signed the server's, it is
// refused and says why. SIGHUP serves a renewed certificate; a reload
// that fails keeps the one before and says so in the log, the status and
// the metrics.
func TestServerAPITLS(t *testing.T) {
	p := newAPIPKI(t)
	cert, key := p.issue(t, p.serverCA, "api", x509.ExtKeyUsageServerAuth)
	aliceCert, aliceKey := p.issue(t, p.clients, "alice", x509.ExtKeyUsageClientAuth)
	extra := fmt.Sprintf("bootstrap: state.yaml\napi:\n  tokens_file: tokens.yaml\n  admin_token_file: admin.token\n"+
		"  tls:\n    cert_file: %s\n    key_file: %s\n    reload_interval: 1h\n  client_ca: %s\n", cert, key, p.clientCA)
	ts := startServerWith(t, serverSetup{extra: extra, files: map[string][]byte{"state.yaml": []byte(tlsState)},
		httpTLS: p.client(t, aliceCert, aliceKey)})
	token := filepath.Join(ts.dir, "admin.token")

	ctl := func(args ...string) (string, string, int) {
		t.Helper()
		code, out, errOut := runArgs(append([]string{"ctl", "--server", ts.url(), "--token-file", token}, args...)...)
		return out, errOut, code
	}
	withCert := []string{"--cacert", p.ca, "--cert", aliceCert, "--key", aliceKey}
	etcdtest.WaitUntil(t, "the bootstrapped service", func() bool {
		_, _, code := ctl(append(withCert, "weights", "get", "tls.example.org")...)
		return code == 0
	})
	if out, errOut, code := ctl(append(withCert, "weights", "set", "tls.example.org", "eu=3")...); code != 0 {
		t.Fatalf("ctl over TLS with a client certificate: exit %d: %s%s", code, errOut, out)
	}
	if out, errOut, code := ctl(append(withCert, "audit", "-o", "json")...); code != 0 || !strings.Contains(out, `"action": "set-weights"`) {
		t.Fatalf("ctl audit: exit %d: %s%s", code, errOut, out)
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("MERIDIAN_CACERT", p.ca)
		t.Setenv("MERIDIAN_CERT", aliceCert)
		t.Setenv("MERIDIAN_KEY", aliceKey)
		if out, errOut, code := ctl("weights", "get", "tls.example.org"); code != 0 || errOut != "" {
			t.Fatalf("exit %d: %s%s", code, errOut, out)
		}
	})
	mallory := newAPIPKI(t)
	malloryCert, malloryKey := mallory.issue(t, mallory.clients, "mallory", x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no client certificate", []string{"--cacert", p.ca}, "refused the TLS connection"},
		{"a client certificate of another CA", []string{"--cacert", p.ca, "--cert", malloryCert, "--key", malloryKey}, "refused the TLS connection"},
		{"the system's CAs", []string{"--cert", aliceCert, "--key", aliceKey}, "shows a certificate ctl does not trust"},
		{"a certificate without its key", []string{"--cacert", p.ca, "--cert", aliceCert}, "--cert needs --key"},
		{"the key of another certificate", []string{"--cacert", p.ca, "--cert", aliceCert, "--key", malloryKey}, "--key: " + malloryKey + " does not belong to the certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := ctl(append(tc.args, "weights", "set", "tls.example.org", "eu=4")...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, want a failure saying %q: %s%s", code, tc.want, errOut, out)
			}
		})
	}
	// A client certificate is no token: without one, a write is refused.
	if resp, err := ts.hc.Post(ts.url()+"/v1/regions/eu/drain?dry_run=true", "", nil); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a write with a client certificate and no token: %s, want 401", resp.Status)
	}
	noCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.client(t)}}
	if resp, err := noCert.Get(ts.url() + "/health/live"); err == nil {
		resp.Body.Close()
		t.Error("a client without a certificate was served")
	}

	// SIGHUP with a renewed certificate.
	clientCfg := p.client(t, aliceCert, aliceKey)
	first := servedSerial(t, ts, clientCfg)
	if first != tlsfilestest.Serial(t, cert) {
		t.Fatalf("serving %s, the file holds %s", first, tlsfilestest.Serial(t, cert))
	}
	p.issue(t, p.serverCA, "api", x509.ExtKeyUsageServerAuth)
	renewed := tlsfilestest.Serial(t, cert)
	ts.hup(t, "api tls certificate reloaded")
	if got := servedSerial(t, ts, clientCfg); got != renewed {
		t.Fatalf("after SIGHUP serving %s, want the renewed %s", got, renewed)
	}

	// A key of another certificate: the renewed one keeps serving.
	_, otherKey := p.issue(t, p.serverCA, "other", x509.ExtKeyUsageServerAuth)
	b, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsfiles.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts.hup(t, "api tls reload failed; the certificate loaded before keeps serving")
	if got := servedSerial(t, ts, clientCfg); got != renewed {
		t.Fatalf("after a failed reload serving %s, want %s", got, renewed)
	}
	var st struct {
		TLS struct {
			ClientAuth bool   `json:"client_auth"`
			LastError  string `json:"last_error"`
			Failures   int    `json:"failures"`
		} `json:"tls"`
		Certificates []struct {
			Name     string    `json:"name"`
			NotAfter time.Time `json:"not_after"`
		} `json:"certificates"`
	}
	req, err := http.NewRequest("GET", ts.url()+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(mustReadFile(t, token)))
	resp, err := ts.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !st.TLS.ClientAuth || st.TLS.Failures != 1 || !strings.Contains(st.TLS.LastError, "api.tls.key_file: "+key+" does not belong to the certificate") {
		t.Errorf("status after a failed reload: %+v", st.TLS)
	}
	if v := metric(t, ts, "meridian_tls_reload_failing"); v != 1 {
		t.Errorf("meridian_tls_reload_failing %v", v)
	}
	names := map[string]time.Time{}
	for _, c := range st.Certificates {
		names[c.Name] = c.NotAfter
	}
	if exp := metric(t, ts, `meridian_tls_certificate_expiry_timestamp_seconds{cert="api"}`); exp != float64(names["api"].Unix()) || exp < float64(time.Now().Unix()) {
		t.Errorf("api certificate expiry %v, status %v", exp, names["api"])
	}
	if _, ok := names["api_client_ca"]; !ok {
		t.Errorf("status certificates: %+v", st.Certificates)
	}
}

// TestServerAPITLSFileChange: a certificate renewed in place is served
// without a signal, once the server's poll sees the change.
func TestServerAPITLSFileChange(t *testing.T) {
	p := newAPIPKI(t)
	cert, key := p.issue(t, p.serverCA, "api", x509.ExtKeyUsageServerAuth)
	extra := fmt.Sprintf("api:\n  tls:\n    cert_file: %s\n    key_file: %s\n    reload_interval: 20ms\n", cert, key)
	ts := startServerWith(t, serverSetup{extra: extra, httpTLS: p.client(t)})
	p.issue(t, p.serverCA, "api", x509.ExtKeyUsageServerAuth)
	renewed := tlsfilestest.Serial(t, cert)
	etcdtest.WaitUntil(t, "the renewed certificate served", func() bool { return servedSerial(t, ts, p.client(t)) == renewed })
	if !strings.Contains(ts.stderr.String(), "api tls certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", ts.stderr)
	}
}

// TestServerTLSConfigErrors: a half-configured api.tls, a client CA
// without it, TLS files that are missing, not what they should be, not
// matching or not readable stop both `meridian server --check` and the
// start, naming the configuration file, line, field and reason, before
// anything listens.
func TestServerTLSConfigErrors(t *testing.T) {
	p := newAPIPKI(t)
	cert, key := p.issue(t, p.serverCA, "api", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := p.issue(t, p.clients, "alice", x509.ExtKeyUsageClientAuth)
	_, otherKey := p.issue(t, p.serverCA, "other", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.zone"), testZone(1, "192.0.2.1"))
	ports := testport.Free(t, 2)
	head := fmt.Sprintf("listen:\n  dns: [\"127.0.0.1:%d\"]\n  http: \"127.0.0.1:%d\"\nzones:\n  - origin: example.org.\n    file: ok.zone\napi:\n", ports[0], ports[1])
	tlsCfg := func(cert, key string) string {
		out := "  tls:\n"
		if cert != "" {
			out += "    cert_file: " + cert + "\n"
		}
		if key != "" {
			out += "    key_file: " + key + "\n"
		}
		return out
	}
	cases := []struct {
		name, api string
		want      string // after "meridian.yaml:LINE: "
		line      int
	}{
		{"a certificate without its key", tlsCfg(cert, ""), "api.tls.key_file: missing: api.tls needs cert_file and key_file together", 8},
		{"a key without its certificate", tlsCfg("", key), "api.tls.cert_file: missing: api.tls needs cert_file and key_file together", 8},
		{"a client CA without TLS", "  client_ca: " + p.clientCA + "\n", "api.client_ca: needs api.tls", 8},
		{"the key of another certificate", tlsCfg(cert, otherKey), "api.tls.key_file: " + otherKey + " does not belong to the certificate in " + cert, 10},
		{"a missing certificate", tlsCfg(filepath.Join(p.dir, "none.pem"), key), "api.tls.cert_file: " + filepath.Join(p.dir, "none.pem") + ": no such file", 9},
		{"a client certificate", tlsCfg(clientCert, clientKey), "api.tls.cert_file: " + clientCert + ": its extended key usage does not allow server authentication", 9},
		{"a key as the client CA", tlsCfg(cert, key) + "  client_ca: " + key + "\n", "api.client_ca: " + key + ": it holds a private key, not CA certificates", 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			config := writeFile(t, filepath.Join(dir, "meridian.yaml"), head+tc.api)
			for _, args := range [][]string{{"--check"}, nil} {
				code, _, stderr := runArgs(append([]string{"server", "--config", config}, args...)...)
				want := fmt.Sprintf("%s:%d: %s", config, tc.line, tc.want)
				if code != 1 || !strings.Contains(stderr, want) {
					t.Fatalf("server %v: exit %d, want 1 and %q:\n%s", args, code, want, stderr)
				}
			}
			for _, port := range ports {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatalf("port %d left bound: %v", port, err)
				}
				ln.Close()
			}
		})
	}

	t.Run("a key the service's user cannot read", func(t *testing.T) {
		config := writeFile(t, filepath.Join(dir, "meridian.yaml"), head+tlsCfg(cert, key))
		var run func(args ...string) (int, string, string)
		if os.Geteuid() == 0 {
			bin := buildMeridian(t)
			openForAll(t, filepath.Dir(bin))
			for _, d := range []string{dir, p.dir} {
				openForAll(t, d)
			}
			run = func(args ...string) (int, string, string) { return runAs(t, 65534, bin, args...) }
		} else {
			if err := os.Chmod(key, 0); err != nil {
				t.Fatal(err)
			}
			run = runArgs
		}
		for _, args := range [][]string{{"--check"}, nil} {
			code, _, stderr := run(append([]string{"server", "--config", config}, args...)...)
			want := fmt.Sprintf("%s:10: api.tls.key_file: %s: ", config, key)
			if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "cannot read it (permission denied)") {
				t.Fatalf("server %v: exit %d, want 1 and %q … permission denied:\n%s", args, code, want, stderr)
			}
		}
	})
}

// TestServerEmbeddedEtcdAuth: the embedded etcd of a server takes only
// the certificates the server made in its data directory (keys 0600 in a
// directory of mode 0700): an etcd client or an HTTP client (curl's way)
// without them can neither read nor write, on the client port nor on the
// peer port, while the server and a prober with its certificate work.
// Another user of the host, with etcdctl, can neither read nor write:
// the files' names are no use to it (data/etcd-tls is the server's
// user's alone), and the CA's certificate without a client certificate
// is refused in the handshake.
// The status and the metrics show the certificates' ends.
func TestServerEmbeddedEtcdAuth(t *testing.T) {
	ts := startServerWith(t, serverSetup{extra: "bootstrap: state.yaml\n", files: map[string][]byte{"state.yaml": []byte(tlsState)}})
	dir := filepath.Join(ts.dir, "data", "etcd-tls")
	for name, want := range map[string]os.FileMode{"": 0o700, "ca-key.pem": 0o600, "member-key.pem": 0o600, "server-key.pem": 0o600, "prober-key.pem": 0o600} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %04o", filepath.Join(dir, name), st.Mode().Perm(), err, want)
		}
	}
	prober, err := store.Connect(context.Background(), ts.etcdConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer prober.Close()
	etcdtest.WaitUntil(t, "the bootstrap in etcd, read with the probers' certificate", func() bool {
		resp, err := prober.Get(etcdtest.Ctx(t), store.NewKeys("").Service("tls.example.org"))
		return err == nil && len(resp.Kvs) == 1
	})

	for _, ec := range []store.EtcdConfig{
		{Endpoints: []string{ts.etcd}},
		{Endpoints: []string{"https://" + ts.etcd}, CAFile: ts.etcdConfig(false).CAFile},
	} {
		cli, err := store.Connect(context.Background(), ec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := cli.Get(ctx, "/meridian/", clientv3.WithPrefix()); err == nil {
			t.Errorf("%+v read the embedded etcd", ec)
		}
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		if _, err := cli.Put(ctx, store.NewKeys("").Region("eu"), `{"name":"eu"}`); err == nil {
			t.Errorf("%+v wrote to the embedded etcd", ec)
		}
		cancel()
		cli.Close()
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, url := range []string{"http://" + ts.etcd + "/version", "https://" + ts.etcd + "/version", "http://" + ts.peer + "/members", "https://" + ts.peer + "/members"} {
		if resp, err := insecure.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("GET %s without a certificate: 200", url)
			}
		}
	}

	t.Run("another user of the host", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("running etcdctl as another user needs root")
		}
		etcdctl := testtool.Need(t, "etcdctl")
		// Only data/etcd-tls (0700) keeps another user from the files:
		// the directories above it are opened to all.
		openForAll(t, ts.dir)
		if err := os.Chmod(filepath.Join(ts.dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		ec := ts.etcdConfig(true)
		files := []string{"--cacert", ec.CAFile, "--cert", ec.CertFile, "--key", ec.KeyFile}
		// The CA's certificate is no secret: another user may hold a copy.
		publicCA := writeFile(t, filepath.Join(ts.dir, "ca.pem"), mustReadFile(t, ec.CAFile))
		if err := os.Chmod(publicCA, 0o644); err != nil {
			t.Fatal(err)
		}
		region := store.NewKeys("").Region("eu")
		revision := func() int64 {
			t.Helper()
			resp, err := prober.Get(etcdtest.Ctx(t), region)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("region eu: %v %v", resp, err)
			}
			return resp.Kvs[0].ModRevision
		}
		before := revision()
		for _, tc := range []struct {
			name     string
			uid      uint32
			endpoint string
			flags    []string
			// why etcdctl fails, in its error or in the member's log
			// (relayed into the server's); both empty: it reads
			stderr, refused string
		}{
			{"the server's user with the probers' certificate", 0, ec.Endpoints[0], files, "", ""},
			{"another user naming the same files", 65534, ec.Endpoints[0], files, "permission denied", ""},
			{"another user with the CA's certificate only", 65534, ec.Endpoints[0], []string{"--cacert", publicCA}, "", "tls: client didn't provide a certificate"},
			{"another user in plain HTTP", 65534, ts.etcd, nil, "", "tls: first record does not look like a TLS handshake"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				base := append([]string{"--endpoints", tc.endpoint, "--dial-timeout", "2s", "--command-timeout", "2s"}, tc.flags...)
				for _, cmd := range [][]string{{"get", "--prefix", "--keys-only", "/meridian/"}, {"put", region, `{"name":"eu"}`}} {
					if tc.uid == 0 && cmd[0] == "put" {
						continue // the server's user may write; the revision check below would see it
					}
					refusals := strings.Count(ts.stderr.String(), tc.refused)
					code, out, errOut := runAs(t, tc.uid, etcdctl, append(base, cmd...)...)
					if tc.stderr == "" && tc.refused == "" {
						if code != 0 || !strings.Contains(out, region) {
							t.Fatalf("etcdctl %s: exit %d, want the keys:\n%s%s", cmd[0], code, out, errOut)
						}
						continue
					}
					if code == 0 || strings.Contains(out, region) || !strings.Contains(errOut, tc.stderr) {
						t.Errorf("etcdctl %s: exit %d, want a failure saying %q:\n%s%s", cmd[0], code, tc.stderr, out, errOut)
					}
					if tc.refused != "" {
						etcdtest.WaitUntil(t, "the member's log: "+tc.refused, func() bool {
							return strings.Count(ts.stderr.String(), tc.refused) > refusals
						})
					}
				}
			})
		}
		if after := revision(); after != before {
			t.Errorf("region eu written (revision %d, was %d)", after, before)
		}
	})

	for _, name := range []string{"embedded_etcd_ca", "embedded_etcd_member", "embedded_etcd_client"} {
		if v := metric(t, ts, `meridian_tls_certificate_expiry_timestamp_seconds{cert="`+name+`"}`); v < float64(time.Now().Add(9*365*24*time.Hour).Unix()) {
			t.Errorf("%s ends at %v", name, time.Unix(int64(v), 0))
		}
	}
}

// TestServerEtcdPasswordInClear: an etcd with users, reached in plain
// HTTP with a username and password, serves the server, which warns at
// start that the password crosses the network in clear.
func TestServerEtcdPasswordInClear(t *testing.T) {
	m := etcdtest.NewMember(t, "users")
	etcdtest.StartAll(t, m)
	t.Cleanup(m.Stop)
	cli := etcdtest.Connect(t, m.ClientURL())
	ctx := etcdtest.Ctx(t)
	if _, err := cli.RoleAdd(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserAdd(ctx, "root", "secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, serverSetup{etcdEndpoints: []string{m.ClientURL()}, etcdUser: [2]string{"root", "secret-0123456789"},
		extra: "bootstrap: state.yaml\n", files: map[string][]byte{"state.yaml": []byte(tlsState)}})
	want := "etcd: the etcd password goes in clear to " + m.ClientURL() + ", without TLS"
	if !strings.Contains(ts.stderr.String(), want) {
		t.Errorf("the start does not warn %q:\n%s", want, ts.stderr)
	}
	// The server reached etcd as root: its bootstrap is there.
	root, err := store.Connect(context.Background(), store.EtcdConfig{Endpoints: []string{m.ClientURL()}, Username: "root", Password: "secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	etcdtest.WaitUntil(t, "the bootstrap in etcd", func() bool {
		resp, err := root.Get(etcdtest.Ctx(t), store.NewKeys("").Service("tls.example.org"))
		return err == nil && len(resp.Kvs) == 1
	})
}

// TestServerTLSWarning: a certificate that ends within 30 days starts,
// and --check warns of it, naming the field.
func TestServerTLSWarning(t *testing.T) {
	p := newAPIPKI(t)
	cert, key := filepath.Join(p.dir, "soon.pem"), filepath.Join(p.dir, "soon-key.pem")
	now := time.Now()
	if err := p.serverCA.IssueFiles(cert, key, tlsfiles.Leaf{CommonName: "soon", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.zone"), testZone(1, "192.0.2.1"))
	config := writeFile(t, filepath.Join(dir, "meridian.yaml"), fmt.Sprintf("listen:\n  dns: [\"127.0.0.1:0\"]\n  http: \"127.0.0.1:0\"\n"+
		"zones:\n  - origin: example.org.\n    file: ok.zone\napi:\n  tls:\n    cert_file: %s\n    key_file: %s\n", cert, key))
	code, out, stderr := runArgs("server", "--config", config, "--check")
	want := fmt.Sprintf("%s:9: api.tls.cert_file: %s: expires on ", config, cert)
	if code != 0 || !strings.Contains(out, "are valid") || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, want 0 with a warning %q:\n%s%s", code, want, out, stderr)
	}
}

// TestServerTokensOpenToAll: a tokens file holding secrets that every
// user can read stops the start and --check; made so while the server
// runs, SIGHUP refuses it and the tokens before stay in force.
func TestServerTokensOpenToAll(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.zone"), testZone(1, "192.0.2.1"))
	writeFile(t, filepath.Join(dir, "example.org.zone"), testZone(1, "192.0.2.1")) // for startServerWith
	tokens := writeFile(t, filepath.Join(dir, "tokens.yaml"), "tokens:\n  - name: ops\n    role: admin\n    token: 0123456789abcdef0123\n")
	if err := os.Chmod(tokens, 0o644); err != nil {
		t.Fatal(err)
	}
	config := writeFile(t, filepath.Join(dir, "meridian.yaml"), "listen:\n  dns: [\"127.0.0.1:0\"]\n  http: \"\"\n"+
		"zones:\n  - origin: example.org.\n    file: ok.zone\napi:\n  tokens_file: tokens.yaml\n")
	for _, args := range [][]string{{"--check"}, nil} {
		code, _, stderr := runArgs(append([]string{"server", "--config", config}, args...)...)
		want := tokens + ":2: tokens[0].token: the file holds secrets (token:) and every user of this host can read it (mode 0644)"
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("server %v: exit %d, want 1 and %q:\n%s", args, code, want, stderr)
		}
	}

	if err := os.Chmod(tokens, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, serverSetup{dir: dir, extra: "api:\n  tokens_file: tokens.yaml\n"})
	if err := os.Chmod(tokens, 0o644); err != nil {
		t.Fatal(err)
	}
	ts.hup(t, "api tokens reload failed; the previous tokens stay in force")
	req, err := http.NewRequest("POST", ts.url()+"/v1/regions/eu/drain?dry_run=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := ts.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		t.Error("the token loaded at start no longer works after a refused reload")
	}
}
