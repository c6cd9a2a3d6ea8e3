package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

// testZone is the zone the end-to-end tests serve.
func testZone(serial int, wwwAddr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `$ORIGIN example.org.
$TTL 300
@      SOA  ns1 hostmaster %d 7200 3600 1209600 60
@      NS   ns1
ns1    A    192.0.2.53
www    A    %s
www    AAAA 2001:db8::1
alias  CNAME www
*.wild A    192.0.2.100
sub    NS   ns.sub
ns.sub A    192.0.2.200
`, serial, wwwAddr)
	for i := range 60 {
		fmt.Fprintf(&b, "big TXT \"record %02d %s\"\n", i, strings.Repeat("x", 30))
	}
	return b.String()
}

// testServer is a meridian server running in this process.
type testServer struct {
	Started
	dir    string
	cancel context.CancelFunc
	done   chan int
	stderr *testlog.Buffer
	etcd   string // the embedded etcd's client address, "" when external
	peer   string // its peer address
	// hc makes the test's requests to the HTTP listener, over TLS when
	// the server has api.tls.
	hc     *http.Client
	scheme string
}

// startServer writes a config and zone into a temp dir and runs
// `meridian server` on loopback ports picked by the kernel, with an
// embedded etcd.
func startServer(t *testing.T, extraConfig string) *testServer {
	t.Helper()
	return startServerWith(t, serverSetup{extra: extraConfig})
}

// serverSetup varies the test server.
type serverSetup struct {
	dir           string            // reuse a directory (a restart); "" makes one
	extra         string            // YAML appended to the config
	etcdEndpoints []string          // use this etcd; none: embedded on free ports
	etcdUser      [2]string         // with etcdEndpoints: etcd.username and etcd.password
	etcdFrom      *testServer       // use this server's embedded etcd, with its certificate
	files         map[string][]byte // more files to write into the directory
	zones         map[string]string // more zones to serve: origin -> zone file text
	bareZones     map[string]string // more zones configured without origin: file name -> zone file text
	args          []string          // more command-line arguments
	embeddedPorts []int             // the embedded etcd's client and peer ports; none: free ones
	etcdPrefix    string            // etcd.prefix; "": the default
	zoneExtra     string            // YAML added to example.org's entry in zones (indented by 4)
	// rrl is the dns.rrl section (its lines, indented by four); "": the
	// defaults with every loopback address exempt, as the tests here ask
	// many questions from loopback (TestServerRRL limits them).
	rrl string
	// httpTLS: the server has api.tls, and the test's requests use this
	// client configuration.
	httpTLS *tls.Config
	// notReady returns once the server listens; otherwise wait until it
	// is ready (a snapshot from etcd or the state file).
	notReady bool
}

