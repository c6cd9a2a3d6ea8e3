package dnsserver

import (
	"math/rand/v2"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// steering is the regions snapshot the handler steers services with,
// indexed for the query path: services by their lower-case wire names,
// and the names above services that must answer NODATA, not NXDOMAIN.
type steering struct {
	snap *regions.Snapshot
	*names
	// regionAnswers are the metrics' counters of snap's regions, by
	// their index in snap.Regions() (Decision.RegionIndex).
	regionAnswers []*regionCounters
	// pairs are the metrics' counters of each service's answers by
	// region, by service index.
	pairs []*pairCounters
}

// names indexes a snapshot's service names; the next snapshot shares it
// when its services are the same (regions.Snapshot.SameServiceNames), so
// a swap that changes weights or health indexes nothing.
type names struct {
	services map[string]int32    // lower-case wire names -> Snapshot.ServiceAt
	ents     map[string]struct{} // lower-case wire names
	// lens has bit n set when a service name is n bytes long: most names
	// asked for are not services, and most are told so without hashing.
	lens [4]uint64
	// counters are the metrics' counters of the services, by index.
	counters []*serviceCounters
}

// serviceIndex is the index (Snapshot.ServiceAt) of the service at the
// lower-case wire name, -1 if none.
func (st *steering) serviceIndex(name []byte) int32 {
	if n := len(name); n > zones.MaxNameLen || st.lens[n>>6]&(1<<(n&63)) == 0 {
		return -1
	}
	if i, ok := st.services[string(name)]; ok {
		return i
	}
	return -1
}

// service is the service at the lower-case wire name, nil if none.
func (st *steering) service(name []byte) *regions.ServiceView {
	if i := st.serviceIndex(name); i >= 0 {
		return st.snap.ServiceAt(int(i))
	}
	return nil
}

// SetSnapshot swaps in a new regions snapshot. It indexes the snapshot's
// service names first (unless the previous snapshot's index serves), so
// the query path only reads.
func (h *Handler) SetSnapshot(s *regions.Snapshot) {
	if s == nil {
		h.swapSteering(nil)
		return
	}
	st := &steering{snap: s}
	var regionNames []string
	for _, r := range s.Regions() {
		regionNames = append(regionNames, r.Name)
	}
	st.regionAnswers = h.metrics.setRegions(regionNames)
	prev := h.steer.Load()
	var prevPairs []*pairCounters
	if prev != nil {
		prevPairs = prev.pairs
	}
	st.pairs = h.metrics.setPairs(s, prevPairs)
	if prev != nil && s.SameServiceNames(prev.snap) {
		st.names = prev.names
		h.swapSteering(st)
		return
	}
	st.names = &names{services: make(map[string]int32, s.NumServices()), ents: map[string]struct{}{}}
	serviceNames := make([]string, s.NumServices())
	for i := range s.NumServices() {
		serviceNames[i] = s.ServiceAt(i).Name()
	}
	st.counters = h.metrics.setServices(serviceNames)
	for i := range s.NumServices() {
		w, err := zones.WireName(s.ServiceAt(i).Name())
		if err != nil {
			continue // the model admits host names only; they always pack
		}
		st.services[w] = int32(i)
		st.lens[len(w)>>6] |= 1 << (len(w) & 63)
		// Every proper ancestor of a service name exists (RFC 8020): it is
		// an empty non-terminal unless the zone holds data there.
		for off := int(w[0]) + 1; off < len(w) && w[off] != 0; off += int(w[off]) + 1 {
			st.ents[w[off:]] = struct{}{}
		}
	}
	h.swapSteering(st)
}

// SetLoading says whether a state to steer with is being read (a state
// file at start-up): until the first snapshot, queries that would wait
// for it (see HandlerConfig.WaitForSnapshot) get no reply rather than
// SERVFAIL.
func (h *Handler) SetLoading(loading bool) { h.loading.Store(loading) }

// Snapshot is the regions snapshot being served, or nil.
func (h *Handler) Snapshot() *regions.Snapshot {
	if st := h.steer.Load(); st != nil {
		return st.snap
	}
	return nil
}

// serveService answers a name steered by the service at index si of the
// snapshot: A or AAAA from the decision, nodata for other types and when
// the decision has no address. With chain (a CNAME chain ending at the
// service's name) the steered records follow the chain and are owned by
// its target, written as owner (a compression pointer, or the name
// itself). Negative answers carry ECS scope 0.
func (h *Handler) serveService(resp, req []byte, q *query, nodata *zones.Answer, chain *zones.Packed, owner []byte, st *steering, si int32, src netip.AddrPort, proto Proto) []byte {
	v, sc := st.snap.ServiceAt(int(si)), st.counters[si]
	qtype := q.qtype
	if qtype == dns.TypeANY {
		qtype = dns.TypeA // RFC 8482: one RRset is a complete answer to ANY
	}
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		sc.nodata.Add(1)
		return h.answerZone(resp, req, q, nodata, src, proto)
	}
	// Who the decision is for: regions.ECSConfig.Client, the one
	// derivation /v1/explain uses too.
	var ecs netip.Prefix
	if q.ecs {
		ecs = q.ecsPrefix()
	}
	c, use := h.ecs.Client(src.Addr(), ecs, h.cfg.Locator)
	d := st.snap.Decide(v, &c, qtype, rand.Uint64())
	h.metrics.steered.Add(1)
	if d.FailOpen {
		sc.failOpen.Add(1)
	}
	if d.Kind != regions.KindAnswer || d.Count == 0 {
		sc.nodata.Add(1)
		return h.answerZone(resp, req, q, nodata, src, proto)
	}
	q.ecsScope = uint8(use.ReplyScope(ecs, d.Scope))

	var ptr [2]byte
	if chain == nil {
		ptr = [2]byte{0xC0, headerLen} // the question's name
		owner = ptr[:]
	} else if chain.TargetOff != 0 {
		ptr = [2]byte{0xC0 | byte(chain.TargetOff>>8), byte(chain.TargetOff)}
		owner = ptr[:]
	}
	var sigs [][]byte
	if q.sig != nil {
		if sigs = q.sig.state.ServiceAnswer(v, &d); sigs == nil {
			// Never an unsigned answer from a signed zone: a validator
			// would call it bogus. Another server, or a later try, has it.
			h.sigStats.unsigned.Add(1)
			return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto)
		}
	}
	sc.answers.Add(1)
	if d.Region != "" && d.RegionIndex < len(st.regionAnswers) {
		// By the client's continent: known when the decision located the
		// client, else one lookup in the location table (see
		// regions.Snapshot.ClientContinent).
		cont := st.snap.ClientContinent(&c)
		st.regionAnswers[d.RegionIndex].byContinent[cont+1].Add(1)
		if int(si) < len(st.pairs) {
			st.pairs[si].count(v, d.RegionIndex)
		}
	}
	limit := h.limit(q, proto, cap(resp))
	resp = q.appendHeaderAndQuestion(resp)
	rdlen := 4
	if qtype == dns.TypeAAAA {
		rdlen = 16
	}
	flags := q.replyFlags() | flagAA
	var an uint16
	room := limit - len(resp) - h.optLen(q) - d.Count*(len(owner)+10+rdlen) - sigsLen(sigs, len(owner))
	var body []byte
	if chain != nil {
		n, counts, tc := chain.Fit(room)
		if tc || n < len(chain.Body) {
			room = -1
		}
		body, an = chain.Body, counts[0]
	}
	if room < len(body) {
		// The chain and the RRset are sent whole or not at all (RFC 2181 §9).
		flags |= flagTC
		an = 0
		h.metrics.truncated.Add(1)
	} else {
		resp = append(resp, body...)
		an += uint16(d.Count)
		for i := range d.Count {
			a := d.Addr(i)
			resp = append(resp, owner...)
			resp = append(resp,
				byte(qtype>>8), byte(qtype), 0, byte(dns.ClassINET),
				byte(d.TTL>>24), byte(d.TTL>>16), byte(d.TTL>>8), byte(d.TTL),
				0, byte(rdlen))
			if rdlen == 4 {
				b := a.As4()
				resp = append(resp, b[:]...)
			} else {
				b := a.As16()
				resp = append(resp, b[:]...)
			}
		}
		resp = appendRRSIGs(resp, sigs, owner, d.TTL)
		an += uint16(len(sigs))
	}
	var ar uint16
	if q.edns {
		resp = h.appendOPT(resp, q, dns.RcodeSuccess)
		ar = 1
	}
	setHeader(resp, flags, 1, an, 0, ar)
	q.rcode = dns.RcodeSuccess
	if chain == nil {
		q.rrlClass, q.rrlName = rrlPositive, uint8(len(q.qname))
	}
	return resp
}

