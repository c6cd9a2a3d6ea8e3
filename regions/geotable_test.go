package regions

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/geo/geotest"
)

// randomGeoDB is a country database of n random networks of both
// families, nested and overlapping, with countries of every continent,
// networks with a continent only and networks with neither.
func randomGeoDB(tb testing.TB, seed uint64, n int) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	countries := []string{"DE", "FR", "NL", "US", "CA", "BR", "JP", "CN", "AU", "ZA", "AQ", "", ""}
	aliases := []netip.Prefix{netip.MustParsePrefix("2001::/32"), netip.MustParsePrefix("2002::/16")}
	var nets []geotest.Net
	for len(nets) < n {
		var p netip.Prefix
		if rng.IntN(2) == 0 {
			// Dense in a few /8s, so that networks nest and touch.
			a := netip.AddrFrom4([4]byte{byte(16 * (1 + rng.IntN(6))), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			p = netip.PrefixFrom(a, 8+rng.IntN(23)).Masked()
		} else {
			var b [16]byte
			b[0], b[1] = 0x20, byte(rng.IntN(4))<<2 // 2000::/14, around the aliases
			for i := 2; i < 16; i++ {
				b[i] = byte(rng.Uint32())
			}
			bits := 14 + rng.IntN(51)
			if rng.IntN(6) == 0 {
				bits = 64 + rng.IntN(65)
			}
			p = netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
			if slices.ContainsFunc(aliases, p.Overlaps) {
				continue // the writer keeps the IPv4 aliases there
			}
		}
		nt := geotest.Net{CIDR: p.String(), Country: countries[rng.IntN(len(countries))]}
		if nt.Country == "" && rng.IntN(2) == 0 {
			nt.Continent = "EU"
		}
		nets = append(nets, nt)
	}
	return geotest.CountryDB(tb, nets...)
}

// geoTableServices are geo services with maps of every shape over the
// test regions: two with the same map (one table), country and continent
// lists that overlap, a drained region, lists naming one region twice.
func geoTableServices() []*Service {
	cont := func(name string) *Service {
		s := steerService(name, PolicyGeo, svcRegion("eu-west", 1), svcRegion("eu-central", 1), svcRegion("us-east", 1), svcRegion("ap-ne", 1))
		s.Geo = &GeoMap{
			Continents: map[string][]string{"EU": {"eu-west", "eu-central"}, "NA": {"us-east"}, "AS": {"ap-ne", "us-east"}},
			Default:    []string{"us-east", "eu-west"},
		}
		return s
	}
	drained := cont("drained.example.")
	drained.Regions[1].Weight = 0
	mixed := steerService("mixed.example.", PolicyGeo, svcRegion("ap-ne", 2), svcRegion("us-east", 1), svcRegion("eu-west", 1), svcRegion("eu-central", 1))
	mixed.Geo = &GeoMap{
		Countries:  map[string][]string{"FR": {"eu-central"}, "JP": {"ap-ne", "eu-west"}, "US": {"us-east"}, "BR": {"us-east", "us-east"}},
		Continents: map[string][]string{"EU": {"eu-west"}, "SA": {"us-east"}},
		Default:    []string{"eu-central", "us-east"},
	}
	countriesOnly := steerService("cc.example.", PolicyGeo, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	countriesOnly.Geo = &GeoMap{Countries: map[string][]string{"DE": {"eu-west"}, "CA": {"us-east"}}}
	return []*Service{cont("www.example."), cont("www2.example."), drained, mixed, countriesOnly}
}

// geoRef is the reference the tables are checked against: the
// database's networks (geo.DB.Networks, itself checked against Locate)
// and, for each address, the class Locate gives.
type geoRef struct {
	db     *geo.DB
	v4, v6 []geo.Network
}

func newGeoRef(t *testing.T, db *geo.DB) *geoRef {
	t.Helper()
	r := &geoRef{db: db}
	for _, v6 := range []bool{false, true} {
		for n, err := range db.Networks(v6) {
			if err != nil {
				t.Fatal(err)
			}
			if v6 {
				r.v6 = append(r.v6, n)
			} else {
				r.v4 = append(r.v4, n)
			}
		}
	}
	return r
}

// edges are the addresses around the ends of networks: each one's first
// and last, and the addresses just outside them; of every network longer
// than /64 (whose ends split a /64) and of every third other one.
func (r *geoRef) edges() []netip.Addr {
	var out []netip.Addr
	for _, l := range [][]geo.Network{r.v4, r.v6} {
		for i, n := range l {
			if i%3 != 0 && n.Network.Bits() <= 64 {
				continue
			}
			first, last := n.Network.Addr(), lastOf(n.Network)
			out = append(out, first, last)
			if p := first.Prev(); p.IsValid() {
				out = append(out, p)
			}
			if x := last.Next(); x.IsValid() {
				out = append(out, x)
			}
		}
	}
	return out
}

// class is the class Locate gives a, for service v.
func (r *geoRef) class(v *ServiceView, a netip.Addr) string {
	loc := r.db.Locate(a)
	return classOf(v, loc.Country, loc.Continent)
}

// classOf is v's class at a location, from its lists: the reference the
// partitions are checked against.
func classOf(v *ServiceView, country, continent string) string {
	g := v.geo
	return fmt.Sprint(g.class(v, g.listsFor(geo.Location{Country: country, Continent: continent})))
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// embeddedV4 is the IPv4 address in the 32 bits after bit n of a.
func embeddedV4(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	var v [4]byte
	for i := range 32 {
		bit := n + i
		if b[bit/8]&(1<<(7-bit%8)) != 0 {
			v[i/8] |= 1 << (7 - i%8)
		}
	}
	return netip.AddrFrom4(v)
}

// uniform says whether every address of p gets class c, from the list
// of networks: no network of another class, no gap unless the default
// is c, and under an alias the IPv4 block it stands for.
func (r *geoRef) uniform(m *ServiceView, p netip.Prefix, c string) bool {
	p = p.Masked()
	first, last := p.Addr(), lastOf(p)
	list := r.v4
	if first.Is6() {
		list = r.v6
	}
	def := classOf(m, "", "")
	i := sort.Search(len(list), func(i int) bool { return !lastOf(list[i].Network).Less(first) })
	cur := first
	for ; i < len(list) && !last.Less(list[i].Network.Addr()); i++ {
		n := list[i]
		if cur.Less(n.Network.Addr()) && def != c {
			return false // a gap
		}
		switch {
		case !n.IPv4Alias:
			if classOf(m, n.Country, n.Continent) != c {
				return false
			}
		case p.Bits() <= n.Network.Bits(): // the alias whole
			if !r.uniform(m, netip.PrefixFrom(netip.IPv4Unspecified(), 0), c) {
				return false
			}
		default:
			sub := netip.PrefixFrom(embeddedV4(first, n.Network.Bits()), min(p.Bits()-n.Network.Bits(), 32))
			if !r.uniform(m, sub, c) {
				return false
			}
		}
		end := lastOf(n.Network)
		if !end.Less(last) {
			return true
		}
		cur = end.Next()
	}
	return def == c
}

// widest is the reference scope of a: the shortest prefix length whose
// block around a is uniform.
func (r *geoRef) widest(m *ServiceView, a netip.Addr) int {
	c := r.class(m, a)
	return sort.Search(a.BitLen()+1, func(p int) bool {
		return r.uniform(m, netip.PrefixFrom(a, p), c)
	})
}

// geoSamples are random addresses: IPv4 where the networks are and
// anywhere, IPv6 in 2000::/14, under each IPv4 alias and anywhere.
func geoSamples(seed uint64, n int) []netip.Addr {
	rng := rand.New(rand.NewPCG(seed, 12))
	var out []netip.Addr
	for i := range n {
		x := rng.Uint64()
		b4 := [4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}
		if i%2 == 0 {
			b4[0] = byte(16 * (1 + rng.IntN(6)))
		}
		out = append(out, netip.AddrFrom4(b4))
		var b [16]byte
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		switch i % 5 {
		case 0:
			b[0], b[1] = 0x20, b[1]&0x0F
		case 1:
			b[0], b[1], b[2], b[3] = 0x20, 0x02, b4[0], b4[1] // 6to4
		case 2:
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0, 0 // Teredo
		case 3:
			clear(b[:12]) // ::/96
			b[12] = b4[0]
		}
		out = append(out, netip.AddrFrom16(b))
	}
	return out
}

func openGeo(t testing.TB, b []byte) *geo.DB {
	t.Helper()
	db, err := geo.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestGeoTableMatchesDatabase: for random addresses of both families,
// the class of the table is the class the database lookup gives, and the
// scope is exactly the widest block that the reference finds uniform.
func TestGeoTableMatchesDatabase(t *testing.T) {
	dbs := []struct {
		name string
		db   *geo.DB
	}{
		{"random", openGeo(t, randomGeoDB(t, 1, 3000))},
		{"random sparse", openGeo(t, randomGeoDB(t, 2, 200))},
		{"empty", openGeo(t, geotest.CountryDB(t))},
		{"one network", openGeo(t, geotest.CountryDB(t, geotest.Net{CIDR: "16.0.0.0/8", Country: "FR"}))},
	}
	for _, tc := range dbs {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSnap(t, steerState(geoTableServices()...), SnapshotOptions{GeoIP: tc.db})
			ref := newGeoRef(t, tc.db)
			checked := 0
			for _, v := range s.Services() {
				g := v.geo
				if g.part == nil || g.merge == nil {
					t.Fatalf("%s: no partition or merge", v.Name())
				}
				if g.part.other4 == nil {
					t.Fatalf("%s: no location sets", v.Name())
				}
				noSets := *g.part
				noSets.other4, noSets.other6 = nil, nil
				for _, a := range append(geoSamples(uint64(len(v.Name())), 400), ref.edges()...) {
					want, widest := ref.class(v, a), ref.widest(v, a)
					group, scope := g.part.lookup(g.merge, a)
					if got := fmt.Sprint(g.orders[group]); got != want {
						t.Fatalf("%s %s: table class %q, database %q", v.Name(), a, got, want)
					}
					if scope != widest {
						t.Fatalf("%s %s: scope /%d, the widest uniform block is /%d", v.Name(), a, scope, widest)
					}
					// Without the merge: the runs from the location
					// table's sets, exactly the widest block too.
					group, scope = g.part.lookup(nil, a)
					if got := fmt.Sprint(g.orders[group]); got != want || scope != widest {
						t.Fatalf("%s %s: unmerged class %q scope /%d, database %q widest /%d", v.Name(), a, got, scope, want, widest)
					}
					// Without sets (a table of more locations than they
					// hold): the location interval widened, the same
					// class and a block no wider; exactly the widest when
					// the intervals read are not bounded.
					group, scope = noSets.lookup(nil, a)
					if got := fmt.Sprint(g.orders[group]); got != want || scope < widest {
						t.Fatalf("%s %s: widened class %q scope /%d, database %q widest /%d", v.Name(), a, got, scope, want, widest)
					}
					if _, scope, _ = noSets.lookupWithin(nil, a, math.MaxInt); scope != widest {
						t.Fatalf("%s %s: widened scope without a bound /%d, the widest uniform block is /%d", v.Name(), a, scope, widest)
					}
					if _, scope, _ = noSets.lookupWithin(nil, a, 0); scope < widest {
						t.Fatalf("%s %s: the interval's scope /%d is wider than the widest uniform block /%d", v.Name(), a, scope, widest)
					}
					checked++
				}
			}
			t.Logf("%d addresses checked; tables: %+v", checked, s.GeoTables())
		})
	}
}

// TestGeoTableScope is the property the ECS scope promises: every address
// inside the returned scope gets the same decision as the client, also
// under other health, for random clients of both families (both ends of
// the block and addresses between them sampled).
func TestGeoTableScope(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 3, 3000))
	healths := []func(*State){nil, markDown("eu-west"), markDown("eu-west", "us-east"), markDown("ap-ne", "eu-central")}
	var snaps []*Snapshot
	var prev *Snapshot
	for _, h := range healths {
		st := steerState(geoTableServices()...)
		if h != nil {
			h(st)
		}
		s := BuildSnapshot(st, prev, SnapshotOptions{GeoIP: db})
		snaps, prev = append(snaps, s), s
	}
	rng := rand.New(rand.NewPCG(4, 4))
	narrower := 0
	for _, name := range []string{"www.example.", "mixed.example.", "drained.example.", "cc.example."} {
		for _, a := range geoSamples(uint64(len(name)), 300) {
			bits := a.BitLen()
			if rng.IntN(3) == 0 {
				bits = []int{24, 56}[a.BitLen()/128] // an ECS source prefix
				a = netip.PrefixFrom(a, bits).Masked().Addr()
			}
			for si, s := range snaps {
				v := mustView(t, s, name)
				qt := uint16(QTypeA)
				if a.Is6() {
					qt = QTypeAAAA
				}
				d := s.Decide(v, &Client{Addr: a, Bits: bits, Locator: db}, qt, 1)
				if d.Scope > bits {
					t.Fatalf("%s %s/%d: scope /%d beyond the source prefix", name, a, bits, d.Scope)
				}
				if d.Scope < bits {
					narrower++
				}
				block := netip.PrefixFrom(a, d.Scope).Masked()
				samples := []netip.Addr{block.Addr(), lastOf(block)}
				for range 30 {
					samples = append(samples, randomIn(rng, block))
				}
				for _, x := range samples {
					got := s.Decide(v, &Client{Addr: x, Bits: x.BitLen(), Locator: db}, qt, 1)
					if got.Region != d.Region {
						t.Fatalf("%s, health %d: %s/%d gets %s with scope /%d, but %s in that block gets %s", name, si, a, bits, d.Region, d.Scope, x, got.Region)
					}
				}
				// The same through the database lookup (no table): the
				// class of every sample is the client's. (Scope 0 may
				// also mean a single candidate: then classes may differ.)
				if d.Scope > 0 {
					want := (&geoRef{db: db}).class(v, a)
					for _, x := range samples {
						if c := (&geoRef{db: db}).class(v, x); c != want {
							t.Fatalf("%s: %s and %s in its block /%d have different classes", name, a, x, d.Scope)
						}
					}
				}
			}
		}
	}
	if narrower == 0 {
		t.Fatal("no decision had a scope narrower than its source: the property was never tested")
	}
}

