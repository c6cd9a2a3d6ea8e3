package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
}

// wanted is the zone set and steering the handler is to serve, and, when
// they could not be signed yet, since when and why: the previous ones
// keep serving meanwhile.
type wanted struct {
	set     *zones.Set
	st      *steering
	hasSt   bool      // st was given (nil: no snapshot)
	since   time.Time // zero: what is wanted is served
	why     string
	waiting bool // for the signer, with supersets ready
}

// DefaultSignerWait is how long a snapshot waits for a live signer
// before signed supersets stand in for what it has not signed.
const DefaultSignerWait = 5 * time.Second

func (h *Handler) logger() *slog.Logger {
	if h.cfg.Logger != nil {
		return h.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// swapSteering swaps in a snapshot's steering, signing it first when
// DNSSEC is on: a snapshot is served only once its answers are signed.
// When it cannot be signed yet, the previous snapshot keeps serving until
// it can (see trySign).
func (h *Handler) swapSteering(st *steering) {
	if h.cfg.DNSSEC == nil {
		h.steer.Store(st)
		return
	}
	h.signMu.Lock()
	defer h.signMu.Unlock()
	h.want.st, h.want.hasSt = st, true
	h.trySign()
}

// swapZones swaps in a zone set, signed first when DNSSEC is on; while it
// cannot be signed, the previous set keeps serving.
func (h *Handler) swapZones(set *zones.Set) {
	if h.cfg.DNSSEC == nil || set == nil {
		h.zones.Store(set)
		return
	}
	h.signMu.Lock()
	defer h.signMu.Unlock()
	h.want.set = set
	h.trySign()
}

// RetrySigning signs again what is waiting to be served, if anything: a
// keyless zone's source has new signatures.
func (h *Handler) RetrySigning() {
	if h.cfg.DNSSEC == nil {
		return
	}
	h.signMu.Lock()
	defer h.signMu.Unlock()
	if !h.want.since.IsZero() {
		h.trySign()
	}
}

// trySign signs the wanted zone set and steering and swaps them in with
// their signatures. A keyless zone whose signatures are not all there
// keeps the previous ones serving: until they come, or, when signed
// supersets stand in for the missing address sets, until its signer is
// away or has had SignerWait. Under signMu.
func (h *Handler) trySign() {
	w := &h.want
	if w.set == nil {
		// No zones yet: nothing to sign.
		if w.hasSt {
			h.steer.Store(w.st)
		}
		return
	}
	st := w.st
	if !w.hasSt {
		st = h.steer.Load()
	}
	var snap *regions.Snapshot
	if st != nil {
		snap = st.snap
	}
	now := h.now()
	state, err := h.cfg.DNSSEC.Build(w.set, snap)
	if err == nil && state.Stats().Substituted > 0 && h.cfg.SignerBehind != nil {
		if w.since.IsZero() {
			w.since = now
		}
		wait := h.cfg.SignerWait
		if wait == 0 {
			wait = DefaultSignerWait
		}
		if now.Sub(w.since) < wait && h.cfg.SignerBehind(snap) {
			w.why, w.waiting = fmt.Sprintf("waiting for the signer: %d address sets not signed yet", state.Stats().Substituted), true
			return
		}
	}
	if err != nil {
		if w.since.IsZero() {
			w.since = now
			h.logger().Warn("cannot sign the new zones or snapshot yet; the previous ones keep serving", "err", err)
		}
		if !errors.Is(err, dnssec.ErrUnsigned) {
			h.sigStats.failed.Add(1)
			h.logger().Error("signing failed; the previous zones and snapshot keep serving", "err", err)
		}
		w.why, w.waiting = err.Error(), false
		return
	}
	if !w.since.IsZero() {
		h.logger().Info("signed; serving the new zones and snapshot", "waited", now.Sub(w.since).Round(time.Millisecond),
			"substituted", state.Stats().Substituted)
	}
	w.since, w.why, w.waiting = time.Time{}, "", false
	h.noteBuild(state)
	h.zones.Store(w.set)
	if w.hasSt {
		h.steer.Store(st)
	}
	h.signed.Store(&signedView{state: state, st: st})
}

func (h *Handler) noteBuild(state *dnssec.State) {
	bs := state.Stats()
	if bs.Signed > 0 || bs.Chains > 0 {
		h.logger().Debug("signed", "services", bs.Services, "resigned", bs.Resigned, "signatures", bs.Signed, "reused", bs.Reused,
			"chains", bs.Chains, "took", bs.Took, "refresh_at", bs.RefreshAt)
	}
}

// RunDNSSEC refreshes signatures in the background until ctx ends: every
// interval it makes again (or, keyless, looks up again) the signatures
// due for refresh (each is due at its own time, see dnssec.Policy) and
// swaps in the state that carries them. Nothing is thrown away: a state
// is replaced only by a complete one. Every second it signs again what
// waits to be served. Without DNSSEC it returns at once.
func (h *Handler) RunDNSSEC(ctx context.Context, interval time.Duration) error {
	if h.cfg.DNSSEC == nil {
		return nil
	}
	refresh := time.NewTicker(interval)
	defer refresh.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			h.RefreshSignatures()
		case <-retry.C:
			h.RetrySigning()
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
	state, err := h.cfg.DNSSEC.Refresh(sv.state)
	switch {
	case err != nil:
		if !errors.Is(err, dnssec.ErrUnsigned) {
			h.sigStats.failed.Add(1)
		}
		h.logger().Error("signature refresh failed; the current signatures keep serving", "err", err)
	case state != nil:
		h.noteBuild(state)
		h.signed.Store(&signedView{state: state, st: sv.st})
		bs := state.Stats()
		h.logger().Info("signatures refreshed", "signatures", bs.Signed, "services", bs.Resigned, "chains", bs.Chains, "took", bs.Took, "next", bs.RefreshAt)
	}
}

// DNSSECStatus is what signing looks like now: the served state's
// figures, and what waits to be served and why.
type DNSSECStatus struct {
	Served  *dnssec.State // nil: nothing signed yet
	Pending time.Time     // zero: nothing waits
	Why     string        // why it waits
	Waiting bool          // for the signer, supersets ready
}

// DNSSECStatus says how signing goes.
func (h *Handler) DNSSECStatus() DNSSECStatus {
	var out DNSSECStatus
	if sv := h.signed.Load(); sv != nil {
		out.Served = sv.state
	}
	h.signMu.Lock()
	out.Pending, out.Why, out.Waiting = h.want.since, h.want.why, h.want.waiting
	h.signMu.Unlock()
	return out
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
		if v := q.zsig.Answer(a); v != nil {
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
	z := q.zsig.Zone()
	v := q.zsig.Answer(a)
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
	resp, n = q.zsig.AppendDenial(resp, q.lowerName(), wild)
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
	descExpiry = prometheus.NewDesc("meridian_dnssec_signature_expiry_seconds",
		"Seconds until the first signature served expires (negative: expired). Falls while a keyless server's signer is away.", nil, nil)
	descSubstituted = prometheus.NewDesc("meridian_dnssec_substituted_sets",
		"Address sets answered with a signed superset because their own signatures are not there (a keyless server whose signer is away or behind).", nil, nil)
	descPending = prometheus.NewDesc("meridian_dnssec_pending_seconds",
		"Seconds a zone set or snapshot has waited to be signed while the previous one kept serving (0: none waits).", nil, nil)
)

// DNSSECCollector exports the handler's signing counters.
func DNSSECCollector(h *Handler) prometheus.Collector { return dnssecCollector{h} }

type dnssecCollector struct{ h *Handler }

func (c dnssecCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUnsigned
	ch <- descSignFailed
	ch <- descRefreshDue
	ch <- descExpiry
	ch <- descSubstituted
	ch <- descPending
}

func (c dnssecCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.h.sigStats
	ch <- prometheus.MustNewConstMetric(descUnsigned, prometheus.CounterValue, float64(s.unsigned.Load()))
	ch <- prometheus.MustNewConstMetric(descSignFailed, prometheus.CounterValue, float64(s.failed.Load()))
	now := c.h.now()
	ds := c.h.DNSSECStatus()
	if st := ds.Served; st != nil {
		bs := st.Stats()
		if !bs.RefreshAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descRefreshDue, prometheus.GaugeValue, bs.RefreshAt.Sub(now).Seconds())
		}
		if !bs.Expires.IsZero() {
			ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, bs.Expires.Sub(now).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descSubstituted, prometheus.GaugeValue, float64(bs.Substituted))
	}
	pending := 0.0
	if !ds.Pending.IsZero() {
		pending = now.Sub(ds.Pending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, pending)
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
