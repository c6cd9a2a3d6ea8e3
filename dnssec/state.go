package dnssec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// ZoneConfig is one signed zone: its keys and policy.
type ZoneConfig struct {
	Keys   *KeySet
	Policy Policy
}

// Signer makes States: it holds the keys of every signed zone and the
// signatures made so far, and builds each State from the previous one.
// Its methods are safe for concurrent use; builds are serialized.
type Signer struct {
	now     func() time.Time
	signers map[string]*signer // by zone origin

	mu   sync.Mutex // serializes builds
	last *State
	mark uint64
}

// NewSigner signs the zones in cfg (by origin, lower case, fully
// qualified). now is the clock (nil: time.Now).
func NewSigner(cfg map[string]ZoneConfig, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	s := &Signer{now: now, signers: map[string]*signer{}}
	for origin, zc := range cfg {
		s.signers[dns.Fqdn(origin)] = newSigner(zc.Keys, zc.Policy, now)
	}
	return s
}

// DNSKEYs is the apex DNSKEY RRset of a signed zone, nil for others: what
// zones.LoadOptions.DNSKEYs takes.
func (s *Signer) DNSKEYs(origin string) []dns.RR {
	if sg := s.signers[dns.Fqdn(origin)]; sg != nil {
		return sg.keys.DNSKEYs()
	}
	return nil
}

// Zones lists the origins of the signed zones.
func (s *Signer) Zones() []string {
	var out []string
	for o := range s.signers {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// State is what one zone set and one regions snapshot answer with when a
// query has the DO bit: the signed variant of every zone answer, the NSEC
// chain of every signed zone and the signatures of every address set a
// service can answer with. Immutable; the query path reads it.
type State struct {
	zones    *zones.Set
	snap     *regions.Snapshot
	byZone   map[*zones.Zone]*zoneState
	services map[*regions.ServiceView]*svcSigs
	stats    BuildStats
}

// BuildStats says what building a State did.
type BuildStats struct {
	Services  int           `json:"services"`   // services in signed zones
	Resigned  int           `json:"resigned"`   // services whose signatures were looked at again
	Signed    uint64        `json:"signed"`     // signatures made
	Reused    uint64        `json:"reused"`     // signatures taken from the cache
	Chains    int           `json:"chains"`     // NSEC chains built
	Took      time.Duration `json:"took"`       // how long the build took
	RefreshAt time.Time     `json:"refresh_at"` // when the first signature is due
}

type zoneState struct {
	z       *zones.Zone
	sg      *signer
	chain   *chain
	answers map[*zones.Answer]*zones.Answer
	// names are the services' entries of the chain, by service name;
	// namesOf is the snapshot they were computed from.
	svcNames map[string]*nameTypes
	// refreshAt is the earliest refresh of the zone's own signatures
	// and its chain's.
	refreshAt time.Time
}

// svcSigs are a service's signatures: per address set it answers with.
type svcSigs struct {
	sets      []setSig
	refreshAt time.Time
}

type setSig struct {
	addrs *netip.Addr // the set's first element: the slice's identity
	n     int
	whole *sigEntry
	// windows: with max_answers below the set's size, an answer is a
	// window of the set starting at Decision.Start, each signed alone.
	windows []*sigEntry
}

// Zones is the zone set the State signs.
func (st *State) Zones() *zones.Set { return st.zones }

// Snapshot is the regions snapshot the State signs (nil: none yet).
func (st *State) Snapshot() *regions.Snapshot { return st.snap }

// Stats says what building the State did.
func (st *State) Stats() BuildStats { return st.stats }

// Build signs what set and snap answer with, reusing the previous
// State's signatures and chains wherever the RRsets are the same. With
// refresh, signatures due for refresh are made again even where nothing
// changed. It fails only when a key cannot sign.
func (s *Signer) Build(set *zones.Set, snap *regions.Snapshot) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.build(set, snap, false)
	if err == nil {
		s.last = st
	}
	return st, err
}

// Refresh builds the last State again, making the signatures that are
// due: the background refresh. It returns nil when nothing was due.
func (s *Signer) Refresh() (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil || s.now().Before(s.last.stats.RefreshAt) {
		return nil, nil
	}
	st, err := s.build(s.last.zones, s.last.snap, true)
	if err != nil {
		return nil, err
	}
	s.last = st
	s.sweep(st)
	return st, nil
}

// Last is the State built last, nil before the first.
func (s *Signer) Last() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Signer) build(set *zones.Set, snap *regions.Snapshot, refresh bool) (*State, error) {
	start := s.now()
	var made0, reused0 uint64
	for _, sg := range s.signers {
		made0 += sg.made.Load()
		reused0 += sg.reused.Load()
	}
	prev := s.last
	st := &State{zones: set, snap: snap, byZone: map[*zones.Zone]*zoneState{}}
	now := s.now()
	var refreshAt time.Time
	due := func(t time.Time) {
		if refreshAt.IsZero() || t.Before(refreshAt) {
			refreshAt = t
		}
	}
	sameNames := prev != nil && snap != nil && snap.SameServiceNames(prev.snap) || prev != nil && snap == nil && prev.snap == nil

	// Services: which signed zone each is in, its chain entry, and its
	// signatures; views shared with the previous snapshot keep theirs.
	svcZone := map[*regions.ServiceView]*zoneState{}
	for _, z := range set.Zones() {
		sg := s.signers[z.Origin()]
		if sg == nil || !z.Signed() {
			continue
		}
		zs := &zoneState{z: z, sg: sg}
		var pz *zoneState
		if prev != nil {
			pz = prev.byZone[z]
			if pz == nil && prev.zones != nil {
				if old := prev.zones.Zone(z.Origin()); old != nil {
					pz = prev.byZone[old]
				}
			}
		}
		if pz != nil && pz.z == z && sameNames {
			*zs = *pz
		}
		st.byZone[z] = zs
	}
	if snap != nil {
		st.services = make(map[*regions.ServiceView]*svcSigs, snap.NumServices())
		chainsDirty := map[*zoneState]bool{}
		for i := range snap.NumServices() {
			v := snap.ServiceAt(i)
			w, err := zones.WireName(v.Name())
			if err != nil {
				continue
			}
			z := set.Find([]byte(w))
			zs := st.byZone[z]
			if zs == nil || z.CheckDynamicName([]byte(w)) != nil {
				continue
			}
			svcZone[v] = zs
			st.stats.Services++
			nt := serviceTypes(v, w)
			if zs.svcNames == nil || !sameTypes(zs.svcNames[w], nt) {
				chainsDirty[zs] = true
			}
			if p := prev; p != nil && p.services[v] != nil && (!refresh || now.Before(p.services[v].refreshAt)) {
				ss := p.services[v]
				st.services[v] = ss
				due(ss.refreshAt)
				continue
			}
			ss, err := signService(zs.sg, v)
			if err != nil {
				return nil, err
			}
			st.stats.Resigned++
			st.services[v] = ss
			due(ss.refreshAt)
		}
		// A service gone also changes the chain.
		for _, zs := range st.byZone {
			n := 0
			for _, zz := range svcZone {
				if zz == zs {
					n++
				}
			}
			if len(zs.svcNames) != n {
				chainsDirty[zs] = true
			}
		}
		for zs := range chainsDirty {
			zs.chain = nil
		}
	}
	for _, zs := range st.byZone {
		if zs.chain != nil && !(refresh && !now.Before(zs.refreshAt)) {
			due(zs.refreshAt)
			continue
		}
		if err := s.buildZone(st, zs, svcZone); err != nil {
			return nil, err
		}
		st.stats.Chains++
		due(zs.refreshAt)
	}
	for _, sg := range s.signers {
		st.stats.Signed += sg.made.Load()
		st.stats.Reused += sg.reused.Load()
	}
	st.stats.Signed -= made0
	st.stats.Reused -= reused0
	st.stats.RefreshAt = refreshAt
	st.stats.Took = s.now().Sub(start)
	return st, nil
}