// randomIn is a random address of p.
func randomIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if rng.IntN(2) == 1 {
			b[i/8] |= 1 << (7 - i%8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestGeoTableReuse: a snapshot that changes only health or drains
// keeps every partition and merge; services whose maps group the
// locations alike share one partition, whatever their regions and
// weights; a changed map gets its own and leaves the others; another
// database builds anew.
func TestGeoTableReuse(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 5, 500))
	part := func(s *Snapshot, name string) *partition { return mustView(t, s, name).geo.part }
	merged := func(s *Snapshot, name string) *merge { return mustView(t, s, name).geo.merge }

	svcs := geoTableServices()
	// The continent map of www over other regions: the same grouping.
	other := steerService("other.example.", PolicyGeo, svcRegion("ap-ne", 1), svcRegion("us-east", 1), svcRegion("eu-west", 1))
	other.Geo = &GeoMap{Continents: map[string][]string{"EU": {"ap-ne"}, "NA": {"us-east"}, "AS": {"eu-west"}}, Default: []string{"us-east"}}
	st := steerState(append(svcs, other)...)
	s1 := buildSnap(t, st, SnapshotOptions{GeoIP: db})
	www := part(s1, "www.example.")
	if www == nil || merged(s1, "www.example.") == nil {
		t.Fatal("www has no partition or merge")
	}
	for _, name := range []string{"www2.example.", "drained.example.", "other.example."} {
		if part(s1, name) != www || merged(s1, name) != merged(s1, "www.example.") {
			t.Fatalf("%s does not share www's partition and merge", name)
		}
	}
	info := s1.GeoTables()
	if info.Location == nil || len(info.Partitions) != 3 || info.Merged != 3 || info.Pending != 0 || len(info.Partitions[0].Services) != 4 {
		t.Fatalf("GeoTables %+v", info)
	}
	for _, in := range info.Partitions {
		if in.Bytes == 0 || in.RunsV4 == 0 || in.RunsV6 == 0 || in.Groups == 0 {
			t.Fatalf("partition %+v", in)
		}
	}

	st2 := st.Clone()
	markDown("eu-west", "ap-ne")(st2)
	st2.Regions["us-east"] = drainedCopy(st2.Regions["us-east"])
	s2 := BuildSnapshot(st2, s1, SnapshotOptions{GeoIP: db})
	for _, v := range s1.Services() {
		if part(s2, v.Name()) != part(s1, v.Name()) || merged(s2, v.Name()) != merged(s1, v.Name()) || s2.geo.lt != s1.geo.lt {
			t.Fatalf("%s: a health change or a drain built a new table", v.Name())
		}
	}
	if st := s2.Stats(); st.Compiled != 0 || st.Refreshed != len(s1.Services()) {
		t.Fatalf("health change: %+v, want every service refreshed, none compiled", st)
	}

	st3 := st2.Clone()
	mixed := *st3.Services["mixed.example."]
	mixed.Geo = &GeoMap{Continents: map[string][]string{"OC": {"ap-ne"}}, Default: []string{"eu-west"}}
	st3.Services["mixed.example."] = &mixed
	s3 := BuildSnapshot(st3, s2, SnapshotOptions{GeoIP: db})
	if part(s3, "mixed.example.") == part(s2, "mixed.example.") || merged(s3, "mixed.example.") == nil {
		t.Fatal("a changed map kept its partition, or has no merge")
	}
	if part(s3, "www.example.") != part(s2, "www.example.") || part(s3, "cc.example.") != part(s2, "cc.example.") {
		t.Fatal("a changed map changed the other partitions")
	}
	if st := s3.Stats(); st.Compiled != 1 || st.Refreshed != 0 || mustView(t, s3, "www.example.") != mustView(t, s2, "www.example.") {
		t.Fatalf("one service changed: %+v, the others not shared", st)
	}

	other2 := openGeo(t, randomGeoDB(t, 5, 500)) // same content, another database
	s4 := BuildSnapshot(st3, s3, SnapshotOptions{GeoIP: other2})
	if part(s4, "www.example.") == part(s3, "www.example.") || part(s4, "www.example.").lt.db != other2 {
		t.Fatal("another database kept the tables")
	}

	s5 := BuildSnapshot(st3, s4, SnapshotOptions{})
	if part(s5, "www.example.") != nil || s5.GeoTables().Location != nil {
		t.Fatal("tables without a database")
	}
}

