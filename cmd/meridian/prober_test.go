package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

func TestProberFlags(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "etcd:\n  endpoints: [127.0.0.1:2379]\n  pefix: /x/\nconcurrency: -1\ncanary:\n  url: ftp://canary.example\nlog:\n  level: loud\n")
	badValues := writeFile(t, filepath.Join(dir, "values.yaml"), "concurrency: -1\ncanary:\n  url: ftp://canary.example\n  interval: 1ms\nlog:\n  level: loud\nlease_ttl: 1s\nsource_address: prober-1\n")
	// 203.0.113.254 (TEST-NET-3) is no address of this host.
	foreign := writeFile(t, filepath.Join(dir, "foreign.yaml"), "source_address: 203.0.113.254\n")
	good := writeFile(t, filepath.Join(dir, "good.yaml"), "etcd:\n  endpoints: [127.0.0.1:2379]\n  prefix: /meridian/\nconcurrency: 64\nrefresh: 5m\ncanary:\n  address: 127.0.0.1:53\nlisten:\n  http: 127.0.0.1:8054\n")
	// The example as make run uses it: beside data/, where the server
	// made the embedded etcd's certificates.
	example := filepath.Join(dir, "examples", "prober.yaml")
	if err := os.MkdirAll(filepath.Dir(example), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, example, mustReadFile(t, "../../examples/prober.yaml"))
	if _, err := embedded.EnsurePKI(filepath.Join(dir, "data", "etcd-tls"), embedded.Config{Dir: filepath.Join(dir, "data", "etcd")}, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	badListen := writeFile(t, filepath.Join(dir, "listen.yaml"), "concurrency: 8\nlisten:\n  http: localhost:8054\n")
	// 198.51.100.40 (TEST-NET-2), the placeholder an edited file may keep.
	foreignListen := writeFile(t, filepath.Join(dir, "foreign-listen.yaml"), "listen:\n  http: 198.51.100.40:8054\n")
	cases := []struct {
		name   string
		args   []string
		code   int
		output []string
	}{
		{"help", []string{"-h"}, 0, []string{"usage: meridian prober --region NAME", "-check-config"}},
		{"bad flag", []string{"--nope"}, 2, []string{"flag provided but not defined: -nope"}},
		{"no region", nil, 2, []string{"--region is required"}},
		{"stray argument", []string{"--region", "eu", "now"}, 2, []string{`unexpected argument "now"`}},
		{"unknown key", []string{"--check-config", "--config", bad}, 1, []string{"bad.yaml:3: etcd.pefix: unknown key"}},
		{"every bad value", []string{"--check-config", "--config", badValues}, 1, []string{
			"values.yaml:6: log.level: \"loud\": want debug, info, warn or error",
			"values.yaml:1: concurrency: -1",
			"values.yaml:3: canary.url: \"ftp://canary.example\": want an http:// or https:// URL",
			"values.yaml:4: canary.interval: 1ms: want at least 100ms",
			"values.yaml:7: lease_ttl: 1s: want at least 2s",
			`values.yaml:8: source_address: "prober-1": want an IP address of this host`}},
		{"source address not of this host", []string{"--region", "eu-west", "--config", foreign}, 1, []string{"source_address: 203.0.113.254 is not an address of this host"}},
		{"bad region and id", []string{"--check-config", "--region", "EU", "--id", "a/b"}, 1, []string{"--region: \"EU\" is not a region name", "--id: \"a/b\""}},
		{"valid file", []string{"--check-config", "--config", good, "--region", "eu-west"}, 0, []string{"good.yaml: valid"}},
		{"listen.http not an address", []string{"--check-config", "--config", badListen}, 1, []string{`listen.yaml:3: listen.http: "localhost:8054" is not an IP:port`}},
		{"--http-listen not an address", []string{"--check-config", "--http-listen", "8054"}, 1, []string{`--http-listen: "8054" is not an IP:port`}},
		{"--http-listen off", []string{"--check-config", "--config", badListen, "--http-listen", "off"}, 0, []string{"listen.yaml: valid"}},
		{"listen.http not of this host", []string{"--check-config", "--config", foreignListen}, 1, []string{
			"foreign-listen.yaml:2: listen.http: 198.51.100.40 is not an address of this host", "the address Prometheus scrapes this prober at"}},
		{"--http-listen not of this host", []string{"--check-config", "--http-listen", "203.0.113.254:8054"}, 1, []string{"--http-listen: 203.0.113.254 is not an address of this host"}},
		{"valid flags", []string{"--check-config", "--etcd", "127.0.0.1:1,127.0.0.1:2"}, 0, []string{"valid"}},
		{"missing file", []string{"--check-config", "--config", filepath.Join(dir, "none.yaml")}, 1, []string{"none.yaml: open"}},
		{"the example", []string{"--check-config", "--config", example}, 0, []string{"prober.yaml: valid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"prober"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s%s", code, tc.code, &stdout, &stderr)
			}
			// Help and success on stdout; errors on stderr only.
			out, quiet := stdout.String(), stderr.String()
			if code != 0 {
				out, quiet = quiet, out
			}
			if os.Geteuid() == 0 && strings.HasPrefix(quiet, "meridian prober: warning:\n  running as root") {
				// A check of TLS files run as root says it cannot judge
				// what the service's user reads.
				quiet = ""
			}
			if quiet != "" {
				t.Errorf("unexpected output %q", quiet)
			}
			for _, w := range tc.output {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestSourceDialer: with source_address, checks connect from it; a
// destination of the other family is connected to from the system's
// choice.
func TestSourceDialer(t *testing.T) {
	dial := sourceDialer(netip.MustParseAddr("127.0.0.7"))
	cases := []struct {
		name, listen, from string
	}{
		{"IPv4 from the source address", "127.0.0.1:0", "127.0.0.7"},
		{"IPv6 from the system's choice", "[::1]:0", "::1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Skipf("no %s here: %v", tc.listen, err)
			}
			defer ln.Close()
			accepted := make(chan net.Addr, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					accepted <- nil
					return
				}
				accepted <- c.RemoteAddr()
				c.Close()
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := dial(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			from, ok := (<-accepted).(*net.TCPAddr)
			if !ok || from.AddrPort().Addr().String() != tc.from {
				t.Errorf("connection from %v, want %s", from, tc.from)
			}
		})
	}
}

// standIn is a load balancer's health endpoint on loopback.
type standIn struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newStandIn(t testing.TB) *standIn {
	s := &standIn{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok","load":5,"capacity":100}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// proberProc is a `meridian prober` process.
type proberProc struct {
	id     string
	proc   *testtool.Proc
	stderr *testlog.Buffer
}

// buildMeridian builds the binary the process tests run.
func buildMeridian(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meridian")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProberProc starts a prober process against ts's embedded etcd,
// with the probers' certificate, as `make run` starts them.
func startProberProc(t *testing.T, bin string, ts *testServer, id, region string) *proberProc {
	t.Helper()
	ec := ts.etcdConfig(true)
	config := writeFile(t, filepath.Join(ts.dir, "prober-"+id+".yaml"), fmt.Sprintf("etcd:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n", ec.CAFile, ec.CertFile, ec.KeyFile))
	p := &proberProc{id: id, stderr: &testlog.Buffer{}}
	cmd := exec.Command(bin, "prober", "--region", region, "--etcd", ec.Endpoints[0], "--config", config, "--id", id, "--log-level", "debug")
	cmd.Stderr = p.stderr
	// Registered before Start's cleanup, so it runs after the kill.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prober %s:\n%s", id, p.stderr)
		}
	})
	p.proc = testtool.Start(t, cmd)
	return p
}

// signal sends sig and waits for the process to exit.
func (p *proberProc) signal(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.proc.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.proc.Done():
		return p.proc.Wait()
	case <-time.After(30 * time.Second):
		t.Fatalf("prober %s did not exit on %v", p.id, sig)
		return nil
	}
}

const proberState = `regions:
  - name: eu
    vips: [192.0.2.10, "2001:db8::10"]
    location: {lat: 52.37, lon: 4.9}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.10: "%s", "2001:db8::10": "%s"}}
  - name: na
    vips: [192.0.2.20]
    location: {lat: 38.9, lon: -77.0}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.20: "%s"}}
services:
  - name: hc.example.org.
    ttl: 30
    policy: failover
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}]
`

// statusVotes reads /v1/status: for each VIP, the probers whose votes
// count, and their up votes.
func statusVotes(t *testing.T, ts *testServer) map[string][]string {
	t.Helper()
	var body struct {
		Regions []struct {
			VIPs []struct {
				Addr  string `json:"addr"`
				Votes []struct {
					Prober  string `json:"prober"`
					Up      bool   `json:"up"`
					Counted bool   `json:"counted"`
				} `json:"votes"`
			} `json:"vips"`
		} `json:"regions"`
	}
	getJSON(t, "http://"+ts.HTTP.String()+"/v1/status", &body)
	out := map[string][]string{}
	for _, r := range body.Regions {
		for _, v := range r.VIPs {
			out[v.Addr] = []string{}
			for _, vote := range v.Votes {
				if vote.Counted {
					out[v.Addr] = append(out[v.Addr], fmt.Sprintf("%s=%t", vote.Prober, vote.Up))
				}
			}
		}
	}
	return out
}

func waitVotes(t *testing.T, ts *testServer, what string, ok func(map[string][]string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := statusVotes(t, ts)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; votes: %v", what, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProberProcesses runs real `meridian prober` processes against a
// server and its embedded etcd: answers leave a failed region and come
// back, /v1/status shows every prober's vote on every VIP, a killed
// prober's votes expire with its lease, a stopped one's go at once, and
// with every prober gone a region that was down is answered again.
func TestProberProcesses(t *testing.T) {
	bin := buildMeridian(t)
	eu4, eu6, na := newStandIn(t), newStandIn(t), newStandIn(t)
	state := fmt.Sprintf(proberState, eu4.srv.Listener.Addr(), eu6.srv.Listener.Addr(), na.srv.Listener.Addr())
	ts := startServerWith(t, serverSetup{extra: "bootstrap: state.yaml\n", files: map[string][]byte{"state.yaml": []byte(state)}})
	var ps []*proberProc
	for i, region := range []string{"eu", "na", "na"} {
		ps = append(ps, startProberProc(t, bin, ts, fmt.Sprintf("p%d", i+1), region))
	}
	all := func(want ...string) func(map[string][]string) bool {
		return func(v map[string][]string) bool {
			for _, addr := range []string{"192.0.2.10", "2001:db8::10", "192.0.2.20"} {
				got := slices.Clone(v[addr])
				slices.Sort(got)
				if !slices.Equal(got, want) {
					return false
				}
			}
			return true
		}
	}
	waitVotes(t, ts, "three up votes on every VIP", all("p1=true", "p2=true", "p3=true"))
	waitAnswer(t, ts.addr(), "hc.example.org.", "192.0.2.10")

	eu4.down.Store(true)
	eu6.down.Store(true)
	waitAnswer(t, ts.addr(), "hc.example.org.", "192.0.2.20")
	eu4.down.Store(false)
	eu6.down.Store(false)
	waitAnswer(t, ts.addr(), "hc.example.org.", "192.0.2.10")

	cli := ts.etcdClient(t)
	keys := store.NewKeys(store.DefaultPrefix)
	left := func(id string) int64 {
		var n int64
		for _, k := range []string{keys.Prober(id), keys.Health("eu", id), keys.Health("na", id)} {
			resp, err := cli.Get(context.Background(), k, clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			n += resp.Count
		}
		return n
	}

	// Killed: nothing withdraws its reports; they expire with its lease.
	if err := ps[0].signal(t, syscall.SIGKILL); err == nil {
		t.Fatal("a killed prober exited cleanly")
	}
	waitVotes(t, ts, "p1's votes gone with its lease", all("p2=true", "p3=true"))
	if n := left("p1"); n != 0 {
		t.Errorf("%d keys of p1 left after its lease expired", n)
	}

	// Stopped: its lease is revoked before it exits.
	if err := ps[1].signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("p2 on SIGTERM: %v", err)
	}
	if n := left("p2"); n != 0 {
		t.Errorf("%d keys of p2 left after a graceful stop", n)
	}
	if !strings.Contains(ps[1].stderr.String(), "lease revoked") {
		t.Errorf("p2 did not say it revoked its lease:\n%s", ps[1].stderr)
	}

	// One prober left: it alone takes eu down; when it goes too, eu is
	// unknown, counted up, and answered again.
	eu4.down.Store(true)
	eu6.down.Store(true)
	waitAnswer(t, ts.addr(), "hc.example.org.", "192.0.2.20")
	if err := ps[2].signal(t, syscall.SIGINT); err != nil {
		t.Fatalf("p3 on SIGINT: %v", err)
	}
	waitAnswer(t, ts.addr(), "hc.example.org.", "192.0.2.10")
	if v := statusVotes(t, ts); len(v["192.0.2.10"]) != 0 {
		t.Errorf("votes left: %v", v)
	}
}

// TestProberExampleComplete: examples/prober.yaml shows every field of the
// prober's configuration.
func TestProberExampleComplete(t *testing.T) {
	data, err := os.ReadFile("../../examples/prober.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var fields func(rt reflect.Type, prefix string) []string
	fields = func(rt reflect.Type, prefix string) []string {
		var out []string
		for f := range rt.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			path := prefix + name
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[regions.Duration]() {
				out = append(out, fields(f.Type, path+".")...)
				continue
			}
			out = append(out, path)
		}
		return out
	}
	// has says whether the mapping n holds the dotted path.
	var has func(n *yaml.Node, path string) bool
	has = func(n *yaml.Node, path string) bool {
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		key, rest, deeper := strings.Cut(path, ".")
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return !deeper || has(n.Content[i+1], rest)
			}
		}
		return false
	}
	all := fields(reflect.TypeFor[ProberConfig](), "")
	if len(all) < 15 {
		t.Fatalf("fields found: %v", all)
	}
	for _, f := range all {
		if !has(&root, f) {
			t.Errorf("examples/prober.yaml does not show %s", f)
		}
	}
}
