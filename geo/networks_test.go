package geo

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
)

// randomFixture is a country database of n random networks, nested and
// overlapping (a later one overrides the part of an earlier one it
// covers), with countries of every continent, some records without a
// country and some without anything we read.
func randomFixture(seed uint64, n int) fixture {
	rng := rand.New(rand.NewPCG(seed, 1))
	countries := []string{"DE", "FR", "NL", "US", "CA", "BR", "JP", "CN", "AU", "ZA", "AQ", ""}
	f := fixture{dbType: "GeoLite2-Country", ipVersion: 6}
	for range n {
		var p netip.Prefix
		if rng.IntN(2) == 0 {
			a := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			p = netip.PrefixFrom(a, 8+rng.IntN(23)).Masked()
		} else {
			var b [16]byte
			b[0], b[1] = 0x20, byte(rng.IntN(16))
			for i := 2; i < 16; i++ {
				b[i] = byte(rng.Uint32())
			}
			bits := 16 + rng.IntN(49)
			if rng.IntN(8) == 0 {
				bits = 64 + rng.IntN(65) // longer than /64 now and then
			}
			p = netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
		}
		if p.Addr().Is6() && p.Overlaps(netip.MustParsePrefix("2001::/32")) || p.Overlaps(netip.MustParsePrefix("2002::/16")) {
			continue // the writer keeps the IPv4 aliases there
		}
		cc := countries[rng.IntN(len(countries))]
		cont := ""
		if cc != "" {
			cont, _ = CountryContinent(cc)
		} else if rng.IntN(2) == 0 {
			cont = "EU"
		}
		f.nets = append(f.nets, fixtureNet{p.String(), rec(cc, cont)})
	}
	return f
}

// collected is a family's networks as Networks yields them.
type collected []Network

func collect(t *testing.T, db *DB, v6 bool) collected {
	t.Helper()
	var out collected
	for n, err := range db.Networks(v6) {
		if err != nil {
			t.Fatalf("Networks(%v): %v", v6, err)
		}
		if len(out) > 0 && !networkEnd(out[len(out)-1].Network).Less(n.Network.Addr()) {
			t.Fatalf("Networks(%v): %s after %s", v6, n.Network, out[len(out)-1].Network)
		}
		if n.Network.Addr().Is4() == v6 {
			t.Fatalf("Networks(%v) yields %s", v6, n.Network)
		}
		out = append(out, n)
	}
	return out
}

// find is the network holding a, if any.
func (c collected) find(a netip.Addr) (Network, bool) {
	i, _ := slices.BinarySearchFunc(c, a, func(n Network, a netip.Addr) int {
		switch {
		case networkEnd(n.Network).Less(a):
			return -1
		case a.Less(n.Network.Addr()):
			return 1
		}
		return 0
	})
	if i < len(c) && c[i].Network.Contains(a) {
		return c[i], true
	}
	return Network{}, false
}

// embedded is the IPv4 address in the 32 bits after p in a.
func embedded(a netip.Addr, p netip.Prefix) netip.Addr {
	b := a.As16()
	var v uint32
	for i := range 32 {
		bit := p.Bits() + i
		v = v<<1 | uint32(b[bit/8]>>(7-bit%8)&1)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// checkAgainstLocate: for random addresses of both families (and both
// ends of every network sampled), the network Networks yields for the
// address tells what Locate says.
func checkAgainstLocate(t *testing.T, db *DB, samples int, seed uint64) {
	t.Helper()
	v4, v6 := collect(t, db, false), collect(t, db, true)
	rng := rand.New(rand.NewPCG(seed, 2))
	var addrs []netip.Addr
	for range samples {
		x := rng.Uint64()
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}))
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		switch rng.IntN(6) {
		case 0:
			b[0], b[1], b[2], b[3] = 0x20, 0x02, byte(rng.Uint32()), byte(rng.Uint32()) // 6to4
		case 1:
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0, 0 // Teredo
		case 2:
			clear(b[:12]) // ::/96
		case 3:
			b[0], b[1] = 0x20, byte(rng.IntN(16))
		}
		addrs = append(addrs, netip.AddrFrom16(b))
	}
	for _, c := range []collected{v4, v6} {
		for i := 0; i < len(c); i += 1 + len(c)/samples {
			addrs = append(addrs, c[i].Network.Addr(), networkEnd(c[i].Network))
		}
	}
	for _, a := range addrs {
		c := v4
		if a.Is6() {
			c = v6
		}
		n, ok := c.find(a)
		got := db.Locate(a)
		switch {
		case !ok:
			if got.Network.IsValid() {
				t.Fatalf("%s: in no network, but Locate finds %+v", a, got)
			}
		case n.IPv4Alias:
			want := db.Locate(embedded(a, n.Network))
			if got.Country != want.Country || got.Continent != want.Continent || got.Network.IsValid() != want.Network.IsValid() {
				t.Fatalf("%s in the IPv4 alias %s: Locate %+v, its IPv4 address %+v", a, n.Network, got, want)
			}
		default:
			if got.Country != n.Country || got.Continent != n.Continent || !got.Network.IsValid() {
				t.Fatalf("%s in %s (%s %s): Locate %+v", a, n.Network, n.Country, n.Continent, got)
			}
			if got.Network.Bits() >= n.Network.Bits() && got.Network != n.Network {
				t.Fatalf("%s: Locate's network %s, Networks' %s", a, got.Network, n.Network)
			}
		}
	}
}