// drainedCopy is r drained.
func drainedCopy(r *Region) *Region {
	c := *r
	c.Drained = true
	return &c
}

// TestGeoTableLocatorMismatch: a table answers only for clients located
// with the database it was compiled from; others are looked up, with the
// database network as the scope.
func TestGeoTableLocatorMismatch(t *testing.T) {
	a := openGeo(t, geotest.CountryDB(t, geotest.Net{CIDR: "16.0.0.0/24", Country: "FR"}, geotest.Net{CIDR: "16.0.1.0/24", Country: "DE"}))
	b := openGeo(t, geotest.CountryDB(t, geotest.Net{CIDR: "16.0.0.0/24", Country: "JP"}))
	s := buildSnap(t, steerState(geoTableServices()...), SnapshotOptions{GeoIP: a})
	v := mustView(t, s, "www.example.")
	addr := netip.MustParseAddr("16.0.0.1")
	if d := s.Decide(v, &Client{Addr: addr, Bits: 32, Locator: a}, QTypeA, 1); d.Region != "eu-west" || d.Scope != 23 {
		t.Fatalf("with the table's database: %+v, want eu-west /23 (the two European networks merged)", d)
	}
	if d := s.Decide(v, &Client{Addr: addr, Bits: 32, Locator: b}, QTypeA, 1); d.Region != "ap-ne" || d.Scope != 24 {
		t.Fatalf("with another database: %+v, want ap-ne /24 from its lookup", d)
	}
	loc := newLocator() // not a geo database
	if d := s.Decide(v, &Client{Addr: clientJP, Bits: 32, Locator: loc}, QTypeA, 1); d.Region != "ap-ne" || d.Scope != 24 || loc.calls != 1 {
		t.Fatalf("with another locator: %+v after %d lookups", d, loc.calls)
	}
	if d := s.Decide(v, &Client{Addr: addr, Bits: 32}, QTypeA, 1); d.Region != "us-east" || d.Scope != 0 {
		t.Fatalf("without a locator: %+v, want the default with scope 0", d)
	}
	if d := s.Decide(v, &Client{Addr: addr, Bits: 0, Locator: a}, QTypeA, 1); d.Region != "us-east" || d.Scope != 0 {
		t.Fatalf("ECS /0: %+v, want the default with scope 0", d)
	}
}

