package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

func testZones(t testing.TB) *zones.Set {
	t.Helper()
	z, err := zones.LoadFile("testdata/example.org.zone", zones.LoadOptions{Origin: "example.org.", Dir: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := zones.NewSet(z)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func testHandler(t testing.TB, cfg HandlerConfig) *Handler {
	t.Helper()
	return NewHandler(cfg, testZones(t), nil)
}

var testClient = netip.MustParseAddrPort("192.0.2.99:40000")

// serveRaw sends a raw request to the handler and decodes the reply; nil
// when the handler sends nothing.
func serveRaw(t *testing.T, h *Handler, req []byte, proto Proto, bufSize int) *dns.Msg {
	t.Helper()
	out := h.ServePacket(make([]byte, 0, bufSize), req, testClient, proto)
	if out == nil {
		return nil
	}
	if len(out) > bufSize {
		t.Fatalf("reply of %d bytes exceeds the buffer of %d", len(out), bufSize)
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply does not parse: %v\n% x", err, out)
	}
	if !m.Response {
		t.Fatal("reply without QR")
	}
	if len(req) >= 2 && m.Id != binary.BigEndian.Uint16(req) {
		t.Fatalf("reply id %d, query id %d", m.Id, binary.BigEndian.Uint16(req))
	}
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.Id = 4242
	return m
}

func withEDNS(m *dns.Msg, size uint16, do bool, opts ...dns.EDNS0) *dns.Msg {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(size)
	o.SetDo(do)
	o.Option = opts
	m.Extra = append(m.Extra, o)
	return m
}

func TestServePacket(t *testing.T) {
	h := testHandler(t, HandlerConfig{TransferACL: []netip.Prefix{netip.MustParsePrefix("192.0.2.99/32")}})
	type check func(t *testing.T, m *dns.Msg)
	rcode := func(want int) check {
		return func(t *testing.T, m *dns.Msg) {
			if m.Rcode != want {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[want])
			}
		}
	}
	aa := func(want bool) check {
		return func(t *testing.T, m *dns.Msg) {
			if m.Authoritative != want {
				t.Errorf("AA = %v, want %v", m.Authoritative, want)
			}
		}
	}
	counts := func(an, ns, ex int) check {
		return func(t *testing.T, m *dns.Msg) {
			if len(m.Answer) != an || len(m.Ns) != ns || len(m.Extra) != ex {
				t.Errorf("sections %d/%d/%d, want %d/%d/%d\n%s", len(m.Answer), len(m.Ns), len(m.Extra), an, ns, ex, m)
			}
		}
	}
	answer := func(want ...string) check {
		return func(t *testing.T, m *dns.Msg) {
			if len(m.Answer) != len(want) {
				t.Fatalf("%d answers, want %d:\n%s", len(m.Answer), len(want), m)
			}
			for i, w := range want {
				if m.Answer[i].String() != w {
					t.Errorf("answer %d:\n got %s\nwant %s", i, m.Answer[i], w)
				}
			}
		}
	}
	tc := func(want bool) check {
		return func(t *testing.T, m *dns.Msg) {
			if m.Truncated != want {
				t.Errorf("TC = %v, want %v", m.Truncated, want)
			}
		}
	}
	opt := func(want bool) check {
		return func(t *testing.T, m *dns.Msg) {
			if (m.IsEdns0() != nil) != want {
				t.Errorf("OPT present = %v, want %v", m.IsEdns0() != nil, want)
			}
		}
	}
	noQuestion := func(t *testing.T, m *dns.Msg) {
		if len(m.Question) != 0 {
			t.Errorf("question echoed: %v", m.Question)
		}
	}
	raw := func(m *dns.Msg, edit func([]byte) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return edit(pack(t, m)) }
	}
	msg := func(m *dns.Msg) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return pack(t, m) }
	}

	cases := []struct {
		name   string
		req    func(t *testing.T) []byte
		proto  Proto
		buf    int
		checks []check
	}{
		{name: "answer", req: msg(question("www.example.org.", dns.TypeA)),
			checks: []check{rcode(dns.RcodeSuccess), aa(true), answer("www.example.org.\t300\tIN\tA\t192.0.2.1"), opt(false)}},
		{name: "question case kept", req: msg(question("WwW.ExAmPlE.OrG.", dns.TypeAAAA)),
			checks: []check{answer("WwW.ExAmPlE.OrG.\t300\tIN\tAAAA\t2001:db8::1"), func(t *testing.T, m *dns.Msg) {
				if m.Question[0].Name != "WwW.ExAmPlE.OrG." {
					t.Errorf("question %q", m.Question[0].Name)
				}
			}}},
		{name: "nodata", req: msg(question("www.example.org.", dns.TypeMX)),
			checks: []check{rcode(dns.RcodeSuccess), aa(true), counts(0, 1, 0), func(t *testing.T, m *dns.Msg) {
				if m.Ns[0].Header().Ttl != 60 {
					t.Errorf("negative TTL %d, want 60", m.Ns[0].Header().Ttl)
				}
			}}},
		{name: "nxdomain", req: msg(question("nope.example.org.", dns.TypeA)),
			checks: []check{rcode(dns.RcodeNameError), aa(true), counts(0, 1, 0)}},
		{name: "wildcard", req: msg(question("Some.Wild.example.org.", dns.TypeA)),
			checks: []check{answer("Some.Wild.example.org.\t300\tIN\tA\t192.0.2.100")}},
		{name: "cname", req: msg(question("alias.example.org.", dns.TypeA)),
			checks: []check{counts(2, 0, 0), aa(true)}},
		{name: "referral", req: msg(question("a.sub.example.org.", dns.TypeA)),
			checks: []check{rcode(dns.RcodeSuccess), aa(false), counts(0, 1, 1)}},
		{name: "refused outside zones", req: msg(question("www.example.com.", dns.TypeA)),
			checks: []check{rcode(dns.RcodeRefused), aa(false), counts(0, 0, 0)}},
		{name: "ANY minimal", req: msg(question("example.org.", dns.TypeANY)),
			checks: []check{counts(1, 0, 0)}},
		{name: "class CH refused", req: func(t *testing.T) []byte {
			m := question("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeRefused)}},
		{name: "RD copied", req: func(t *testing.T) []byte {
			m := question("www.example.org.", dns.TypeA)
			m.RecursionDesired = true
			return pack(t, m)
		}, checks: []check{func(t *testing.T, m *dns.Msg) {
			if !m.RecursionDesired || m.RecursionAvailable {
				t.Errorf("RD %v RA %v", m.RecursionDesired, m.RecursionAvailable)
			}
		}}},
		{name: "notify is not implemented", req: func(t *testing.T) []byte {
			m := question("example.org.", dns.TypeSOA)
			m.Opcode = dns.OpcodeNotify
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeNotImplemented)}},
		{name: "update is not implemented", req: func(t *testing.T) []byte {
			m := question("example.org.", dns.TypeSOA)
			m.Opcode = dns.OpcodeUpdate
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeNotImplemented)}},
		{name: "two questions", req: func(t *testing.T) []byte {
			m := question("www.example.org.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeFormatError), noQuestion}},
		{name: "no question", req: func(t *testing.T) []byte {
			m := question("www.example.org.", dns.TypeA)
			m.Question = nil
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "truncated question", req: raw(question("www.example.org.", dns.TypeA), func(b []byte) []byte { return b[:len(b)-3] }),
			checks: []check{rcode(dns.RcodeFormatError), noQuestion}},
		{name: "compression pointer in question", req: func(t *testing.T) []byte {
			b := make([]byte, 12, 64)
			b[0], b[1], b[5] = 0x10, 0x92, 1
			b = append(b, 3, 'w', 'w', 'w', 0xC0, 12, 0, 1, 0, 1)
			return b
		}, checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "label too long for a name", req: func(t *testing.T) []byte {
			b := make([]byte, 12, 400)
			b[5] = 1
			for range 5 {
				b = append(b, 63)
				b = append(b, []byte(strings.Repeat("a", 63))...)
			}
			return append(b, 0, 0, 1, 0, 1)
		}, checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "qtype OPT", req: msg(question("www.example.org.", dns.TypeOPT)), checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "qtype MAILB", req: msg(question("www.example.org.", dns.TypeMAILB)), checks: []check{rcode(dns.RcodeNotImplemented)}},
		{name: "EDNS answer", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 4096, false)),
			checks: []check{rcode(dns.RcodeSuccess), opt(true), func(t *testing.T, m *dns.Msg) {
				o := m.IsEdns0()
				if o.UDPSize() != DefaultMaxUDPSize || o.Version() != 0 || o.Do() || len(o.Option) != 0 {
					t.Errorf("OPT %v", o)
				}
			}}},
		{name: "DO copied", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, true)),
			checks: []check{func(t *testing.T, m *dns.Msg) {
				if !m.IsEdns0().Do() {
					t.Error("DO not copied")
				}
			}}},
		{name: "EDNS version 1", req: func(t *testing.T) []byte {
			m := withEDNS(question("www.example.org.", dns.TypeA), 1232, false)
			m.IsEdns0().SetVersion(1)
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeBadVers), counts(0, 0, 1), func(t *testing.T, m *dns.Msg) {
			if m.IsEdns0().Version() != 0 {
				t.Error("BADVERS must carry version 0")
			}
		}}},
		{name: "two OPT records", req: func(t *testing.T) []byte {
			m := withEDNS(withEDNS(question("www.example.org.", dns.TypeA), 1232, false), 1232, false)
			return pack(t, m)
		}, checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "OPT not at root", req: raw(withEDNS(question("www.example.org.", dns.TypeA), 1232, false), func(b []byte) []byte {
			// Rewrite the OPT owner (root, one zero byte) as a pointer to
			// the question name.
			opt := len(b) - 11
			return append(append(append([]byte(nil), b[:opt]...), 0xC0, 12), b[opt+1:]...)
		}), checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "broken option list", req: raw(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}), func(b []byte) []byte {
			b[len(b)-1] = 9 // option length beyond the RDATA
			return b
		}), checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "unknown option ignored", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}}, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})),
			checks: []check{rcode(dns.RcodeSuccess), counts(1, 0, 1), func(t *testing.T, m *dns.Msg) {
				if len(m.IsEdns0().Option) != 0 {
					t.Errorf("options echoed: %v", m.IsEdns0().Option)
				}
			}}},
		{name: "ECS echoed with scope 0 for static data", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0").To4()})),
			checks: []check{rcode(dns.RcodeSuccess), counts(1, 0, 1), func(t *testing.T, m *dns.Msg) {
				e := ecsOf(t, m)
				if e.Family != 1 || e.SourceNetmask != 24 || e.SourceScope != 0 || !e.Address.Equal(net.ParseIP("198.51.100.0")) {
					t.Errorf("ECS %v", e)
				}
			}}},
		{name: "ECS on NXDOMAIN", req: msg(withEDNS(question("nope.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8:1:200::")})),
			checks: []check{rcode(dns.RcodeNameError), func(t *testing.T, m *dns.Msg) {
				if e := ecsOf(t, m); e.SourceScope != 0 || e.SourceNetmask != 56 {
					t.Errorf("ECS %v", e)
				}
			}}},
		{name: "ECS bad family", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(3, 24, 198, 51, 100))),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS source too long for IPv4", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(1, 33, 198, 51, 100, 7, 0))),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS bits set beyond the source prefix", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(1, 20, 198, 51, 100))),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS address longer than the prefix", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(1, 16, 198, 51, 0))),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS truncated option", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24}})),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS scope not 0 in a query", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 16, Address: net.ParseIP("198.51.100.0")})),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS scope not 0, source 0", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 2, 0, 1}})),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "two ECS options", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(1, 24, 198, 51, 100), rawECS(1, 24, 198, 51, 100))),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "ECS source 0", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false, rawECS(1, 0))),
			checks: []check{rcode(dns.RcodeSuccess), func(t *testing.T, m *dns.Msg) {
				if e := ecsOf(t, m); e.SourceNetmask != 0 || e.SourceScope != 0 {
					t.Errorf("ECS %v", e)
				}
			}}},
		{name: "malformed cookie", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708aabb"})),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "short cookie", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304"})),
			checks: []check{rcode(dns.RcodeFormatError)}},
		{name: "TSIG not accepted", req: func(t *testing.T) []byte {
			m := question("www.example.org.", dns.TypeA)
			m.SetTsig("key.", dns.HmacSHA256, 300, time.Now().Unix())
			b, _, err := dns.TsigGenerate(m, "c2VjcmV0c2VjcmV0c2VjcmV0", "", false)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, checks: []check{rcode(dns.RcodeNotAuth)}},
		{name: "truncated without EDNS", req: msg(question("big.example.org.", dns.TypeTXT)),
			checks: []check{tc(true), counts(0, 0, 0), rcode(dns.RcodeSuccess), aa(true)}},
		{name: "truncated with EDNS keeps OPT", req: msg(withEDNS(question("big.example.org.", dns.TypeTXT), 4096, false)),
			checks: []check{tc(true), counts(0, 0, 1), opt(true)}},
		{name: "big answer over TCP", req: msg(question("big.example.org.", dns.TypeTXT)), proto: ProtoTCP, buf: maxMsgSize,
			checks: []check{tc(false), counts(60, 0, 0)}},
		{name: "small buffer advertised", req: msg(withEDNS(question("www.example.org.", dns.TypeA), 100, false)),
			checks: []check{tc(false), counts(1, 0, 1)}},
		{name: "AXFR over UDP sends to TCP", req: msg(question("example.org.", dns.TypeAXFR)),
			checks: []check{tc(true), counts(0, 0, 0)}},
		{name: "AXFR of a non-apex name", req: msg(question("www.example.org.", dns.TypeAXFR)),
			checks: []check{rcode(dns.RcodeNotAuth)}},
		{name: "IXFR over UDP gives the SOA", req: msg(question("example.org.", dns.TypeIXFR)),
			checks: []check{rcode(dns.RcodeSuccess), counts(1, 0, 0), func(t *testing.T, m *dns.Msg) {
				if m.Answer[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("answer %v", m.Answer[0])
				}
			}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proto, buf := c.proto, c.buf
			if proto == 0 {
				proto, buf = ProtoUDP, 4096
			}
			m := serveRaw(t, h, c.req(t), proto, buf)
			if m == nil {
				t.Fatal("no reply")
			}
			for _, ch := range c.checks {
				ch(t, m)
			}
		})
	}
}

