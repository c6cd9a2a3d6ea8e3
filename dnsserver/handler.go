package dnsserver

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/internal/panics"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// HandlerConfig tunes query handling. Zero values take the defaults noted.
type HandlerConfig struct {
	// MaxUDPSize is the largest UDP reply we send and the EDNS buffer size
	// we advertise; 0 = 1232 (DNS flag day 2020: no IP fragmentation).
	MaxUDPSize int
	// TransferACL lists the networks that may transfer zones (AXFR, IXFR)
	// over TCP. Empty: nobody.
	TransferACL []netip.Prefix
	// CookieSecrets: the first signs server cookies, all of them verify (so
	// a secret can be rolled over). Empty: one random secret.
	CookieSecrets []CookieSecret
	// Now is the clock, for tests; nil = time.Now.
	Now func() time.Time

	// Locator finds where clients are for steering; nil: no GeoIP.
	Locator regions.Locator
	// ECS is how EDNS Client Subnet options are used: the truncation of
	// source prefixes and whether non-global subnets count. /v1/explain
	// must be given the same.
	ECS regions.ECSConfig
	// WaitForSnapshot: until the first regions snapshot is set, any answer
	// that denies a name or a type (NXDOMAIN, NODATA) is SERVFAIL, and so
	// are zone transfers: a service nobody knows of yet may live there, and
	// a cached denial would outlive the wait. Positive answers and
	// referrals are sent as usual. While SetLoading says a state is being
	// read, such queries get no reply instead: the services are about to
	// answer, and a resolver asks again (or another server) rather than
	// caching a failure.
	WaitForSnapshot bool
	// Logger gets the panics the handler recovers (a bug): the stack once
	// per site, repeats rate-limited. nil: not logged, only counted.
	Logger *slog.Logger
	// DNSSEC signs the zones it holds keys for, or finds the signatures
	// of keyless zones in their source: every zone set and snapshot is
	// signed before it is swapped in, and queries with the DO bit get the
	// signatures (docs/dnssec.md). nil: nothing is signed.
	DNSSEC *dnssec.Signer
	// RRL limits the rate of UDP answers per client prefix and kind of
	// answer (docs/rrl.md); nil: no limit.
	RRL *RRL
	// SignerBehind says whether a keyless zone's signer is alive and has
	// not yet signed what snap answers with (its etcd revision): a
	// snapshot whose address sets would be answered with signed
	// supersets then waits for it, up to SignerWait. nil: never.
	SignerBehind func(snap *regions.Snapshot) bool
	// SignerWait bounds that wait; 0: 5 s.
	SignerWait time.Duration
}

// DefaultMaxUDPSize is the EDNS buffer size we advertise by default.
const DefaultMaxUDPSize = 1232

// Handler answers raw DNS messages from the current zone set. It is the
// PacketHandler of a Transport and safe for concurrent use.
type Handler struct {
	cfg     HandlerConfig
	maxUDP  int
	secrets []CookieSecret
	now     func() time.Time
	zones   atomic.Pointer[zones.Set]
	steer   atomic.Pointer[steering]
	// signed is what DO queries are answered from: a signed state with
	// the steering of the snapshot it signed (nil: no DNSSEC). signMu
	// serializes its changes.
	signed   atomic.Pointer[signedView]
	signMu   sync.Mutex
	want     wanted // under signMu
	sigStats dnssecStats
	loading  atomic.Bool
	metrics  *Metrics
	ecs      regions.ECSConfig // normalized
	// panicLog logs what ServePacket recovers; the transport's recovery,
	// which would log, is skipped for this handler (selfRecovering).
	panicLog panics.Log
	rrl      *RRL
}

var _ PacketHandler = (*Handler)(nil)