// TestGeoTableReloader: a Reloader as locator reads the table compiled
// from its current database; after a reload, clients are looked up in
// the new database until a snapshot compiled from it is built.
func TestGeoTableReloader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	geotest.WriteFile(t, path, geotest.Net{CIDR: "16.0.0.0/24", Country: "FR"}, geotest.Net{CIDR: "16.0.1.0/24", Country: "DE"})
	r, err := geo.NewReloader(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := steerState(geoTableServices()...)
	s := buildSnap(t, st, SnapshotOptions{GeoIP: r})
	v := mustView(t, s, "www.example.")
	c := &Client{Addr: netip.MustParseAddr("16.0.0.1"), Bits: 32, Locator: r}
	if d := s.Decide(v, c, QTypeA, 1); d.Region != "eu-west" || d.Scope != 23 {
		t.Fatalf("%+v, want eu-west /23 from the table", d)
	}
	if allocs := testing.AllocsPerRun(100, func() { s.Decide(v, c, QTypeA, 1) }); allocs != 0 {
		t.Fatalf("Decide through a Reloader allocates %v times", allocs)
	}
	// Two Asian /25s: looked up, the scope is /25; from a table, /24.
	geotest.WriteFile(t, path, geotest.Net{CIDR: "16.0.0.0/25", Country: "JP"}, geotest.Net{CIDR: "16.0.0.128/25", Country: "CN"})
	reloaded := 0
	r.OnReload(func(*geo.DB) { reloaded++ })
	if err := r.Reload(); err != nil || reloaded != 1 {
		t.Fatalf("reload: %v, callbacks %d", err, reloaded)
	}
	if d := s.Decide(v, c, QTypeA, 1); d.Region != "ap-ne" || d.Scope != 25 {
		t.Fatalf("after the reload, old snapshot: %+v, want ap-ne /25 from the new database", d)
	}
	s2 := BuildSnapshot(st, s, SnapshotOptions{GeoIP: r})
	if d := s2.Decide(mustView(t, s2, "www.example."), c, QTypeA, 1); d.Region != "ap-ne" || d.Scope != 24 {
		t.Fatalf("new snapshot: %+v, want ap-ne /24 from its table", d)
	}
}

