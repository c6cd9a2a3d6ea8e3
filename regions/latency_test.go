package regions

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func compileCSV(tb testing.TB, csv string) *LatencyTable {
	tb.Helper()
	t, err := CompileLatency(&LatencyData{ID: "x", CSV: []byte(csv)})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func matchString(m LatencyMatch) string {
	var parts []string
	for i := range m.Len() {
		r, rtt := m.At(i)
		parts = append(parts, fmt.Sprintf("%s=%v", r, rtt))
	}
	return strings.Join(parts, " ")
}

func TestLatencyLookup(t *testing.T) {
	table := compileCSV(t, `cidr,region,rtt_ms
0.0.0.0/0,world,200
10.0.0.0/8,eu,30
10.0.0.0/8,us,80.25
10.1.0.0/16,us,5
10.1.2.0/24,eu,1
10.1.2.128/25,ap,9
192.0.2.255/32,eu,3
255.255.255.255/32,eu,4
2001:db8::/32,eu,20
2001:db8:1::/48,us,7.5
ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128,eu,6
`)
	if table.Len() != 10 || table.Entries() != 11 || table.ID() != "x" {
		t.Fatalf("Len %d Entries %d ID %q", table.Len(), table.Entries(), table.ID())
	}
	if !slices.Equal(table.Regions(), []string{"ap", "eu", "us", "world"}) {
		t.Fatalf("Regions %v", table.Regions())
	}
	cases := []struct {
		addr   string
		ok     bool
		prefix string
		bits   int
		pairs  string
	}{
		// 10.2.0.0 is in 10/8 only; 10.0.0.0/15 holds 10.1/16, so the
		// answer holds for 10.2.0.0/15.
		{"10.2.3.4", true, "10.0.0.0/8", 15, "eu=30 us=80.25"},
		{"10.200.0.1", true, "10.0.0.0/8", 9, "eu=30 us=80.25"},
		{"10.1.9.9", true, "10.1.0.0/16", 21, "us=5"},
		{"10.1.2.3", true, "10.1.2.0/24", 25, "eu=1"},
		{"10.1.2.200", true, "10.1.2.128/25", 25, "ap=9"},
		{"::ffff:10.1.2.200", true, "10.1.2.128/25", 25, "ap=9"},
		{"11.0.0.1", true, "0.0.0.0/0", 8, "world=200"},
		{"192.0.2.255", true, "192.0.2.255/32", 32, "eu=3"},
		{"192.0.2.254", true, "0.0.0.0/0", 32, "world=200"},
		{"255.255.255.255", true, "255.255.255.255/32", 32, "eu=4"},
		{"255.255.255.254", true, "0.0.0.0/0", 32, "world=200"},
		{"2001:db8:2::1", true, "2001:db8::/32", 47, "eu=20"},
		{"2001:db8:1:ff::1", true, "2001:db8:1::/48", 48, "us=7.5"},
		// No IPv6 /0: the miss holds for the largest network without
		// entries around the address.
		{"2001:db9::1", false, "", 32, ""},
		{"::1", false, "", 3, ""},
		{"8000::", false, "", 2, ""}, // 8000::/1 holds ffff:...:ffff/128
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", false, "", 128, ""},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			m, ok := table.Lookup(netip.MustParseAddr(tc.addr))
			p := ""
			if m.Prefix().IsValid() {
				p = m.Prefix().String()
			}
			if ok != tc.ok || p != tc.prefix || m.Bits() != tc.bits || matchString(m) != tc.pairs {
				t.Fatalf("Lookup = %v, prefix %q, bits %d, %q; want %v %q %d %q", ok, p, m.Bits(), matchString(m), tc.ok, tc.prefix, tc.bits, tc.pairs)
			}
		})
	}
	t.Run("empty table", func(t *testing.T) {
		empty := compileCSV(t, "# nothing\n")
		for _, a := range []string{"192.0.2.1", "2001:db8::1"} {
			m, ok := empty.Lookup(netip.MustParseAddr(a))
			if ok || m.Bits() != 0 || m.Len() != 0 {
				t.Fatalf("%s: %v bits %d", a, ok, m.Bits())
			}
		}
	})
	t.Run("nil table and invalid address", func(t *testing.T) {
		var nilTable *LatencyTable
		if _, ok := nilTable.Lookup(netip.MustParseAddr("192.0.2.1")); ok {
			t.Fatal("nil table matched")
		}
		if _, ok := table.Lookup(netip.Addr{}); ok {
			t.Fatal("invalid address matched")
		}
	})
	t.Run("no allocation", func(t *testing.T) {
		a, b := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8:1::1")
		if n := testing.AllocsPerRun(100, func() {
			m, _ := table.Lookup(a)
			_, _ = m.At(0)
			table.Lookup(b)
		}); n != 0 {
			t.Fatalf("Lookup allocates %v times", n)
		}
	})
}