// takeover is what, from outside the zone file, answers at an alias
// target (see zones.Alias).
type takeover uint8

const (
	takeNone      takeover = iota // nothing: the zone's own answer stands
	takeOtherZone                 // another of our zones holds the target
	takeService                   // a service is there
	takeNoData                    // a name above a service is there
)

// takeover says what answers at al's target: a name inside another of
// our zones (one z does not delegate) ends the chain here, as any target
// outside z does, for the resolver to follow; a service (its index) or a
// name above one come from the snapshot. st may be nil (no snapshot yet).
func (st *steering) takeover(set *zones.Set, z *zones.Zone, al *zones.Alias) (takeover, int32) {
	if set.Find(al.Target) != z {
		return takeOtherZone, -1
	}
	if st == nil {
		return takeNone, -1
	}
	if i := st.serviceIndex(al.Target); i >= 0 {
		return takeService, i
	}
	if _, ent := st.ents[string(al.Target)]; ent {
		return takeNoData, -1
	}
	return takeNone, -1
}

// overWildcard is what answers qname (lower-case wire) instead of a, an
// answer synthesized from a wildcard, when names outside the zone file are
// in the way: a wildcard stands only for names that do not exist (RFC 4592
// §2.2.1), and services and the names above them exist. qname itself above
// a service is NODATA; qname below a service, or below a name above one, is
// NXDOMAIN (nothing of the zone file is there, so no wildcard either). nil:
// a stands (also when st is nil).
func (st *steering) overWildcard(z *zones.Zone, qname []byte, a *zones.Answer) *zones.Answer {
	below := a.SynthesizedBelow()
	if below == 0 || st == nil {
		return nil
	}
	if _, ent := st.ents[string(qname)]; ent {
		return z.NoData()
	}
	// The proper ancestors of qname below the wildcard's parent.
	for off := int(qname[0]) + 1; len(qname)-off > below; off += int(qname[off]) + 1 {
		anc := qname[off:]
		if st.service(anc) != nil {
			return z.NXDomain()
		}
		if _, ent := st.ents[string(anc)]; ent {
			return z.NXDomain()
		}
	}
	return nil
}

