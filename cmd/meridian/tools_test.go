package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func mustLack(t *testing.T, out string, not ...string) {
	t.Helper()
	for _, n := range not {
		if strings.Contains(out, n) {
			t.Errorf("output has %q:\n%s", n, out)
		}
	}
}

func TestWithDig(t *testing.T) {
	dig := testtool.Need(t, "dig")
	ts := startServer(t, "")
	base := append(digArgs(t, ts.addr(), 0), "+norec", "+time=3", "+tries=1")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"udp answer and cookie", []string{"www.example.org", "A"},
			[]string{"status: NOERROR", "flags: qr aa;", "www.example.org.\t300\tIN\tA\t192.0.2.1", "(good)"}},
		{"tcp", []string{"+tcp", "www.example.org", "AAAA"},
			[]string{"status: NOERROR", "2001:db8::1", "(TCP)"}},
		{"case preserved", []string{"WwW.ExAmPlE.OrG", "A"},
			[]string{";WwW.ExAmPlE.OrG.\t\tIN\tA", "WwW.ExAmPlE.OrG.\t300\tIN\tA\t192.0.2.1"}},
		{"truncation then tcp", []string{"+bufsize=1232", "big.example.org", "TXT"},
			[]string{"Truncated, retrying in TCP mode", "ANSWER: 60,"}},
		{"nxdomain with soa", []string{"nope.example.org", "A"},
			[]string{"status: NXDOMAIN", "AUTHORITY: 1", "60\tIN\tSOA\tns1.example.org."}},
		{"referral", []string{"www.sub.example.org", "A"},
			[]string{"status: NOERROR", "flags: qr;", "sub.example.org.\t300\tIN\tNS\tns.sub.example.org.", "ns.sub.example.org.\t300\tIN\tA\t192.0.2.200"}},
		{"edns version 1", []string{"+noednsnegotiation", "+edns=1", "www.example.org", "A"},
			[]string{"status: BADVERS", "ANSWER: 0,"}},
		{"refused", []string{"www.example.com", "A"},
			[]string{"status: REFUSED"}},
		{"zone transfer", []string{"example.org", "AXFR"},
			[]string{"XFR size: 70 records", "www.example.org.\t300\tIN\tAAAA\t2001:db8::1"}},
		{"incremental transfer falls back to full", []string{"example.org", "IXFR=0"},
			[]string{"XFR size: 70 records"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustContain(t, runTool(t, dig, append(base, tc.args...)...), tc.want...)
		})
	}
	t.Run("from the server's own port", func(t *testing.T) {
		// What the kernel may pick for dig by chance (see digArgs), here
		// on purpose: the answer must still come from the server.
		_, port, _ := net.SplitHostPort(ts.addr())
		p, _ := strconv.Atoi(port)
		got := digAddrs(t, dig, append(digArgs(t, ts.addr(), p), "+short", "+norec", "+time=3", "+tries=1", "www.example.org", "A")...)
		if fmt.Sprint(got) != "map[192.0.2.1:1]" {
			t.Fatalf("answers %v, want 192.0.2.1 once", got)
		}
	})
}

func TestWithKdig(t *testing.T) {
	kdig := testtool.Need(t, "kdig")
	ts := startServer(t, "")
	host, port, _ := net.SplitHostPort(ts.addr())
	base := []string{"@" + host, "-p", port, "+norec", "+time=3", "+retry=0"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"udp", []string{"www.example.org", "A"}, []string{"status: NOERROR", "Flags: qr aa;", "192.0.2.1"}},
		{"tcp", []string{"+tcp", "alias.example.org", "A"}, []string{"status: NOERROR", "alias.example.org.", "CNAME", "192.0.2.1"}},
		{"wildcard", []string{"any.wild.example.org", "A"}, []string{"any.wild.example.org.", "192.0.2.100"}},
		{"cookie", []string{"+cookie", "www.example.org", "A"}, []string{"COOKIE:", "status: NOERROR"}},
		{"edns version 1", []string{"+edns=1", "www.example.org", "A"}, []string{"status: BADVERS"}},
		{"ANY is minimal", []string{"www.example.org", "ANY"}, []string{"ANSWER: 1;"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustContain(t, runTool(t, kdig, append(base, tc.args...)...), tc.want...)
		})
	}
}

