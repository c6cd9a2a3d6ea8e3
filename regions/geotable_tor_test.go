package regions

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// wwwService is examples/state.yaml's www: by continent, three regions.
func wwwService() (*Service, []*Region) {
	svc := &Service{Name: "www.gslb.example.", TTL: 60, Policy: PolicyGeo,
		Regions: []ServiceRegion{{Region: "eu-west", Weight: 100}, {Region: "us-east", Weight: 100}, {Region: "ap-northeast", Weight: 100}},
		Geo: &GeoMap{
			Continents: map[string][]string{
				"EU": {"eu-west", "us-east", "ap-northeast"},
				"AF": {"eu-west", "us-east", "ap-northeast"},
				"NA": {"us-east", "eu-west", "ap-northeast"},
				"SA": {"us-east", "eu-west", "ap-northeast"},
				"AS": {"ap-northeast", "us-east", "eu-west"},
				"OC": {"ap-northeast", "us-east", "eu-west"},
			},
			Default: []string{"us-east", "eu-west", "ap-northeast"},
		}}
	regions := []*Region{
		steerRegion("eu-west", 52.37, 4.90, "192.0.2.10", "2001:db8:10::10"),
		steerRegion("us-east", 39.04, -77.49, "192.0.2.20", "2001:db8:20::20"),
		steerRegion("ap-northeast", 35.68, 139.69, "192.0.2.30", "2001:db8:30::30"),
	}
	return svc, regions
}

var (
	torOnce sync.Once
	torDB   []byte
	torErr  error
)

// torWWW builds the country database from tor-geoipdb (once per test
// binary) and a snapshot of examples/state.yaml's www compiled against it.
func torWWW(tb testing.TB) (*geo.DB, *Snapshot, *ServiceView) {
	tb.Helper()
	testtool.NeedFile(tb, geo.DefaultTorGeoIPv4)
	testtool.NeedFile(tb, geo.DefaultTorGeoIPv6)
	torOnce.Do(func() {
		var buf bytes.Buffer
		_, torErr = geo.BuildTorCountryDB(context.Background(), &buf, geo.BuildOptions{V4Path: geo.DefaultTorGeoIPv4, V6Path: geo.DefaultTorGeoIPv6})
		torDB = buf.Bytes()
	})
	if torErr != nil {
		tb.Fatal(torErr)
	}
	db := openGeo(tb, torDB)
	svc, regions := wwwService()
	st := NewState()
	for _, r := range regions {
		st.Regions[r.Name] = r
	}
	st.Services[svc.Name] = svc
	s := buildSnap(tb, st, SnapshotOptions{GeoIP: db})
	return db, s, mustView(tb, s, svc.Name)
}

// BenchmarkGeoTableTor: www's table on the tor-geoipdb database against
// the database lookup, for random addresses of both families; alone and
// as whole decisions (ECS /24 and /56 clients).
func BenchmarkGeoTableTor(b *testing.B) {
	db, s, v := torWWW(b)
	addrs := geoSamples(3, 2048)
	lookupOnly := struct{ Locator }{db} // not a *geo.DB: no table
	b.Run("lookup/table", func(b *testing.B) {
		i := 0
		for b.Loop() {
			v.geo.part.lookup(v.geo.merge, addrs[i&4095])
			i++
		}
	})
	// Without the merge: the runs from the location table's sets, and
	// without them the interval widened (scanBudget).
	noSets := *v.geo.part
	noSets.other4, noSets.other6 = nil, nil
	for _, mode := range []struct {
		name string
		p    *partition
	}{{"lookup/sets", v.geo.part}, {"lookup/widen", &noSets}} {
		b.Run(mode.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				mode.p.lookup(nil, addrs[i&4095])
				i++
			}
		})
	}
	b.Run("lookup/database", func(b *testing.B) {
		i := 0
		for b.Loop() {
			db.Locate(addrs[i&4095])
			i++
		}
	})
	for _, mode := range []struct {
		name string
		loc  Locator
	}{{"decide/table", db}, {"decide/database", lookupOnly}} {
		b.Run(mode.name, func(b *testing.B) {
			c := &Client{Locator: mode.loc}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a := addrs[i&4095]
				c.Addr, c.Bits = a, 24
				if a.Is6() {
					c.Bits = 56
				}
				s.Decide(v, c, QTypeA, uint64(i))
				i++
			}
		})
	}
}

