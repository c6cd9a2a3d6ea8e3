package dnsserver

import (
	"math/rand/v2"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// steering is the regions snapshot the handler steers services with,
// indexed for the query path: services by their lower-case wire names,
// and the names above services that must answer NODATA, not NXDOMAIN.
type steering struct {
	snap     *regions.Snapshot
	services map[string]*regions.ServiceView // lower-case wire names
	ents     map[string]struct{}             // lower-case wire names
}

// SetSnapshot swaps in a new regions snapshot. It indexes the snapshot's
// service names first, so the query path only reads.
func (h *Handler) SetSnapshot(s *regions.Snapshot) {
	if s == nil {
		h.steer.Store(nil)
		return
	}
	st := &steering{snap: s, services: map[string]*regions.ServiceView{}, ents: map[string]struct{}{}}
	var names []string
	for _, r := range s.Regions() {
		names = append(names, r.Name)
	}
	h.metrics.setRegions(names)
	for _, v := range s.Services() {
		w, err := zones.WireName(v.Name())
		if err != nil {
			continue // the model admits host names only; they always pack
		}
		st.services[w] = v
		// Every proper ancestor of a service name exists (RFC 8020): it is
		// an empty non-terminal unless the zone holds data there.
		for off := int(w[0]) + 1; off < len(w) && w[off] != 0; off += int(w[off]) + 1 {
			st.ents[w[off:]] = struct{}{}
		}
	}
	h.steer.Store(st)
}

// Snapshot is the regions snapshot being served, or nil.
func (h *Handler) Snapshot() *regions.Snapshot {
	if st := h.steer.Load(); st != nil {
		return st.snap
	}
	return nil
}

// serveService answers a name steered by a service: A or AAAA from the
// decision, NODATA for other types. Negative answers carry ECS scope 0.
func (h *Handler) serveService(resp, req []byte, q *query, z *zones.Zone, snap *regions.Snapshot, v *regions.ServiceView, src netip.AddrPort, proto Proto) []byte {
	qtype := q.qtype
	if qtype == dns.TypeANY {
		qtype = dns.TypeA // RFC 8482: one RRset is a complete answer to ANY
	}
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return h.answerZone(resp, req, q, z.NoData(), src, proto)
	}
	c, usedECS := h.client(q, src)
	d := snap.Decide(v, &c, qtype, rand.Uint64())
	h.metrics.steered.Add(1)
	if d.FailOpen {
		h.metrics.failOpen.Add(1)
	}
	if d.Kind != regions.KindAnswer || d.Count == 0 {
		return h.answerZone(resp, req, q, z.NoData(), src, proto)
	}
	if d.Region != "" {
		h.metrics.countRegion(d.Region)
	}
	if usedECS {
		q.ecsScope = ecsScope(q, d.Scope)
	}

	limit := h.limit(q, proto, cap(resp))
	resp = q.appendHeaderAndQuestion(resp)
	rdlen := 4
	if qtype == dns.TypeAAAA {
		rdlen = 16
	}
	flags := q.replyFlags() | flagAA
	an := uint16(d.Count)
	if len(resp)+d.Count*(12+rdlen)+h.optLen(q) > limit {
		// An RRset is sent whole or not at all (RFC 2181 §9).
		flags |= flagTC
		an = 0
		h.metrics.truncated.Add(1)
	} else {
		for i := range d.Count {
			a := d.Addr(i)
			resp = append(resp, 0xC0, headerLen, // owner: the question's name
				byte(qtype>>8), byte(qtype), 0, byte(dns.ClassINET),
				byte(d.TTL>>24), byte(d.TTL>>16), byte(d.TTL>>8), byte(d.TTL),
				0, byte(rdlen))
			if rdlen == 4 {
				b := a.As4()
				resp = append(resp, b[:]...)
			} else {
				b := a.As16()
				resp = append(resp, b[:]...)
			}
		}
	}
	var ar uint16
	if q.edns {
		resp = h.appendOPT(resp, q, dns.RcodeSuccess)
		ar = 1
	}
	setHeader(resp, flags, 1, an, 0, ar)
	h.metrics.count(proto, dns.RcodeSuccess)
	return resp
}

