package dnsserver

import (
	"net/netip"

	"github.com/miekg/dns"
)

// checkCookie classifies the query's COOKIE option and counts it.
func (h *Handler) checkCookie(q *query, client netip.Addr) {
	q.client = client
	q.now = uint32(h.now().Unix())
	q.cookieState = checkCookie(q.cookie, h.secrets, client, q.now)
	h.metrics.cookies[q.cookieState].Add(1)
}

// optLen is the size of the OPT record appendOPT will write.
func (h *Handler) optLen(q *query) int {
	if !q.edns {
		return 0
	}
	n := 11
	if q.ecs {
		n += 4 + 4 + len(q.ecsAddr)
	}
	if q.sendsCookie() {
		n += 4 + clientCookieLen + serverCookieLen
	}
	return n
}

func (q *query) sendsCookie() bool {
	return q.cookieState != cookieNone && q.cookieState != cookieMalformed
}

// appendOPT appends our OPT record (RFC 6891 §6.1.2): our buffer size,
// the upper bits of the rcode, version 0, DO copied (RFC 3225 §3), and a
// fresh server cookie when the client sent a cookie, and the client subnet
// when the client sent one. Options we do not act on are not echoed.
func (h *Handler) appendOPT(resp []byte, q *query, rcode int) []byte {
	ext := byte(rcode >> 4)
	var flags byte
	if q.do {
		flags = 0x80
	}
	size := uint16(h.maxUDP)
	resp = append(resp,
		0,                                       // root owner
		byte(dns.TypeOPT>>8), byte(dns.TypeOPT), // type
		byte(size>>8), byte(size), // class: UDP payload size
		ext, 0, flags, 0, // TTL: extended rcode, version, DO, Z
		0, 0, // RDLENGTH, set below
	)
	rdStart := len(resp)
	if q.ecs {
		// RFC 7871 §7.2.2: echo family, source prefix and address, with
		// the scope the answer really depended on.
		n := 4 + len(q.ecsAddr)
		resp = append(resp, 0, optionECS, byte(n>>8), byte(n),
			byte(q.ecsFamily>>8), byte(q.ecsFamily), q.ecsSource, q.ecsScope)
		resp = append(resp, q.ecsAddr...)
	}
	if q.sendsCookie() {
		resp = append(resp, 0, optionCookie, 0, clientCookieLen+serverCookieLen)
		resp = append(resp, q.cookie[:clientCookieLen]...)
		resp = appendServerCookie(resp, &h.secrets[0], q.cookie[:clientCookieLen], q.client, q.now)
	}
	rdlen := len(resp) - rdStart
	resp[rdStart-2], resp[rdStart-1] = byte(rdlen>>8), byte(rdlen)
	return resp
}