func TestGeoIPNetworks(t *testing.T) {
	mustOpen := func(t *testing.T, b []byte) *DB {
		db, err := OpenBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	for _, tc := range []struct {
		name    string
		fix     fixture
		aliases []string
	}{
		{"country", countryFixture(), []string{"::/96", "::ffff:0.0.0.0/96", "2001::/32", "2002::/16"}},
		{"city", cityFixture(), []string{"::/96", "::ffff:0.0.0.0/96", "2001::/32", "2002::/16"}},
		{"v4 only", v4OnlyFixture(), nil},
		{"random", randomFixture(1, 3000), []string{"::/96", "::ffff:0.0.0.0/96", "2001::/32", "2002::/16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpen(t, tc.fix.bytes(t))
			var aliases []string
			for _, n := range collect(t, db, true) {
				if n.IPv4Alias {
					aliases = append(aliases, n.Network.String())
				}
			}
			if !slices.Equal(aliases, tc.aliases) {
				t.Errorf("IPv4 aliases %v, want %v", aliases, tc.aliases)
			}
			checkAgainstLocate(t, db, 3000, 7)
		})
	}
	t.Run("aliasing off", func(t *testing.T) {
		// A database that does not alias its IPv4 networks: the places
		// are walked as ordinary IPv6 space.
		f := randomFixture(2, 500)
		tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: f.dbType, IncludeReservedNetworks: true, DisableIPv4Aliasing: true})
		if err != nil {
			t.Fatal(err)
		}
		db := mustOpen(t, writeTree(t, tree, f))
		var aliases []string
		for _, n := range collect(t, db, true) {
			if n.IPv4Alias {
				aliases = append(aliases, n.Network.String())
			}
		}
		if !slices.Equal(aliases, []string{"::/96"}) {
			t.Errorf("IPv4 aliases %v, want only ::/96", aliases)
		}
		checkAgainstLocate(t, db, 2000, 8)
	})
	t.Run("stop early", func(t *testing.T) {
		db := mustOpen(t, randomFixture(3, 200).bytes(t))
		for _, v6 := range []bool{false, true} {
			n := 0
			for _, err := range db.Networks(v6) {
				if err != nil {
					t.Fatal(err)
				}
				if n++; n == 3 {
					break
				}
			}
			if n != 3 {
				t.Errorf("Networks(%v) yielded %d networks before the break", v6, n)
			}
		}
	})
	t.Run("nil", func(t *testing.T) {
		var db *DB
		for range db.Networks(false) {
			t.Fatal("a nil DB has networks")
		}
	})
}

// TestGeoIPNetworksTor checks the iteration against Locate on the real
// country database built from tor-geoipdb.
func TestGeoIPNetworksTor(t *testing.T) {
	path, _ := torBuild(t)
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	samples := 20000
	if raceEnabled {
		samples = 2000
	}
	checkAgainstLocate(t, db, samples, 9)
}

// TestGeoIPNetworksBrokenTree: a city database is not walked at open, so
// a search tree broken past the path Open checks opens, and the walk
// reports the error instead of ending early as if the rest were empty.
func TestGeoIPNetworksBrokenTree(t *testing.T) {
	good := randomCity(t)
	db, err := OpenBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	nodes := int(db.Info().NodeCount)
	for from := nodes / 2; from < nodes; from += nodes / 8 {
		b := append([]byte(nil), good...)
		for i := 7 * from; i < 7*nodes; i++ {
			b[i] = 0xee
		}
		db, err := OpenBytes(b)
		if err != nil {
			continue // the part Open checks is broken too
		}
		for _, v6 := range []bool{false, true} {
			var gotErr error
			for _, err := range db.Networks(v6) {
				if err != nil {
					gotErr = err
				}
			}
			if gotErr != nil {
				t.Logf("broken from node %d of %d: %v", from, nodes, gotErr)
				return
			}
		}
	}
	t.Fatal("no broken tree both opened and failed its walk")
}

// randomCity is randomFixture's networks as a city database.
func randomCity(t *testing.T) []byte {
	f := randomFixture(4, 2000)
	f.dbType = "GeoLite2-City"
	return f.bytes(t)
}

// writeTree inserts the fixture's networks into tree and writes it.
func writeTree(t *testing.T, tree *mmdbwriter.Tree, f fixture) []byte {
	t.Helper()
	for _, n := range f.nets {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, n.rec); err != nil {
			t.Fatalf("insert %s: %v", n.cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