// serveAlias answers a name whose CNAME chain reaches a name the zone
// file does not settle, when something else does (see takeover): a
// service gets the chain followed by its steered answer, a name above a
// service the chain and NODATA, another zone of ours the chain alone,
// NOERROR. ok is false when nothing takes over.
func (h *Handler) serveAlias(resp, req []byte, q *query, set *zones.Set, z *zones.Zone, st *steering, als []zones.Alias, src netip.AddrPort, proto Proto) (out []byte, ok bool) {
	for i := range als {
		al := &als[i]
		switch k, si := st.takeover(set, z, al); k {
		case takeOtherZone:
			return h.answerZone(resp, req, q, al.CNAMEs, src, proto), true
		case takeNoData:
			return h.answerZone(resp, req, q, al.NoData, src, proto), true
		case takeService:
			cn := q.signedAnswer(al.CNAMEs)
			p := cn.Packed(len(q.qname))
			if p == nil {
				if p = h.packSlow(req, cn); p == nil {
					return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto), true
				}
			}
			return h.serveService(resp, req, q, al.NoData, p, al.Target, st, si, src, proto), true
		}
	}
	return nil, false
}

// answerZone sends a zone answer for the query's name.
func (h *Handler) answerZone(resp, req []byte, q *query, a *zones.Answer, src netip.AddrPort, proto Proto) []byte {
	q.ecsScope = 0
	q.account(a)
	if q.sig != nil {
		return h.answerSigned(resp, req, q, a, src, proto)
	}
	p := a.Packed(len(q.qname))
	if p == nil {
		if p = h.packSlow(req, a); p == nil {
			return h.errorReply(resp, req, q, dns.RcodeServerFailure, proto)
		}
	}
	return h.reply(resp, q, p, src, proto)
}

// ecsPrefix is the ECS subnet as sent: the address of its family and the
// source prefix length.
func (q *query) ecsPrefix() netip.Prefix {
	switch q.ecsFamily {
	case 1:
		var b [4]byte
		copy(b[:], q.ecsAddr)
		return netip.PrefixFrom(netip.AddrFrom4(b), int(q.ecsSource))
	case 2:
		var b [16]byte
		copy(b[:], q.ecsAddr)
		return netip.PrefixFrom(netip.AddrFrom16(b), int(q.ecsSource))
	}
	return netip.Prefix{}
}