// TestGeoTableTor compiles examples/state.yaml's www against the country
// database built from Debian's tor-geoipdb: known scopes, the classes
// and scopes of random addresses against the database, the scope
// property, the memory and compile time of the table, and the number of
// CIDR blocks that cover IPv4. The build takes seconds, several times
// more under the race detector, so there it skips itself and `make test`
// runs it without -race (Makefile, unit-norace).
func TestGeoTableTor(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a real database build: skipped with -short or -race; make test runs it without -race")
	}
	db, s, v := torWWW(t)
	info := s.GeoTables()
	if info.Location == nil || len(info.Partitions) != 1 || !info.Partitions[0].Merged {
		t.Fatalf("tables %+v", info)
	}
	l, p := info.Location, info.Partitions[0]
	t.Logf("location table: %d locations, %d IPv4 and %d IPv6 intervals, %d bytes (%.2f MiB), built in %v from %d networks",
		l.Locations, l.IntervalsV4, l.IntervalsV6, l.Bytes, float64(l.Bytes)/(1<<20), l.BuildTime, l.Networks)
	t.Logf("www's partition: %d groups, %d IPv4 and %d IPv6 runs, %d bytes, merged in %v", p.Groups, p.RunsV4, p.RunsV6, p.Bytes, p.BuildTime)

	// gdnsd 3.8.1 gives these scopes with the same database and map; the
	// database networks are /20 and /18.
	for _, tc := range []struct {
		subnet string
		region string
		scope  int
	}{
		{"193.0.0.0/24", "eu-west", 19},
		{"81.2.69.0/24", "eu-west", 17},
	} {
		p := netip.MustParsePrefix(tc.subnet)
		d := s.Decide(v, &Client{Addr: p.Addr(), Bits: p.Bits(), Locator: db}, QTypeA, 1)
		if d.Region != tc.region || d.Scope != tc.scope {
			t.Errorf("%s: %s /%d, want %s /%d", tc.subnet, d.Region, d.Scope, tc.region, tc.scope)
		}
	}

	ref := newGeoRef(t, db)
	g := v.geo
	samples := geoSamples(21, 3000)
	edges := ref.edges()
	for i := 0; i < len(edges); i += 97 {
		samples = append(samples, edges[i])
	}
	for _, a := range samples {
		group, scope := g.part.lookup(g.merge, a)
		if got, want := fmt.Sprint(g.orders[group]), ref.class(v, a); got != want {
			t.Fatalf("%s: table class %q, database %q", a, got, want)
		}
		if want := ref.widest(v, a); scope != want {
			t.Fatalf("%s: scope /%d, the widest uniform block is /%d", a, scope, want)
		}
	}

	// IPv4 cover: from 0.0.0.0, ask for the address, jump past its block.
	start := time.Now()
	blocks, hist := 0, map[int]int{}
	for x := uint64(0); x < 1<<32; {
		a := netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		d := s.Decide(v, &Client{Addr: a, Bits: 32, Locator: db}, QTypeA, 1)
		blocks++
		hist[d.Scope]++
		x = (x>>(32-d.Scope) + 1) << (32 - d.Scope)
	}
	t.Logf("IPv4 cover for www: %d CIDR blocks (walked in %v); blocks by length: %v", blocks, time.Since(start), hist)

	// Without the merge, the runs from the location table's sets: the
	// same cover.
	start, unmerged := time.Now(), 0
	for x := uint64(0); x < 1<<32; {
		_, scope := g.part.lookup(nil, netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}))
		unmerged++
		x = (x>>(32-scope) + 1) << (32 - scope)
	}
	if unmerged != blocks {
		t.Errorf("IPv4 cover for www without the merge: %d CIDR blocks, with it %d", unmerged, blocks)
	}
	t.Logf("IPv4 cover for www without the merge: %d CIDR blocks (walked in %v)", unmerged, time.Since(start))
}

// BenchmarkGeoTableTorCountryMaps: partitions of maps like make scale's
// run with a country map per geo service (3 to 10 countries, each with
// its own order of three regions) on the tor-geoipdb database. It
// reports the bytes of a merge per partition and the lookups of random
// addresses with the merge and with the location table's sets alone.
func BenchmarkGeoTableTorCountryMaps(b *testing.B) {
	db, s0, _ := torWWW(b)
	countries := []string{"DE", "FR", "GB", "NL", "IT", "ES", "SE", "PL", "US", "CA", "MX", "BR", "AR", "JP", "CN", "KR", "IN", "SG", "AU", "NZ",
		"ZA", "NG", "EG", "KE", "RU", "UA", "TR", "IR", "SA", "AE", "ID", "TH", "VN", "PH", "MY", "CL", "CO", "PE", "NO", "FI", "DK", "AT", "CH", "BE", "PT", "IE", "CZ", "RO", "HU", "GR"}
	regions := []string{"eu-west", "us-east", "ap-northeast"}
	rng := rand.New(rand.NewPCG(17, 17))
	perm := func() []string {
		p := rng.Perm(len(regions))
		return []string{regions[p[0]], regions[p[1]], regions[p[2]]}
	}
	st := s0.state.Clone()
	var names []string
	for i := range 40 {
		svc := &Service{Name: fmt.Sprintf("c%02d.gslb.example.", i), TTL: 60, Policy: PolicyGeo,
			Regions: []ServiceRegion{{Region: "eu-west", Weight: 1}, {Region: "us-east", Weight: 1}, {Region: "ap-northeast", Weight: 1}},
			Geo:     &GeoMap{Countries: map[string][]string{}, Default: perm()}}
		for _, j := range rng.Perm(len(countries))[:3+rng.IntN(8)] {
			svc.Geo.Countries[countries[j]] = perm()
		}
		st.Services[svc.Name] = svc
		names = append(names, svc.Name)
	}
	s := BuildSnapshot(st, s0, SnapshotOptions{GeoIP: db})
	var geos []*geoTable
	bytes, runs := 0, 0
	for _, name := range names {
		g := mustView(b, s, name).geo
		if g.part == nil || g.merge == nil {
			b.Fatalf("%s: no partition or merge", name)
		}
		geos = append(geos, g)
		bytes += g.merge.bytes()
		runs += g.merge.runs4 + g.merge.runs6
	}
	addrs := geoSamples(5, 2048)
	for _, merged := range []bool{true, false} {
		name := "lookup/merged"
		if !merged {
			name = "lookup/sets"
		}
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				g := geos[i%len(geos)]
				m := g.merge
				if !merged {
					m = nil
				}
				g.part.lookup(m, addrs[i&4095])
				i++
			}
			b.ReportMetric(float64(bytes)/float64(len(geos)), "merge-B/partition")
			b.ReportMetric(float64(runs)/float64(len(geos)), "runs/partition")
		})
	}
}