// TestThroughUnbound resolves names through Debian's unbound, started
// here with a stub zone pointing at the server: the way real resolvers
// reach Meridian.
func TestThroughUnbound(t *testing.T) {
	ts := startServer(t, "")
	ub := startUnbound(t, ts, unboundSetup{stubs: []string{"example.org"}})
	cases := []struct {
		name, netw, qname string
		qtype             uint16
		rcode             int
		want              *regexp.Regexp
	}{
		{"address", "udp", "www.example.org.", dns.TypeA, dns.RcodeSuccess, regexp.MustCompile(`(?i)www\.example\.org\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1`)},
		{"cname chased", "udp", "alias.example.org.", dns.TypeA, dns.RcodeSuccess, regexp.MustCompile(`(?s)CNAME\s+www\.example\.org\..*192\.0\.2\.1`)},
		{"wildcard", "udp", "host.wild.example.org.", dns.TypeA, dns.RcodeSuccess, regexp.MustCompile(`192\.0\.2\.100`)},
		{"nxdomain", "udp", "nope.example.org.", dns.TypeA, dns.RcodeNameError, regexp.MustCompile(`SOA`)},
		{"nodata", "udp", "www.example.org.", dns.TypeMX, dns.RcodeSuccess, regexp.MustCompile(`SOA`)},
		{"large answer (unbound retries over TCP)", "tcp", "big.example.org.", dns.TypeTXT, dns.RcodeSuccess, regexp.MustCompile(`record 59`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ub.ask(tc.netw, tc.qname, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode || !tc.want.MatchString(r.String()) {
				t.Fatalf("rcode %s, want %s; reply:\n%s\nunbound log:\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r, ub.log())
			}
		})
	}
}

// unboundSetup varies the unbound startUnbound runs.
type unboundSetup struct {
	modules string   // module-config; "" = "iterator"
	extra   string   // more lines for the server: clause
	stubs   []string // zones resolved at the test server
	// elsewhere are zones resolved at other servers: zone -> host@port.
	elsewhere map[string]string
}

// unboundRun is an unbound started by startUnbound.
type unboundRun struct {
	addr string
	dir  string
}

// startUnbound runs Debian's unbound on a free loopback port with stub
// zones pointing at ts: the way real resolvers reach Meridian.
// use-caps-for-id makes unbound check that we echo its randomised case.
// It is stopped when the test ends.
func startUnbound(t *testing.T, ts *testServer, u unboundSetup) *unboundRun {
	t.Helper()
	unbound := testtool.Need(t, "unbound")
	checkconf := testtool.Need(t, "unbound-checkconf")
	host, port, _ := net.SplitHostPort(ts.addr())
	dir := t.TempDir()
	uport := testport.Free(t, 1)[0]
	if u.modules == "" {
		u.modules = "iterator"
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  use-caps-for-id: yes
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: "%s/unbound.pid"
  use-syslog: no
  logfile: "%s/unbound.log"
  verbosity: 1
  module-config: "%s"
  root-hints: ""
  outgoing-range: 64
  num-queries-per-thread: 32
  msg-cache-size: 1m
  rrset-cache-size: 1m
%sremote-control:
  control-enable: no
`, uport, dir, dir, dir, u.modules, u.extra)
	for _, z := range u.stubs {
		conf += fmt.Sprintf("stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", z, host, port)
	}
	for _, z := range slices.Sorted(maps.Keys(u.elsewhere)) {
		conf += fmt.Sprintf("stub-zone:\n  name: %q\n  stub-addr: %s\n", z, u.elsewhere[z])
	}
	confPath := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(checkconf, confPath).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s\n%s", err, out, conf)
	}
	testtool.Start(t, exec.Command(unbound, "-d", "-c", confPath))
	ub := &unboundRun{addr: fmt.Sprintf("127.0.0.1:%d", uport), dir: dir}
	// Wait for unbound to listen.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := ub.ask("udp", u.stubs[0]+".", dns.TypeSOA); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound did not answer:\n%s", ub.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ub
}

// ask sends a recursive query to unbound.
func (u *unboundRun) ask(netw, name string, qtype uint16, edit ...func(*dns.Msg)) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	for _, e := range edit {
		e(m)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, u.addr)
	return r, err
}

func (u *unboundRun) log() string {
	b, _ := os.ReadFile(filepath.Join(u.dir, "unbound.log"))
	return string(b)
}
