package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// The rollover test's zone and state: every TTL 2 s, so that a rollover
// takes seconds.
const (
	rolloverZone = `$ORIGIN example.org.
$TTL 2
@    SOA ns1 hostmaster 1 7200 3600 1209600 2
@    NS  ns1
ns1  A   192.0.2.53
www  A   192.0.2.1
`
	rolloverState = `regions:
  - name: eu
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.9}
    check: {type: tcp, port: 443}
services:
  - name: lb.example.org.
    ttl: 2
    policy: weighted
    regions: [{region: eu, weight: 1}]
`
)

// bindParent is BIND's named serving org., signed by its own policy, with
// dynamic updates from loopback: the parent of example.org.
type bindParent struct {
	addr     string // 127.0.0.1:port
	dir      string
	nsupdate string // the program's path
}

func startBindParent(t *testing.T) *bindParent {
	t.Helper()
	named := testtool.Need(t, "named")
	checkconf := testtool.Need(t, "named-checkconf")
	nsupdate := testtool.Need(t, "nsupdate")
	dir := t.TempDir()
	port := testport.Free(t, 1)[0]
	zone := `$TTL 2
@            SOA ns.org. hostmaster.org. 1 60 30 600 2
@            NS  ns.org.
ns           A   127.0.0.1
example      NS  ns1.example
ns1.example  A   192.0.2.53
`
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
dnssec-policy "fast" {
	keys { csk key-directory lifetime unlimited algorithm 13; };
	dnskey-ttl 2;
	max-zone-ttl 60;
	zone-propagation-delay 1;
	publish-safety 1;
	retire-safety 1;
};
zone "org" {
	type primary;
	file "%[1]s/org.db";
	key-directory "%[1]s";
	dnssec-policy "fast";
	inline-signing no;
	allow-update { 127.0.0.1; };
};
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "org.db"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(checkconf, "-z", path).CombinedOutput(); err != nil {
		t.Fatalf("named-checkconf: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, named, "-g", "-4", "-n", "1", "-c", path)
	logf, err := os.Create(filepath.Join(dir, "named.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
	})
	p := &bindParent{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, nsupdate: nsupdate}
	// Serving once its DNSKEY is signed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if k := p.sep(); k != nil {
			return p
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "named.log"))
			t.Fatalf("named did not sign org.:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sep is org.'s signed SEP key, nil until it has one.
func (p *bindParent) sep() *dns.DNSKEY {
	m := new(dns.Msg)
	m.SetQuestion("org.", dns.TypeDNSKEY)
	m.SetEdns0(1232, true)
	r, err := dns.Exchange(m, p.addr)
	if err != nil {
		return nil
	}
	var key *dns.DNSKEY
	signed := false
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.DNSKEY:
			if rr.Flags == 257 {
				key = rr
			}
		case *dns.RRSIG:
			signed = true
		}
	}
	if !signed {
		return nil
	}
	return key
}

// ds is the DS RRset of example.org at the parent.
func (p *bindParent) ds() ([]string, error) { return askDS(p.addr, dns.TypeDS) }

// askDS asks addr for example.org's DS or CDS RRset, each record as
// "tag alg digest-type digest", sorted.
func askDS(addr string, qtype uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion("example.org.", qtype)
	r, err := dns.Exchange(m, addr)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		d, ok := rr.(*dns.DS)
		if c, isCDS := rr.(*dns.CDS); isCDS {
			d, ok = &c.DS, true
		}
		if ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest)))
		}
	}
	slices.Sort(out)
	return out, nil
}

// setDS makes the parent's DS RRset of example.org ds (each "tag alg
// digest-type digest"), by a dynamic update (nsupdate). It may run in
// a goroutine of its own: it fails t with Errorf.
func (p *bindParent) setDS(t *testing.T, ds []string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(p.addr)
	var b strings.Builder
	fmt.Fprintf(&b, "server %s %s\nzone org\nupdate delete example.org. IN DS\n", host, port)
	for _, d := range ds {
		fmt.Fprintf(&b, "update add example.org. 2 IN DS %s\n", d)
	}
	b.WriteString("send\n")
	cmd := exec.Command(p.nsupdate, "-v")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nsupdate: %v\n%s\n%s", err, out, b.String())
	}
}

