package dnsserver

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// tsigBadKey answers a signed request. We hold no TSIG keys, so every key
// is unknown: NOTAUTH with a TSIG record carrying BADKEY, unsigned (empty
// MAC), with the request's key name, algorithm, time and original ID
// (RFC 8945 §5.2, §5.3.2). A TSIG record that cannot be read is FORMERR.
func (h *Handler) tsigBadKey(resp, req []byte, q *query, proto Proto) []byte {
	var key, alg [zones.MaxNameLen]byte
	msg := req[:q.tsigEnd]
	klen, off, ok := readName(msg, q.tsigOff, &key)
	if !ok || off+10 > len(msg) {
		return h.errorReply(resp, req, q, dns.RcodeFormatError, proto)
	}
	alen, off, ok := readName(msg, off+10, &alg)
	if !ok || off+10 > len(msg) {
		return h.errorReply(resp, req, q, dns.RcodeFormatError, proto)
	}
	signed := msg[off : off+8] // time signed (48 bits), fudge
	off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	if off+6 > len(msg) {
		return h.errorReply(resp, req, q, dns.RcodeFormatError, proto)
	}
	origID := msg[off : off+2]

	rdlen := alen + 8 + 2 + 2 + 2 + 2
	size := klen + 10 + rdlen
	if proto == ProtoUDP && headerLen+len(q.qname)+4+h.optLen(q)+size > h.limit(q, proto, cap(resp)) {
		// Only absurdly long names get here; say NOTAUTH without the record.
		return h.errorReply(resp, req, q, dns.RcodeNotAuth, proto)
	}
	var qd uint16
	if q.hasQ {
		resp = q.appendHeaderAndQuestion(resp)
		qd = 1
	} else {
		resp = append(resp, req[:headerLen]...)
	}
	var ar uint16 = 1
	if q.edns {
		resp = h.appendOPT(resp, q, dns.RcodeNotAuth)
		ar++
	}
	resp = append(resp, key[:klen]...)
	resp = append(resp, byte(dns.TypeTSIG>>8), byte(dns.TypeTSIG), byte(dns.ClassANY>>8), byte(dns.ClassANY),
		0, 0, 0, 0, byte(rdlen>>8), byte(rdlen))
	resp = append(resp, alg[:alen]...)
	resp = append(resp, signed...)
	resp = append(resp, 0, 0) // MAC size: unsigned
	resp = append(resp, origID...)
	resp = append(resp, 0, tsigBadKey, 0, 0) // error, other length
	setHeader(resp, q.replyFlags()|dns.RcodeNotAuth, qd, 0, 0, ar)
	q.rcode, q.rrlClass = dns.RcodeNotAuth, rrlError
	h.metrics.tsigErrors[tsigBadKey].Add(1)
	return resp
}

// readName copies the name at off, following compression pointers, into
// buf in wire form. It returns the name's length and where it ends in
// msg. Pointers must point backwards, which rules out loops.
func readName(msg []byte, off int, buf *[zones.MaxNameLen]byte) (n, end int, ok bool) {
	end = -1
	for {
		if off >= len(msg) {
			return 0, 0, false
		}
		l := int(msg[off])
		switch l & 0xC0 {
		case 0xC0:
			if off+1 >= len(msg) {
				return 0, 0, false
			}
			ptr := (l&0x3F)<<8 | int(msg[off+1])
			if ptr >= off {
				return 0, 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = ptr
		case 0x00:
			if n+l+1 > len(buf) || off+l+1 > len(msg) {
				return 0, 0, false
			}
			copy(buf[n:], msg[off:off+l+1])
			n += l + 1
			off += l + 1
			if l == 0 {
				if end < 0 {
					end = off
				}
				return n, end, true
			}
		default:
			return 0, 0, false
		}
	}
}
