package geo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Default locations of Debian's tor-geoipdb files.
const (
	DefaultTorGeoIPv4 = "/usr/share/tor/geoip"
	DefaultTorGeoIPv6 = "/usr/share/tor/geoip6"
)

// BuiltDatabaseType is the database_type of databases BuildTorCountryDB
// writes. It names the record layout, which is GeoLite2-Country's (plus a
// location), because readers dispatch on this field: geoip2 libraries
// accept it, and gdnsd's plugin_geoip treats any type containing "Country"
// as country-level data (a type with neither "Country" nor "City" loads
// with a warning; TestGeoIPGdnsdAcceptsBuild checks this). Where the data
// comes from is said in the description, which names the IPFire Location
// database and its licence.
const BuiltDatabaseType = "GeoLite2-Country"

// BuildOptions configures BuildTorCountryDB.
type BuildOptions struct {
	V4Path string // tor "geoip" file (start,end,CC with integer addresses); "" to skip
	V6Path string // tor "geoip6" file (start,end,CC with IPv6 addresses); "" to skip

	// BuildTime overrides the build_epoch written. By default it is the
	// newest "# Generated:" date in the inputs' headers, so the same input
	// always gives the same bytes; without such a header it is one second
	// after the Unix epoch (mmdbwriter reads 0 as "now").
	BuildTime time.Time
}

// BuildStats counts what BuildTorCountryDB did. Range counts are per input
// line; prefix counts are per CIDR prefix a range was split into.
type BuildStats struct {
	RangesV4, RangesV6 int // data lines read from each file
	Prefixes           int // prefixes inserted
	Countries          int // distinct countries in the output

	Renamed       int // ranges whose code was replaced by its current one (UK→GB...)
	ContinentOnly int // ranges stored with a continent and no country (EU, AP, AN, CS)

	SkippedJunk      int            // ranges skipped: code with no place (??, ZZ, A1, A2, O1...)
	SkippedWithdrawn int            // ranges skipped: withdrawn code spanning continents (SU)
	SkippedCodes     map[string]int // ranges skipped, by code

	RefusedReserved int // prefixes the writer refused as reserved (private, documentation...)
	RefusedAliased  int // prefixes the writer refused as IPv4 aliases (::ffff:0:0/96, 2001::/32, 2002::/16)
	PartialRanges   int // ranges some, not all, of whose prefixes were refused
	RefusedRanges   int // ranges all of whose prefixes were refused

	BuildTime       time.Time // build_epoch written
	BuildTimeSource string    // "option", "input header" or "unknown"
	Bytes           int64     // bytes written to out
}

// Ranges is the number of data lines read from both files.
func (s BuildStats) Ranges() int { return s.RangesV4 + s.RangesV6 }

// torCode says what a code of the tor files means for our database.
type torCode struct {
	country   string // ISO code to store; "" for none
	continent string // continent to store when there is no country
	kind      codeKind
}

type codeKind int

const (
	codeCountry       codeKind = iota // a current ISO 3166-1 code
	codeRenamed                       // an old or non-ISO spelling of a current code
	codeContinentOnly                 // a region or withdrawn code whose continent is certain
	codeWithdrawn                     // a withdrawn code with no single continent: skipped
	codeJunk                          // not a place: skipped
)

// specialCodes lists the codes of the tor files that are not plain current
// ISO 3166-1 codes and have a meaning we keep. Any other code that is not in
// the country table is junk: "??" and "ZZ" (unknown), A1 A2 O1 (anonymous
// proxy, satellite, other), and non-ISO ones such as UN, AB or OS.
var specialCodes = map[string]torCode{
	"UK": {country: "GB", kind: codeRenamed}, // exceptionally reserved for GB
	"FX": {country: "FR", kind: codeRenamed}, // Metropolitan France
	"TP": {country: "TL", kind: codeRenamed}, // East Timor, before 2002
	"ZR": {country: "CD", kind: codeRenamed}, // Zaire, before 1997
	"EU": {continent: "EU", kind: codeContinentOnly},
	"AP": {continent: "AS", kind: codeContinentOnly}, // "Asia/Pacific region"; GeoIP Legacy also put it in AS
	// Netherlands Antilles, split in 2010 into CW, SX and BQ: which one is
	// unknown, but all three are in NA.
	"AN": {continent: "NA", kind: codeContinentOnly},
	// CS meant Czechoslovakia until 1993, then Serbia and Montenegro until
	// 2006: the country is ambiguous, the continent is not.
	"CS": {continent: "EU", kind: codeContinentOnly},
	"YU": {continent: "EU", kind: codeContinentOnly}, // Yugoslavia
	"SU": {kind: codeWithdrawn},                      // USSR: Europe and Asia
}