// TestGeoTableExplain: Explain reads the same table as Decide, and says
// the scope comes from the merged block.
func TestGeoTableExplain(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 6, 1000))
	st := steerState(geoTableServices()...)
	markDown("eu-west")(st)
	s := buildSnap(t, st, SnapshotOptions{GeoIP: db})
	for _, v := range s.Services() {
		for _, a := range geoSamples(9, 50) {
			c := &Client{Addr: a, Bits: a.BitLen(), Locator: db}
			d := s.Decide(v, c, QTypeA, 3)
			ed, e := s.Explain(v, c, QTypeA, 3)
			if !slices.Equal(d.Addrs, ed.Addrs) || d.Region != ed.Region || d.Scope != ed.Scope {
				t.Fatalf("%s %s: Decide %+v, Explain %+v", v.Name(), a, d, ed)
			}
			var pref *ExplainStep
			for i := range e.Steps {
				if e.Steps[i].Step == "preference" {
					pref = &e.Steps[i]
				}
			}
			if d.Region == "" || strings.HasPrefix(pref.Reason, "a single candidate") {
				continue // NODATA, or nothing to prefer: no lookup
			}
			l := e.Client.Location
			if l == nil || l.Block != netip.PrefixFrom(a, d.Scope).Masked() || l.Scope != d.Scope {
				t.Fatalf("%s %s: location %+v, want the block /%d", v.Name(), a, l, d.Scope)
			}
			if !strings.Contains(pref.Reason, "merged block "+l.Block.String()) || strings.Contains(pref.Reason, "compiled table chose") {
				t.Fatalf("%s %s: preference step %+v", v.Name(), a, pref)
			}
		}
	}
}

