package dnsserver

import (
	"hash/maphash"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// account records which RRL account the answer a counts against, as
// BIND and Knot do: a positive answer or NODATA the name asked (the
// wildcard for answers synthesized from one), NXDOMAIN the zone (the
// answer's anchor is the apex), a referral its delegation point.
func (q *query) account(a *zones.Answer) {
	anchor := a.AnchorLen()
	wild := a.SynthesizedBelow()
	switch {
	case a.Rcode == dns.RcodeNameError:
		q.rrlClass = rrlNXDomain
	case a.Rcode != dns.RcodeSuccess:
		q.rrlClass, anchor = rrlError, 0
	case len(a.Answer) > 0:
		q.rrlClass = rrlPositive
	case !a.Authoritative:
		q.rrlClass = rrlReferral
	default:
		// The zone's own NODATA (a name above a service, a service's
		// other types) is anchored at the apex: the name asked counts.
		q.rrlClass, anchor = rrlNoData, len(q.qname)
		if wild > 0 {
			anchor = wild
		}
	}
	if wild > 0 && (q.rrlClass == rrlPositive || q.rrlClass == rrlNoData) {
		q.rrlClass |= rrlWildcard
	}
	q.rrlName = uint8(min(max(anchor, 0), len(q.qname)))
}

// rateLimit passes resp, the reply to a UDP query, through the limiter:
// it returns resp, the slipped reply written over it, or nil to drop it.
// It allocates nothing.
func (h *Handler) rateLimit(resp, req []byte, q *query, src netip.AddrPort, now int64) []byte {
	r := h.rrl
	if q.cookieState == cookieValid || q.cookieState == cookieValidOld {
		// RFC 7873 §5.3: the client proved it receives our replies.
		r.counts[rrlExemptCookie].Add(1)
		return resp
	}
	a := src.Addr()
	if r.exempt(a) {
		r.counts[rrlExemptNet].Add(1)
		return resp
	}
	class := q.rrlClass
	var name []byte
	var qtype uint16
	switch class &^ rrlWildcard {
	case 0:
		class = rrlError
	case rrlError:
	case rrlPositive:
		qtype = q.qtype
		fallthrough
	default:
		lower := q.lowerName()
		name = lower[len(lower)-int(q.rrlName):]
	}
	var key [rrlKeyMax]byte
	v, started := r.take(maphash.Bytes(r.seed, r.rrlKey(&key, a, class, qtype, name)), r.now(now))
	if started {
		r.noteStart(a, class, qtype, name)
	}
	switch {
	case v == rrlAllow:
		r.counts[rrlAnswered].Add(1)
		return resp
	case r.cfg.LogOnly && v == rrlSlip:
		r.counts[rrlWouldSlip].Add(1)
		return resp
	case r.cfg.LogOnly:
		r.counts[rrlWouldDrop].Add(1)
		return resp
	case v == rrlSlip:
		r.counts[rrlSlipped].Add(1)
		return h.slipReply(resp, req, q)
	}
	r.counts[rrlDropped].Add(1)
	return nil
}

// slipReply writes the reply sent instead of an answer over the limit
// into resp. A client that sent a cookie gets BADCOOKIE with a fresh
// server cookie (RFC 7873 §5.2.3): it asks again with it and is then
// never limited. Any other client gets the header and the question with
// TC set, and a bare OPT when it used EDNS: never more bytes than it
// sent, so a slipped reply amplifies nothing, and a real client behind a
// spoofed network asks again over TCP.
func (h *Handler) slipReply(resp, req []byte, q *query) []byte {
	q.ecsScope = 0
	if q.cookieState == cookieClient || q.cookieState == cookieBad {
		return h.errorReply(resp[:0], req, q, rcodeBadCookie, ProtoUDP)
	}
	resp = resp[:0]
	var qd, ar uint16
	if q.hasQ {
		resp = q.appendHeaderAndQuestion(resp)
		qd = 1
	} else {
		resp = append(resp, req[:headerLen]...)
	}
	if q.edns {
		// RFC 6891 §6.1.2 without options; the extended rcode and DO as
		// in any reply.
		var do byte
		if q.do {
			do = 0x80
		}
		size := uint16(h.maxUDP)
		resp = append(resp, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(size>>8), byte(size),
			byte(q.rcode>>4), 0, do, 0, 0, 0)
		ar = 1
	}
	setHeader(resp, q.replyFlags()|flagTC|uint16(q.rcode&0xF), qd, 0, 0, ar)
	return resp
}