func classifyCode(code string) torCode {
	if c, ok := specialCodes[code]; ok {
		return c
	}
	if ValidCountry(code) {
		return torCode{country: code, kind: codeCountry}
	}
	return torCode{kind: codeJunk}
}

// BuildTorCountryDB writes to out a country database (GeoLite2-Country
// layout with a location: country.iso_code and names.en, continent.code and
// names.en, location.latitude/longitude set to the country's point) built
// from Debian's tor-geoipdb files. The output depends only on the input, so
// two builds from the same files are byte-identical.
//
// Each range is split into CIDR prefixes and inserted prefix by prefix:
// mmdbwriter refuses reserved and IPv4-alias networks, and inserting a whole
// range would stop at the first refusal with the rest of the range missing.
// Refused prefixes are counted and skipped. Malformed input fails the build.
func BuildTorCountryDB(ctx context.Context, out io.Writer, opts BuildOptions) (BuildStats, error) {
	stats := BuildStats{SkippedCodes: map[string]int{}}
	if opts.V4Path == "" && opts.V6Path == "" {
		return stats, errors.New("geoip build: no input file given")
	}
	var ranges []torRange
	var generated time.Time
	for _, in := range []struct {
		path string
		v6   bool
		n    *int
	}{{opts.V4Path, false, &stats.RangesV4}, {opts.V6Path, true, &stats.RangesV6}} {
		if in.path == "" {
			continue
		}
		rs, gen, err := readTorFile(ctx, in.path, in.v6)
		if err != nil {
			return stats, err
		}
		*in.n = len(rs)
		ranges = append(ranges, rs...)
		if gen.After(generated) {
			generated = gen
		}
	}

	switch {
	case !opts.BuildTime.IsZero():
		stats.BuildTime, stats.BuildTimeSource = opts.BuildTime.UTC().Truncate(time.Second), "option"
	case !generated.IsZero():
		stats.BuildTime, stats.BuildTimeSource = generated.UTC(), "input header"
	default:
		stats.BuildTime, stats.BuildTimeSource = time.Unix(1, 0).UTC(), "unknown"
	}
	if stats.BuildTime.Unix() <= 0 {
		return stats, fmt.Errorf("geoip build: build time %s is not after the Unix epoch", stats.BuildTime)
	}

	tree, err := mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:   stats.BuildTime.Unix(),
		DatabaseType: BuiltDatabaseType,
		Description: map[string]string{
			"en": "Meridian country database built from Debian tor-geoipdb, converted from the IPFire Location database (https://location.ipfire.org/, CC BY-SA 4.0)",
		},
		Languages:  []string{"en"},
		IPVersion:  6,
		RecordSize: 28,
		// Keys are "country/continent": each distinct value is built once
		// below, so hashing its serialisation for every insert is waste.
		KeyGenerator: codeKeys{},
	})
	if err != nil {
		return stats, fmt.Errorf("geoip build: %w", err)
	}

	values := map[string]mmdbtype.Map{}
	countries := map[string]bool{}
	var prefixes []netip.Prefix
	for i, r := range ranges {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return stats, fmt.Errorf("geoip build: %w", err)
			}
		}
		tc := classifyCode(r.code)
		switch tc.kind {
		case codeJunk:
			stats.SkippedJunk++
			stats.SkippedCodes[r.code]++
			continue
		case codeWithdrawn:
			stats.SkippedWithdrawn++
			stats.SkippedCodes[r.code]++
			continue
		case codeRenamed:
			stats.Renamed++
		case codeContinentOnly:
			stats.ContinentOnly++
		}
		cont := tc.continent
		if tc.country != "" {
			cont, _ = CountryContinent(tc.country)
		}
		key := tc.country + "/" + cont
		value, ok := values[key]
		if !ok {
			value = recordValue(tc.country, cont)
			values[key] = value
		}

		prefixes = appendRangePrefixes(prefixes[:0], r.start, r.end)
		inserted := 0
		for _, p := range prefixes {
			err := tree.Insert(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, value)
			var reserved *mmdbwriter.ReservedNetworkError
			var aliased *mmdbwriter.AliasedNetworkError
			switch {
			case err == nil:
				inserted++
			case errors.As(err, &reserved):
				stats.RefusedReserved++
			case errors.As(err, &aliased):
				stats.RefusedAliased++
			default:
				return stats, fmt.Errorf("geoip build: inserting %s (%s): %w", p, r, err)
			}
		}
		stats.Prefixes += inserted
		switch {
		case inserted == 0:
			stats.RefusedRanges++
		case inserted < len(prefixes):
			stats.PartialRanges++
		}
		if inserted > 0 && tc.country != "" {
			countries[tc.country] = true
		}
	}
	stats.Countries = len(countries)
	if err := ctx.Err(); err != nil {
		return stats, fmt.Errorf("geoip build: %w", err)
	}
	n, err := tree.WriteTo(out)
	stats.Bytes = n
	if err != nil {
		return stats, fmt.Errorf("geoip build: writing database: %w", err)
	}
	return stats, nil
}