// NewHandler returns a handler serving set (which may be nil until
// SetZones: every query is then REFUSED).
func NewHandler(cfg HandlerConfig, set *zones.Set, m *Metrics) *Handler {
	h := &Handler{cfg: cfg, maxUDP: cfg.MaxUDPSize, secrets: cfg.CookieSecrets, now: cfg.Now, metrics: m, rrl: cfg.RRL}
	if h.maxUDP == 0 {
		h.maxUDP = DefaultMaxUDPSize
	}
	h.maxUDP = min(max(h.maxUDP, 512), maxMsgSize)
	if len(h.secrets) == 0 {
		h.secrets = []CookieSecret{RandomCookieSecret()}
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.metrics == nil {
		h.metrics = NewMetrics()
	}
	h.ecs = cfg.ECS.Normalized()
	h.panicLog.Logger = cfg.Logger
	h.swapZones(set)
	return h
}

// SetZones swaps in a new zone set; queries in flight finish with the old.
// With DNSSEC, the set is signed first (see HandlerConfig.DNSSEC).
func (h *Handler) SetZones(s *zones.Set) { h.swapZones(s) }

// Zones is the zone set being served.
func (h *Handler) Zones() *zones.Set { return h.zones.Load() }

// Metrics returns the handler's counters.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// Header bits (RFC 1035 §4.1.1), in the 16-bit flags word.
const (
	flagQR     = 1 << 15
	flagAA     = 1 << 10
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
	opcodeMask = 0xF << 11
	headerLen  = 12
)

// Extended rcodes (RFC 6891 §6.1.3) live partly in the OPT record.
const (
	rcodeBadVers   = dns.RcodeBadVers   // 16
	rcodeBadCookie = dns.RcodeBadCookie // 23
)

// query is what the handler learned from a request. It lives on the stack.
type query struct {
	id     uint16
	flags  uint16
	qname  []byte // as sent, within the request
	lower  [zones.MaxNameLen]byte
	qtype  uint16
	qclass uint16
	hasQ   bool

	edns    bool
	udpSize uint16
	version uint8
	do      bool
	// tsig: the request is signed; its TSIG record is req[tsigOff:tsigEnd].
	tsig             bool
	tsigOff, tsigEnd int

	// EDNS Client Subnet as sent (RFC 7871); the reply echoes it with
	// ecsScope, the bits the answer depended on.
	ecs       bool
	ecsFamily uint16
	ecsSource uint8
	ecsAddr   []byte // within the request
	ecsScope  uint8

	// sig is the signed state a DO query is answered from (nil: DO clear
	// or nothing signed), zsig the signed zone the query is in.
	sig  *signedView
	zsig *dnssec.ZoneState

	cookie      []byte // the option's data, within the request
	cookieState cookieState
	client      netip.Addr
	now         uint32 // for cookies

	// rcode is the reply's, for the metrics (set by the reply builders).
	rcode int
	// The response rate limiting account of the answer (see account):
	// its kind, and the length of the suffix of lower that names it.
	rrlClass rrlClass
	rrlName  uint8
}

func (q *query) lowerName() []byte { return q.lower[:len(q.qname)] }

// ServePacket answers one DNS message. See PacketHandler.
func (h *Handler) ServePacket(resp, req []byte, src netip.AddrPort, proto Proto) []byte {
	return h.serveAt(resp, req, src, proto, 0)
}

// serveAt is ServePacket for a message received at now (monoNow; 0: not
// known, read the clock if need be), and answers a panic itself: the
// transport calls it directly (selfRecovering).
func (h *Handler) serveAt(resp, req []byte, src netip.AddrPort, proto Proto, now int64) (out []byte) {
	var q query
	// One return only: the compiler then inlines the deferred call (an
	// open-coded defer) instead of registering it at run time, which it
	// does for a function with as many returns as servePacket.
	defer func() {
		// A bug must cost one query, never the listener.
		if r := recover(); r != nil {
			n := h.metrics.panics.Add(1)
			out = h.panicReply(resp, req, &q, proto)
			outcome := "answered SERVFAIL"
			if len(out) == 0 {
				outcome = "message dropped"
			} else {
				h.metrics.count(proto, q.rcode)
			}
			recordPanic(&h.panicLog, r, proto, outcome, n)
		}
	}()
	out = h.servePacket(resp, req, &q, src, proto)
	if proto == ProtoUDP && h.rrl != nil && len(out) > 0 {
		out = h.rateLimit(out, req, &q, src, now)
	}
	if len(out) > 0 {
		h.metrics.count(proto, q.rcode)
	}
	return out
}

// panicReply is the SERVFAIL for a query whose handling panicked. q may
// be half filled in, so should writing the reply panic too, the message
// is dropped: nothing above the handler recovers (selfRecovering).
func (h *Handler) panicReply(resp, req []byte, q *query, proto Proto) (out []byte) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	return h.errorReply(resp[:0], req, q, dns.RcodeServerFailure, proto)
}