func TestCompileLatencyErrors(t *testing.T) {
	cases := []struct {
		name string
		d    *LatencyData
		want string
	}{
		{"nil", nil, "no data"},
		{"bad line", &LatencyData{ID: "a", CSV: []byte("192.0.2.0/24,eu,1\nnonsense\n")}, "line 2"},
		{"bad rtt", &LatencyData{ID: "a", CSV: []byte("192.0.2.0/24,eu,-1\n")}, "rtt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CompileLatency(tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLatencyLookupBruteForce compares lookups in a table of many nested
// random prefixes with a linear scan, and checks that Bits is exactly the
// largest network over which the answer does not change.
func TestLatencyLookupBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"a", "b", "c", "d"}
	type entry struct {
		p      netip.Prefix
		region string
		rtt    float64
	}
	var entries []entry
	seen := map[netip.Prefix]bool{}
	// Prefixes crowded into 10.0.0.0/8 and 2001:db8::/32 so they nest.
	for len(seen) < 3000 {
		var p netip.Prefix
		if rng.IntN(2) == 0 {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			p = netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
		} else {
			var b [16]byte
			copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(4)), byte(rng.IntN(256))})
			b[15] = byte(rng.IntN(256))
			p = netip.PrefixFrom(netip.AddrFrom16(b), 32+rng.IntN(97)).Masked()
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		for _, r := range regions[:1+rng.IntN(len(regions))] {
			entries = append(entries, entry{p, r, float64(1 + rng.IntN(500))})
		}
	}
	var csv strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&csv, "%s,%s,%v\n", e.p, e.region, e.rtt)
	}
	table := compileCSV(t, csv.String())
	prefixes := make([]netip.Prefix, 0, len(seen))
	for p := range seen {
		prefixes = append(prefixes, p)
	}

	longest := func(a netip.Addr) (netip.Prefix, bool) {
		var best netip.Prefix
		for _, p := range prefixes {
			if p.Contains(a) && (!best.IsValid() || p.Bits() > best.Bits()) {
				best = p
			}
		}
		return best, best.IsValid()
	}
	// inside reports whether some prefix lies strictly inside block.
	inside := func(block netip.Prefix) bool {
		for _, p := range prefixes {
			if p.Bits() > block.Bits() && block.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	for i := range 3000 {
		// Addresses near the prefixes: take a prefix and vary its host bits.
		p := prefixes[rng.IntN(len(prefixes))]
		b := p.Addr().AsSlice()
		b[len(b)-1-rng.IntN(2)] ^= byte(rng.IntN(256))
		if rng.IntN(4) == 0 {
			b[len(b)-3] ^= byte(rng.IntN(256))
		}
		a, _ := netip.AddrFromSlice(b)
		m, ok := table.Lookup(a)
		want, wantOK := longest(a)
		if ok != wantOK || m.Prefix() != want {
			t.Fatalf("%d: %s: got %v %s, want %v %s", i, a, ok, m.Prefix(), wantOK, want)
		}
		var pairs []string
		for _, e := range entries {
			if e.p == want {
				pairs = append(pairs, fmt.Sprintf("%s=%v", e.region, e.rtt))
			}
		}
		slices.Sort(pairs)
		if got := matchString(m); got != strings.Join(pairs, " ") {
			t.Fatalf("%s: pairs %q, want %q", a, got, strings.Join(pairs, " "))
		}
		// Sound: no other answer inside a/Bits.
		block, _ := a.Prefix(m.Bits())
		if m.Bits() < want.Bits() || inside(block) {
			t.Fatalf("%s: bits %d: %s is not one answer (match %s)", a, m.Bits(), block, want)
		}
		// Largest: one bit shorter, the answer changes somewhere.
		if m.Bits() > 0 && (!wantOK || m.Bits() > want.Bits()) {
			wider, _ := a.Prefix(m.Bits() - 1)
			if !inside(wider) {
				t.Fatalf("%s: bits %d, but %s is still one answer", a, m.Bits(), wider)
			}
		}
	}
}