// recordValue is the record stored for a country (and its continent), or
// for a continent alone when country is "".
func recordValue(country, cont string) mmdbtype.Map {
	m := mmdbtype.Map{}
	lat, lon, _ := ContinentPoint(cont)
	if cont != "" {
		name, _ := ContinentName(cont)
		m["continent"] = mmdbtype.Map{
			"code":  mmdbtype.String(cont),
			"names": mmdbtype.Map{"en": mmdbtype.String(name)},
		}
	}
	if country != "" {
		name, _ := CountryName(country)
		m["country"] = mmdbtype.Map{
			"iso_code": mmdbtype.String(country),
			"names":    mmdbtype.Map{"en": mmdbtype.String(name)},
		}
		lat, lon, _ = CountryPoint(country)
	}
	m["location"] = mmdbtype.Map{
		"latitude":  mmdbtype.Float64(lat),
		"longitude": mmdbtype.Float64(lon),
	}
	return m
}

// codeKeys keys the writer's value deduplication by country and continent
// code, which determine a value built by recordValue entirely.
type codeKeys struct{}

func (codeKeys) Key(v mmdbtype.DataType) ([]byte, error) {
	m, ok := v.(mmdbtype.Map)
	if !ok {
		return nil, fmt.Errorf("unexpected record type %T", v)
	}
	key := []byte(nil)
	for _, field := range []mmdbtype.String{"country", "continent"} {
		sub, _ := m[field].(mmdbtype.Map)
		var code mmdbtype.String
		if sub != nil {
			code, _ = sub["iso_code"].(mmdbtype.String)
			if field == "continent" {
				code, _ = sub["code"].(mmdbtype.String)
			}
		}
		key = append(key, code...)
		key = append(key, '/')
	}
	return key, nil
}

// torRange is one data line of a tor geoip file.
type torRange struct {
	start, end netip.Addr
	code       string
}

func (r torRange) String() string { return fmt.Sprintf("%s-%s %s", r.start, r.end, r.code) }

// readTorFile parses a tor geoip (v6=false) or geoip6 (v6=true) file. It
// also returns the date of its "# Generated:" header line, if any.
func readTorFile(ctx context.Context, path string, v6 bool) ([]torRange, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("geoip build: %w", err)
	}
	defer f.Close()
	var (
		ranges    []torRange
		generated time.Time
		lineNo    int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNo++
		if lineNo%16384 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, time.Time{}, fmt.Errorf("geoip build: %w", err)
			}
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if t, ok := parseGenerated(line); ok && t.After(generated) {
				generated = t
			}
			continue
		}
		r, err := parseTorLine(line, v6)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("geoip build: %s:%d: %w", path, lineNo, err)
		}
		ranges = append(ranges, r)
	}
	if err := sc.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("geoip build: reading %s: %w", path, err)
	}
	return ranges, generated, nil
}

// parseGenerated reads the export date tor copies from the IPFire header,
// e.g. "# Generated: Thu, 25 Jun 2026 04:33:59 GMT".
func parseGenerated(line string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(line, "#")), "Generated:")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC1123, strings.TrimSpace(rest))
	return t, err == nil
}