// serviceTypes is a service's entry in its zone's chain: A and AAAA as
// far as it answers them in this snapshot.
func serviceTypes(v *regions.ServiceView, wire string) *nameTypes {
	nt := &nameTypes{wire: wire, name: v.Name()}
	if v.CanAnswer(0) {
		nt.types = append(nt.types, dns.TypeA)
	}
	if v.CanAnswer(1) {
		nt.types = append(nt.types, dns.TypeAAAA)
	}
	return nt
}

func sameTypes(a, b *nameTypes) bool {
	return a != nil && b != nil && a.wire == b.wire && slices.Equal(a.types, b.types)
}

// buildZone makes a zone's chain and signed answers from its names and
// the services in it.
func (s *Signer) buildZone(st *State, zs *zoneState, svcZone map[*regions.ServiceView]*zoneState) error {
	names := map[string]*nameTypes{}
	zs.svcNames = map[string]*nameTypes{}
	for v, z := range svcZone {
		if z != zs {
			continue
		}
		w, _ := zones.WireName(v.Name())
		nt := serviceTypes(v, w)
		zs.svcNames[w] = nt
		names[w] = &nameTypes{wire: w, name: nt.name, types: slices.Clone(nt.types)}
	}
	for _, n := range zs.z.Names() {
		w, err := zones.WireName(n.Name)
		if err != nil {
			continue
		}
		if e := names[w]; e != nil {
			e.types = append(e.types, n.Types...)
			continue
		}
		names[w] = &nameTypes{wire: w, name: n.Name, types: n.Types}
	}
	c, err := buildChain(zs.z, names, zs.sg)
	if err != nil {
		return err
	}
	zs.chain = c
	zs.refreshAt = time.Time{}
	due := func(t time.Time) {
		if zs.refreshAt.IsZero() || t.Before(zs.refreshAt) {
			zs.refreshAt = t
		}
	}
	for _, e := range c.entries {
		due(e.sigs.refreshAt)
	}
	zsig := &zoneSigs{zs: zs}
	zs.answers = zs.z.SignedAnswers(zsig)
	if zsig.err != nil {
		return zsig.err
	}
	for _, e := range zsig.used {
		due(e.refreshAt)
	}
	return nil
}

