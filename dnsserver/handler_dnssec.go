package dnsserver

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// signedView is what a query with the DO bit is answered from: a signed
// state and the steering of the snapshot it signed, swapped together so
// that a query never mixes one snapshot's answers with another's
// signatures.
type signedView struct {
	state *dnssec.State
	st    *steering
}

// dnssecStats counts what signing does, for metrics and status.
type dnssecStats struct {
	unsigned atomic.Uint64 // DO answers refused (SERVFAIL) for want of a signature
	failed   atomic.Uint64 // builds that failed: the previous state kept serving
	refresh  atomic.Int64  // unix time the first signature is due for refresh
}

func (h *Handler) logger() *slog.Logger {
	if h.cfg.Logger != nil {
		return h.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// swapSteering swaps in a snapshot's steering, signing it first when
// DNSSEC is on: a snapshot is served only once its answers are signed.
// When signing fails the previous snapshot keeps serving.
func (h *Handler) swapSteering(st *steering) {
	if h.cfg.DNSSEC == nil {
		h.steer.Store(st)
		return
	}
	h.signMu.Lock()
	defer h.signMu.Unlock()
	var snap *regions.Snapshot
	if st != nil {
		snap = st.snap
	}
	state, ok := h.sign(h.zones.Load(), snap)
	if !ok {
		return
	}
	h.steer.Store(st)
	h.signed.Store(&signedView{state: state, st: st})
}

// swapZones swaps in a zone set, signed first when DNSSEC is on; when
// signing fails the previous set keeps serving.
func (h *Handler) swapZones(set *zones.Set) {
	if h.cfg.DNSSEC == nil || set == nil {
		h.zones.Store(set)
		return
	}
	h.signMu.Lock()
	defer h.signMu.Unlock()
	var st *steering
	var snap *regions.Snapshot
	if sv := h.signed.Load(); sv != nil {
		st = sv.st
	} else {
		st = h.steer.Load()
	}
	if st != nil {
		snap = st.snap
	}
	state, ok := h.sign(set, snap)
	if !ok {
		return
	}
	h.zones.Store(set)
	h.signed.Store(&signedView{state: state, st: st})
}

func (h *Handler) sign(set *zones.Set, snap *regions.Snapshot) (*dnssec.State, bool) {
	state, err := h.cfg.DNSSEC.Build(set, snap)
	if err != nil {
		h.sigStats.failed.Add(1)
		h.logger().Error("signing failed; the previous zones and snapshot keep serving", "err", err)
		return nil, false
	}
	h.noteBuild(state)
	return state, true
}

func (h *Handler) noteBuild(state *dnssec.State) {
	bs := state.Stats()
	h.sigStats.refresh.Store(bs.RefreshAt.Unix())
	if bs.Signed > 0 || bs.Chains > 0 {
		h.logger().Debug("signed", "services", bs.Services, "resigned", bs.Resigned, "signatures", bs.Signed, "reused", bs.Reused,
			"chains", bs.Chains, "took", bs.Took, "refresh_at", bs.RefreshAt)
	}
}

// RunDNSSEC refreshes signatures in the background until ctx ends: every
// interval it makes again the signatures due for refresh (each is due at
// its own time, see dnssec.Policy) and swaps in the state that carries
// them. Nothing is thrown away: a state is replaced only by a complete
// one. Without DNSSEC it returns at once.
func (h *Handler) RunDNSSEC(ctx context.Context, interval time.Duration) error {
	if h.cfg.DNSSEC == nil {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.RefreshSignatures()
		}
	}
}

// RefreshSignatures makes the signatures that are due and swaps them in.
func (h *Handler) RefreshSignatures() {
	h.signMu.Lock()
	defer h.signMu.Unlock()
	sv := h.signed.Load()
	if sv == nil {
		return
	}
	state, err := h.cfg.DNSSEC.Refresh()
	switch {
	case err != nil:
		h.sigStats.failed.Add(1)
		h.logger().Error("signature refresh failed; the current signatures keep serving", "err", err)
	case state != nil:
		h.noteBuild(state)
		h.signed.Store(&signedView{state: state, st: sv.st})
		bs := state.Stats()
		h.logger().Info("signatures refreshed", "signatures", bs.Signed, "services", bs.Resigned, "chains", bs.Chains, "took", bs.Took, "next", bs.RefreshAt)
	}
}

// SignedState is the signed state DO queries are answered from, nil
// without DNSSEC.
func (h *Handler) SignedState() *dnssec.State {
	if sv := h.signed.Load(); sv != nil {
		return sv.state
	}
	return nil
}

// signedAnswer is a's signed variant when the query is answered signed.
func (q *query) signedAnswer(a *zones.Answer) *zones.Answer {
	if q.sig != nil {
		if v := q.sig.state.Answer(q.zone, a); v != nil {
			return v
		}
	}
	return a
}

// answerSigned sends a zone answer signed: its signed variant, and the
// NSEC records that depend on the query name (RFC 4035 §3.1.3): the
// denial of the name for the zone's shared NXDOMAIN and NODATA answers,
// the NSEC covering it for a wildcard answer. Those answers have no
// additional section, so the records go at the end of the authority
// section. An answer that does not fit whole gets TC.
func (h *Handler) answerSigned(resp, req []byte, q *query, a *zones.Answer, src netip.AddrPort, proto Proto) []byte {
	z := q.zone
	v := q.sig.state.Answer(z, a)
	if v == nil {
		h.sigStats.unsigned.Add(1)
		return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto)
	}
	p := v.Packed(len(q.qname))
	if p == nil {
		if p = h.packSlow(req, v); p == nil {
			return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto)
		}
	}
	wild := a.Denies()
	if !wild && a != z.NXDomain() && a != z.NoData() {
		return h.reply(resp, q, p, src, proto)
	}
	limit := h.limit(q, proto, cap(resp))
	resp = q.appendHeaderAndQuestion(resp)
	start := len(resp)
	_, counts, _ := p.Fit(len(p.Body))
	resp = append(resp, p.Body...)
	var n uint16
	resp, n = q.sig.state.AppendDenial(resp, z, q.lowerName(), wild)
	counts[1] += n
	tc := len(resp)+h.optLen(q) > limit
	if tc {
		resp = resp[:start]
		counts = [3]uint16{}
	}
	return h.endReply(resp, q, p, counts, tc, proto)
}