func parseTorLine(line string, v6 bool) (torRange, error) {
	fields := strings.Split(line, ",")
	if len(fields) != 3 {
		return torRange{}, fmt.Errorf("want start,end,CC, got %q", line)
	}
	start, err := parseTorAddr(strings.TrimSpace(fields[0]), v6)
	if err != nil {
		return torRange{}, err
	}
	end, err := parseTorAddr(strings.TrimSpace(fields[1]), v6)
	if err != nil {
		return torRange{}, err
	}
	if end.Less(start) {
		return torRange{}, fmt.Errorf("range %s-%s ends before it starts", start, end)
	}
	code := strings.ToUpper(strings.TrimSpace(fields[2]))
	if len(code) != 2 {
		return torRange{}, fmt.Errorf("country code %q is not two characters", code)
	}
	return torRange{start: start, end: end, code: code}, nil
}

// parseTorAddr reads an address of the IPv4 file (a decimal integer, or a
// dotted quad) or of the IPv6 file (an IPv6 address).
func parseTorAddr(s string, v6 bool) (netip.Addr, error) {
	if v6 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Is4In6() {
			return netip.Addr{}, fmt.Errorf("bad IPv6 address %q", s)
		}
		return a.WithZone(""), nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("bad IPv4 address %q", s)
	}
	return a, nil
}

// appendRangePrefixes appends to dst the shortest list of CIDR prefixes
// covering exactly [start, end], in address order. start and end must be of
// the same family with start <= end.
func appendRangePrefixes(dst []netip.Prefix, start, end netip.Addr) []netip.Prefix {
	width := start.BitLen()
	s, e := u128From(start), u128From(end)
	for {
		// The block is as large as both the alignment of s and the number
		// of addresses left allow.
		n := e.sub(s) // addresses left, minus one
		k := width
		if !n.isMax(width) {
			k = n.add1().log2()
		}
		k = min(k, s.trailingZeros(), width)
		dst = append(dst, netip.PrefixFrom(s.addr(width), width-k))
		if k == width || n.lowBitsSet(k) {
			return dst // the block ended exactly at e
		}
		s = s.addPow2(k)
	}
}

// u128 is an address as a 128-bit unsigned integer (IPv4 in the low bits).
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var u u128
	for i := range 8 {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[8+i])
	}
	return u
}

func (u u128) addr(width int) netip.Addr {
	if width == 32 {
		return netip.AddrFrom4([4]byte{byte(u.lo >> 24), byte(u.lo >> 16), byte(u.lo >> 8), byte(u.lo)})
	}
	var b [16]byte
	for i := range 8 {
		b[7-i] = byte(u.hi >> (8 * i))
		b[15-i] = byte(u.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (u u128) sub(v u128) u128 {
	lo := u.lo - v.lo
	borrow := uint64(0)
	if u.lo < v.lo {
		borrow = 1
	}
	return u128{hi: u.hi - v.hi - borrow, lo: lo}
}

func (u u128) add1() u128 {
	if u.lo == ^uint64(0) {
		return u128{hi: u.hi + 1}
	}
	return u128{hi: u.hi, lo: u.lo + 1}
}

// addPow2 returns u + 2^k for k < 128.
func (u u128) addPow2(k int) u128 {
	if k >= 64 {
		return u128{hi: u.hi + 1<<(k-64), lo: u.lo}
	}
	lo := u.lo + 1<<k
	hi := u.hi
	if lo < u.lo {
		hi++
	}
	return u128{hi: hi, lo: lo}
}

// isMax reports whether u is the largest width-bit value.
func (u u128) isMax(width int) bool {
	if width == 32 {
		return u.hi == 0 && u.lo == 1<<32-1
	}
	return u.hi == ^uint64(0) && u.lo == ^uint64(0)
}

// lowBitsSet reports whether u == 2^k - 1.
func (u u128) lowBitsSet(k int) bool {
	switch {
	case k == 0:
		return u.hi == 0 && u.lo == 0
	case k < 64:
		return u.hi == 0 && u.lo == 1<<k-1
	case k == 64:
		return u.hi == 0 && u.lo == ^uint64(0)
	default:
		return u.lo == ^uint64(0) && u.hi == 1<<(k-64)-1
	}
}

// log2 returns the index of the highest set bit of a non-zero u.
func (u u128) log2() int {
	if u.hi != 0 {
		return 127 - bits.LeadingZeros64(u.hi)
	}
	return 63 - bits.LeadingZeros64(u.lo)
}

func (u u128) trailingZeros() int {
	if u.lo != 0 {
		return bits.TrailingZeros64(u.lo)
	}
	if u.hi != 0 {
		return 64 + bits.TrailingZeros64(u.hi)
	}
	return 128
}
