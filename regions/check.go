package regions

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The health check defaults and limits (docs/health.md).
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckRise     = 2
	DefaultCheckFall     = 3
	MinCheckInterval     = 100 * time.Millisecond
	MinCheckTimeout      = 10 * time.Millisecond
	// MaxCheckBody is how much of an http(s) answer a check reads: the
	// body match and the load report must be within it.
	MaxCheckBody = 64 << 10
	// MaxCheckBodyMatch bounds the body substring a check looks for.
	MaxCheckBodyMatch = 1024
)

// DefaultExpect is what an http(s) check accepts unless told otherwise.
var DefaultExpect = StatusRanges{{200, 399}}

// WithDefaults returns the check with every zero field set to its default:
// what a prober runs. The timeout is at most the interval; Expect is
// DefaultExpect for http(s) checks; Path is "/"; a passive check gets its
// defaults (a copy: c's own is not changed).
func (c HealthCheck) WithDefaults() HealthCheck {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultCheckInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(min(DefaultCheckTimeout, time.Duration(c.Interval)))
	}
	if c.Rise == 0 {
		c.Rise = DefaultCheckRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultCheckFall
	}
	if c.Passive != nil {
		ph := c.Passive.withDefaults()
		c.Passive = &ph
	}
	if c.Type == "http" || c.Type == "https" {
		if len(c.Expect) == 0 {
			c.Expect = DefaultExpect
		}
		if c.Path == "" {
			c.Path = "/"
		}
	}
	return c
}

// Target is where the check of vip connects: its Address entry, with the
// check's port unless the entry has one, or else the VIP itself.
func (c *HealthCheck) Target(vip netip.Addr) string {
	port := strconv.Itoa(c.Port)
	a, ok := c.Address[vip]
	if !ok {
		return net.JoinHostPort(vip.Unmap().String(), port)
	}
	if host, p, err := net.SplitHostPort(a); err == nil {
		return net.JoinHostPort(host, p)
	}
	return net.JoinHostPort(strings.Trim(a, "[]"), port)
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// StatusRanges is a list of status ranges, written "200-299,301" (a list
// of such strings or numbers is read too).
type StatusRanges []StatusRange

// Contains says whether code is in one of the ranges.
func (r StatusRanges) Contains(code int) bool {
	for _, sr := range r {
		if code >= sr.Lo && code <= sr.Hi {
			return true
		}
	}
	return false
}

func (r StatusRanges) String() string {
	parts := make([]string, len(r))
	for i, sr := range r {
		if sr.Lo == sr.Hi {
			parts[i] = strconv.Itoa(sr.Lo)
		} else {
			parts[i] = strconv.Itoa(sr.Lo) + "-" + strconv.Itoa(sr.Hi)
		}
	}
	return strings.Join(parts, ",")
}

func (r StatusRanges) validate() error {
	for _, sr := range r {
		if sr.Lo < 100 || sr.Hi > 599 || sr.Lo > sr.Hi {
			return fmt.Errorf("%q: want HTTP statuses from 100 to 599, low to high", r.String())
		}
	}
	return nil
}

// ParseStatusRanges reads "200-299,301".
func ParseStatusRanges(s string) (StatusRanges, error) {
	var out StatusRanges
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.Atoi(strings.TrimSpace(hi))
		}
		if errA != nil || errB != nil {
			return nil, fmt.Errorf("%q: want status ranges like 200-399 or 200-299,301", s)
		}
		out = append(out, StatusRange{a, b})
	}
	if err := out.validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// MarshalText writes "200-299,301".
func (r StatusRanges) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads "200-299,301".
func (r *StatusRanges) UnmarshalText(b []byte) error {
	v, err := ParseStatusRanges(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// UnmarshalJSON reads "200-299,301", a number, or a list of either.
func (r *StatusRanges) UnmarshalJSON(b []byte) error {
	var list []json.RawMessage
	if json.Unmarshal(b, &list) != nil {
		list = []json.RawMessage{b}
	}
	var parts []string
	for _, item := range list {
		var s string
		var n int
		switch {
		case json.Unmarshal(item, &s) == nil:
			parts = append(parts, s)
		case json.Unmarshal(item, &n) == nil:
			parts = append(parts, strconv.Itoa(n))
		default:
			return fmt.Errorf("expect: want status ranges like \"200-399\" or \"200-299,301\"")
		}
	}
	return r.UnmarshalText([]byte(strings.Join(parts, ",")))
}

// UnmarshalYAML reads 200-399, "200-299,301", 204 or a list of those,
// naming the line on error.
func (r *StatusRanges) UnmarshalYAML(n *yaml.Node) error {
	var parts []string
	switch n.Kind {
	case yaml.ScalarNode:
		parts = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want status ranges like 200-399 or 200-299,301", c.Line)
			}
			parts = append(parts, c.Value)
		}
	default:
		return fmt.Errorf("line %d: want status ranges like 200-399 or 200-299,301", n.Line)
	}
	v, err := ParseStatusRanges(strings.Join(parts, ","))
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = v
	return nil
}

// validCheckHost accepts a host name (letters, digits, hyphens,
// underscores, dots; an optional final dot) or an IP address.
func validCheckHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return isHostname(CanonicalName(h))
}

// checkAddress validates an Address entry: "host" or "host:port", the
// host an IP address or a host name.
func checkAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = strings.Trim(a, "[]"), ""
	}
	if host == "" || !validCheckHost(host) {
		return fmt.Errorf("%q: want host or host:port, the host an IP address or a host name", a)
	}
	if ip, err := netip.ParseAddr(host); err == nil && (ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast()) {
		return fmt.Errorf("%q: not a unicast address", a)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port: want 1 to 65535", a)
		}
	}
	return nil
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b netip.Addr) int { return a.Compare(b) })
	return keys
}
