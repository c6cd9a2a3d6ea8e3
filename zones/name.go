package zones

import (
	"fmt"

	"github.com/miekg/dns"
)

// MaxNameLen is the longest domain name in wire format (RFC 1035 §3.1).
const MaxNameLen = 255

// WireName returns the lower-case wire form of a presentation-format name,
// the key every lookup uses. The name is made fully qualified first.
func WireName(name string) (string, error) {
	var buf [MaxNameLen]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), buf[:], 0, nil, false)
	if err != nil {
		return "", fmt.Errorf("bad domain name %q: %w", name, err)
	}
	lowerASCII(buf[:n])
	return string(buf[:n]), nil
}

// mustWire is WireName for names that already passed the zone parser.
func mustWire(name string) string {
	w, err := WireName(name)
	if err != nil {
		panic(err) // names from dns.ZoneParser are always packable
	}
	return w
}

// lowerASCII folds A-Z in place. DNS matching is case-insensitive for
// ASCII only (RFC 4343), so other bytes stay as they are.
func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// labelStarts records the offset of every label of the wire name w, from the
// left; it returns how many it found. w must be a valid, uncompressed wire
// name; the root label is not counted.
func labelStarts(w []byte, starts *[128]uint8) int {
	n := 0
	for off := 0; off < len(w) && w[off] != 0; off += int(w[off]) + 1 {
		starts[n] = uint8(off)
		n++
	}
	return n
}

// isSubdomain reports whether child (presentation, lower case, FQDN) equals
// parent or is below it.
func isSubdomain(child, parent string) bool {
	return dns.IsSubDomain(parent, child)
}

// canonical lower-cases a fully qualified presentation name: ASCII only
// (RFC 4343). strings.ToLower would fold other letters too and turn bytes
// that are not UTF-8 into U+FFFD: another name, or one too long to pack.
func canonical(name string) string {
	b := []byte(dns.Fqdn(name))
	lowerASCII(b)
	return string(b)
}