func keyDS(k *dns.DNSKEY) string {
	d := k.ToDS(dns.SHA256)
	return fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest))
}

// TestCSKRollover runs a full CSK rollover in seconds: a keyless name
// server, the signer rolling the key (double signature, then CDS and
// CDNSKEY), BIND serving the parent zone org. and, in the parent's role,
// a loop that publishes the DS the child's CDS asks for; unbound, whose
// trust anchor is org.'s key, validates answers throughout: none is
// bogus. Midway the parent holds a DS of no key: status says so and the
// rollover waits until the parent publishes the right one.
func TestCSKRollover(t *testing.T) {
	parent := startBindParent(t)
	files := map[string][]byte{"example.org.zone": []byte(rolloverZone), "state.yaml": []byte(rolloverState)}
	ts := startServerWith(t, serverSetup{extra: "bootstrap: state.yaml\n", files: files, zoneExtra: "    dnssec:\n      signer: etcd\n"})
	waitAnswer(t, ts.addr(), "lb.example.org.", "192.0.2.10")

	keyDir := t.TempDir()
	first, err := dnssec.Generate(keyDir, "example.org.", dnssec.AlgECDSAP256SHA256, dnssec.RoleCSK)
	if err != nil {
		t.Fatal(err)
	}
	parent.setDS(t, []string{keyDS(first.DNSKEY)})
	startSigner(t, ts, keyDir, fmt.Sprintf(`      dnskey_ttl: 2
      rollover:
        csk_lifetime: 8s
        propagation: 1s
        parent_servers: [%s]
`, parent.addr), 300*time.Millisecond)
	waitSecStatus(t, ts, "the first key", func(st apitypes.DNSSECZoneStatus) bool {
		return len(st.Keys) == 1 && st.Keys[0].Tag == first.Tag() && st.Keys[0].CDS && !st.Expires.IsZero()
	})

	ub := startUnbound(t, ts, unboundSetup{
		modules: "validator iterator",
		extra: fmt.Sprintf("  val-log-level: 2\n  trust-anchor: %q\n",
			strings.ReplaceAll(parent.sep().String(), "\t", " ")),
		stubs:     []string{"example.org"},
		elsewhere: map[string]string{"org": strings.Replace(parent.addr, ":", "@", 1)},
	})

	// The parent: publishes the DS the child's CDS asks for once it has
	// asked for 4 s, and not before parentFrom (a registry takes its
	// time: an old key retired before the parent's DS changed would make
	// answers bogus).
	var parentFrom atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		var asks []string
		var since time.Time
		for ; ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
			want, err := askDS(ts.addr(), dns.TypeCDS) // the DS the child asks for
			if err != nil {
				continue // asked again on the next round, as a parent does
			}
			if !slices.Equal(want, asks) {
				asks, since = want, time.Now()
			}
			if time.Now().UnixNano() < parentFrom.Load() || len(asks) == 0 || time.Since(since) < 4*time.Second {
				continue
			}
			if has, err := parent.ds(); err == nil && !slices.Equal(asks, has) {
				parent.setDS(t, asks)
			}
		}
	}()
	// The resolver's clients: every kind of answer, all the time.
	var asked, bogus atomic.Int64
	var firstBad atomic.Value
	go func() {
		defer wg.Done()
		qs := []struct {
			name  string
			qtype uint16
			rcode int
		}{
			{"www.example.org.", dns.TypeA, dns.RcodeSuccess},
			{"lb.example.org.", dns.TypeA, dns.RcodeSuccess},
			{"nope.example.org.", dns.TypeA, dns.RcodeNameError},
			{"www.example.org.", dns.TypeMX, dns.RcodeSuccess},
			{"example.org.", dns.TypeDNSKEY, dns.RcodeSuccess},
		}
		for i := 0; ctx.Err() == nil; i++ {
			q := qs[i%len(qs)]
			r, err := ub.ask("udp", q.name, q.qtype, wantAD)
			if err != nil {
				continue // a lost datagram is no answer, bogus or not
			}
			asked.Add(1)
			if r.Rcode != q.rcode || !r.AuthenticatedData {
				bogus.Add(1)
				firstBad.CompareAndSwap(nil, fmt.Sprintf("%s %s at %s:\n%s", q.name, dns.TypeToString[q.qtype], time.Now().Format(time.TimeOnly), r))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// The rollover starts; once the new key's CDS is up, the parent
	// holds a DS of no key: the rollover waits and says so.
	st := waitRollover(t, ts, "the new key's CDS", func(st apitypes.DNSSECZoneStatus) bool {
		return len(st.Keys) == 2 && slices.ContainsFunc(st.Keys, func(k apitypes.DNSSECKey) bool { return k.Tag != first.Tag() && k.CDS })
	})
	parentFrom.Store(time.Now().Add(time.Hour).UnixNano())
	stray := "4711 13 2 " + strings.Repeat("AB", 32)
	parent.setDS(t, []string{keyDS(first.DNSKEY), stray})
	st = waitRollover(t, ts, "the stray DS", func(st apitypes.DNSSECZoneStatus) bool {
		return strings.Contains(st.Rollover, "matches no key") && slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "4711") })
	})
	if len(st.Keys) != 2 {
		t.Fatalf("the rollover went on despite the stray DS: %+v", st)
	}
	// The parent drops the stray DS, and publishes the new one 10 s later:
	// the old key must serve until then.
	parent.setDS(t, []string{keyDS(first.DNSKEY)})
	parentFrom.Store(time.Now().Add(10 * time.Second).UnixNano())
	var next uint16
	for _, k := range st.Keys {
		if k.Tag != first.Tag() {
			next = k.Tag
		}
	}
	waitRollover(t, ts, "the rollover's end", func(st apitypes.DNSSECZoneStatus) bool {
		return len(st.Keys) == 1 && st.Keys[0].Tag == next && st.Rollover == ""
	})
	// Answers validated with the new key alone: once the resolver's
	// DNSKEY RRset holds only it, 100 more answers.
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := ub.ask("udp", "example.org.", dns.TypeDNSKEY, wantAD)
		if err == nil && r.AuthenticatedData && len(r.Answer) > 0 && !slices.ContainsFunc(r.Answer, func(rr dns.RR) bool {
			k, ok := rr.(*dns.DNSKEY)
			return ok && k.KeyTag() != next
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resolver never held the new key alone: %v\n%v", err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for after := asked.Load() + 100; asked.Load() < after; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the resolver answered %d of 100 questions in a minute", 100-(after-asked.Load()))
		}
	}
	cancel()
	wg.Wait()
	if got, err := parent.ds(); err != nil || len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprint(next)+" ") {
		t.Errorf("the parent's DS: %v (%v), want the new key's", got, err)
	}
	if b := bogus.Load(); b > 0 || asked.Load() < 100 {
		t.Errorf("%d of %d answers bogus or unvalidated; the first:\n%v\nunbound log:\n%s", b, asked.Load(), firstBad.Load(), ub.log())
	}
	if strings.Contains(ub.log(), "validation failure") {
		t.Errorf("unbound saw bogus answers:\n%s", ub.log())
	}
	t.Logf("%d answers validated through the rollover of key %d to %d", asked.Load(), first.Tag(), next)
}

// waitRollover waits up to a minute for the rollover to reach what ok
// says.
func waitRollover(t *testing.T, ts *testServer, what string, ok func(apitypes.DNSSECZoneStatus) bool) apitypes.DNSSECZoneStatus {
	t.Helper()
	return waitSecStatusWithin(t, ts, time.Minute, "the rollover at "+what, ok)
}