func startServerWith(t testing.TB, setup serverSetup) *testServer {
	t.Helper()
	dir := setup.dir
	if dir == "" {
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range setup.files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	etcdCfg := ""
	etcdURL, peerURL := "", ""
	switch {
	case setup.etcdFrom != nil:
		ec := setup.etcdFrom.etcdConfig(false)
		etcdCfg = fmt.Sprintf("etcd:\n  endpoints: [%s]\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n", ec.Endpoints[0], ec.CAFile, ec.CertFile, ec.KeyFile)
	case len(setup.etcdEndpoints) > 0:
		etcdCfg = fmt.Sprintf("etcd:\n  endpoints: [%s]\n", strings.Join(setup.etcdEndpoints, ", "))
		if setup.etcdUser[0] != "" {
			etcdCfg += fmt.Sprintf("  username: %s\n  password: %s\n", setup.etcdUser[0], setup.etcdUser[1])
		}
	default:
		ports := setup.embeddedPorts
		if len(ports) == 0 {
			ports = testport.Free(t, 2)
		}
		etcdURL, peerURL = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
		etcdCfg = fmt.Sprintf("etcd:\n  embedded_client: 127.0.0.1:%d\n  embedded_peer: 127.0.0.1:%d\n", ports[0], ports[1])
	}
	zoneCfg := ""
	for origin, text := range setup.zones {
		if err := os.WriteFile(filepath.Join(dir, origin+"zone"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		zoneCfg += fmt.Sprintf("  - origin: %s\n    file: %szone\n", origin, origin)
	}
	for file, text := range setup.bareZones {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		zoneCfg += fmt.Sprintf("  - file: %s\n", file)
	}
	if setup.etcdPrefix != "" {
		etcdCfg += "  prefix: " + setup.etcdPrefix + "\n"
	}
	rrl := setup.rrl
	if rrl == "" {
		rrl = "    exempt: [\"127.0.0.0/8\", \"::1\"]\n"
	}
	cfg := `listen:
  dns: ["127.0.0.1:0"]
  http: "127.0.0.1:0"
log:
  level: debug
dns:
  udp_sockets: 2
  transfer_acl: ["127.0.0.0/8"]
  rrl:
` + rrl + `zones:
  - origin: example.org.
    file: example.org.zone
` + setup.zoneExtra + zoneCfg + etcdCfg + setup.extra
	cfgPath := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	started := make(chan Started, 1)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), startedKey{}, func(s Started) { started <- s }))
	ts := &testServer{dir: dir, cancel: cancel, done: make(chan int, 1), stderr: &testlog.Buffer{}, etcd: etcdURL, peer: peerURL,
		hc: &http.Client{Timeout: 10 * time.Second}, scheme: "http"}
	if setup.httpTLS != nil {
		ts.hc.Transport = &http.Transport{TLSClientConfig: setup.httpTLS}
		ts.scheme = "https"
	}
	go func() {
		ts.done <- runServer(ctx, append([]string{"--config", cfgPath}, setup.args...), &bytes.Buffer{}, ts.stderr)
	}()
	select {
	case ts.Started = <-started:
	case code := <-ts.done:
		t.Fatalf("server exited with %d:\n%s", code, ts.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", ts.stderr)
	}
	t.Cleanup(func() {
		if code := ts.stop(); code != 0 {
			t.Errorf("server exited with %d:\n%s", code, ts.stderr)
		}
	})
	if !setup.notReady {
		ts.waitReady(t)
	}
	return ts
}

// waitReady waits until the server says it is ready: it has a regions
// snapshot, so denials are answered as such rather than SERVFAIL.
func (ts *testServer) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := ts.hc.Get(ts.url() + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30 s:\n%s", ts.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ts *testServer) stop() int {
	ts.cancel()
	select {
	case code := <-ts.done:
		ts.done <- code
		return code
	case <-time.After(15 * time.Second):
		return -1
	}
}

func (ts *testServer) addr() string { return ts.DNSUDP[0].String() }

// soleA is the address of the one A record ts answers for name over
// UDP, "" when the query fails or the answer holds no record or several:
// what the propagation benchmarks poll for.
func (ts *testServer) soleA(c *dns.Client, name string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, ts.addr())
	if err != nil || len(r.Answer) != 1 {
		return ""
	}
	return r.Answer[0].(*dns.A).A.String()
}

