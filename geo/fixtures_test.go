package geo

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// fixture describes a small MaxMind DB that the tests write with mmdbwriter.
// testdata/README.md lists them and tells how to dump them to files.
type fixture struct {
	dbType    string
	ipVersion int   // 4 or 6
	epoch     int64 // build_epoch; tells fixtures apart in reload tests
	nets      []fixtureNet
}

type fixtureNet struct {
	cidr string
	rec  mmdbtype.DataType
}

// bytes writes the fixture. Reserved networks are allowed so that the
// fixtures can use documentation and benchmarking addresses (RFC 5737,
// RFC 2544, RFC 3849).
func (f fixture) bytes(tb testing.TB) []byte {
	tb.Helper()
	epoch := f.epoch
	if epoch == 0 {
		epoch = 1_700_000_000
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            f.dbType,
		IPVersion:               f.ipVersion,
		BuildEpoch:              epoch,
		IncludeReservedNetworks: true,
		Languages:               []string{"en"},
		Description:             map[string]string{"en": "meridian geo test fixture"},
	})
	if err != nil {
		tb.Fatalf("mmdbwriter.New: %v", err)
	}
	for _, n := range f.nets {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			tb.Fatalf("fixture network %q: %v", n.cidr, err)
		}
		if err := tree.Insert(ipnet, n.rec); err != nil {
			tb.Fatalf("fixture insert %s: %v", n.cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		tb.Fatalf("fixture write: %v", err)
	}
	return buf.Bytes()
}

// file writes the fixture to dir/name and returns the path.
func (f fixture) file(tb testing.TB, dir, name string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, f.bytes(tb), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// rec builds a GeoIP2-style record. Empty strings leave the field out, as
// does a missing coordinate pair.
func rec(country, continent string, latLon ...float64) mmdbtype.Map {
	m := mmdbtype.Map{}
	if country != "" {
		m["country"] = mmdbtype.Map{
			"iso_code":   mmdbtype.String(country),
			"geoname_id": mmdbtype.Uint32(1),
			"names":      mmdbtype.Map{"en": mmdbtype.String("Name of " + country)},
		}
	}
	if continent != "" {
		m["continent"] = mmdbtype.Map{"code": mmdbtype.String(continent)}
	}
	if len(latLon) == 2 {
		m["location"] = mmdbtype.Map{
			"latitude":        mmdbtype.Float64(latLon[0]),
			"longitude":       mmdbtype.Float64(latLon[1]),
			"accuracy_radius": mmdbtype.Uint16(100),
		}
	}
	return m
}

// countryFixture is a GeoLite2-Country database covering IPv4 and IPv6,
// nested networks and records with missing fields.
func countryFixture() fixture {
	return fixture{dbType: "GeoLite2-Country", ipVersion: 6, nets: []fixtureNet{
		{"192.0.2.0/24", rec("US", "NA")},           // no location: point from our table
		{"198.18.0.0/16", rec("DE", "EU")},          // outer network...
		{"198.18.5.0/24", rec("FR", "EU")},          // ...with a nested one
		{"198.51.100.0/25", rec("", "EU")},          // continent only
		{"198.51.100.128/25", rec("JP", "")},        // no continent: from our table
		{"203.0.113.0/25", rec("", "", 10.5, 20.5)}, // location only
		{"203.0.113.128/26", rec("gb", "eu")},       // lower case codes
		{"203.0.113.192/26", mmdbtype.Map{"traits": mmdbtype.Map{"is_anycast": mmdbtype.Bool(true)}}}, // nothing we use
		{"2001:db8::/32", rec("NL", "EU")},
		{"2001:db8:1::/48", rec("BE", "EU", 50.8, 4.3)}, // nested, with its own location
		{"2001:db8:2::/48", rec("XX", "")},              // unknown code: kept, no point
	}}
}

// cityFixture is a GeoLite2-City database; city records carry a location.
func cityFixture() fixture {
	city := func(cc, cont, name string, lat, lon float64) mmdbtype.Map {
		m := rec(cc, cont, lat, lon)
		m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(name)}}
		m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("XX")}}
		return m
	}
	return fixture{dbType: "GeoLite2-City", ipVersion: 6, nets: []fixtureNet{
		{"192.0.2.0/24", city("FR", "EU", "Paris", 48.8566, 2.3522)},
		{"198.51.100.0/24", rec("CA", "NA")}, // a city database record without location
		{"2001:db8::/32", city("AU", "OC", "Sydney", -33.8688, 151.2093)},
	}}
}

// dbipCountryFixture is laid out like DB-IP's free country database.
func dbipCountryFixture() fixture {
	r := rec("IT", "EU")
	r["country"].(mmdbtype.Map)["is_in_european_union"] = mmdbtype.Bool(true)
	return fixture{dbType: "DBIP-Country-Lite", ipVersion: 6, nets: []fixtureNet{{"192.0.2.0/24", r}}}
}

// v4OnlyFixture is an IPv4 tree (ip_version 4).
func v4OnlyFixture() fixture {
	return fixture{dbType: "GeoIP2-Country", ipVersion: 4, nets: []fixtureNet{
		{"192.0.2.0/24", rec("SE", "EU")},
	}}
}

// asnFixture is a GeoLite2-ASN database: readable, but not ours.
func asnFixture() fixture {
	return fixture{dbType: "GeoLite2-ASN", ipVersion: 6, nets: []fixtureNet{
		{"192.0.2.0/24", mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(64496),
			"autonomous_system_organization": mmdbtype.String("Example"),
		}},
	}}
}

// TestGeoIPWriteFixtures dumps the fixtures as .mmdb files for inspection with
// mmdblookup when GEO_FIXTURE_DIR is set (see testdata/README.md).
func TestGeoIPWriteFixtures(t *testing.T) {
	dir := os.Getenv("GEO_FIXTURE_DIR")
	if dir == "" {
		t.Skip("GEO_FIXTURE_DIR not set")
	}
	for name, f := range map[string]fixture{
		"country.mmdb":      countryFixture(),
		"city.mmdb":         cityFixture(),
		"dbip-country.mmdb": dbipCountryFixture(),
		"v4-country.mmdb":   v4OnlyFixture(),
		"asn.mmdb":          asnFixture(),
	} {
		t.Logf("wrote %s", f.file(t, dir, name))
	}
}