// servePacket is ServePacket without the recovery; q is its query state,
// there for the recovery to answer with.
func (h *Handler) servePacket(resp, req []byte, q *query, src netip.AddrPort, proto Proto) []byte {
	if len(req) < headerLen {
		h.metrics.dropped.Add(1)
		return nil // no header: nothing to answer
	}
	q.id = binary.BigEndian.Uint16(req)
	q.flags = binary.BigEndian.Uint16(req[2:])
	if q.flags&flagQR != 0 {
		h.metrics.dropped.Add(1)
		return nil // a response: answering would make us a reflector
	}
	rcode := h.parse(req, q)
	if rcode == dns.RcodeSuccess {
		if opcode := (q.flags & opcodeMask) >> 11; opcode != dns.OpcodeQuery {
			rcode = dns.RcodeNotImplemented
		}
	}
	if rcode != dns.RcodeSuccess {
		return h.errorReply(resp[:0], req, q, rcode, proto)
	}
	if q.cookieState != cookieNone {
		h.checkCookie(q, src.Addr())
	}
	if q.version != 0 {
		return h.errorReply(resp[:0], req, q, rcodeBadVers, proto)
	}
	if q.cookieState == cookieMalformed {
		return h.errorReply(resp[:0], req, q, dns.RcodeFormatError, proto)
	}
	if q.tsig {
		// We hold no TSIG keys: every key is unknown.
		return h.tsigBadKey(resp[:0], req, q, proto)
	}
	if !q.hasQ {
		// RFC 7873 §5.4: a query without a question, with a cookie, asks
		// for a server cookie. Anything else without a question is broken.
		if q.cookieState != cookieNone {
			return h.errorReply(resp[:0], req, q, dns.RcodeSuccess, proto)
		}
		return h.errorReply(resp[:0], req, q, dns.RcodeFormatError, proto)
	}

	switch q.qtype {
	case dns.TypeOPT, dns.TypeTSIG:
		return h.errorReply(resp[:0], req, q, dns.RcodeFormatError, proto)
	case dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return h.errorReply(resp[:0], req, q, dns.RcodeNotImplemented, proto)
	}
	if q.qclass != dns.ClassINET {
		return h.errorReply(resp[:0], req, q, dns.RcodeRefused, proto)
	}
	set := h.zones.Load()
	st := h.steer.Load()
	if q.do {
		// DO: the signed state, with the zones and snapshot it signed.
		if sv := h.signed.Load(); sv != nil {
			q.sig, set, st = sv, sv.state.Zones(), sv.st
		}
	}
	lower := q.lowerName()
	zi := set.FindIndex(lower)
	if zi < 0 {
		return h.errorReply(resp[:0], req, q, dns.RcodeRefused, proto)
	}
	z := set.Zones()[zi]
	if q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return h.transferOverUDP(resp[:0], req, q, z, src, proto)
	}
	if q.sig != nil {
		if q.zsig = q.sig.state.ZoneAt(zi); q.zsig == nil {
			q.sig = nil
		}
	}
	if st != nil {
		if si := st.serviceIndex(lower); si >= 0 {
			return h.serveService(resp[:0], req, q, z.NoData(), nil, nil, st, si, src, proto)
		}
	}
	a := z.Lookup(lower, q.qtype)
	if b := st.overWildcard(z, lower, a); b != nil {
		a = b
	}
	if als := a.Aliases(); len(als) > 0 {
		q.account(a) // a chain a service continues is still a's answer

		if out, ok := h.serveAlias(resp[:0], req, q, set, z, st, als, src, proto); ok {
			return out
		}
	}
	switch {
	case st == nil:
		if h.cfg.WaitForSnapshot && a.Negative() {
			h.metrics.waiting.Add(1)
			if h.loading.Load() {
				return resp[:0]
			}
			return h.errorReply(resp[:0], req, q, dns.RcodeServerFailure, proto)
		}
	case a.Rcode == dns.RcodeNameError:
		// Names above a service exist (RFC 8020).
		if _, ent := st.ents[string(lower)]; ent {
			a = z.NoData()
		}
	}
	return h.answerZone(resp[:0], req, q, a, src, proto)
}

// packSlow compiles an answer for this one query name. Zone content that
// defeats precompilation ends up here; it allocates but stays correct.
func (h *Handler) packSlow(req []byte, a *zones.Answer) *zones.Packed {
	h.metrics.slowPath.Add(1)
	name, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return nil
	}
	p, err := a.PackedFor(name)
	if err != nil {
		return nil
	}
	return p
}

// limit is the largest reply the client can take.
func (h *Handler) limit(q *query, proto Proto, bufCap int) int {
	if proto == ProtoTCP {
		return min(bufCap, maxMsgSize)
	}
	l := 512
	if q.edns {
		l = min(max(int(q.udpSize), 512), h.maxUDP)
	}
	return min(l, bufCap)
}