// zoneSigs is zones.Signatures for one zone being signed.
type zoneSigs struct {
	zs   *zoneState
	err  error
	used []*sigEntry
}

func (z *zoneSigs) RRSIGs(rrset []dns.RR) []dns.RR {
	h := rrset[0].Header()
	if h.Rrtype == dns.TypeRRSIG || h.Rrtype == dns.TypeNSEC ||
		h.Rrtype == dns.TypeNS && !equalFold(h.Name, z.zs.z.Origin()) {
		return nil // a delegation's NS is not signed
	}
	if !dns.IsSubDomain(z.zs.z.Origin(), h.Name) {
		return nil
	}
	e, err := z.zs.sg.sign(rrset, h.Ttl)
	if err != nil {
		z.err = errors.Join(z.err, err)
		return nil
	}
	z.used = append(z.used, e)
	return sigsFor(e, h.Name)
}

// sigsFor returns e's signatures with owner name as the answer has it
// (a wildcard's owner, say), as the zone answers carry them.
func sigsFor(e *sigEntry, owner string) []dns.RR {
	out := make([]dns.RR, len(e.rrsigs))
	for i, rr := range e.rrsigs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		out[i] = c
	}
	return out
}

func (z *zoneSigs) Denial(name string) []dns.RR { return z.zs.chain.denialRRs(name) }

func equalFold(a, b string) bool { return dns.CanonicalName(a) == dns.CanonicalName(b) }

// signService signs every address set v answers with.
func signService(sg *signer, v *regions.ServiceView) (*svcSigs, error) {
	ss := &svcSigs{}
	var err error
	v.AnswerSets(func(f int, addrs []netip.Addr) {
		if err != nil {
			return
		}
		p := unsafe.SliceData(addrs)
		for _, x := range ss.sets {
			if x.addrs == p && x.n == len(addrs) {
				return
			}
		}
		set := setSig{addrs: p, n: len(addrs)}
		k := v.MaxAnswers()
		if k > 0 && k < len(addrs) {
			for start := range addrs {
				win := make([]netip.Addr, k)
				for i := range k {
					win[i] = addrs[(start+i)%len(addrs)]
				}
				var e *sigEntry
				if e, err = signAddrs(sg, v, f, win); err != nil {
					return
				}
				set.windows = append(set.windows, e)
			}
		} else if set.whole, err = signAddrs(sg, v, f, addrs); err != nil {
			return
		}
		ss.sets = append(ss.sets, set)
	})
	if err != nil {
		return nil, err
	}
	for _, set := range ss.sets {
		for _, e := range append([]*sigEntry{set.whole}, set.windows...) {
			if e != nil && (ss.refreshAt.IsZero() || e.refreshAt.Before(ss.refreshAt)) {
				ss.refreshAt = e.refreshAt
			}
		}
	}
	return ss, nil
}

// addrRRset is a service's A or AAAA RRset as its answers carry it, with
// the service's TTL (the original TTL of its signatures; degraded answers
// carry a lower one, which validators accept).
func addrRRset(v *regions.ServiceView, family int, addrs []netip.Addr) []dns.RR {
	out := make([]dns.RR, len(addrs))
	hdr := dns.RR_Header{Name: v.Name(), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: v.TTL()}
	for i, a := range addrs {
		if family == 0 {
			out[i] = &dns.A{Hdr: hdr, A: a.AsSlice()}
		} else {
			h := hdr
			h.Rrtype = dns.TypeAAAA
			out[i] = &dns.AAAA{Hdr: h, AAAA: a.AsSlice()}
		}
	}
	return out
}

func signAddrs(sg *signer, v *regions.ServiceView, family int, addrs []netip.Addr) (*sigEntry, error) {
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, func(a, b netip.Addr) int { return a.Compare(b) })
	sorted = slices.Compact(sorted)
	key := fmt.Sprintf("%s %d %d %v", v.Name(), family, v.TTL(), sorted)
	return sg.signKey(key, addrRRset(v, family, sorted), v.TTL())
}

// sweep drops the cache entries st no longer uses.
func (s *Signer) sweep(st *State) {
	s.mark++
	m := s.mark
	for _, zs := range st.byZone {
		for _, e := range zs.chain.entries {
			e.sigs.mark = m
		}
		// The zone's own RRsets: cheap to look up again.
		for _, rrset := range zs.z.RRsets() {
			zs.sg.markKey(rrsetKey(rrset, rrset[0].Header().Ttl), m)
		}
	}
	for _, ss := range st.services {
		for _, set := range ss.sets {
			if set.whole != nil {
				set.whole.mark = m
			}
			for _, e := range set.windows {
				e.mark = m
			}
		}
	}
	for _, sg := range s.signers {
		sg.sweep(m)
	}
}
