package geo

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGeoIPRangePrefixes(t *testing.T) {
	tests := []struct {
		name       string
		start, end string
		want       []string
	}{
		{"single v4", "192.0.2.1", "192.0.2.1", []string{"192.0.2.1/32"}},
		{"aligned v4", "192.0.2.0", "192.0.2.255", []string{"192.0.2.0/24"}},
		{"unaligned v4", "1.0.1.1", "1.0.1.6", []string{"1.0.1.1/32", "1.0.1.2/31", "1.0.1.4/31", "1.0.1.6/32"}},
		{"crossing a /8", "9.255.255.0", "10.0.0.255", []string{"9.255.255.0/24", "10.0.0.0/24"}},
		{"all of v4", "0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"top of v4", "255.255.255.0", "255.255.255.255", []string{"255.255.255.0/24"}},
		{"last v4 address", "255.255.255.255", "255.255.255.255", []string{"255.255.255.255/32"}},
		{"upper half of v4", "128.0.0.0", "255.255.255.255", []string{"128.0.0.0/1"}},
		{"all but first v4", "0.0.0.1", "0.0.0.3", []string{"0.0.0.1/32", "0.0.0.2/31"}},
		{"aligned v6", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", []string{"2001:db8::/64"}},
		{"v6 across 64 bits", "2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8:0:1::", []string{"2001:db8::ffff:ffff:ffff:ffff/128", "2001:db8:0:1::/128"}},
		{"unaligned v6 from tor", "2001:4c08:2002::", "2001:4c08:2003::cf", []string{"2001:4c08:2002::/48", "2001:4c08:2003::/121", "2001:4c08:2003::80/122", "2001:4c08:2003::c0/124"}},
		{"all of v6", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
		{"last v6 address", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}},
		{"upper half of v6", "8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"8000::/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendRangePrefixes(nil, netip.MustParseAddr(tt.start), netip.MustParseAddr(tt.end))
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if !slices.Equal(gotS, tt.want) {
				t.Errorf("prefixes(%s, %s) = %v, want %v", tt.start, tt.end, gotS, tt.want)
			}
		})
	}
}

// TestGeoIPRangePrefixesRandom checks random ranges for the properties that
// define the answer: the prefixes are in order, contiguous, cover exactly
// the range, and no two neighbours could be merged into one.
func TestGeoIPRangePrefixesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			// Keep most ranges short enough to be interesting.
			for i := 0; i < rng.IntN(14); i++ {
				b[i] = 0x20
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
	}
	for i := range 2000 {
		v6 := i%2 == 1
		a, b := randAddr(v6), randAddr(v6)
		if b.Less(a) {
			a, b = b, a
		}
		ps := appendRangePrefixes(nil, a, b)
		next := a
		for j, p := range ps {
			if p.Addr() != next || p.Masked() != p {
				t.Fatalf("range %s-%s: prefix %d %s does not start at %s or is not aligned: %v", a, b, j, p, next, ps)
			}
			last := lastAddr(p)
			if j > 0 && ps[j-1].Bits() == p.Bits() {
				if parent, _ := p.Addr().Prefix(p.Bits() - 1); parent.Addr() == ps[j-1].Addr() {
					t.Fatalf("range %s-%s: %s and %s could be one prefix", a, b, ps[j-1], p)
				}
			}
			if j == len(ps)-1 {
				if last != b {
					t.Fatalf("range %s-%s: last prefix %s ends at %s", a, b, p, last)
				}
			} else {
				next = last.Next()
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// torV4 and torV6 exercise every special case of the tor files; the
// comment on each line says what the builder must do with it.
const torV4 = `# This file has been converted from the IPFire Location database
#
# Generated: Mon, 02 Jan 2023 03:04:05 GMT

16777216,16777471,AU
16777473,16777478,CN
33554432,33554687,EU
33554688,33554943,AP
33554944,33555199,UK
33555200,33555455,AN
33555456,33555711,CS
33555712,33555967,??
33555968,33556223,ZZ
33556224,33556479,A1
33556480,33556735,SU
3232235520,3232235775,US
167771904,167772415,de
`

// Line by line: 1.0.0.0/24 AU; 1.0.1.1-1.0.1.6 CN, not CIDR-aligned (4
// prefixes); 2.0.0.0/24 EU and 2.0.1.0/24 AP, continent only; 2.0.2.0/24
// UK, stored as GB; 2.0.3.0/24 AN and 2.0.4.0/24 CS, withdrawn, continent
// only; 2.0.5-7.0/24 ??, ZZ, A1, junk; 2.0.8.0/24 SU, withdrawn, skipped;
// 192.168.0.0/24 reserved, refused; 9.255.255.0-10.0.0.255 DE in lower
// case, half reserved (10/8), so partly refused.

const torV6 = `# Generated: Tue, 03 Jan 2023 03:04:05 GMT
2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,IE
2002::,2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff,JP
2001::,2001:0:ffff:ffff:ffff:ffff:ffff:ffff,??
2001:4c08:2002::,2001:4c08:2003::cf,GB
2a05:5500::,2a05:5500:ffff:ffff:ffff:ffff:ffff:ffff,UK
2001:678::,2001:678:0:ffff:ffff:ffff:ffff:ffff,EU
2400:cb00::,2400:cb00:ffff:ffff:ffff:ffff:ffff:ffff,AP
2401:b60:1a10::,2401:b60:1a1f:ffff:ffff:ffff:ffff:ffff,AN
2a14:1c3:1000::,2a14:1c3:17ff:ffff:ffff:ffff:ffff:ffff,OS
fc00::,fc00::ffff,US
2001:1ff:ffff:ffff::,2001:200:0:ffff:ffff:ffff:ffff:ffff,JP
`

// Line by line: IE; 2002::/16 (6to4), an IPv4 alias, refused; Teredo with
// ??, junk; GB not CIDR-aligned (4 prefixes); UK as GB; EU, AP, AN
// continent only; OS, not an ISO code, junk; fc00::/7 unique local,
// refused; a JP range whose first /64 is in reserved 2001:100::/24 and
// whose /48 is not, partly refused.

var torWantStats = BuildStats{
	RangesV4: 13, RangesV6: 11,
	Prefixes:         11 + 10,
	Countries:        6, // AU CN DE GB IE JP
	Renamed:          2,
	ContinentOnly:    7,
	SkippedJunk:      5,
	SkippedWithdrawn: 1,
	SkippedCodes:     map[string]int{"??": 2, "ZZ": 1, "A1": 1, "OS": 1, "SU": 1},
	RefusedReserved:  4,
	RefusedAliased:   1,
	PartialRanges:    2,
	RefusedRanges:    3,
	BuildTime:        time.Date(2023, 1, 3, 3, 4, 5, 0, time.UTC),
	BuildTimeSource:  "input header",
}

func writeTorInput(t *testing.T) (v4, v6 string) {
	t.Helper()
	dir := t.TempDir()
	v4, v6 = filepath.Join(dir, "geoip"), filepath.Join(dir, "geoip6")
	if err := os.WriteFile(v4, []byte(torV4), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v6, []byte(torV6), 0o644); err != nil {
		t.Fatal(err)
	}
	return v4, v6
}

func TestGeoIPBuildSynthetic(t *testing.T) {
	v4, v6 := writeTorInput(t)
	var out bytes.Buffer
	stats, err := BuildTorCountryDB(context.Background(), &out, BuildOptions{V4Path: v4, V6Path: v6})
	if err != nil {
		t.Fatal(err)
	}
	want := torWantStats
	want.Bytes = int64(out.Len())
	if !reflect.DeepEqual(stats, want) {
		t.Errorf("stats =\n%+v\nwant\n%+v", stats, want)
	}

	var again bytes.Buffer
	if _, err := BuildTorCountryDB(context.Background(), &again, BuildOptions{V4Path: v4, V6Path: v6}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Errorf("two builds from the same input differ")
	}

	db, err := OpenBytes(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	info := db.Info()
	if info.DatabaseType != BuiltDatabaseType || info.Schema != SchemaCountry || !info.BuildTime.Equal(want.BuildTime) ||
		info.Countries != 6 || info.Records != 6+3 || !strings.Contains(info.Description, "tor-geoipdb") {
		t.Errorf("Info() = %+v", info)
	}

	tests := []struct {
		addr string
		want Location
	}{
		{"1.0.0.1", at("AU", "OC", "1.0.0.0/24")},
		{"::ffff:1.0.0.1", at("AU", "OC", "1.0.0.0/24")},
		{"2002:100:1::", at("AU", "OC", "2002:100::/40")}, // 6to4 alias of 1.0.0.1
		{"1.0.1.0", Location{}},
		{"1.0.1.1", at("CN", "AS", "1.0.1.1/32")},
		{"1.0.1.3", at("CN", "AS", "1.0.1.2/31")},
		{"1.0.1.6", at("CN", "AS", "1.0.1.6/32")},
		{"1.0.1.7", Location{}},
		{"2.0.0.1", atContinent("EU", "2.0.0.0/24")},
		{"2.0.1.1", atContinent("AS", "2.0.1.0/24")},
		{"2.0.2.1", at("GB", "EU", "2.0.2.0/24")},
		{"2.0.3.1", atContinent("NA", "2.0.3.0/24")},
		{"2.0.4.1", atContinent("EU", "2.0.4.0/24")},
		{"2.0.5.1", Location{}},
		{"2.0.7.1", Location{}},
		{"2.0.8.1", Location{}},
		{"192.168.0.1", Location{}},
		{"9.255.255.1", at("DE", "EU", "9.255.255.0/24")},
		{"10.0.0.1", Location{}},
		{"2a00:1450::1", at("IE", "EU", "2a00:1450::/32")},
		{"2001:4c08:2003::c5", at("GB", "EU", "2001:4c08:2003::c0/124")},
		{"2001:4c08:2003::d0", Location{}},
		{"2a05:5500::1", at("GB", "EU", "2a05:5500::/32")},
		{"2001:678::1", atContinent("EU", "2001:678::/48")},
		{"2400:cb00::1", atContinent("AS", "2400:cb00::/32")},
		{"2401:b60:1a10::1", atContinent("NA", "2401:b60:1a10::/44")},
		{"2a14:1c3:1000::1", Location{}},
		{"fc00::1", Location{}},
		{"2001:1ff:ffff:ffff::1", Location{}},
		{"2001:200::1", at("JP", "AS", "2001:200::/48")},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := db.Locate(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Locate(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
		})
	}

	rec, err := db.Record(netip.MustParseAddr("2.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Country.ISOCode != "GB" || rec.Country.Names.English != "United Kingdom" || rec.Continent.Code != "EU" ||
		rec.Continent.Names.English != "Europe" || !rec.Location.HasCoordinates() {
		t.Errorf("Record(2.0.2.1) = %+v", rec)
	}
}

func TestGeoIPBuildOptions(t *testing.T) {
	v4, v6 := writeTorInput(t)
	noHeader := filepath.Join(t.TempDir(), "geoip")
	if err := os.WriteFile(noHeader, []byte("16777216,16777471,AU\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	tests := []struct {
		name       string
		opts       BuildOptions
		wantTime   time.Time
		wantSource string
		wantRanges [2]int
	}{
		{"header date", BuildOptions{V4Path: v4, V6Path: v6}, time.Date(2023, 1, 3, 3, 4, 5, 0, time.UTC), "input header", [2]int{13, 11}},
		{"v4 only", BuildOptions{V4Path: v4}, time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC), "input header", [2]int{13, 0}},
		{"v6 only", BuildOptions{V6Path: v6}, time.Date(2023, 1, 3, 3, 4, 5, 0, time.UTC), "input header", [2]int{0, 11}},
		{"option wins", BuildOptions{V4Path: v4, BuildTime: fixed}, fixed.Truncate(time.Second), "option", [2]int{13, 0}},
		{"no header", BuildOptions{V4Path: noHeader}, time.Unix(1, 0).UTC(), "unknown", [2]int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			stats, err := BuildTorCountryDB(context.Background(), &out, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !stats.BuildTime.Equal(tt.wantTime) || stats.BuildTimeSource != tt.wantSource ||
				stats.RangesV4 != tt.wantRanges[0] || stats.RangesV6 != tt.wantRanges[1] {
				t.Errorf("stats = %+v", stats)
			}
			db, err := OpenBytes(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := db.Info().BuildTime; !got.Equal(tt.wantTime) {
				t.Errorf("build_epoch = %v, want %v", got, tt.wantTime)
			}
		})
	}
}

func TestGeoIPBuildErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	v4, _ := writeTorInput(t)
	tests := []struct {
		name    string
		ctx     context.Context
		opts    BuildOptions
		wantErr string
	}{
		{"no input", context.Background(), BuildOptions{}, "no input file"},
		{"missing file", context.Background(), BuildOptions{V4Path: filepath.Join(dir, "nope")}, "no such file"},
		{"two fields", context.Background(), BuildOptions{V4Path: file("two", "# x\n1,2\n")}, "two:2: want start,end,CC"},
		{"end before start", context.Background(), BuildOptions{V4Path: file("rev", "5,3,US\n")}, "rev:1: range 0.0.0.5-0.0.0.3 ends before it starts"},
		{"bad v4 address", context.Background(), BuildOptions{V4Path: file("badv4", "x,3,US\n")}, `badv4:1: bad IPv4 address "x"`},
		{"v4 number too large", context.Background(), BuildOptions{V4Path: file("big", "4294967296,4294967297,US\n")}, `big:1: bad IPv4 address "4294967296"`},
		{"v6 in v4 file", context.Background(), BuildOptions{V4Path: file("v6in4", "2001::,2001::1,US\n")}, `v6in4:1: bad IPv4 address "2001::"`},
		{"v4 in v6 file", context.Background(), BuildOptions{V6Path: file("v4in6", "192.0.2.0,192.0.2.1,US\n")}, `v4in6:1: bad IPv6 address "192.0.2.0"`},
		{"long code", context.Background(), BuildOptions{V4Path: file("code", "1,2,USA\n")}, `code:1: country code "USA" is not two characters`},
		{"cancelled", cancelled, BuildOptions{V4Path: v4}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := BuildTorCountryDB(tt.ctx, &out, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.ctx.Err() != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want it to wrap context.Canceled", err)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes on error", out.Len())
			}
		})
	}
}
