package geo

import (
	"math"
	"strings"
	"testing"
)

// isoCodes is the ISO 3166-1 alpha-2 list (249 codes), written out here
// independently of the table so that a code missing from it is caught.
const isoCodes = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI
KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP
MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX
SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU
WF WS YE YT ZA ZM ZW`

func TestGeoIPCountryTable(t *testing.T) {
	codes := strings.Fields(isoCodes)
	if len(codes) != 249 {
		t.Fatalf("test list has %d codes, want 249", len(codes))
	}
	want := map[string]bool{"XK": true}
	for _, cc := range codes {
		want[cc] = true
	}
	for cc := range countries {
		if !want[cc] {
			t.Errorf("table has %q, which is not an ISO 3166-1 code", cc)
		}
	}
	for cc := range want {
		t.Run(cc, func(t *testing.T) {
			if !ValidCountry(cc) {
				t.Fatalf("ValidCountry(%q) = false", cc)
			}
			cont, ok := CountryContinent(cc)
			if !ok || !ValidContinent(cont) {
				t.Errorf("CountryContinent(%q) = %q, %v", cc, cont, ok)
			}
			lat, lon, ok := CountryPoint(cc)
			if !ok || lat < -90 || lat > 90 || lon < -180 || lon > 180 || (lat == 0 && lon == 0) {
				t.Errorf("CountryPoint(%q) = %v, %v, %v", cc, lat, lon, ok)
			}
			if name, ok := CountryName(cc); !ok || name == "" {
				t.Errorf("CountryName(%q) = %q, %v", cc, name, ok)
			}
			// A point on the wrong continent is over 9000 km from
			// that continent's point (Pitcairn, the farthest right
			// one, is 8300 km from Oceania's).
			clat, clon, _ := ContinentPoint(cont)
			if d := DistanceKm(lat, lon, clat, clon); d > 9000 {
				t.Errorf("%s is %.0f km from the centre of %s", cc, d, cont)
			}
		})
	}
}

func TestGeoIPCountrySpotChecks(t *testing.T) {
	tests := []struct {
		cc, continent string
		lat, lon      float64 // within 1°
	}{
		{"US", "NA", 38.9, -77.0},
		{"GB", "EU", 51.5, -0.1},
		{"RU", "EU", 55.8, 37.6},
		{"TR", "AS", 39.9, 32.9},
		{"JP", "AS", 35.7, 139.7},
		{"BR", "SA", -15.8, -47.9},
		{"AU", "OC", -35.3, 149.1},
		{"ZA", "AF", -25.7, 28.2},
		{"EG", "AF", 30.0, 31.2},
		{"MX", "NA", 19.4, -99.1},
		{"PA", "NA", 9.0, -79.5},
		{"AQ", "AN", -77.8, 166.7},
		{"NZ", "OC", -41.3, 174.8},
	}
	for _, tt := range tests {
		t.Run(tt.cc, func(t *testing.T) {
			cont, _ := CountryContinent(tt.cc)
			lat, lon, _ := CountryPoint(tt.cc)
			if cont != tt.continent || math.Abs(lat-tt.lat) > 1 || math.Abs(lon-tt.lon) > 1 {
				t.Errorf("%s: continent %s point %v,%v; want %s near %v,%v", tt.cc, cont, lat, lon, tt.continent, tt.lat, tt.lon)
			}
		})
	}
	for _, bad := range []string{"", "us", "UK", "EU", "ZZ", "??", "USA"} {
		if ValidCountry(bad) {
			t.Errorf("ValidCountry(%q) = true", bad)
		}
	}
	for _, code := range []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"} {
		lat, lon, ok := ContinentPoint(code)
		if !ValidContinent(code) || !ok || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			t.Errorf("continent %s: valid %v point %v,%v,%v", code, ValidContinent(code), lat, lon, ok)
		}
	}
	for _, bad := range []string{"", "eu", "AP", "ZZ"} {
		if ValidContinent(bad) {
			t.Errorf("ValidContinent(%q) = true", bad)
		}
	}
}

func TestGeoIPDistanceKm(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tol              float64
	}{
		{"same point", 48.857, 2.352, 48.857, 2.352, 0, 1e-9},
		{"London-Paris", 51.507, -0.128, 48.857, 2.352, 343.5, 2},
		{"New York-Los Angeles", 40.713, -74.006, 34.052, -118.244, 3936, 10},
		{"Sydney-Tokyo", -33.869, 151.209, 35.677, 139.650, 7800, 30},
		{"quarter meridian", 0, 0, 90, 0, math.Pi * earthRadiusKm / 2, 1e-6},
		{"antipodes", 0, 0, 0, 180, math.Pi * earthRadiusKm, 1e-6},
		{"across the date line", 0, 179.5, 0, -179.5, 111.2, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DistanceKm(tt.lat1, tt.lon1, tt.lat2, tt.lon2)
			if math.Abs(got-tt.want) > tt.tol {
				t.Errorf("DistanceKm = %.3f, want %.3f ± %v", got, tt.want, tt.tol)
			}
			if back := DistanceKm(tt.lat2, tt.lon2, tt.lat1, tt.lon1); math.Abs(back-got) > 1e-9 {
				t.Errorf("not symmetric: %v vs %v", got, back)
			}
		})
	}
}