// rawECS builds an ECS option byte by byte, so malformed ones can be sent.
func rawECS(family uint16, source byte, addr ...byte) dns.EDNS0 {
	return &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: append([]byte{byte(family >> 8), byte(family), source, 0}, addr...)}
}

func ecsOf(t *testing.T, m *dns.Msg) *dns.EDNS0_SUBNET {
	t.Helper()
	o := m.IsEdns0()
	if o == nil {
		t.Fatal("no OPT in reply")
	}
	for _, opt := range o.Option {
		if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	t.Fatalf("no ECS option in reply: %v", o)
	return nil
}

func TestServePacketDrops(t *testing.T) {
	h := testHandler(t, HandlerConfig{})
	resp := question("www.example.org.", dns.TypeA)
	resp.Response = true
	cases := map[string][]byte{
		"empty":        nil,
		"short header": {1, 2, 3, 4, 5},
		"a response":   pack(t, resp),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			if out := h.ServePacket(make([]byte, 0, 512), req, testClient, ProtoUDP); out != nil {
				t.Fatalf("answered: % x", out)
			}
		})
	}
}

func TestTransferACL(t *testing.T) {
	h := testHandler(t, HandlerConfig{TransferACL: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	m := serveRaw(t, h, pack(t, question("example.org.", dns.TypeAXFR)), ProtoUDP, 512)
	if m.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
}

func TestCookies(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := testHandler(t, HandlerConfig{Now: func() time.Time { return now }})
	cc := "0102030405060708"
	m := serveRaw(t, h, pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cc})), ProtoUDP, 1232)
	opts := m.IsEdns0().Option
	if len(opts) != 1 {
		t.Fatalf("options %v", opts)
	}
	got := opts[0].(*dns.EDNS0_COOKIE).Cookie
	if len(got) != 48 || got[:16] != cc {
		t.Fatalf("cookie %s: want the client cookie and a 16-byte server cookie", got)
	}
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m.Answer)
	}

	// The server cookie we were given is valid when sent back.
	before := h.metrics.cookies[cookieValid].Load()
	serveRaw(t, h, pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false,
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: got})), ProtoUDP, 1232)
	if h.metrics.cookies[cookieValid].Load() != before+1 {
		t.Error("returned server cookie not seen as valid")
	}

	// RFC 7873 §5.4: no question, only a cookie, gets a cookie back.
	q := withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cc})
	q.Question = nil
	m = serveRaw(t, h, pack(t, q), ProtoUDP, 512)
	if m.Rcode != dns.RcodeSuccess || len(m.IsEdns0().Option) != 1 {
		t.Fatalf("cookie-only query: %v", m)
	}
}

