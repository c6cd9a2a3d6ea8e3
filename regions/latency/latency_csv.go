package latency

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Entry says how fast one region is for one client network.
type Entry struct {
	Prefix netip.Prefix
	Region string
	RTTms  float64
}

// MaxRTTms bounds a latency entry; anything slower is a measuring
// error, not a route.
const MaxRTTms = 60_000

// ParseCSV reads "cidr,region,rtt_ms" lines. Blank lines and lines
// starting with # are skipped, as is a header line naming the columns.
// Every problem is reported with its line number; nothing is returned
// unless the whole input is valid. A prefix may appear once per region.
func ParseCSV(r io.Reader) ([]Entry, error) { return ParseCSVFor(r, nil) }

// ParseCSVFor is ParseCSV that also refuses region names unknown says
// are not regions (nil: every valid name is one), naming the first line
// of each such region and how many lines name it. unknown is called once
// per region name, in the order of their first lines, after the whole
// input is read, and says whether the name is unknown and what to add
// (a suggestion, "did you mean …?").
func ParseCSVFor(r io.Reader, unknown func(region string) (bad bool, hint string)) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var out []Entry
	var errs []error
	// Duplicates are found with pointer-free keys (address, length, region
	// number): a table of a million prefixes then costs the garbage
	// collector nothing to scan.
	type key struct {
		addr   [16]byte
		bits   uint8
		region uint16
	}
	seen := map[key]int32{}
	regionIDs := map[string]uint16{}
	// Each region by id: its name, first line and entries.
	type regionUse struct {
		name     string
		first, n int
	}
	var uses []regionUse
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if line == 1 && strings.HasPrefix(strings.ToLower(text), "cidr,") {
			continue
		}
		e, err := parseLatencyLine(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			if len(errs) >= 20 {
				errs = append(errs, errors.New("too many errors"))
				break
			}
			continue
		}
		id, ok := regionIDs[e.Region]
		if !ok {
			if len(regionIDs) == math.MaxUint16 {
				errs = append(errs, fmt.Errorf("line %d: more than %d regions", line, math.MaxUint16))
				break
			}
			id = uint16(len(regionIDs))
			regionIDs[e.Region] = id
			uses = append(uses, regionUse{name: e.Region, first: line})
		}
		uses[id].n++
		// As16 puts IPv4 in ::ffff:0:0/96, which IPv6 entries may not use
		// (parseLatencyLine refuses them), so the families cannot collide.
		k := key{addr: e.Prefix.Addr().As16(), bits: uint8(e.Prefix.Bits()), region: id}
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s for region %s already given on line %d", line, e.Prefix, e.Region, first))
			continue
		}
		seen[k] = int32(line)
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	for _, u := range uses {
		if unknown == nil {
			break
		}
		bad, hint := unknown(u.name)
		if !bad {
			continue
		}
		msg := fmt.Sprintf("line %d: region %q does not exist", u.first, u.name)
		if u.n > 1 {
			msg += fmt.Sprintf(" (named on %d lines)", u.n)
		}
		if hint != "" {
			msg += "; " + hint
		}
		errs = append(errs, errors.New(msg))
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
		return nil, fmt.Errorf("latency table: %w", errors.Join(errs...))
	}
	return out, nil
}

// lineOf is the line number an error of ParseCSVFor starts with, to
// list the errors in the order of the input; those without one go last.
func lineOf(err error) int {
	var n int
	if _, e := fmt.Sscanf(err.Error(), "line %d:", &n); e != nil {
		return math.MaxInt
	}
	return n
}

// CountRegions counts the entries of each region in a table's CSV as
// FormatCSV writes it (the form stored), without parsing the prefixes.
func CountRegions(csv []byte) map[string]int {
	out := map[string]int{}
	for len(csv) > 0 {
		line := csv
		if i := bytes.IndexByte(csv, '\n'); i >= 0 {
			line, csv = csv[:i], csv[i+1:]
		} else {
			csv = nil
		}
		_, rest, ok := bytes.Cut(line, []byte{','})
		if !ok {
			continue
		}
		region, _, _ := bytes.Cut(rest, []byte{','})
		out[string(bytes.TrimSpace(region))]++
	}
	return out
}

func parseLatencyLine(text string) (Entry, error) {
	f := strings.Split(text, ",")
	if len(f) != 3 {
		return Entry{}, fmt.Errorf("%q: want cidr,region,rtt_ms", text)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(f[0]))
	if err != nil {
		return Entry{}, fmt.Errorf("%q is not a network prefix", f[0])
	}
	if p.Addr().Is4In6() {
		return Entry{}, fmt.Errorf("%s: write IPv4 networks in dotted form", p)
	}
	if p != p.Masked() {
		return Entry{}, fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
	}
	region := strings.TrimSpace(f[1])
	if !ValidRegionName(region) {
		return Entry{}, fmt.Errorf("%q is not a region name", region)
	}
	rtt, err := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
	if err != nil || math.IsNaN(rtt) || rtt <= 0 || rtt > MaxRTTms {
		return Entry{}, fmt.Errorf("rtt %q: want milliseconds above 0 and at most %d", f[2], MaxRTTms)
	}
	return Entry{Prefix: p, Region: region, RTTms: rtt}, nil
}

// FormatCSV writes entries in the form ParseCSV reads.
func FormatCSV(entries []Entry) []byte {
	var b bytes.Buffer
	b.Grow(len(entries) * 32)
	for _, e := range entries {
		b.WriteString(e.Prefix.String())
		b.WriteByte(',')
		b.WriteString(e.Region)
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(e.RTTms, 'f', -1, 64))
		b.WriteByte('\n')
	}
	return b.Bytes()
}