func TestGeoTableAllocs(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 7, 1000))
	s := buildSnap(t, steerState(geoTableServices()...), SnapshotOptions{GeoIP: db})
	for _, name := range []string{"www.example.", "mixed.example."} {
		v := mustView(t, s, name)
		for _, a := range geoSamples(1, 20) {
			c := &Client{Addr: a, Bits: a.BitLen(), Locator: db}
			if allocs := testing.AllocsPerRun(50, func() { s.Decide(v, c, QTypeA, 1) }); allocs != 0 {
				t.Fatalf("%s %s: Decide allocates %v times", name, a, allocs)
			}
		}
	}
}

// BenchmarkGeoTableLookup is the table's lookup alone, against the
// database lookup it replaces, for random addresses.
func BenchmarkGeoTableLookup(b *testing.B) {
	db := openGeo(b, randomGeoDB(b, 8, 20000))
	s := buildSnap(b, steerState(geoTableServices()...), SnapshotOptions{GeoIP: db})
	g := mustView(b, s, "www.example.").geo
	addrs := geoSamples(2, 2048)
	b.Run("table", func(b *testing.B) {
		i := 0
		for b.Loop() {
			g.part.lookup(g.merge, addrs[i&4095])
			i++
		}
	})
	b.Run("locate", func(b *testing.B) {
		i := 0
		for b.Loop() {
			db.Locate(addrs[i&4095])
			i++
		}
	})
	// The continent an answer is counted under, for a decision that did
	// not locate the client (ClientContinent).
	b.Run("continent", func(b *testing.B) {
		i := 0
		for b.Loop() {
			c := Client{Addr: addrs[i&4095], Bits: 128, Locator: db}
			s.ClientContinent(&c)
			i++
		}
	})
}

