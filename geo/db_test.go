package geo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// at returns a Location with the point our country table gives cc.
func at(cc, cont, network string) Location {
	lat, lon, ok := CountryPoint(cc)
	return Location{Country: cc, Continent: cont, Lat: lat, Lon: lon, HasCoords: ok, Network: netip.MustParsePrefix(network)}
}

// atContinent returns a Location with only a continent and its point.
func atContinent(cont, network string) Location {
	lat, lon, _ := ContinentPoint(cont)
	return Location{Continent: cont, Lat: lat, Lon: lon, HasCoords: true, Network: netip.MustParsePrefix(network)}
}

func openFixture(t testing.TB, f fixture) *DB {
	t.Helper()
	db, err := OpenBytes(f.bytes(t))
	if err != nil {
		t.Fatalf("OpenBytes(%s): %v", f.dbType, err)
	}
	return db
}

func TestGeoIPLocate(t *testing.T) {
	country := openFixture(t, countryFixture())
	city := openFixture(t, cityFixture())
	dbip := openFixture(t, dbipCountryFixture())
	v4only := openFixture(t, v4OnlyFixture())

	tests := []struct {
		name string
		db   *DB
		addr string
		want Location
	}{
		{"v4 country without location", country, "192.0.2.1", at("US", "NA", "192.0.2.0/24")},
		// The nested /24 splits the /16 in the search tree: the network
		// reported is the tree's, which is what bounds an ECS scope.
		{"v4 outer network", country, "198.18.4.255", at("DE", "EU", "198.18.4.0/24")},
		{"v4 nested network", country, "198.18.5.7", at("FR", "EU", "198.18.5.0/24")},
		{"v4 outer network after nested", country, "198.18.6.0", at("DE", "EU", "198.18.6.0/23")},
		{"continent only", country, "198.51.100.1", atContinent("EU", "198.51.100.0/25")},
		{"no continent in record", country, "198.51.100.200", at("JP", "AS", "198.51.100.128/25")},
		{"location only", country, "203.0.113.5", Location{Lat: 10.5, Lon: 20.5, HasCoords: true, Network: netip.MustParsePrefix("203.0.113.0/25")}},
		{"lower case codes", country, "203.0.113.130", at("GB", "EU", "203.0.113.128/26")},
		{"record without fields we use", country, "203.0.113.200", Location{Network: netip.MustParsePrefix("203.0.113.192/26")}},
		{"not in database", country, "198.19.0.1", Location{}},
		{"v4-mapped v6", country, "::ffff:198.18.5.7", at("FR", "EU", "198.18.5.0/24")},
		{"6to4 alias of v4", country, "2002:c000:201::1", at("US", "NA", "2002:c000:200::/40")},
		{"v6", country, "2001:db8:ffff::1", at("NL", "EU", "2001:db8:8000::/33")},
		{"v6 nested with location", country, "2001:db8:1::53", Location{Country: "BE", Continent: "EU", Lat: 50.8, Lon: 4.3, HasCoords: true, Network: netip.MustParsePrefix("2001:db8:1::/48")}},
		{"v6 unknown country code", country, "2001:db8:2::1", Location{Country: "XX", Network: netip.MustParsePrefix("2001:db8:2::/48")}},
		{"v6 with zone", country, "2001:db8:ffff::1%eth0", at("NL", "EU", "2001:db8:8000::/33")},
		{"v6 not in database", country, "2001:db9::1", Location{}},
		{"invalid address", country, "", Location{}},
		{"city v4", city, "192.0.2.77", Location{Country: "FR", Continent: "EU", Lat: 48.8566, Lon: 2.3522, HasCoords: true, Network: netip.MustParsePrefix("192.0.2.0/24")}},
		{"city v4 again from cache", city, "192.0.2.78", Location{Country: "FR", Continent: "EU", Lat: 48.8566, Lon: 2.3522, HasCoords: true, Network: netip.MustParsePrefix("192.0.2.0/24")}},
		{"city record without location", city, "198.51.100.1", at("CA", "NA", "198.51.100.0/24")},
		{"city v6", city, "2001:db8::1", Location{Country: "AU", Continent: "OC", Lat: -33.8688, Lon: 151.2093, HasCoords: true, Network: netip.MustParsePrefix("2001:db8::/32")}},
		{"city v4-mapped", city, "::ffff:192.0.2.1", Location{Country: "FR", Continent: "EU", Lat: 48.8566, Lon: 2.3522, HasCoords: true, Network: netip.MustParsePrefix("192.0.2.0/24")}},
		{"dbip lite", dbip, "192.0.2.1", at("IT", "EU", "192.0.2.0/24")},
		{"v4-only database", v4only, "192.0.2.1", at("SE", "EU", "192.0.2.0/24")},
		{"v4-only database, v4-mapped", v4only, "::ffff:192.0.2.1", at("SE", "EU", "192.0.2.0/24")},
		{"v4-only database, v6 address", v4only, "2001:db8::1", Location{}},
		{"nil database", nil, "192.0.2.1", Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			got := tt.db.Locate(addr)
			if got != tt.want {
				t.Errorf("Locate(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestGeoIPOpen(t *testing.T) {
	dir := t.TempDir()
	valid := countryFixture().bytes(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A country database whose records carry no location data at all.
	asnAsCountry := asnFixture()
	asnAsCountry.dbType = "GeoLite2-Country"

	tests := []struct {
		name        string
		path        string
		wantErr     []string // substrings of the error; nil for success
		unsupported bool     // error wraps ErrUnsupported
		wantInfo    Info
	}{
		{name: "country", path: write("country.mmdb", valid), wantInfo: Info{DatabaseType: "GeoLite2-Country", Schema: SchemaCountry, IPVersion: 6, Records: 11, Countries: 8}},
		{name: "city", path: cityFixture().file(t, dir, "city.mmdb"), wantInfo: Info{DatabaseType: "GeoLite2-City", Schema: SchemaCity, IPVersion: 6}},
		{name: "dbip country lite", path: dbipCountryFixture().file(t, dir, "dbip.mmdb"), wantInfo: Info{DatabaseType: "DBIP-Country-Lite", Schema: SchemaCountry, IPVersion: 6, Records: 1, Countries: 1}},
		{name: "v4 only", path: v4OnlyFixture().file(t, dir, "v4.mmdb"), wantInfo: Info{DatabaseType: "GeoIP2-Country", Schema: SchemaCountry, IPVersion: 4, Records: 1, Countries: 1}},
		{name: "asn", path: asnFixture().file(t, dir, "asn.mmdb"), wantErr: []string{"asn.mmdb", `"GeoLite2-ASN"`}, unsupported: true},
		{name: "unknown type", path: fixture{dbType: "Example-Custom", ipVersion: 6, nets: countryFixture().nets}.file(t, dir, "custom.mmdb"), wantErr: []string{"custom.mmdb", `"Example-Custom"`}, unsupported: true},
		{name: "country type without locations", path: asnAsCountry.file(t, dir, "fake-country.mmdb"), wantErr: []string{"fake-country.mmdb", "no record has a country or continent"}, unsupported: true},
		{name: "truncated", path: write("truncated.mmdb", valid[:len(valid)/2]), wantErr: []string{"truncated.mmdb", "not a readable MaxMind DB"}},
		{name: "random bytes", path: write("random.mmdb", []byte(strings.Repeat("not a database\n", 100))), wantErr: []string{"random.mmdb", "not a readable MaxMind DB"}},
		{name: "empty", path: write("empty.mmdb", nil), wantErr: []string{"empty.mmdb", "not a readable MaxMind DB"}},
		{name: "corrupt search tree", path: write("corrupt-tree.mmdb", corruptTree(t, valid)), wantErr: []string{"corrupt-tree.mmdb", "reading networks"}},
		{name: "missing", path: filepath.Join(dir, "missing.mmdb"), wantErr: []string{"missing.mmdb", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.path)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				got := db.Info()
				want := tt.wantInfo
				want.Path, want.Description, want.BuildTime = tt.path, "meridian geo test fixture", got.BuildTime
				want.NodeCount, want.RecordSize, want.Size = got.NodeCount, got.RecordSize, got.Size
				if got != want {
					t.Errorf("Info() = %+v, want %+v", got, want)
				}
				if got.BuildTime.Unix() != 1_700_000_000 || got.NodeCount == 0 || got.RecordSize != 28 {
					t.Errorf("Info() metadata = %+v", got)
				}
				if fi, err := os.Stat(tt.path); err != nil || int64(got.Size) != fi.Size() {
					t.Errorf("Info().Size = %d, file: %v %v", got.Size, fi, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v (err: %v)", got, tt.unsupported, err)
			}
		})
	}
}

// corruptTree overwrites the search tree of a 28-bit-record database, past
// its first node, with pointers far beyond the data section.
func corruptTree(t *testing.T, b []byte) []byte {
	t.Helper()
	db, err := OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	treeBytes := int(db.Info().NodeCount) * 7 // 28-bit records: 7 bytes a node
	out := append([]byte(nil), b...)
	for i := 7 * 100; i < treeBytes; i++ {
		out[i] = 0xee
	}
	return out
}

func TestGeoIPLocateAllocs(t *testing.T) {
	db := openFixture(t, countryFixture())
	for _, a := range []string{"198.18.5.7", "2001:db8:1::53", "::ffff:192.0.2.1", "198.19.0.1"} {
		t.Run(a, func(t *testing.T) {
			addr := netip.MustParseAddr(a)
			if n := testing.AllocsPerRun(200, func() { db.Locate(addr) }); n != 0 {
				t.Errorf("Locate(%s) allocates %v times, want 0", a, n)
			}
		})
	}
}

func TestGeoIPRecord(t *testing.T) {
	db := openFixture(t, cityFixture())
	rec, err := db.Record(netip.MustParseAddr("::ffff:192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.City.Names.English != "Paris" || rec.Country.ISOCode != "FR" || rec.Location.Latitude == nil || math.Abs(*rec.Location.Latitude-48.8566) > 1e-9 {
		t.Errorf("Record = %+v", rec)
	}
}

// TestGeoIPLocateDamaged flips bytes in the tree and data sections of
// city and country databases: Open may refuse the result, but whatever it
// accepts must answer every lookup without panicking.
func TestGeoIPLocateDamaged(t *testing.T) {
	for _, f := range []fixture{cityFixture(), countryFixture()} {
		t.Run(f.dbType, func(t *testing.T) {
			orig := f.bytes(t)
			metaStart := bytes.LastIndex(orig, []byte("\xAB\xCD\xEFMaxMind.com"))
			rng := rand.New(rand.NewPCG(5, 6))
			opened := 0
			for range 300 {
				b := append([]byte(nil), orig...)
				for range 1 + rng.IntN(8) {
					b[rng.IntN(metaStart)] = byte(rng.Uint32())
				}
				db, err := OpenBytes(b)
				if err != nil {
					continue
				}
				opened++
				for range 50 {
					var a netip.Addr
					if rng.IntN(2) == 0 {
						a = netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.Uint32())})
						if rng.IntN(2) == 0 {
							a = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, rng.Uint32())))
						}
					} else {
						var b16 [16]byte
						binary.BigEndian.PutUint64(b16[:], 0x20010db800000000|rng.Uint64()>>32)
						binary.BigEndian.PutUint64(b16[8:], rng.Uint64())
						a = netip.AddrFrom16(b16)
					}
					loc := db.Locate(a)
					if loc.Network.IsValid() && !loc.Network.Contains(a.Unmap()) && loc.Network != v4Any {
						t.Errorf("Locate(%s) network %s does not contain it", a, loc.Network)
					}
				}
			}
			t.Logf("%d of 300 damaged copies opened", opened)
		})
	}
}
