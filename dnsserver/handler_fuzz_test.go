package dnsserver

import (
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServePacket feeds arbitrary bytes to the query handler, to one
// whose rate limiter allows one answer per account, so that most UDP
// replies slip or are dropped, and to one whose zone is signed, which
// answers queries with the DO bit from its signed state (NSEC records
// found for whatever name comes). It must never panic (not even into its own
// recovery), and whatever it sends must be a well-formed response to the
// request it got, within the size allowed.
func FuzzServePacket(f *testing.F) {
	seeds := []*dns.Msg{
		question("www.example.org.", dns.TypeA),
		question("x.wild.example.org.", dns.TypeAAAA),
		question("a.sub.example.org.", dns.TypeA),
		question("big.example.org.", dns.TypeTXT),
		question("example.org.", dns.TypeAXFR),
		withEDNS(question("www.example.org.", dns.TypeA), 1232, true, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}),
		withEDNS(question("big.example.org.", dns.TypeTXT), 600, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}}),
		withEDNS(question("chain.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{193, 0, 0, 0}}),
		question("tomany.example.org.", dns.TypeAAAA),
		question("tochild.example.org.", dns.TypeA),
		question("geo.example.org.", dns.TypeA),
		withEDNS(question("nope.example.org.", dns.TypeA), 1232, true),
		withEDNS(question("a.b.nope.example.org.", dns.TypeA), 1232, true),
		withEDNS(question("www.example.org.", dns.TypeMX), 1232, true),
		withEDNS(question("x.wild.example.org.", dns.TypeA), 1232, true),
		withEDNS(question("*.example.org.", dns.TypeA), 1232, true),
		withEDNS(question("x.deep.example.org.", dns.TypeA), 1232, true),
	}
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	signed := question("www.example.org.", dns.TypeA)
	signed.SetTsig("key.example.", dns.HmacSHA256, 300, 1700000000)
	if b, _, err := dns.TsigGenerate(signed, "c2VjcmV0", "", false); err == nil {
		f.Add(b, false)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}, true)
	plain := edgeHandler(f, HandlerConfig{})
	limited := edgeHandler(f, HandlerConfig{RRL: newTestRRL(f, RRLConfig{Rate: 1}, new(fakeClock))})
	dnssecOn := signedHandler(f)
	f.Fuzz(func(t *testing.T, req []byte, tcp bool) {
		for _, h := range []*Handler{plain, limited, dnssecOn} {
			fuzzReply(t, h, req, tcp)
		}
	})
}

// fuzzReply serves req with h and checks what it sends (see
// FuzzServePacket).
func fuzzReply(t *testing.T, h *Handler, req []byte, tcp bool) {
	proto, size := ProtoUDP, 4096
	if tcp {
		proto, size = ProtoTCP, maxMsgSize
	}
	out := h.ServePacket(make([]byte, 0, size), req, testClient, proto)
	if n := h.metrics.Panics(); n != 0 {
		t.Fatalf("handler panicked on % x", req)
	}
	if out == nil {
		return
	}
	if len(req) < headerLen || req[2]&0x80 != 0 {
		t.Fatalf("answered a message that must be dropped: % x", req)
	}
	if len(out) > size {
		t.Fatalf("reply of %d bytes, limit %d", len(out), size)
	}
	var m dns.Msg
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply does not parse: %v\nrequest % x\nreply % x", err, req, out)
	}
	if m.Id != binary.BigEndian.Uint16(req) || !m.Response {
		t.Fatalf("reply id %d QR %v for request % x", m.Id, m.Response, req[:2])
	}
	if proto == ProtoUDP && len(out) > 512 && (m.IsEdns0() == nil) {
		t.Fatalf("%d-byte UDP reply without EDNS", len(out))
	}
}