func TestPanicBecomesServfail(t *testing.T) {
	h := testHandler(t, HandlerConfig{Now: func() time.Time { panic("clock broke") }})
	req := pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}))
	m := serveRaw(t, h, req, ProtoUDP, 512)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if h.metrics.Panics() != 1 {
		t.Errorf("panics counted: %d", h.metrics.Panics())
	}
	// The next query is answered normally.
	if m := serveRaw(t, h, pack(t, question("www.example.org.", dns.TypeA)), ProtoUDP, 512); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("after a panic: %v", m)
	}
}

// TestPanicWhileAnsweringPanic: when the SERVFAIL for a panicked query
// cannot be written either (here the clock fails before a 4-byte cookie is
// found malformed, and echoing it fails), the message is dropped and the
// handler goes on; no panic leaves ServePacket.
func TestPanicWhileAnsweringPanic(t *testing.T) {
	h := testHandler(t, HandlerConfig{Now: func() time.Time { panic("clock broke") }})
	req := pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304"}))
	if out := h.ServePacket(make([]byte, 0, 512), req, testClient, ProtoUDP); out != nil {
		t.Fatalf("reply % x, want none", out)
	}
	if h.metrics.Panics() != 1 {
		t.Errorf("panics counted: %d", h.metrics.Panics())
	}
	if m := serveRaw(t, h, pack(t, question("www.example.org.", dns.TypeA)), ProtoUDP, 512); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("after a panic: %v", m)
	}
}