// TestClientContinent: the continent an answer is counted under is the
// database's for the client, whether the decision located the client
// (geo through the table or the database, nearest) or not (weighted:
// the location table is read), and -1 where nothing can be known.
func TestClientContinent(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 5, 2000))
	geoSvc := geoTableServices()[0]
	weighted := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	nearest := steerService("n.example.", PolicyNearest, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	s := buildSnap(t, steerState(geoSvc, weighted, nearest), SnapshotOptions{GeoIP: db})
	noTable := buildSnap(t, steerState(geoSvc, weighted, nearest), SnapshotOptions{})
	ref := newGeoRef(t, db)
	for _, a := range append(geoSamples(3, 300), ref.edges()...) {
		want := continentIndex(db.Locate(a).Continent)
		for _, name := range []string{geoSvc.Name, weighted.Name, nearest.Name} {
			c := &Client{Addr: a, Bits: a.BitLen(), Locator: db}
			s.Decide(mustView(t, s, name), c, QTypeA, 1)
			if got := s.ClientContinent(c); got != want {
				t.Fatalf("%s %s: continent %d, the database says %d (%q)", name, a, got, want, db.Locate(a).Continent)
			}
			// Without the table, only a decision that located the
			// client knows its continent.
			c = &Client{Addr: a, Bits: a.BitLen(), Locator: db}
			noTable.Decide(mustView(t, noTable, name), c, QTypeA, 1)
			got := noTable.ClientContinent(c)
			if name == weighted.Name && got != -1 || name != weighted.Name && got != want {
				t.Fatalf("%s %s without the table: continent %d (the database says %d)", name, a, got, want)
			}
		}
	}
	other := openGeo(t, randomGeoDB(t, 6, 50))
	a := netip.MustParseAddr("16.1.2.3")
	for _, tc := range []struct {
		name string
		c    *Client
	}{
		{"no client", nil},
		{"ECS /0", &Client{Addr: a, Bits: 0, Locator: db}},
		{"no GeoIP", &Client{Addr: a, Bits: 32}},
		{"another database than the table's", &Client{Addr: a, Bits: 32, Locator: other}},
	} {
		if got := s.ClientContinent(tc.c); got != -1 {
			t.Errorf("%s: continent %d, want -1", tc.name, got)
		}
	}
	c := &Client{Addr: a, Bits: 32, Locator: db}
	if n := testing.AllocsPerRun(50, func() { c.continent = 0; s.ClientContinent(c) }); n != 0 {
		t.Errorf("ClientContinent allocates %v times", n)
	}
}
