// Package geotest writes small country databases (GeoLite2-Country
// layout, with mmdbwriter) for the tests of packages that steer by
// location. The geo package's own tests keep their fixtures in
// geo/fixtures_test.go; see geo/testdata/README.md.
package geotest

import (
	"bytes"
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/meridian-gslb/meridian/geo"
)

// Net is one network of a test database.
type Net struct {
	CIDR      string
	Country   string // ISO code; "" leaves it out
	Continent string // "" takes the country's continent from geo's tables
}

// CountryDB builds a database holding nets. Reserved and documentation
// networks are allowed, so tests can use RFC 5737 and RFC 3849 addresses.
func CountryDB(tb testing.TB, nets ...Net) []byte {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		IPVersion:               6,
		BuildEpoch:              1_700_000_000,
		IncludeReservedNetworks: true,
		Description:             map[string]string{"en": "meridian test database"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			tb.Fatalf("network %q: %v", n.CIDR, err)
		}
		rec := mmdbtype.Map{}
		cont := n.Continent
		if n.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)}
			if cont == "" {
				cont, _ = geo.CountryContinent(n.Country)
			}
		}
		if cont != "" {
			rec["continent"] = mmdbtype.Map{"code": mmdbtype.String(cont)}
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			tb.Fatalf("insert %s: %v", n.CIDR, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Open builds a database and opens it with the geo package.
func Open(tb testing.TB, nets ...Net) *geo.DB {
	tb.Helper()
	db, err := geo.OpenBytes(CountryDB(tb, nets...))
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// WriteFile builds a database into path.
func WriteFile(tb testing.TB, path string, nets ...Net) {
	tb.Helper()
	if err := os.WriteFile(path, CountryDB(tb, nets...), 0o644); err != nil {
		tb.Fatal(err)
	}
}
