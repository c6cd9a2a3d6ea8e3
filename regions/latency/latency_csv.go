package latency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
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
func ParseCSV(r io.Reader) ([]Entry, error) {
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
		}
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
	if len(errs) > 0 {
		return nil, fmt.Errorf("latency table: %w", errors.Join(errs...))
	}
	return out, nil
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
