package dnssec

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// mapSource is a Source over entries encoded and decoded as etcd keeps
// them.
type mapSource struct {
	mu sync.Mutex
	m  map[Hash]*Entry
}

func (s *mapSource) Entry(_ string, h Hash) *Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[h]
}

// publish copies every entry of the signer's zone into the source,
// through Encode and DecodeEntry.
func (s *mapSource) publish(t *testing.T, from *Signer) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[Hash]*Entry{}
	}
	n := 0
	for h, e := range from.Entries("example.org.") {
		d, err := DecodeEntry(e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		s.m[h] = d
		n++
	}
	return n
}

// publicOnly is ks without private keys, as a name server knows it.
func publicOnly(ks *KeySet) *KeySet {
	out := &KeySet{Zone: ks.Zone, TTL: ks.TTL}
	for _, k := range ks.Keys {
		c := *k
		c.Signer = nil
		out.Keys = append(out.Keys, &c)
	}
	return out
}

func TestEntryEncoding(t *testing.T) {
	f := newFixture(t, AlgECDSAP256SHA256)
	rr, _ := dns.NewRR("www.example.org. 300 IN A 192.0.2.1")
	e, err := f.signer.signers["example.org."].sign([]dns.RR{rr}, 300)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeEntry(e.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.tails) != 1 || string(d.tails[0]) != string(e.tails[0]) || !d.exp.Equal(e.exp) || d.tags[0] != f.ks.Keys[0].Tag() {
		t.Fatalf("decoded %+v, want %+v", d, e)
	}
	sig := sigsFor(d, "www.example.org.")[0].(*dns.RRSIG)
	if err := sig.Verify(f.ks.Keys[0].DNSKEY, []dns.RR{rr}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0}, {1, 0, 9, 1}, {1, 0, 1, 0}} {
		if _, err := DecodeEntry(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
	// The hash: the same for the records in any order and any owner case,
	// another for another TTL or other data.
	a, _ := dns.NewRR("x.example.org. 60 IN A 192.0.2.1")
	b, _ := dns.NewRR("X.Example.ORG. 60 IN A 192.0.2.2")
	h1, _ := RRsetHash([]dns.RR{a, b}, 60)
	h2, _ := RRsetHash([]dns.RR{b, a, b}, 60)
	h3, _ := RRsetHash([]dns.RR{a, b}, 30)
	h4, _ := RRsetHash([]dns.RR{a}, 60)
	if h1 != h2 || h1 == h3 || h1 == h4 {
		t.Errorf("hashes %v %v %v %v", h1, h2, h3, h4)
	}
	if p, err := ParseHash(h1.String()); err != nil || p != h1 {
		t.Errorf("parse: %v", err)
	}
}

// TestKeylessState: a name server without keys builds, from what a
// signer published, a State that answers as the signer's does; a VIP
// failing finds its subset signed ahead; two failing find the region's
// full set standing in; a service the signer never saw leaves the State
// unbuilt.
func TestKeylessState(t *testing.T) {
	f := newFixture(t, AlgECDSAP256SHA256)
	snap := regions.BuildSnapshot(state3(3), nil, regions.SnapshotOptions{})
	st, err := f.signer.Build(f.set, snap)
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.signer.Foresee(st)
	if err != nil || n == 0 {
		t.Fatalf("foresee: %d %v", n, err)
	}
	f.signer.Sweep(st)
	src := &mapSource{}
	src.publish(t, f.signer)

	ns := NewSigner(map[string]ZoneConfig{"example.org.": {Keys: publicOnly(f.ks), Source: src}}, func() time.Time { return f.now })
	z, err := zones.Parse(strings.NewReader(testZoneText), "test", zones.LoadOptions{Origin: "example.org.", DNSSEC: ns.Apex("example.org.")})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := zones.NewSet(z)
	key := f.ks.Keys[0].DNSKEY
	// check builds the keyless State of snap and verifies every answer.
	check := func(t *testing.T, snap *regions.Snapshot, subs int) *State {
		t.Helper()
		ks, err := ns.Build(set, snap)
		if err != nil {
			t.Fatal(err)
		}
		if ks.Stats().Signed != 0 || ks.Stats().Substituted != subs {
			t.Fatalf("stats %+v, want no signature made and %d substituted", ks.Stats(), subs)
		}
		for i := range snap.NumServices() {
			v := snap.ServiceAt(i)
			for _, fam := range []uint16{regions.QTypeA, regions.QTypeAAAA} {
				d := snap.Decide(v, nil, fam, 1)
				tails := ks.ServiceAnswer(v, &d)
				if len(tails) != 1 {
					t.Fatalf("%s %d: %d signatures", v.Name(), fam, len(tails))
				}
				msg := append(wire(t, v.Name()), tails[0]...)
				rr, _, err := dns.UnpackRR(msg, 0)
				if err != nil {
					t.Fatal(err)
				}
				var rrs []dns.RR
				for k := range d.Count {
					rrs = append(rrs, addrRRset(v, int(fam/28), []netip.Addr{d.Addr(k)})...)
				}
				if err := rr.(*dns.RRSIG).Verify(key, rrs); err != nil {
					t.Fatalf("%s: %v", v.Name(), err)
				}
			}
		}
		return ks
	}
	check(t, snap, 0)
	t.Run("one VIP down: signed ahead", func(t *testing.T) {
		check(t, regions.BuildSnapshot(state3(3, "192.0.2.1"), snap, regions.SnapshotOptions{}), 0)
	})
	t.Run("two VIPs down: the region's full set stands in", func(t *testing.T) {
		check(t, regions.BuildSnapshot(state3(3, "192.0.2.1", "192.0.2.2"), snap, regions.SnapshotOptions{}), 3)
	})
	t.Run("a new service waits for its signer", func(t *testing.T) {
		_, err := ns.Build(set, regions.BuildSnapshot(state3(4), snap, regions.SnapshotOptions{}))
		if !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), "s00003.svc.example.org.") {
			t.Fatalf("error %v, want one naming the new service", err)
		}
		next := regions.BuildSnapshot(state3(4), snap, regions.SnapshotOptions{})
		sst, err := f.signer.Build(f.set, next)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.signer.Foresee(sst); err != nil {
			t.Fatal(err)
		}
		src.publish(t, f.signer)
		ns.Invalidate()
		check(t, next, 0)
	})
}

// state3 is state with a third IPv4 VIP in r0, 192.0.2.3: two VIPs of r0
// failing leave a subset no signer signs ahead.
func state3(n int, down ...string) *regions.State {
	st := state(n, down...)
	a := netip.MustParseAddr("192.0.2.3")
	r := *st.Regions["r0"]
	r.VIPs = append(slices.Clone(r.VIPs), a)
	st.Regions["r0"] = &r
	rep := *st.Health["r0"]["p"]
	rep.VIPs = append(slices.Clone(rep.VIPs), regions.VIPHealth{Addr: a, Up: !slices.Contains(down, a.String())})
	st.Health["r0"]["p"] = &rep
	return st
}
