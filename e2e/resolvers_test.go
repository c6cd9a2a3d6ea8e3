//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// ask sends one query to server (host:port) over UDP, with an ECS option
// when ecs is a prefix, recursion desired when rd; the reply is returned
// with the time it took.
func ask(server, name string, qtype uint16, ecs string, rd bool, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = rd
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	if ecs != "" {
		p := netip.MustParsePrefix(ecs)
		family := uint16(1)
		if p.Addr().Is6() {
			family = 2
		}
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	m.Extra = append(m.Extra, o)
	c := &dns.Client{Timeout: timeout}
	start := time.Now()
	r, _, err := c.Exchange(m, server)
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return r, took, fmt.Errorf("%s %s via %s: %s", name, dns.TypeToString[qtype], server, dns.RcodeToString[r.Rcode])
	}
	return r, took, nil
}

// addrs lists the A and AAAA addresses of a reply's answer, in order.
func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// ecsScope is the scope of the reply's ECS option, or -1 without one.
func ecsScope(r *dns.Msg) int {
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if s, ok := opt.(*dns.EDNS0_SUBNET); ok {
				return int(s.SourceScope)
			}
		}
	}
	return -1
}

// resolver is a recursive resolver the suite runs: it reaches gslb.example
// through both name servers.
type resolver struct {
	name string
	addr string // host:port clients query
	host string // the address it sends its queries to the name servers from
	p    *proc
	args []string
}

// The resolvers see no Internet: unbound's root hints and BIND's root
// zone name only loopback, so nothing outside gslb.example leaves the
// machine.
const rootZone = `$TTL 3600
.         SOA  ns.root. hostmaster.root. 1 3600 600 86400 60
.         NS   ns.root.
ns.root.  A    127.0.0.3
`

// newUnbound configures Debian's unbound on host:port with a stub zone
// for gslb.example naming both servers, and the subnetcache module so it
// forwards the clients' ECS to them (send-client-subnet).
func newUnbound(t testing.TB, host string, port int, servers []*nameServer) *resolver {
	t.Helper()
	bin := testtool.Need(t, "unbound")
	dir := filepath.Join(runDir, "unbound")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var stub, ecs strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&stub, "  stub-addr: %s@%d\n", s.host, s.dnsPort)
		fmt.Fprintf(&ecs, "  send-client-subnet: %s\n", s.host)
	}
	conf := fmt.Sprintf(`server:
  interface: %[1]s
  port: %[2]d
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  use-caps-for-id: yes
  username: ""
  chroot: ""
  directory: "%[3]s"
  pidfile: "%[3]s/unbound.pid"
  use-syslog: no
  logfile: ""
  outgoing-interface: %[1]s
  verbosity: 1
  root-hints: "%[3]s/root.hints"
  outgoing-range: 64
  num-queries-per-thread: 64
  msg-cache-size: 4m
  rrset-cache-size: 4m
  # ECS (RFC 7871): forward the client's subnet (or its own address) to
  # the name servers, cache answers by the scope they return. The
  # validator stays, as in the guide, told that the stub zone is
  # unsigned; with no trust anchor here (the root is a stand-in on
  # loopback) it has nothing else to validate.
  module-config: "subnetcache validator iterator"
  domain-insecure: "gslb.example"
  max-client-subnet-ipv4: 24
  max-client-subnet-ipv6: 56
%[4]sstub-zone:
  name: "gslb.example"
%[5]sremote-control:
  control-enable: no
`, host, port, dir, ecs.String(), stub.String())
	path := filepath.Join(dir, "unbound.conf")
	writeFile(t, filepath.Join(dir, "root.hints"), rootZone)
	writeFile(t, path, conf)
	if out, err := exec.Command(testtool.Need(t, "unbound-checkconf"), path).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	return &resolver{name: "unbound", addr: net.JoinHostPort(host, strconv.Itoa(port)), host: host,
		args: []string{bin, "-d", "-c", path}}
}

// newNamed configures BIND's named with a static-stub zone for
// gslb.example naming both servers. BIND has no port in server-addresses:
// its `port` option sets where it sends queries, the name servers' DNS
// port, and it listens on a port of its own on 127.0.0.1 (named listens
// only on addresses an interface has, and lo has 127.0.0.1 alone). It
// queries from source, an address of its own.
// BIND 9.18 does not send ECS as a resolver (only its subscription
// edition does): the name servers locate it by its own address.
func newNamed(t testing.TB, listenPort int, source string, servers []*nameServer) *resolver {
	t.Helper()
	bin := testtool.Need(t, "named")
	dir := filepath.Join(runDir, "named")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.host+";")
	}
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	dump-file "%[1]s/cache.db";
	statistics-file "%[1]s/stats";
	port %[2]d;
	listen-on port %[3]d { 127.0.0.1; };
	listen-on-v6 { none; };
	query-source address %[4]s;
	recursion yes;
	allow-query { 127.0.0.0/8; };
	allow-recursion { 127.0.0.0/8; };
	dnssec-validation no;
	empty-zones-enable no;
	notify no;
	max-cache-size 32m;
};
controls { };
zone "." { type primary; file "%[1]s/root.db"; };
zone "gslb.example" {
	type static-stub;
	server-addresses { %[5]s };
};
`, dir, servers[0].dnsPort, listenPort, source, strings.Join(addrs, " "))
	path := filepath.Join(dir, "named.conf")
	writeFile(t, filepath.Join(dir, "root.db"), rootZone)
	writeFile(t, path, conf)
	if out, err := exec.Command(testtool.Need(t, "named-checkconf"), "-z", path).CombinedOutput(); err != nil {
		t.Fatalf("named-checkconf: %v\n%s", err, out)
	}
	return &resolver{name: "named", addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort)), host: source,
		args: []string{bin, "-g", "-4", "-n", "1", "-c", path}}
}

func (r *resolver) start(t testing.TB) {
	t.Helper()
	r.p = startProc(t, r.name, r.args...)
}

// waitServing waits until the resolver answers a name of the zone.
func (r *resolver) waitServing(t testing.TB) time.Duration {
	t.Helper()
	return waitFor(t, r.name+" resolving", waitLimit, func() error {
		if r.p.exited() {
			return exitedErr(r.p)
		}
		_, _, err := ask(r.addr, "static.gslb.example", dns.TypeA, "", true, time.Second)
		return err
	})
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