func TestServePacketAllocs(t *testing.T) {
	h := testHandler(t, HandlerConfig{})
	reqs := map[string][]byte{}
	for name, m := range map[string]*dns.Msg{
		"answer":     question("www.example.org.", dns.TypeA),
		"edns":       withEDNS(question("www.example.org.", dns.TypeA), 1232, true),
		"cookie":     withEDNS(question("www.example.org.", dns.TypeA), 1232, true, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}),
		"nxdomain":   question("nope.nope.example.org.", dns.TypeA),
		"wildcard":   question("x.wild.example.org.", dns.TypeA),
		"refused":    question("www.example.com.", dns.TypeA),
		"truncation": question("big.example.org.", dns.TypeTXT),
	} {
		reqs[name] = pack(t, m)
	}
	buf := make([]byte, 0, 4096)
	for name, req := range reqs {
		h.ServePacket(buf, req, testClient, ProtoUDP) // compile once
		allocs := testing.AllocsPerRun(200, func() {
			h.ServePacket(buf, req, testClient, ProtoUDP)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per query", name, allocs)
		}
	}
}

func BenchmarkServePacket(b *testing.B) {
	h := testHandler(b, HandlerConfig{})
	for _, c := range []struct {
		name string
		m    *dns.Msg
	}{
		{"A", question("www.example.org.", dns.TypeA)},
		{"A+EDNS", withEDNS(question("www.example.org.", dns.TypeA), 1232, false)},
		{"A+cookie", withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})},
		{"NXDOMAIN", question("nope.example.org.", dns.TypeA)},
		{"wildcard", question("x.wild.example.org.", dns.TypeA)},
	} {
		req, _ := c.m.Pack()
		buf := make([]byte, 0, 4096)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServePacket(buf, req, testClient, ProtoUDP)
			}
		})
	}
}

