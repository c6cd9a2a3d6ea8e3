package geo

import (
	"context"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// BenchmarkLocate measures lookups in the fixtures and, when tor-geoipdb is
// installed, in the real country database built from it:
//
//	go test -run '^$' -bench Locate -benchmem ./geo/
func BenchmarkLocate(b *testing.B) {
	fixtureDB := func(f fixture) func(*testing.B) *DB {
		return func(b *testing.B) *DB { return openFixture(b, f) }
	}
	torDB := func(b *testing.B) *DB {
		path, _ := torBuild(b) // fails when tor-geoipdb is absent
		db, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	one := func(addr string) func(*testing.B) []netip.Addr {
		return func(*testing.B) []netip.Addr { return []netip.Addr{netip.MustParseAddr(addr)} }
	}
	sample := func(path string, v6 bool) func(*testing.B) []netip.Addr {
		return func(b *testing.B) []netip.Addr { return torSample(b, path, v6) }
	}
	cases := []struct {
		name     string
		db       func(*testing.B) *DB
		addrs    func(*testing.B) []netip.Addr
		wantMiss bool
	}{
		{"fixture-country/v4", fixtureDB(countryFixture()), one("198.18.5.7"), false},
		{"fixture-country/v6", fixtureDB(countryFixture()), one("2001:db8:1::53"), false},
		{"fixture-country/v4-mapped", fixtureDB(countryFixture()), one("::ffff:198.18.5.7"), false},
		{"fixture-country/miss", fixtureDB(countryFixture()), one("198.19.0.1"), true},
		{"fixture-city/v4", fixtureDB(cityFixture()), one("192.0.2.1"), false},
		{"tor/v4", torDB, sample(DefaultTorGeoIPv4, false), false},
		{"tor/v6", torDB, sample(DefaultTorGeoIPv6, true), false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			db, addrs := c.db(b), c.addrs(b)
			found := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if db.Locate(addrs[i%len(addrs)]).Network.IsValid() {
					found++
				}
				i++
			}
			if (found == 0) != c.wantMiss {
				b.Fatalf("found %d of %d lookups", found, i)
			}
		})
	}
}

// BenchmarkReloaderLocate adds the Reloader's atomic load to a lookup.
func BenchmarkReloaderLocate(b *testing.B) {
	path := countryFixture().file(b, b.TempDir(), "country.mmdb")
	r, err := NewReloader(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddr("198.18.5.7")
	b.ReportAllocs()
	for b.Loop() {
		r.Locate(addr)
	}
}

// torSample picks 4096 addresses inside the ranges of a tor file, so that
// lookups walk the whole depth of the tree rather than stop early in
// unassigned space.
func torSample(tb testing.TB, path string, v6 bool) []netip.Addr {
	tb.Helper()
	ranges, _, err := readTorFile(context.Background(), path, v6)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = ranges[rng.IntN(len(ranges))].start
	}
	return addrs
}

// BenchmarkBuildTorCountryDB times a full build from /usr/share/tor (run it
// with -benchtime=1x; one build takes seconds).
func BenchmarkBuildTorCountryDB(b *testing.B) {
	torBuild(b) // fails when tor-geoipdb is absent
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildTorCountryDB(context.Background(), io.Discard, BuildOptions{V4Path: DefaultTorGeoIPv4, V6Path: DefaultTorGeoIPv6}); err != nil {
			b.Fatal(err)
		}
	}
}
