package dnsserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

var _ StreamHandler = (*Handler)(nil)

// xfrChunk is the most record data put in one transfer message; well
// below 64 KB so compression and headers always fit.
const xfrChunk = 16 * 1024

// WantsStream picks out zone transfer requests (AXFR, IXFR) on TCP.
func (h *Handler) WantsStream(req []byte, _ netip.AddrPort) bool {
	if len(req) < headerLen || req[2]&0x80 != 0 || req[2]&0x78 != 0 || binary.BigEndian.Uint16(req[4:]) != 1 {
		return false
	}
	var lower [255]byte
	end, ok := readQName(req, headerLen, &lower)
	if !ok || end+2 > len(req) {
		return false
	}
	t := binary.BigEndian.Uint16(req[end:])
	return t == dns.TypeAXFR || t == dns.TypeIXFR
}

// ServeStream answers a zone transfer (RFC 5936): the SOA, every record,
// the services inside the zone, the SOA again, in as many messages as it
// takes. IXFR gets the same full transfer, which RFC 1995 §4 allows: no
// change history is kept.
//
// A service is transferred as the A and AAAA records of every region it
// does not drain, whatever their health (what it fails open to), with the
// service's TTL: a secondary cannot steer, but must never deny a name
// that exists.
func (h *Handler) ServeStream(req []byte, src netip.AddrPort, send func([]byte) error) error {
	var q query
	resp := make([]byte, 0, 4096)
	// The replies are counted here: ServePacket, which counts the others,
	// is not on this path.
	reply := func(rcode int) error {
		out := h.errorReply(resp, req, &q, rcode, ProtoTCP)
		h.metrics.count(ProtoTCP, q.rcode)
		return send(out)
	}
	q.id = binary.BigEndian.Uint16(req)
	q.flags = binary.BigEndian.Uint16(req[2:])
	if rc := h.parse(req, &q); rc != dns.RcodeSuccess {
		return reply(rc)
	}
	switch {
	case q.version != 0:
		return reply(rcodeBadVers)
	case q.tsig:
		out := h.tsigBadKey(resp, req, &q, ProtoTCP)
		h.metrics.count(ProtoTCP, q.rcode)
		return send(out)
	case q.qclass != dns.ClassINET:
		return reply(dns.RcodeRefused)
	}
	set := h.zones.Load()
	sv := h.signed.Load()
	if sv != nil {
		set = sv.state.Zones()
	}
	z := set.Find(q.lowerName())
	if z == nil {
		return reply(dns.RcodeRefused)
	}
	if !z.IsApex(q.lowerName()) {
		return reply(dns.RcodeNotAuth)
	}
	if !h.transferAllowed(src.Addr()) {
		h.metrics.xfrRefused.Add(1)
		return reply(dns.RcodeRefused)
	}

	st := h.steer.Load()
	if sv != nil {
		st = sv.st
	}
	if st == nil && h.cfg.WaitForSnapshot {
		h.metrics.waiting.Add(1)
		return reply(dns.RcodeServerFailure) // it would leave the services out
	}

	qname, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return reply(dns.RcodeFormatError)
	}
	records, err := signedTransfer(sv, set, z)
	if err != nil {
		return reply(dns.RcodeServerFailure)
	}
	if records == nil {
		records = append([]dns.RR(nil), z.Records()...)
		if st != nil {
			records = append(records, serviceRecords(set, z, st.snap)...)
		}
	}
	records = append(records, z.SOA())
	msg := func(rrs []dns.RR) error {
		m := &dns.Msg{
			MsgHdr:   dns.MsgHdr{Id: q.id, Response: true, Authoritative: true, Opcode: dns.OpcodeQuery},
			Question: []dns.Question{{Name: qname, Qtype: q.qtype, Qclass: q.qclass}},
			Answer:   rrs,
			Compress: true,
		}
		b, err := m.Pack()
		if err != nil {
			return err
		}
		h.metrics.count(ProtoTCP, dns.RcodeSuccess)
		return send(b)
	}
	start, size := 0, 0
	for i, rr := range records {
		l := dns.Len(rr)
		if size+l > xfrChunk && i > start {
			if err := msg(records[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += l
	}
	if err := msg(records[start:]); err != nil {
		return err
	}
	h.metrics.xfrServed.Add(1)
	return nil
}

// serviceRecords is what a transfer of z carries for the services inside
// it (see ServeStream). Services the zone's own data shadows (records at
// the name, a delegation above it) are left out: the store refuses them,
// and a secondary would refuse the zone.
func serviceRecords(set *zones.Set, z *zones.Zone, snap *regions.Snapshot) []dns.RR {
	var out []dns.RR
	for _, v := range snap.Services() {
		wn, err := zones.WireName(v.Name())
		if err != nil {
			continue
		}
		w := []byte(wn)
		if set.Find(w) != z || z.CheckDynamicName(w) != nil {
			continue
		}
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: v.Name(), Rrtype: t, Class: dns.ClassINET, Ttl: v.TTL()}
		}
		v4, v6 := v.AllRegionAddrs()
		for _, a := range v4 {
			out = append(out, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		}
		for _, a := range v6 {
			out = append(out, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return out
}