func TestServeStream(t *testing.T) {
	h := testHandler(t, HandlerConfig{TransferACL: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	transfer := func(name string, qtype uint16, src netip.AddrPort) []*dns.Msg {
		t.Helper()
		req := pack(t, question(name, qtype))
		if !h.WantsStream(req, src) {
			t.Fatalf("%s %s not taken as a transfer", name, dns.TypeToString[qtype])
		}
		var msgs []*dns.Msg
		err := h.ServeStream(req, src, func(b []byte) error {
			m := new(dns.Msg)
			if err := m.Unpack(b); err != nil {
				t.Fatalf("message does not parse: %v", err)
			}
			msgs = append(msgs, m)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	t.Run("full zone", func(t *testing.T) {
		msgs := transfer("example.org.", dns.TypeAXFR, testClient)
		var rrs []dns.RR
		for _, m := range msgs {
			if m.Rcode != dns.RcodeSuccess || !m.Authoritative || m.Id != 4242 {
				t.Fatalf("message header %v", m.MsgHdr)
			}
			rrs = append(rrs, m.Answer...)
		}
		n := len(h.Zones().Zones()[0].Records())
		if len(rrs) != n+1 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("%d records in %d messages, want %d framed by SOA", len(rrs), len(msgs), n+1)
		}
	})
	t.Run("refused outside the ACL", func(t *testing.T) {
		msgs := transfer("example.org.", dns.TypeAXFR, netip.MustParseAddrPort("198.51.100.1:53000"))
		if len(msgs) != 1 || msgs[0].Rcode != dns.RcodeRefused || len(msgs[0].Answer) != 0 {
			t.Fatalf("%v", msgs)
		}
	})
	t.Run("not a zone", func(t *testing.T) {
		msgs := transfer("www.example.org.", dns.TypeIXFR, testClient)
		if len(msgs) != 1 || msgs[0].Rcode != dns.RcodeNotAuth {
			t.Fatalf("%v", msgs)
		}
	})
	t.Run("other queries are not streams", func(t *testing.T) {
		if h.WantsStream(pack(t, question("example.org.", dns.TypeSOA)), testClient) {
			t.Fatal("SOA query taken as a transfer")
		}
	})
}
