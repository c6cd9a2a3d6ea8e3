package dnsserver

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// parse reads a request's question and its additional section into q
// without allocating. It returns FORMERR for a message that cannot be
// read; q.hasQ says whether the question could be (so FORMERR replies
// can echo it).
func (h *Handler) parse(req []byte, q *query) int {
	qd := binary.BigEndian.Uint16(req[4:])
	an := binary.BigEndian.Uint16(req[6:])
	ns := binary.BigEndian.Uint16(req[8:])
	ar := binary.BigEndian.Uint16(req[10:])
	off := headerLen

	if qd > 1 {
		return dns.RcodeFormatError // nobody supports more than one question
	}
	if qd == 1 {
		end, ok := readQName(req, off, &q.lower)
		if !ok || end+4 > len(req) {
			return dns.RcodeFormatError
		}
		q.qname = req[off:end]
		q.qtype = binary.BigEndian.Uint16(req[end:])
		q.qclass = binary.BigEndian.Uint16(req[end+2:])
		q.hasQ = true
		off = end + 4
	}
	// Answer and authority records mean nothing in a query (IXFR sends its
	// SOA in authority); they only need to be well formed.
	for range int(an) + int(ns) {
		var ok bool
		if off, _, _, ok = skipRR(req, off); !ok {
			return dns.RcodeFormatError
		}
	}
	for i := range ar {
		start := off
		typ, rdStart, ok := uint16(0), 0, false
		if off, typ, rdStart, ok = skipRR(req, off); !ok {
			return dns.RcodeFormatError
		}
		switch typ {
		case dns.TypeOPT:
			if q.edns {
				return dns.RcodeFormatError // RFC 6891 §6.1.1: one OPT at most
			}
			if req[start] != 0 {
				return dns.RcodeFormatError // OPT is owned by the root
			}
			if !q.parseOPT(req[start+1:rdStart], req[rdStart:off]) {
				return dns.RcodeFormatError
			}
		case dns.TypeTSIG:
			if i != ar-1 {
				return dns.RcodeFormatError // RFC 8945 §5.1: TSIG comes last
			}
			q.tsig = true
			q.tsigOff, q.tsigEnd = start, off
		}
	}
	return dns.RcodeSuccess
}

// toLower maps each byte to its ASCII lower case.
var toLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

// readQName reads an uncompressed name at off into lower (folded to lower
// case) and returns where it ends. Compression has no place in a question:
// nothing precedes it to point to.
func readQName(msg []byte, off int, lower *[zones.MaxNameLen]byte) (int, bool) {
	// Walk the labels to the end first, then fold the whole name, length
	// bytes included: they are below 64, so folding leaves them alone.
	start := off
	for {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		if l&0xC0 != 0 {
			return 0, false // a pointer or an obsolete label type
		}
		off += l + 1
		if off-start > zones.MaxNameLen || off > len(msg) {
			return 0, false
		}
		if l == 0 {
			break
		}
	}
	src := msg[start:off]
	dst := lower[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], fold8(binary.LittleEndian.Uint64(src[i:])))
	}
	for ; i < len(src); i++ {
		dst[i] = toLower[src[i]]
	}
	return off, true
}

// fold8 folds the ASCII capitals among eight bytes to lower case at once.
func fold8(w uint64) uint64 {
	const ones = 0x0101010101010101
	low7 := w & (0x7F * ones)
	atLeastA := low7 + (0x80-'A')*ones               // top bit set where a byte >= 'A'
	aboveZ := low7 + (0x80-'Z'-1)*ones               // top bit set where a byte > 'Z'
	upper := atLeastA &^ aboveZ &^ w & (0x80 * ones) // top bit: ASCII 'A'..'Z'
	return w | upper>>2                              // 0x80>>2 is the case bit
}

// skipRR steps over one resource record and returns where it ends, its
// type and where its RDATA starts. Owner names may be compressed; a
// pointer ends the name.
func skipRR(msg []byte, off int) (end int, typ uint16, rdStart int, ok bool) {
	total := 0
	for {
		if off >= len(msg) {
			return 0, 0, 0, false
		}
		l := int(msg[off])
		switch l & 0xC0 {
		case 0xC0:
			off += 2
		case 0x00:
			off += l + 1
			total += l + 1
			if total > zones.MaxNameLen {
				return 0, 0, 0, false
			}
			if l != 0 {
				continue
			}
		default:
			return 0, 0, 0, false
		}
		break
	}
	if off+10 > len(msg) {
		return 0, 0, 0, false
	}
	typ = binary.BigEndian.Uint16(msg[off:])
	rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
	rdStart = off + 10
	end = rdStart + rdlen
	if end > len(msg) {
		return 0, 0, 0, false
	}
	return end, typ, rdStart, true
}

// EDNS option codes we act on.
const (
	optionECS    = 8
	optionCookie = 10
)

// parseOPT reads the OPT record's fixed part (type, class, TTL, RDLENGTH:
// fixed) and its options (RFC 6891 §6.1.2). Unknown options are ignored.
func (q *query) parseOPT(fixed, rdata []byte) bool {
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(fixed[2:])
	ttl := binary.BigEndian.Uint32(fixed[4:])
	q.version = uint8(ttl >> 16)
	q.do = ttl&0x8000 != 0
	for len(rdata) > 0 {
		if len(rdata) < 4 {
			return false
		}
		code := binary.BigEndian.Uint16(rdata)
		n := int(binary.BigEndian.Uint16(rdata[2:]))
		if 4+n > len(rdata) {
			return false
		}
		data := rdata[4 : 4+n]
		switch code {
		case optionECS:
			if q.ecs || !q.parseECS(data) {
				return false // RFC 7871 §7.1.1: a malformed option is FORMERR
			}
		case optionCookie:
			if q.cookie != nil {
				return false // RFC 7873 §5.2.2: more than one is malformed
			}
			q.cookie = data
			q.cookieState = cookieClient // classified by Handler.checkCookie
		}
		rdata = rdata[4+n:]
	}
	return true
}

// parseECS reads an EDNS Client Subnet option (RFC 7871 §6): a known
// family, a source prefix that fits it, a scope prefix of 0 (a query has
// no scope yet: it MUST be 0), exactly the address bytes the prefix
// needs, and no bits set beyond the prefix.
func (q *query) parseECS(data []byte) bool {
	if len(data) < 4 || data[3] != 0 {
		return false
	}
	family := binary.BigEndian.Uint16(data)
	source := data[2]
	addr := data[4:]
	var width int
	switch family {
	case 1:
		width = 32
	case 2:
		width = 128
	default:
		return false
	}
	if int(source) > width || len(addr) != (int(source)+7)/8 {
		return false
	}
	if source%8 != 0 && addr[len(addr)-1]&(0xFF>>(source%8)) != 0 {
		return false
	}
	q.ecs = true
	q.ecsFamily = family
	q.ecsSource = source
	q.ecsAddr = addr
	return true
}
