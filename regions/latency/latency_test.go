package latency

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func compileCSV(tb testing.TB, csv string) *Table {
	tb.Helper()
	t, err := Compile("x", []byte(csv))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func matchString(m Match) string {
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
		var nilTable *Table
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
		csv  []byte
		want string
	}{
		{"nil", nil, "no data"},
		{"bad line", []byte("192.0.2.0/24,eu,1\nnonsense\n"), "line 2"},
		{"bad rtt", []byte("192.0.2.0/24,eu,-1\n"), "rtt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compile("a", tc.csv); err == nil || !strings.Contains(err.Error(), tc.want) {
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
	if table.v6.skip == 0 {
		t.Fatal("the IPv6 index does not skip the shared leading bits: that path is not tested")
	}
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
		if i%5 == 0 {
			// Anywhere, mostly outside the crowded networks.
			x := rng.Uint64()
			if i%10 == 0 {
				a = netip.AddrFrom4([4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)})
			} else {
				var r [16]byte
				for j := range 8 {
					r[j], r[8+j] = byte(x>>(8*j)), byte(x>>(8*j+3))
				}
				a = netip.AddrFrom16(r)
			}
		}
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

// TestCompileLatencyFastPath checks that the one-pass reader builds the
// very table ParseCSV's entries build, and that whatever it does
// not take goes to ParseCSV, errors included.
func TestCompileLatencyFastPath(t *testing.T) {
	slow := func(t *testing.T, csv string) (*Table, error) {
		entries, err := ParseCSV(strings.NewReader(csv))
		if err != nil {
			return nil, err
		}
		return compileLatencyEntries(entries)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pad := func() string { return []string{"", " ", "\t", "  "}[rng.IntN(4)] }
	randomCSV := func() string {
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteString("CIDR,Region,RTT_ms\n")
		}
		eol := "\n"
		if rng.IntN(3) == 0 {
			eol = "\r\n"
		}
		seen := map[string]bool{}
		for range 300 {
			switch rng.IntN(12) {
			case 0:
				b.WriteString("# a comment" + eol)
				continue
			case 1:
				b.WriteString(pad() + eol)
				continue
			}
			var p string
			if rng.IntN(2) == 0 {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(8)), byte(rng.IntN(256))}), 16+rng.IntN(17)).Masked().String()
			} else {
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4))}), 32+rng.IntN(97)).Masked().String()
			}
			r := []string{"eu-west", "us-east", "a", "r2d2"}[rng.IntN(4)]
			if seen[p+r] {
				continue
			}
			seen[p+r] = true
			if rng.IntN(3) == 0 {
				p = strings.ToUpper(p) // IPv6 hex digits in upper case
			}
			rtt := []string{"12", "12.5", "1e1", "0.001", "59999.9996", "3.14159"}[rng.IntN(6)]
			b.WriteString(pad() + p + pad() + "," + pad() + r + pad() + "," + pad() + rtt + pad() + eol)
		}
		if rng.IntN(2) == 0 {
			b.WriteString("0.0.0.0/0,world,200") // no final newline
		}
		return b.String()
	}
	for i := range 50 {
		csv := randomCSV()
		es, names, ok := scanLatencyCSV([]byte(csv))
		if !ok {
			t.Fatalf("%d: the fast path refused a valid table:\n%s", i, csv)
		}
		fast, dup := buildLatency(es, names)
		want, err := slow(t, csv)
		if dup || err != nil {
			t.Fatalf("%d: duplicate %v, error %v", i, dup, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%d: the fast path built another table from:\n%s", i, csv)
		}
	}

	padded := strings.Repeat(" ", maxFastLine) + "192.0.2.0/24,eu,1\n"
	for _, tc := range []struct{ name, csv string }{
		{"line longer than the fast path takes", padded},
		{"invalid", "192.0.2.0/24,eu,1\n192.0.2.0/24,eu\n"},
		{"four fields", "192.0.2.0/24,eu,1,2\n"},
		{"host bits", "192.0.2.1/24,eu,1\n"},
		{"mapped", "::ffff:192.0.2.0/120,eu,1\n"},
		{"region", "192.0.2.0/24,-eu,1\n"},
		{"region upper case", "192.0.2.0/24,EU,1\n"},
		{"region too long", "192.0.2.0/24," + strings.Repeat("a", 64) + ",1\n"},
		{"rtt", "192.0.2.0/24,eu,NaN\n"},
		{"rtt zero", "192.0.2.0/24,eu,0\n"},
		{"duplicate", "192.0.2.0/24,eu,1\n2001:db8::/32,eu,1\n192.0.2.0/24,eu,2\n"},
		{"header not first", "# x\ncidr,region,rtt_ms\n"},
		{"byte order mark", "\ufeff192.0.2.0/24,eu,1\n"},
		{"line too long for the scanner", strings.Repeat(" ", 2<<20) + "192.0.2.0/24,eu,1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compile("", []byte(tc.csv))
			want, wantErr := slow(t, tc.csv)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if err == nil {
				got.id = ""
				if !reflect.DeepEqual(got, want) {
					t.Fatal("another table than ParseCSV's entries build")
				}
			}
		})
	}
}

// TestSortLatEntries checks the radix sort against the comparison.
func TestSortLatEntries(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, n := range []int{0, 1, 2, radixMin - 1, radixMin, 20000} {
		es := make([]latEntry, n)
		for i := range es {
			// Few distinct values per field, so that ties reach the later
			// fields; some IPv6 keys with an all-zero low half.
			e := latEntry{bits: uint8(rng.IntN(3)), region: uint16(rng.IntN(3)), rttUs: uint32(i)}
			if rng.IntN(2) == 0 {
				e.key.lo = uint64(rng.IntN(4)) << (16 * rng.IntN(2))
			} else {
				e.v6 = true
				e.key.hi = uint64(rng.IntN(4)) << (16 * rng.IntN(4))
				if rng.IntN(2) == 0 {
					e.key.lo = uint64(rng.IntN(4)) << (16 * rng.IntN(4))
				}
			}
			es[i] = e
		}
		want := slices.Clone(es)
		slices.SortStableFunc(want, compareLatEntries)
		sortLatEntries(es)
		if !slices.EqualFunc(es, want, func(a, b latEntry) bool { return compareLatEntries(a, b) == 0 }) {
			t.Fatalf("n=%d: radix order differs from the comparison", n)
		}
		if n >= radixMin && !slices.Equal(es, want) {
			t.Fatalf("n=%d: the radix sort is not stable", n)
		}
	}
}
