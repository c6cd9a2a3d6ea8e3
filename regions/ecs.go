package regions

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ECSConfig is how EDNS Client Subnet options (RFC 7871) are used. The DNS
// handler and /v1/explain derive clients with the same one, so that an
// explanation is the decision DNS makes.
type ECSConfig struct {
	// MaxV4 and MaxV6 cap the subnet bits used: longer source prefixes
	// are truncated. 0 (or out of range) = 24 and 56 (RFC 7871 §11.1).
	MaxV4, MaxV6 int
	// TrustPrivate uses subnets from private, loopback and other
	// non-global ranges as client locations (labs, private networks).
	TrustPrivate bool
}

// The ECSConfig defaults.
const (
	DefaultECSMaxV4 = 24
	DefaultECSMaxV6 = 56
)

// Normalized fills in the defaults.
func (e ECSConfig) Normalized() ECSConfig {
	if e.MaxV4 <= 0 || e.MaxV4 > 32 {
		e.MaxV4 = DefaultECSMaxV4
	}
	if e.MaxV6 <= 0 || e.MaxV6 > 128 {
		e.MaxV6 = DefaultECSMaxV6
	}
	return e
}

// ECSUse says what became of a query's ECS option, and so which scope the
// reply's option carries (see ReplyScope).
type ECSUse uint8

// The ECS uses.
const (
	// ECSAbsent: the query had no ECS option; the reply has none either.
	ECSAbsent ECSUse = iota
	// ECSUsed: the decision is for the subnet; the scope is the bits the
	// decision depended on.
	ECSUsed
	// ECSNotTailored: source prefix 0 asks for an answer not tailored to
	// the client (RFC 7871 §7.1.2): decided for the resolver, scope 0.
	ECSNotTailored
	// ECSUnusable: the subnet says nothing of where the client is
	// (private, loopback, documentation, reserved...). The decision is
	// for the resolver, and the scope is the whole source prefix: scope 0
	// would let an ECS-caching resolver hand the answer to every client.
	ECSUnusable
)

func (u ECSUse) String() string {
	switch u {
	case ECSUsed:
		return "used"
	case ECSNotTailored:
		return "not-tailored"
	case ECSUnusable:
		return "unusable"
	}
	return "absent"
}

// MarshalText writes the use's name.
func (u ECSUse) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText reads what MarshalText writes, so that clients of the
// API decode explanations.
func (u *ECSUse) UnmarshalText(b []byte) error {
	for _, v := range []ECSUse{ECSAbsent, ECSUsed, ECSNotTailored, ECSUnusable} {
		if v.String() == string(b) {
			*u = v
			return nil
		}
	}
	return fmt.Errorf("ECS use %q: want absent, used, not-tailored or unusable", b)
}

// Client derives who a decision is for, the one way DNS and /v1/explain
// both do: the ECS subnet when the query carries a usable one (truncated
// to MaxV4/MaxV6), else the resolver's address (the packet's source).
// ecs is the option's subnet as sent, its bits the source prefix length
// (an IPv4 subnet sent as IPv4-mapped IPv6 counts 96 bits more); an
// invalid ecs means the query had no option. It does not allocate.
func (e ECSConfig) Client(resolver netip.Addr, ecs netip.Prefix, loc Locator) (Client, ECSUse) {
	c := Client{Locator: loc}
	if ecs.IsValid() {
		addr, bits := ecs.Addr(), ecs.Bits() // a Prefix has no zone
		if addr.Is4In6() && bits >= 96 {
			addr, bits = addr.Unmap(), bits-96
		}
		switch {
		case bits == 0:
			c.Addr, c.Bits = resolver.Unmap().WithZone(""), 0
			return c, ECSNotTailored
		case addr.Is4():
			// The common case, in 32-bit arithmetic: it runs for every
			// query with ECS.
			b := addr.As4()
			u := binary.BigEndian.Uint32(b[:])
			if !e.TrustPrivate && !isGlobal4(u) {
				break
			}
			bits = min(bits, e.Normalized().MaxV4)
			binary.BigEndian.PutUint32(b[:], u&(^uint32(0)<<(32-bits)))
			c.Addr, c.Bits = netip.AddrFrom4(b), bits
			return c, ECSUsed
		case e.TrustPrivate || isGlobal(addr):
			bits = min(bits, e.Normalized().MaxV6)
			p, _ := addr.Prefix(bits)
			c.Addr, c.Bits = p.Addr(), bits
			return c, ECSUsed
		}
		c.Addr = resolver.Unmap().WithZone("")
		c.Bits = c.Addr.BitLen()
		return c, ECSUnusable
	}
	c.Addr = resolver.Unmap().WithZone("")
	c.Bits = c.Addr.BitLen()
	return c, ECSAbsent
}

// ReplyScope is the SCOPE PREFIX-LENGTH the reply's ECS option carries
// for a decision with this scope (IPv4 bits for an IPv4 client), in the
// terms of the option as sent (ecs, see Client), never longer than its
// source prefix. For answers that do not come from a decision (zone data,
// NODATA) the scope is 0 whatever the use.
func (u ECSUse) ReplyScope(ecs netip.Prefix, decisionScope int) int {
	switch u {
	case ECSUsed:
		if decisionScope <= 0 {
			return 0
		}
		if a := ecs.Addr(); a.Is4In6() && ecs.Bits() >= 96 {
			decisionScope += 96
		}
		return min(decisionScope, ecs.Bits())
	case ECSUnusable:
		return ecs.Bits()
	}
	return 0
}

// isGlobal reports whether an address can say where a client is: global
// unicast, and not private, shared (RFC 6598), documentation,
// benchmarking or reserved space. Written as byte tests: it runs for
// every query with ECS.
func isGlobal(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return isGlobal4(binary.BigEndian.Uint32(b[:]))
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	b := a.As16()
	switch {
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8: // 2001:db8::/32 documentation
	case b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02: // 2001::/23 IETF assignments
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1: // 64:ff9b:1::/48 local NAT64
	case b[0] == 0xfe && b[1]&0xC0 == 0xC0: // fec0::/10 site-local
	default:
		return true
	}
	return false
}

// isGlobal4 is isGlobal for the IPv4 address u: what netip calls global
// unicast and not private, less the special ranges below.
func isGlobal4(u uint32) bool {
	in := func(prefix uint32, bits uint) bool { return u>>(32-bits) == prefix>>(32-bits) }
	switch {
	case u == 0: // unspecified
	case in(127<<24, 8): // loopback
	case u >= 224<<24: // multicast, reserved (240.0.0.0/4), broadcast
	case in(169<<24|254<<16, 16): // link-local
	case in(10<<24, 8), in(172<<24|16<<16, 12), in(192<<24|168<<16, 16): // private (RFC 1918)
	case in(100<<24|64<<16, 10): // shared (CGN, RFC 6598)
	case in(192<<24, 24), in(192<<24|2<<8, 24): // IETF assignments, TEST-NET-1
	case in(198<<24|18<<16, 15): // benchmarking
	case in(198<<24|51<<16|100<<8, 24): // TEST-NET-2
	case in(203<<24|113<<8, 24): // TEST-NET-3
	default:
		return true
	}
	return false
}
