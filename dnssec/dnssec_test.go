package dnssec

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []uint8{AlgECDSAP256SHA256, AlgED25519} {
		k, err := Generate(dir, "Example.ORG", alg, RoleCSK)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(strings.TrimSuffix(k.File, ".key") + ".private")
		if st.Mode().Perm() != 0o600 {
			t.Errorf("private key mode %v", st.Mode().Perm())
		}
		got, err := LoadKey(k.File, "example.org.")
		if err != nil || got.Tag() != k.Tag() || got.DNSKEY.Algorithm != alg || got.DNSKEY.Flags != 257 {
			t.Fatalf("load: %v %+v", err, got)
		}
	}
	ks, _, err := LoadKeySet("example.org.", dir, nil, 0)
	if err != nil || len(ks.Keys) != 2 || len(ks.DS()) != 2 || ks.Keys[0].Role != RoleCSK {
		t.Fatalf("key set: %v %+v", err, ks)
	}

	k, _ := Generate(t.TempDir(), "example.org.", AlgECDSAP256SHA256, RoleKSK)
	priv := strings.TrimSuffix(k.File, ".key") + ".private"
	cases := []struct {
		name string
		edit func(t *testing.T) (file, zone string)
		want string
	}{
		{"readable by others", func(t *testing.T) (string, string) {
			os.Chmod(priv, 0o644)
			t.Cleanup(func() { os.Chmod(priv, 0o600) })
			return k.File, "example.org."
		}, "mode 0644 lets other users read"},
		{"another zone", func(t *testing.T) (string, string) { return k.File, "example.net." }, "belongs to example.org., not to example.net."},
		{"missing", func(t *testing.T) (string, string) { return filepath.Join(t.TempDir(), "Kx.key"), "example.org." }, "no such file"},
		{"wrong algorithm", func(t *testing.T) (string, string) {
			f := filepath.Join(t.TempDir(), "K.key")
			os.WriteFile(f, []byte("example.org. 3600 IN DNSKEY 257 3 8 AwEAAcw5QLr0\n"), 0o644)
			return f, "example.org."
		}, "algorithm 8 (RSASHA256): want 13"},
		{"private key of another", func(t *testing.T) (string, string) {
			other, _ := Generate(t.TempDir(), "example.org.", AlgECDSAP256SHA256, RoleKSK)
			d := t.TempDir()
			b, _ := os.ReadFile(k.File)
			os.WriteFile(filepath.Join(d, "K.key"), b, 0o644)
			p, _ := os.ReadFile(strings.TrimSuffix(other.File, ".key") + ".private")
			os.WriteFile(filepath.Join(d, "K.private"), p, 0o600)
			return filepath.Join(d, "K.key"), "example.org."
		}, "does not belong to the DNSKEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file, zone := c.edit(t)
			_, err := LoadKey(file, zone)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	if _, _, err := LoadKeySet("example.org.", t.TempDir(), nil, 0); err == nil || !strings.Contains(err.Error(), "meridian dnssec keygen") {
		t.Errorf("no key: %v", err)
	}
	zsk, _ := Generate(t.TempDir(), "example.org.", AlgECDSAP256SHA256, RoleZSK)
	if _, err := NewKeySet("example.org.", []*Key{zsk}); err == nil {
		t.Error("a ZSK alone was accepted")
	}
}

const testZoneText = `$ORIGIN example.org.
$TTL 300
@ SOA ns1 hostmaster 1 7200 3600 1209600 60
@ NS ns1
ns1 A 192.0.2.53
www A 192.0.2.1
*.wild A 192.0.2.100
sub NS ns.sub
ns.sub A 192.0.2.200
`

// fixture is a signed zone and a snapshot with services in it.
type fixture struct {
	signer *Signer
	set    *zones.Set
	ks     *KeySet
	now    time.Time
}

func newFixture(tb testing.TB, alg uint8) *fixture {
	tb.Helper()
	k, err := Generate(tb.TempDir(), "example.org.", alg, RoleCSK)
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := NewKeySet("example.org.", []*Key{k})
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{ks: ks, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	f.signer = NewSigner(map[string]ZoneConfig{"example.org.": {Keys: ks}}, func() time.Time { return f.now })
	z, err := zones.Parse(strings.NewReader(testZoneText), "test", zones.LoadOptions{Origin: "example.org.", DNSSEC: ks.Apex()})
	if err != nil {
		tb.Fatal(err)
	}
	if f.set, err = zones.NewSet(z); err != nil {
		tb.Fatal(err)
	}
	return f
}

// state is n weighted services over three regions, each region with two
// IPv4 VIPs and one IPv6; down marks VIPs down.
func state(n int, down ...string) *regions.State {
	st := regions.NewState()
	st.Probers["p"] = &regions.ProberInfo{ID: "p", Region: "r0", Lease: 7}
	for r := range 3 {
		name := fmt.Sprintf("r%d", r)
		reg := &regions.Region{Name: name, VIPs: []netip.Addr{
			netip.AddrFrom4([4]byte{192, 0, 2, byte(10*r + 1)}), netip.AddrFrom4([4]byte{192, 0, 2, byte(10*r + 2)}),
			netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", r+1))}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
		st.Regions[name] = reg
		rep := &regions.HealthReport{Region: name, Prober: "p", Trusted: true, Lease: 7}
		for _, a := range reg.VIPs {
			up := true
			for _, d := range down {
				up = up && a.String() != d
			}
			rep.VIPs = append(rep.VIPs, regions.VIPHealth{Addr: a, Up: up})
		}
		st.Health[name] = map[string]*regions.HealthReport{"p": rep}
	}
	for i := range n {
		svc := &regions.Service{Name: fmt.Sprintf("s%05d.svc.example.org.", i), TTL: 60, Policy: regions.PolicyWeighted}
		for r := range 3 {
			svc.Regions = append(svc.Regions, regions.ServiceRegion{Region: fmt.Sprintf("r%d", r), Weight: 1})
		}
		st.Services[svc.Name] = svc
	}
	return st
}

func TestStateSignsEveryAnswer(t *testing.T) {
	f := newFixture(t, AlgECDSAP256SHA256)
	snap := regions.BuildSnapshot(state(3), nil, regions.SnapshotOptions{})
	st, err := f.signer.Build(f.set, snap)
	if err != nil {
		t.Fatal(err)
	}
	z := f.set.Zones()[0]
	key := f.ks.Keys[0].DNSKEY
	verify := func(t *testing.T, rrset []dns.RR, sigs []dns.RR) {
		t.Helper()
		if len(sigs) != 1 {
			t.Fatalf("%d signatures", len(sigs))
		}
		s := sigs[0].(*dns.RRSIG)
		if err := s.Verify(key, rrset); err != nil || !s.ValidityPeriod(f.now) {
			t.Fatalf("%v: %v", rrset, err)
		}
	}

	t.Run("every address set of every service", func(t *testing.T) {
		for i := range snap.NumServices() {
			v := snap.ServiceAt(i)
			for _, fam := range []uint16{regions.QTypeA, regions.QTypeAAAA} {
				for rnd := range uint64(64) {
					d := snap.Decide(v, nil, fam, rnd<<58)
					tails := st.ServiceAnswer(v, &d)
					if len(tails) != 1 {
						t.Fatalf("%s %d: %d signatures", v.Name(), fam, len(tails))
					}
					// The tail behind the owner, as the query path writes it.
					msg := append(append([]byte{}, wire(t, v.Name())...), tails[0]...)
					rr, _, err := dns.UnpackRR(msg, 0)
					if err != nil {
						t.Fatal(err)
					}
					var rrs []dns.RR
					for k := range d.Count {
						rrs = append(rrs, addrRRset(v, int(fam/28), []netip.Addr{d.Addr(k)})...)
					}
					verify(t, rrs, []dns.RR{rr})
				}
			}
		}
	})

	t.Run("chain and denials", func(t *testing.T) {
		out, err := st.Transfer(z, z.Records())
		if err != nil {
			t.Fatal(err)
		}
		var owners []string
		for _, rr := range out {
			if n, ok := rr.(*dns.NSEC); ok {
				owners = append(owners, n.Hdr.Name+">"+n.NextDomain)
			}
		}
		want := "example.org.>ns1.example.org. ns1.example.org.>sub.example.org. sub.example.org.>s00000.svc.example.org. " +
			"s00000.svc.example.org.>s00001.svc.example.org. s00001.svc.example.org.>s00002.svc.example.org. " +
			"s00002.svc.example.org.>*.wild.example.org. *.wild.example.org.>www.example.org. www.example.org.>example.org."
		if strings.Join(owners, " ") != want {
			t.Fatalf("chain\n%s\nwant\n%s", strings.Join(owners, " "), want)
		}
		for _, c := range []struct{ name, want string }{
			{"www.example.org.", "www.example.org."},                                         // NODATA: its own
			{"svc.example.org.", "sub.example.org."},                                         // empty non-terminal: covered
			{"nope.example.org.", "example.org. example.org."},                               // NXDOMAIN and *.example.org: both covered by the apex's
			{"pop.example.org.", "ns1.example.org. example.org."},                            // NXDOMAIN: covered, and *.example.org by the apex's
			{"x.s00001.svc.example.org.", "s00001.svc.example.org. s00001.svc.example.org."}, // below a service
			{"a.b.wild.example.org.", "*.wild.example.org. *.wild.example.org."},             // the wildcard matches
		} {
			var got []string
			for _, rr := range st.byZone[z].chain.denialRRs(c.name) {
				if n, ok := rr.(*dns.NSEC); ok {
					got = append(got, n.Hdr.Name)
				}
			}
			w := strings.Fields(c.want)
			if len(w) == 2 && w[0] == w[1] {
				w = w[:1] // one record does both
			}
			if strings.Join(got, " ") != strings.Join(w, " ") {
				t.Errorf("denial of %s: %v, want %v", c.name, got, w)
			}
		}
	})

	t.Run("incremental", func(t *testing.T) {
		// The same snapshot again: nothing signed.
		again, err := f.signer.Build(f.set, snap)
		if err != nil || again.Stats().Signed != 0 || again.Stats().Chains != 0 {
			t.Fatalf("%v %+v", err, again.Stats())
		}
		// A VIP down: every service answers r0 with a new subset.
		next := regions.BuildSnapshot(state(3, "192.0.2.1"), snap, regions.SnapshotOptions{})
		st2, err := f.signer.Build(f.set, next)
		if err != nil || st2.Stats().Signed != 3 || st2.Stats().Chains != 0 {
			t.Fatalf("%v %+v", err, st2.Stats())
		}
		// Refresh: nothing due now; all due after the refresh time.
		if r, err := f.signer.Refresh(f.signer.Last()); r != nil || err != nil {
			t.Fatalf("refresh before due: %v %v", r, err)
		}
		f.now = st2.Stats().RefreshAt.Add(time.Second)
		r, err := f.signer.Refresh(f.signer.Last())
		if err != nil || r == nil || r.Stats().Signed == 0 {
			t.Fatalf("refresh: %v %+v", err, r)
		}
		if r.Stats().RefreshAt.Before(f.now) {
			t.Errorf("after a refresh the next is due at %v, before now %v", r.Stats().RefreshAt, f.now)
		}
	})
}

func wire(t *testing.T, name string) []byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// BenchmarkSign10k signs a zone with 10,000 services over 3 regions
// (each with two IPv4 VIPs and one IPv6): the first build (every
// signature made), the build after one VIP failed (one new subset per
// service), and the memory the signed state holds.
func BenchmarkSign10k(b *testing.B) {
	for _, alg := range []uint8{AlgECDSAP256SHA256, AlgED25519} {
		b.Run(dns.AlgorithmToString[alg], func(b *testing.B) {
			snap := regions.BuildSnapshot(state(10000), nil, regions.SnapshotOptions{})
			down := regions.BuildSnapshot(state(10000, "192.0.2.1"), snap, regions.SnapshotOptions{})
			b.Run("first", func(b *testing.B) {
				var st *State
				var before, after runtime.MemStats
				for b.Loop() {
					f := newFixture(b, alg)
					runtime.GC()
					runtime.ReadMemStats(&before)
					var err error
					if st, err = f.signer.Build(f.set, snap); err != nil {
						b.Fatal(err)
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
				}
				b.ReportMetric(float64(st.Stats().Signed), "signatures")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
			})
			b.Run("one-vip-down", func(b *testing.B) {
				f := newFixture(b, alg)
				if _, err := f.signer.Build(f.set, snap); err != nil {
					b.Fatal(err)
				}
				var st *State
				for b.Loop() {
					var err error
					if st, err = f.signer.Build(f.set, down); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if _, err = f.signer.Build(f.set, snap); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(st.Stats().Resigned), "services")
			})
		})
	}
}