// answerZone sends a zone answer for the query's name.
func (h *Handler) answerZone(resp, req []byte, q *query, a *zones.Answer, src netip.AddrPort, proto Proto) []byte {
	q.ecsScope = 0
	p := a.Packed(len(q.qname))
	if p == nil {
		if p = h.packSlow(req, a); p == nil {
			return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto)
		}
	}
	return h.reply(resp, q, p, src, proto)
}

// client is who the decision is for: the ECS subnet when the query has a
// usable one, else the packet's source. usedECS says whether the reply's
// scope must describe the ECS subnet.
func (h *Handler) client(q *query, src netip.AddrPort) (c regions.Client, usedECS bool) {
	c.Locator = h.cfg.Locator
	if q.ecs {
		addr, bits, ok := q.ecsClient()
		switch {
		case !ok:
		case bits == 0:
			// RFC 7871 §7.1.2: source /0 asks us not to tailor the
			// answer to the client; scope 0 says we did not.
			c.Addr, c.Bits = src.Addr().Unmap(), 0
			return c, true
		case h.cfg.ECSTrustPrivate || isGlobal(addr):
			maxBits := h.ecsMaxV4
			if addr.Is6() {
				maxBits = h.ecsMaxV6
			}
			bits = min(bits, maxBits)
			c.Addr, c.Bits = netip.PrefixFrom(addr, bits).Masked().Addr(), bits
			return c, true
		}
		// A private or otherwise non-global subnet says nothing about where
		// the client is: steer by the resolver, and scope 0 tells the
		// resolver the answer did not depend on the subnet it sent.
	}
	c.Addr = src.Addr().Unmap()
	c.Bits = c.Addr.BitLen()
	return c, false
}

// ecsClient is the ECS address as a netip.Addr (IPv4-mapped IPv6 unmapped)
// and how many of its bits the client gave.
func (q *query) ecsClient() (netip.Addr, int, bool) {
	bits := int(q.ecsSource)
	switch q.ecsFamily {
	case 1:
		var b [4]byte
		copy(b[:], q.ecsAddr)
		return netip.AddrFrom4(b), bits, true
	case 2:
		var b [16]byte
		copy(b[:], q.ecsAddr)
		a := netip.AddrFrom16(b)
		if a.Is4In6() && bits >= 96 {
			return a.Unmap(), bits - 96, true
		}
		return a, bits, true
	}
	return netip.Addr{}, 0, false
}

// ecsScope converts a decision's scope into the query's ECS family (an
// IPv4 client sent as IPv4-mapped IPv6 counts 96 more bits).
func ecsScope(q *query, scope int) uint8 {
	if scope <= 0 {
		return 0
	}
	if q.ecsFamily == 2 {
		var b [16]byte
		copy(b[:], q.ecsAddr)
		if netip.AddrFrom16(b).Is4In6() && q.ecsSource >= 96 {
			scope += 96
		}
	}
	return uint8(min(scope, int(q.ecsSource)))
}

// isGlobal reports whether an address can say where a client is: global
// unicast, and not private, shared (RFC 6598), documentation,
// benchmarking or reserved space. Written as byte tests: it runs for
// every query with ECS.
func isGlobal(a netip.Addr) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		switch {
		case b[0] == 100 && b[1]&0xC0 == 64: // 100.64.0.0/10 shared (CGN)
		case b[0] == 192 && b[1] == 0 && (b[2] == 0 || b[2] == 2): // IETF assignments, TEST-NET-1
		case b[0] == 198 && b[1]&0xFE == 18: // 198.18.0.0/15 benchmarking
		case b[0] == 198 && b[1] == 51 && b[2] == 100: // TEST-NET-2
		case b[0] == 203 && b[1] == 0 && b[2] == 113: // TEST-NET-3
		case b[0] >= 240: // reserved
		default:
			return true
		}
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