// hup sends the process SIGHUP and waits until ts logs wantLog once more
// than before: the reload is done.
func (ts *testServer) hup(t testing.TB, wantLog string) {
	t.Helper()
	before := strings.Count(ts.stderr.String(), wantLog)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(ts.stderr.String(), wantLog) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q after SIGHUP:\n%s", wantLog, ts.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// etcdConfig reaches the server's embedded etcd as the server does, or
// as a prober beside it: with the certificates the server made in its
// data directory.
func (ts *testServer) etcdConfig(prober bool) store.EtcdConfig {
	pki := embedded.PKI{Dir: filepath.Join(ts.dir, "data", "etcd-tls")}
	c := pki.Server()
	if prober {
		c = pki.Prober()
	}
	return store.EtcdConfig{Endpoints: []string{"https://" + ts.etcd}, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
}

// etcdClient connects to the server's embedded etcd (etcdConfig).
func (ts *testServer) etcdClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := store.Connect(context.Background(), ts.etcdConfig(false))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

func query(t *testing.T, net, addr, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	for _, e := range edit {
		e(m)
	}
	c := &dns.Client{Net: net, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", net, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestServerEndToEnd(t *testing.T) {
	ts := startServer(t, "")
	addr := ts.addr()

	t.Run("the GOMAXPROCS step logged once", func(t *testing.T) {
		log := ts.stderr.String()
		n := strings.Count(log, "GOMAXPROCS raised for the UDP loops") + strings.Count(log, "GOMAXPROCS left as it is")
		if n != 1 || !strings.Contains(log, "reason=") {
			t.Errorf("GOMAXPROCS step logged %d times, want once with its reason:\n%s", n, log)
		}
	})
	t.Run("udp and tcp", func(t *testing.T) {
		for _, n := range []string{"udp", "tcp"} {
			r := query(t, n, addr, "www.example.org.", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
				t.Errorf("%s: %v", n, r)
			}
		}
	})
	t.Run("truncated then tcp", func(t *testing.T) {
		r := query(t, "udp", addr, "big.example.org.", dns.TypeTXT)
		if !r.Truncated {
			t.Fatalf("3 KB answer over UDP not truncated: %d answers", len(r.Answer))
		}
		r = query(t, "tcp", addr, "big.example.org.", dns.TypeTXT)
		if r.Truncated || len(r.Answer) != 60 {
			t.Fatalf("over TCP: TC %v, %d answers", r.Truncated, len(r.Answer))
		}
	})
	t.Run("EDNS version 1", func(t *testing.T) {
		r := query(t, "udp", addr, "www.example.org.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		})
		if r.Rcode != dns.RcodeBadVers || len(r.Answer) != 0 {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("garbage then a good query", func(t *testing.T) {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		good, _ := new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA).Pack()
		for i := range 3000 { // bounded burst
			var pkt []byte
			switch i % 3 {
			case 0: // random bytes
				pkt = make([]byte, rng.IntN(600))
				for j := range pkt {
					pkt[j] = byte(rng.Uint32())
				}
			case 1: // a real query with a few bytes flipped
				pkt = append([]byte(nil), good...)
				for range 3 {
					pkt[rng.IntN(len(pkt))] ^= byte(1 + rng.IntN(255))
				}
			case 2: // a truncated real query
				pkt = good[:rng.IntN(len(good))]
			}
			_, _ = conn.Write(pkt)
		}
		r := query(t, "udp", addr, "www.example.org.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("after garbage: %v", r)
		}
	})
	t.Run("health and metrics", func(t *testing.T) {
		for path, want := range map[string]string{
			"/health/live":  `"live"`,
			"/health/ready": `"ready"`,
			"/metrics":      `meridian_dns_responses_total{proto="udp",rcode="NOERROR"}`,
		} {
			resp, err := http.Get("http://" + ts.HTTP.String() + path)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
				t.Errorf("%s: %d %q", path, resp.StatusCode, b.String())
			}
		}
	})
}

func TestServerReload(t *testing.T) {
	ts := startServer(t, "")
	addr := ts.addr()
	zoneFile := filepath.Join(ts.dir, "example.org.zone")
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := query(t, "udp", addr, "www.example.org.", dns.TypeA)
			if len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("www still %v, want %s", r.Answer, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := os.WriteFile(zoneFile, []byte(testZone(2, "192.0.2.2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("192.0.2.2")

	// A broken file leaves the previous version serving.
	if err := os.WriteFile(zoneFile, []byte(testZone(3, "192.0.2.3")+"broken A 192.0.2.999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(ts.stderr.String(), "kept their previous version") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload error logged:\n%s", ts.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(ts.stderr.String(), "example.org.zone:") {
		t.Errorf("reload error does not name the file and line:\n%s", ts.stderr)
	}
	waitFor("192.0.2.2")
}

// TestServerReloadZoneWithoutOrigin: a zone configured without origin:
// (its apex is its SOA owner) keeps serving its previous version when its
// file fails on SIGHUP, or when its SOA owner moved, and the log names the
// file and the cause.
func TestServerReloadZoneWithoutOrigin(t *testing.T) {
	zone := func(apex string, serial int, www string) string {
		return fmt.Sprintf("$TTL 300\n%[1]s SOA ns1.%[1]s hostmaster.%[1]s %[2]d 7200 3600 1209600 60\n%[1]s NS ns1.%[1]s\nns1.%[1]s A 192.0.2.53\nwww.%[1]s A %[3]s\n",
			apex, serial, www)
	}
	ts := startServerWith(t, serverSetup{bareZones: map[string]string{"net.zone": zone("example.net.", 1, "192.0.2.1")}})
	path := filepath.Join(ts.dir, "net.zone")
	write := func(text string) func() error {
		return func() error { return os.WriteFile(path, []byte(text), 0o644) }
	}
	cases := []struct {
		name   string
		change func() error
		want   string // in the log
	}{
		{"bad record", write(zone("example.net.", 2, "192.0.2.2") + "bad.example.net. A 192.0.2.999\n"), "net.zone:6:"},
		{"SOA owner changed", write(zone("example.com.", 2, "192.0.2.2")), "the SOA owner changed from example.net. to example.com."},
		{"missing file", func() error { return os.Remove(path) }, "net.zone: open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logged := func() int { return strings.Count(ts.stderr.String(), "some zones kept their previous version") }
			before := logged()
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			etcdtest.WaitUntil(t, "the failed reload logged", func() bool { return logged() > before })
			if log := ts.stderr.String(); !strings.Contains(log, tc.want) || !strings.Contains(log, "zone example.net. keeps serving serial 1") {
				t.Errorf("the log does not say %q and what keeps serving:\n%s", tc.want, log)
			}
			r := query(t, "udp", ts.addr(), "www.example.net.", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
				t.Fatalf("www.example.net. after the reload: %v", r)
			}
			if r := query(t, "udp", ts.addr(), "www.example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused {
				t.Errorf("www.example.com. after the reload: %s, want REFUSED", dns.RcodeToString[r.Rcode])
			}
		})
	}
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.zone"), []byte(testZone(1, "192.0.2.1")+"x CNAME www\nx A 192.0.2.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A port that is free now: a config error must leave it unbound.
	port := testport.Free(t, 1)[0]
	head := fmt.Sprintf("listen:\n  dns: [\"127.0.0.1:%d\"]\n  http: \"\"\n", port)
	zonesOK := "zones:\n  - origin: example.org.\n    file: ok.zone\n"
	cases := []struct {
		name, config string
		want         []string
	}{
		{"unknown key", head + zonesOK + "dns:\n  udp_sockts: 2\n", []string{"meridian.yaml:8: dns.udp_sockts: unknown key"}},
		{"bad address", "listen:\n  dns: [\"127.0.0.1\"]\n" + zonesOK, []string{"meridian.yaml:2", "listen.dns[0]", "IP:port"}},
		{"bad duration", head + zonesOK + "dns:\n  tcp_idle_timeout: soon\n", []string{"meridian.yaml", "soon"}},
		{"missing zone file", head + "zones:\n  - origin: example.org.\n    file: nope.zone\n", []string{"meridian.yaml:6", "zones[0].file", "nope.zone"}},
		{"no zones", head, []string{"zones", "no zones configured"}},
		{"bad transfer ACL", head + zonesOK + "dns:\n  transfer_acl: [\"10.0.0.1/8\"]\n", []string{"dns.transfer_acl[0]", "host bits"}},
		{"bad cookie secret", head + zonesOK + "dns:\n  cookie_secrets: [\"abc\"]\n", []string{"dns.cookie_secrets[0]", "32 hex digits"}},
		{"invalid zone", head + "zones:\n  - origin: example.org.\n    file: bad.zone\n", []string{"bad.zone:", "beside other data"}},
		{"duplicate zone", head + zonesOK + "  - origin: Example.ORG\n    file: ok.zone\n", []string{"zones[1].origin", "already configured"}},
		{"HTTP answers cut before a timed-out request's", head + zonesOK + "http:\n  request_timeout: 1m\n", []string{"meridian.yaml:7: http.write_timeout", "longer than http.request_timeout (1m0s)"}},
		{"header timeout beyond the request's", head + zonesOK + "http:\n  read_header_timeout: 1m\n", []string{"http.read_header_timeout", "longer than http.read_timeout (30s)"}},
		{"negative connection limit", head + zonesOK + "http:\n  max_connections: -1\n", []string{"meridian.yaml:8: http.max_connections", "negative"}},
		{"negative merge budget", head + zonesOK + "geoip:\n  merge_budget_bytes: -1\n", []string{"meridian.yaml:8: geoip.merge_budget_bytes: -1: must not be negative"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "meridian.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			code := runServer(context.Background(), []string{"--config", path}, &bytes.Buffer{}, &stderr)
			if code == 0 {
				t.Fatal("server started with a bad configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("error output does not contain %q:\n%s", w, stderr.String())
				}
			}
			c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatalf("port %d was left bound: %v", port, err)
			}
			c.Close()
		})
	}
}

// TestServerRRLConfigErrors: dns.rrl values out of range stop --check
// and the start alike, naming the file, line, field and reason.
func TestServerRRLConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	head := "listen:\n  dns: [\"127.0.0.1:0\"]\n  http: \"\"\nzones:\n  - origin: example.org.\n    file: ok.zone\ndns:\n  rrl:\n"
	cases := []struct {
		name, rrl string
		want      []string
	}{
		{"rate", "    rate: -5\n", []string{"meridian.yaml:9: dns.rrl.rate: -5: want 1 to 1000000"}},
		{"rate too high", "    rate: 2000000\n", []string{"meridian.yaml:9: dns.rrl.rate: 2000000"}},
		{"window", "    window: 100ms\n", []string{"meridian.yaml:9: dns.rrl.window: 100ms: want 1s to 1m0s"}},
		{"slip", "    slip: 11\n", []string{"meridian.yaml:9: dns.rrl.slip: 11: want 0"}},
		{"negative slip", "    slip: -1\n", []string{"dns.rrl.slip: -1"}},
		{"prefix", "    ipv4_prefix_length: 33\n    ipv6_prefix_length: 129\n", []string{"meridian.yaml:9: dns.rrl.ipv4_prefix_length: 33", "meridian.yaml:10: dns.rrl.ipv6_prefix_length: 129"}},
		{"table", "    table_size: 10\n", []string{"meridian.yaml:9: dns.rrl.table_size: 10: want 1024 to 67108864 accounts (16 bytes each)"}},
		{"exempt", "    exempt: [\"127.0.0.1\", \"192.0.2.1/24\", \"nope\"]\n", []string{"dns.rrl.exempt[1]: \"192.0.2.1/24\" has host bits set", "dns.rrl.exempt[2]: \"nope\" is not an address or prefix"}},
		{"disabled is checked too", "    enabled: false\n    rate: -1\n", []string{"meridian.yaml:10: dns.rrl.rate"}},
		{"unknown key", "    rates: 5\n", []string{"meridian.yaml:9: dns.rrl.rates: unknown key"}},
	}
	for _, tc := range cases {
		for _, check := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/check=%v", tc.name, check), func(t *testing.T) {
				path := filepath.Join(dir, "meridian.yaml")
				if err := os.WriteFile(path, []byte(head+tc.rrl), 0o644); err != nil {
					t.Fatal(err)
				}
				args := []string{"--config", path}
				if check {
					args = append(args, "--check")
				}
				var stderr bytes.Buffer
				if code := runServer(context.Background(), args, &bytes.Buffer{}, &stderr); code == 0 {
					t.Fatal("a bad dns.rrl was accepted")
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("error output does not contain %q:\n%s", w, stderr.String())
					}
				}
			})
		}
	}
}

func TestServerFlagsOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, []byte("listen:\n  dns: [\"not-an-address\"]\nzones:\n  - origin: example.org.\n    file: example.org.zone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := runServer(context.Background(), []string{"--config", cfg, "--check"}, &out, &out); code == 0 {
		t.Fatal("bad listen address accepted")
	}
	out.Reset()
	if code := runServer(context.Background(), []string{"--config", cfg, "--dns-listen", "127.0.0.1:0", "--http-listen", "off", "--check"}, &out, &out); code != 0 {
		t.Fatalf("flags did not override the file: %s", out.String())
	}
}

// TestCheckRefusesBadFactors: --check refuses a bootstrap file whose
// load steering or slow start makes no sense, naming the field and its
// line, as ctl apply does with the same file.
func TestCheckRefusesBadFactors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	state := "regions:\n  - name: eu\n    vips: [192.0.2.10]\n    location: {lat: 50, lon: 8}\n    check: {type: tcp, port: 80}\n" +
		"services:\n  - name: www.example.org.\n    ttl: 60\n    policy: weighted\n    regions:\n      - {region: eu, weight: 1}\n" +
		"    load: {low_watermark: 0.9, high_watermark: 0.7, max_step: 2}\n    slow_start: {window: 0s}\n"
	if err := os.WriteFile(filepath.Join(dir, "state.yaml"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, []byte("listen:\n  dns: [\"127.0.0.1:0\"]\n  http: \"\"\nbootstrap: state.yaml\nzones:\n  - origin: example.org.\n    file: example.org.zone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := runServer(context.Background(), []string{"--config", cfg, "--check"}, &out, &out); code != 1 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, w := range []string{":12: services[0].load.low_watermark: 0.9 is above high_watermark 0.7", ":12: services[0].load.max_step", ":13: services[0].slow_start.window"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("--check output lacks %q:\n%s", w, out.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runCtl(context.Background(), []string{"apply", "-f", filepath.Join(dir, "state.yaml"), "--server", "http://127.0.0.1:1"}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "services[0].load.low_watermark") {
		t.Fatalf("ctl apply: exit %d: %s", code, stderr.String())
	}
}