// sigsLen is the size of RRSIGs written behind an owner of ownerLen bytes.
func sigsLen(sigs [][]byte, ownerLen int) int {
	n := 0
	for _, s := range sigs {
		n += ownerLen + len(s)
	}
	return n
}

// appendRRSIGs writes each signature behind owner, with the TTL of the
// answer it signs (a degraded answer's TTL is below the signature's
// original TTL, which validators accept; RFC 4034 §3 wants the RRSIG's
// TTL to be the RRset's).
func appendRRSIGs(resp []byte, sigs [][]byte, owner []byte, ttl uint32) []byte {
	for _, s := range sigs {
		resp = append(resp, owner...)
		at := len(resp) + 4 // type, class, then the TTL
		resp = append(resp, s...)
		binary.BigEndian.PutUint32(resp[at:], ttl)
	}
	return resp
}

// DNSSEC metrics.
var (
	descUnsigned = prometheus.NewDesc("meridian_dnssec_unsigned_total",
		"Queries with the DO bit answered SERVFAIL because a signature their answer needs was missing.", nil, nil)
	descSignFailed = prometheus.NewDesc("meridian_dnssec_sign_failures_total",
		"Zone sets, snapshots or refreshes that could not be signed (the previous signed state kept serving).", nil, nil)
	descRefreshDue = prometheus.NewDesc("meridian_dnssec_refresh_due_seconds",
		"Seconds until the first signature served is due for refresh (negative: overdue; expiry follows the refresh interval later).", nil, nil)
)

// DNSSECCollector exports the handler's signing counters.
func DNSSECCollector(h *Handler) prometheus.Collector { return dnssecCollector{h} }

type dnssecCollector struct{ h *Handler }

func (c dnssecCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUnsigned
	ch <- descSignFailed
	ch <- descRefreshDue
}

func (c dnssecCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.h.sigStats
	ch <- prometheus.MustNewConstMetric(descUnsigned, prometheus.CounterValue, float64(s.unsigned.Load()))
	ch <- prometheus.MustNewConstMetric(descSignFailed, prometheus.CounterValue, float64(s.failed.Load()))
	if r := s.refresh.Load(); r != 0 && c.h.signed.Load() != nil {
		ch <- prometheus.MustNewConstMetric(descRefreshDue, prometheus.GaugeValue, float64(r-c.h.now().Unix()))
	}
}

// signedTransfer is what a transfer of z carries when z is signed in sv:
// the zone and its services (each family a service answers in the
// snapshot, as its NSEC record says), every RRset with its signatures,
// and the NSEC chain; nil when z is not signed. The final SOA is not in
// it.
func signedTransfer(sv *signedView, set *zones.Set, z *zones.Zone) ([]dns.RR, error) {
	if sv == nil || !sv.state.Signed(z) {
		return nil, nil
	}
	records := append([]dns.RR(nil), z.Records()...)
	if sv.st != nil {
		for _, rr := range serviceRecords(set, z, sv.st.snap) {
			v := sv.st.snap.ServiceByName(rr.Header().Name)
			if v == nil || !v.CanAnswer(familyOf(rr.Header().Rrtype)) {
				continue
			}
			records = append(records, rr)
		}
	}
	return sv.state.Transfer(z, records)
}

func familyOf(t uint16) int {
	if t == dns.TypeAAAA {
		return 1
	}
	return 0
}