// reply writes a full answer: header, the client's question, as much of
// the answer as fits, and OPT.
func (h *Handler) reply(resp []byte, q *query, p *zones.Packed, src netip.AddrPort, proto Proto) []byte {
	limit := h.limit(q, proto, cap(resp))
	resp = q.appendHeaderAndQuestion(resp)
	room := limit - len(resp) - h.optLen(q)
	n, counts, tc := p.Fit(room)
	resp = append(resp, p.Body[:n]...)
	return h.endReply(resp, q, p, counts, tc, proto)
}

// endReply finishes a reply whose records are written: OPT, the header
// with the counts, the metrics.
func (h *Handler) endReply(resp []byte, q *query, p *zones.Packed, counts [3]uint16, tc bool, proto Proto) []byte {
	flags := q.replyFlags() | uint16(p.Rcode&0xF)
	if p.Authoritative {
		flags |= flagAA
	}
	if tc {
		flags |= flagTC
		h.metrics.truncated.Add(1)
	}
	ar := counts[2]
	if q.edns {
		resp = h.appendOPT(resp, q, p.Rcode)
		ar++
	}
	setHeader(resp, flags, 1, counts[0], counts[1], ar)
	q.rcode = p.Rcode
	return resp
}

// errorReply answers without records: the question when there was a
// readable one, and OPT when the query had EDNS.
func (h *Handler) errorReply(resp, req []byte, q *query, rcode int, proto Proto) []byte {
	if len(req) < headerLen {
		return nil
	}
	resp = resp[:0]
	var qd uint16
	if q.hasQ {
		resp = q.appendHeaderAndQuestion(resp)
		qd = 1
	} else {
		resp = append(resp, req[:headerLen]...)
	}
	flags := q.replyFlags() | uint16(rcode&0xF)
	var ar uint16
	if q.edns {
		resp = h.appendOPT(resp, q, rcode)
		ar = 1
	}
	setHeader(resp, flags, qd, 0, 0, ar)
	q.rcode, q.rrlClass = rcode, rrlError
	return resp
}

// replyFlags: QR set, opcode, RD and CD copied from the query (RFC 1035,
// RFC 6840 §5.9), everything else clear.
func (q *query) replyFlags() uint16 {
	return flagQR | q.flags&(opcodeMask|flagRD|flagCD)
}

func (q *query) appendHeaderAndQuestion(resp []byte) []byte {
	resp = append(resp, byte(q.id>>8), byte(q.id), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	resp = append(resp, q.qname...)
	return append(resp, byte(q.qtype>>8), byte(q.qtype), byte(q.qclass>>8), byte(q.qclass))
}

func setHeader(resp []byte, flags, qd, an, ns, ar uint16) {
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], qd)
	binary.BigEndian.PutUint16(resp[6:], an)
	binary.BigEndian.PutUint16(resp[8:], ns)
	binary.BigEndian.PutUint16(resp[10:], ar)
}

// transferOverUDP handles AXFR and IXFR arriving where a single reply is
// all we can send. Transfers themselves stream over TCP (see
// ServeTransfer).
func (h *Handler) transferOverUDP(resp, req []byte, q *query, z *zones.Zone, src netip.AddrPort, proto Proto) []byte {
	if !h.transferAllowed(src.Addr()) {
		h.metrics.xfrRefused.Add(1)
		return h.errorReply(resp, req, q, dns.RcodeRefused, proto)
	}
	if !z.IsApex(q.lowerName()) {
		// Only a zone can be transferred (RFC 5936 §2.2.1).
		return h.errorReply(resp, req, q, dns.RcodeNotAuth, proto)
	}
	if q.qtype == dns.TypeIXFR {
		// RFC 1995 §2: a reply holding only the current SOA tells the
		// client to come back over TCP for the full transfer.
		lower := q.lowerName()
		if p := z.Lookup(lower, dns.TypeSOA).Packed(len(lower)); p != nil {
			return h.reply(resp, q, p, src, proto)
		}
	}
	// AXFR over UDP is undefined (RFC 5936 §4.2): TC sends the client to TCP.
	out := h.errorReply(resp, req, q, dns.RcodeSuccess, proto)
	out[2] |= flagTC >> 8
	out[2] |= flagAA >> 8
	return out
}

func (h *Handler) transferAllowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.cfg.TransferACL {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
