package dnssec

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// ZoneConfig is one signed zone: its keys and policy, and where its
// signatures come from.
type ZoneConfig struct {
	Keys   *KeySet
	Policy Policy
	// Source, when set, is where the zone's signatures come from: this
	// Signer holds no private key of the zone (Keys are public halves,
	// or nil until the zone's signer publishes them) and builds States
	// from what the zone's signer published (docs/dnssec.md, "Signers
	// and name servers").
	Source Source
}

// ForeseeSubsets is the most VIPs of one family a region may have for a
// signer to sign ahead each subset that leaves one of them out
// (regions.ServiceView.ForeseeableSets); name servers look for signed
// supersets among the same sets.
const ForeseeSubsets = 8

// Signer makes States: it holds the keys of every signed zone and the
// signatures made so far, and builds each State from the previous one.
// Its methods are safe for concurrent use; builds are serialized.
type Signer struct {
	now     func() time.Time
	signers map[string]*signer // by zone origin
	// gen changes when keys change or a source has new signatures: a
	// State built before takes nothing over from its predecessor.
	gen atomic.Uint64

	mu       sync.Mutex // serializes builds
	last     *State
	mark     uint64
	foreseen []*Entry // what the last Foresee signed, kept by sweeps
}

// NewSigner signs the zones in cfg (by origin, lower case, fully
// qualified). now is the clock (nil: time.Now).
func NewSigner(cfg map[string]ZoneConfig, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	s := &Signer{now: now, signers: map[string]*signer{}}
	for origin, zc := range cfg {
		o := dns.CanonicalName(origin)
		s.signers[o] = newSigner(o, zc.Keys, zc.Policy, zc.Source, now)
	}
	return s
}

// Apex is the DNSSEC records of a signed zone's apex (KeySet.Apex), nil
// for others and for a zone whose keys are not known yet: what
// zones.LoadOptions.DNSSEC takes.
func (s *Signer) Apex(origin string) []dns.RR {
	if sg := s.signers[dns.CanonicalName(origin)]; sg != nil {
		if ks := sg.keys.Load(); ks != nil && len(ks.Keys) > 0 {
			return ks.Apex()
		}
	}
	return nil
}

// Keys is the key set a zone is signed with now, nil if none.
func (s *Signer) Keys(origin string) *KeySet {
	if sg := s.signers[dns.CanonicalName(origin)]; sg != nil {
		return sg.keys.Load()
	}
	return nil
}

// SetKeys replaces a signed zone's key set (a rollover's step, a reload
// of the key files, the keys a zone's signer published): the next State
// signs, or looks up, every RRset again with it. The zone's apex records
// change with it (Apex): load the zone again with them.
func (s *Signer) SetKeys(origin string, ks *KeySet) error {
	sg := s.signers[dns.CanonicalName(origin)]
	if sg == nil {
		return fmt.Errorf("zone %s is not signed here", origin)
	}
	sg.keys.Store(ks)
	s.gen.Add(1)
	return nil
}

// Keyless says whether the zone's signatures come from a Source.
func (s *Signer) Keyless(origin string) bool {
	sg := s.signers[dns.CanonicalName(origin)]
	return sg != nil && sg.src != nil
}

// Invalidate says that the sources have new signatures: the next State
// looks every RRset up again.
func (s *Signer) Invalidate() { s.gen.Add(1) }

// Policy is a signed zone's signature policy (defaults filled in).
func (s *Signer) Policy(origin string) Policy {
	if sg := s.signers[dns.CanonicalName(origin)]; sg != nil {
		return sg.pol
	}
	return Policy{}.Normalized()
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
	zones  *zones.Set
	snap   *regions.Snapshot
	byZone map[*zones.Zone]*ZoneState
	// zoneAt is byZone by the zones' positions in the set
	// (zones.Set.FindIndex), for the query path.
	zoneAt   []*ZoneState
	services map[*regions.ServiceView]*svcSigs
	gen      uint64
	stats    BuildStats
	// byOrigin sums up each zone: its earliest expiry, its stand-ins.
	byOrigin map[string]zoneSum
}

type zoneSum struct {
	expires time.Time
	subs    int
}

// Expires is when the first signature of zone the State serves expires
// (zero: none).
func (st *State) Expires(origin string) time.Time {
	return st.byOrigin[dns.CanonicalName(origin)].expires
}

// Substituted counts the address sets of zone's services answered with a
// signed superset.
func (st *State) Substituted(origin string) int { return st.byOrigin[dns.CanonicalName(origin)].subs }

// sum fills byOrigin.
func (st *State) sum() {
	st.byOrigin = map[string]zoneSum{}
	add := func(o string, exp time.Time, subs int) {
		zs := st.byOrigin[o]
		if !exp.IsZero() && (zs.expires.IsZero() || exp.Before(zs.expires)) {
			zs.expires = exp
		}
		zs.subs += subs
		st.byOrigin[o] = zs
	}
	for _, zs := range st.byZone {
		add(zs.z.Origin(), zs.expires, 0)
	}
	for _, ss := range st.services {
		add(ss.zs.z.Origin(), ss.expires, ss.subs)
	}
}

// BuildStats says what building a State did.
type BuildStats struct {
	Services  int           `json:"services"`   // services in signed zones
	Resigned  int           `json:"resigned"`   // services whose signatures were looked at again
	Signed    uint64        `json:"signed"`     // signatures made
	Reused    uint64        `json:"reused"`     // signatures taken from the cache or the source
	Chains    int           `json:"chains"`     // NSEC chains built
	Took      time.Duration `json:"took"`       // how long the build took
	RefreshAt time.Time     `json:"refresh_at"` // when the first signature is due (zero: none)
	// Expires is when the first signature the State serves expires.
	Expires time.Time `json:"expires"`
	// Substituted counts the address sets a keyless State answers with a
	// signed superset instead, for want of their own signatures.
	Substituted int `json:"substituted"`
}

// ZoneState is one signed zone of a State: the signed variants of its
// answers and its NSEC chain. The query path reads it (State.ZoneAt).
type ZoneState struct {
	z     *zones.Zone
	sg    *signer
	chain *chain
	// answers are the signed variants of z's answers, by
	// zones.Zone.AnswerIndex.
	answers []*zones.Answer
	// names are the services' entries of the chain, by service name;
	// namesOf is the snapshot they were computed from.
	svcNames map[string]*nameTypes
	// own are the signatures of the zone's RRsets.
	own []*Entry
	// refreshAt and expires are the earliest refresh and expiry of the
	// zone's own signatures and its chain's.
	refreshAt, expires time.Time
}

// svcSigs are a service's signatures: per address set it answers with.
type svcSigs struct {
	zs                 *ZoneState
	sets               []setSig
	refreshAt, expires time.Time
	subs               int // sets answered with a signed superset
}

type setSig struct {
	addrs *netip.Addr // the set's first element: the slice's identity
	n     int
	// sub, when set, is what a keyless State answers instead of the set:
	// a superset that is signed (the signatures below are sub's).
	sub   []netip.Addr
	whole *Entry
	// windows: with max_answers below the set's size, an answer is a
	// window of the set starting at Decision.Start, each signed alone.
	windows []*Entry
}

// times tracks the earliest refresh and expiry of a group of entries.
type times struct{ refreshAt, expires time.Time }

func (t *times) add(sg *signer, e *Entry) {
	if e == nil {
		return
	}
	if r := sg.dueOf(e); !r.IsZero() && (t.refreshAt.IsZero() || r.Before(t.refreshAt)) {
		t.refreshAt = r
	}
	if t.expires.IsZero() || e.exp.Before(t.expires) {
		t.expires = e.exp
	}
}

func (t *times) merge(o times) {
	if !o.refreshAt.IsZero() && (t.refreshAt.IsZero() || o.refreshAt.Before(t.refreshAt)) {
		t.refreshAt = o.refreshAt
	}
	if !o.expires.IsZero() && (t.expires.IsZero() || o.expires.Before(t.expires)) {
		t.expires = o.expires
	}
}

// Zones is the zone set the State signs.
func (st *State) Zones() *zones.Set { return st.zones }

// Snapshot is the regions snapshot the State signs (nil: none yet).
func (st *State) Snapshot() *regions.Snapshot { return st.snap }

// Stats says what building the State did.
func (st *State) Stats() BuildStats { return st.stats }

// Build signs what set and snap answer with, reusing the previous
// State's signatures and chains wherever the RRsets are the same. It
// fails when a key cannot sign, or, for a zone whose signatures come
// from a Source, with an error wrapping ErrUnsigned when a signature is
// missing there that no signed superset stands in for (the address sets
// of services may: BuildStats.Substituted).
func (s *Signer) Build(set *zones.Set, snap *regions.Snapshot) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.buildFrom(s.last, set, snap, false)
	if err == nil {
		s.last = st
	}
	return st, err
}

// Refresh builds st again, making (or, keyless, looking up again) the
// signatures that are due: the background refresh. It returns nil when
// nothing was due.
func (s *Signer) Refresh(st *State) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == nil || st.stats.RefreshAt.IsZero() || s.now().Before(st.stats.RefreshAt) {
		return nil, nil
	}
	next, err := s.buildFrom(st, st.zones, st.snap, true)
	if err != nil {
		return nil, err
	}
	s.last = next
	s.sweep(next)
	return next, nil
}

// Last is the State built last, nil before the first.
func (s *Signer) Last() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// buildFrom builds the State of set and snap, taking over from prev
// what is the same.
func (s *Signer) buildFrom(prev *State, set *zones.Set, snap *regions.Snapshot, refresh bool) (*State, error) {
	start := s.now()
	var made0, reused0 uint64
	for _, sg := range s.signers {
		made0 += sg.made.Load()
		reused0 += sg.reused.Load()
	}
	gen := s.gen.Load()
	if prev != nil && prev.gen != gen {
		prev = nil // new keys or new signatures: everything again
	}
	st := &State{zones: set, snap: snap, byZone: map[*zones.Zone]*ZoneState{}, gen: gen}
	now := s.now()
	var all times
	sameNames := prev != nil && snap != nil && snap.SameServiceNames(prev.snap) || prev != nil && snap == nil && prev.snap == nil

	// Services: which signed zone each is in, its chain entry, and its
	// signatures; views shared with the previous snapshot keep theirs.
	svcZone := map[*regions.ServiceView]*ZoneState{}
	for _, z := range set.Zones() {
		sg := s.signers[z.Origin()]
		if sg == nil || !z.Signed() || sg.keys.Load() == nil {
			continue
		}
		zs := &ZoneState{z: z, sg: sg}
		var pz *ZoneState
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
	var missing []error
	if snap != nil {
		st.services = make(map[*regions.ServiceView]*svcSigs, snap.NumServices())
		chainsDirty := map[*ZoneState]bool{}
		count := map[*ZoneState]int{}
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
			count[zs]++
			st.stats.Services++
			nt := serviceTypes(v, w)
			if zs.svcNames == nil || !sameTypes(zs.svcNames[w], nt) {
				chainsDirty[zs] = true
			}
			if p := prev; p != nil && p.services[v] != nil && (!refresh || now.Before(p.services[v].refreshAt)) {
				ss := p.services[v]
				ss.zs = zs
				st.services[v] = ss
				all.merge(times{ss.refreshAt, ss.expires})
				st.stats.Substituted += ss.subs
				continue
			}
			ss, err := signService(zs, v)
			if err != nil {
				if !errors.Is(err, ErrUnsigned) {
					return nil, err
				}
				missing = append(missing, err)
				continue
			}
			st.stats.Resigned++
			st.services[v] = ss
			all.merge(times{ss.refreshAt, ss.expires})
			st.stats.Substituted += ss.subs
		}
		// A service gone also changes the chain.
		for _, zs := range st.byZone {
			if len(zs.svcNames) != count[zs] {
				chainsDirty[zs] = true
			}
		}
		for zs := range chainsDirty {
			zs.chain = nil
		}
	}
	for _, zs := range st.byZone {
		if zs.chain != nil && !(refresh && !now.Before(zs.refreshAt)) {
			all.merge(times{zs.refreshAt, zs.expires})
			continue
		}
		if err := s.buildZone(zs, svcZone); err != nil {
			if !errors.Is(err, ErrUnsigned) {
				return nil, err
			}
			missing = append(missing, err)
			continue
		}
		st.stats.Chains++
		all.merge(times{zs.refreshAt, zs.expires})
	}
	if len(missing) > 0 {
		return nil, unsignedError(missing)
	}
	st.zoneAt = make([]*ZoneState, len(set.Zones()))
	for i, z := range set.Zones() {
		st.zoneAt[i] = st.byZone[z]
	}
	for _, sg := range s.signers {
		st.stats.Signed += sg.made.Load()
		st.stats.Reused += sg.reused.Load()
	}
	st.stats.Signed -= made0
	st.stats.Reused -= reused0
	st.stats.RefreshAt = all.refreshAt
	st.stats.Expires = all.expires
	st.sum()
	st.stats.Took = s.now().Sub(start)
	return st, nil
}

// unsignedError sums up what a keyless State lacks: how many RRsets and
// the first of them.
func unsignedError(missing []error) error {
	n := 0
	var first error
	for _, err := range missing {
		var j interface{ Unwrap() []error }
		if errors.As(err, &j) {
			n += len(j.Unwrap())
		} else {
			n++
		}
		if first == nil {
			first = err
			if j != nil {
				first = j.Unwrap()[0]
			}
		}
	}
	return fmt.Errorf("%w: %d RRsets without signatures, the first %v", ErrUnsigned, n, first)
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
func (s *Signer) buildZone(zs *ZoneState, svcZone map[*regions.ServiceView]*ZoneState) error {
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
	var t times
	for _, e := range c.entries {
		t.add(zs.sg, e.sigs)
	}
	zsig := &zoneSigs{zs: zs}
	zs.answers = zs.z.SignedAnswers(zsig)
	if zsig.err != nil {
		return zsig.err
	}
	for _, e := range zsig.used {
		t.add(zs.sg, e)
	}
	zs.own = zsig.used
	zs.refreshAt, zs.expires = t.refreshAt, t.expires
	return nil
}

// zoneSigs is zones.Signatures for one zone being signed.
type zoneSigs struct {
	zs   *ZoneState
	err  error
	used []*Entry
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
func sigsFor(e *Entry, owner string) []dns.RR {
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

// signService signs every address set v answers with. A keyless zone
// without the signatures of a set answers with the smallest signed
// superset among the sets its signer signs ahead, if there is one.
func signService(zs *ZoneState, v *regions.ServiceView) (*svcSigs, error) {
	sg := zs.sg
	ss := &svcSigs{zs: zs}
	var err error
	var t times
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
		var set setSig
		set, err = signSet(sg, v, f, addrs)
		if errors.Is(err, ErrUnsigned) && sg.src != nil {
			var ok bool
			if set, ok = substitute(sg, v, f, addrs); ok {
				err = nil
				ss.subs++
			}
		}
		if err != nil {
			return
		}
		set.addrs, set.n = p, len(addrs)
		ss.sets = append(ss.sets, set)
		t.add(sg, set.whole)
		for _, e := range set.windows {
			t.add(sg, e)
		}
	})
	if err != nil {
		return nil, err
	}
	ss.refreshAt, ss.expires = t.refreshAt, t.expires
	return ss, nil
}

// signSet signs one address set of v: whole, or with max_answers below
// its size each window an answer sends.
func signSet(sg *signer, v *regions.ServiceView, f int, addrs []netip.Addr) (setSig, error) {
	var set setSig
	k := v.MaxAnswers()
	if k > 0 && k < len(addrs) {
		for start := range addrs {
			win := make([]netip.Addr, k)
			for i := range k {
				win[i] = addrs[(start+i)%len(addrs)]
			}
			e, err := signAddrs(sg, v, f, win)
			if err != nil {
				return set, err
			}
			set.windows = append(set.windows, e)
		}
		return set, nil
	}
	e, err := signAddrs(sg, v, f, addrs)
	set.whole = e
	return set, err
}

// substitute finds the smallest signed superset of addrs among the sets
// a signer signs ahead for v.
func substitute(sg *signer, v *regions.ServiceView, f int, addrs []netip.Addr) (setSig, bool) {
	var best setSig
	found := false
	v.ForeseeableSets(ForeseeSubsets, func(ff int, cand []netip.Addr) {
		if ff != f || len(cand) <= len(addrs) || found && len(cand) >= len(best.sub) {
			return
		}
		for _, a := range addrs {
			if !slices.Contains(cand, a) {
				return
			}
		}
		set, err := signSet(sg, v, f, cand)
		if err != nil {
			return
		}
		set.sub = cand
		best, found = set, true
	})
	return best, found
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

func signAddrs(sg *signer, v *regions.ServiceView, family int, addrs []netip.Addr) (*Entry, error) {
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, func(a, b netip.Addr) int { return a.Compare(b) })
	sorted = slices.Compact(sorted)
	return sg.sign(addrRRset(v, family, sorted), v.TTL())
}

// Foresee signs ahead, through the cache, what st's snapshot may answer
// with after a health change: every set regions.ServiceView.
// ForeseeableSets lists, and for a service that health may leave without
// a type (regions.ServiceView.HealthMayHide) its NSEC records without
// it. A signer publishes these besides st's own, so that a name server
// without keys finds a failover signed. It returns how many RRsets it
// looked at; zones with a Source are left out.
func (s *Signer) Foresee(st *State) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Entry
	n := 0
	for v, ss := range st.services {
		sg := ss.zs.sg
		if sg.src != nil {
			continue
		}
		var err error
		v.ForeseeableSets(ForeseeSubsets, func(f int, addrs []netip.Addr) {
			if err != nil {
				return
			}
			var set setSig
			if set, err = signSet(sg, v, f, addrs); err == nil {
				n++
				out = append(out, set.whole)
				out = append(out, set.windows...)
			}
		})
		if err != nil {
			return n, err
		}
		w, _ := zones.WireName(v.Name())
		c := ss.zs.chain
		i, ok := c.index[w]
		if !ok {
			continue
		}
		for _, types := range hideable(v, c.entries[i].types) {
			nsec := *c.entries[i].nsec
			nsec.TypeBitMap = types
			e, err := sg.sign([]dns.RR{&nsec}, nsec.Hdr.Ttl)
			if err != nil {
				return n, err
			}
			n++
			out = append(out, e)
		}
	}
	s.foreseen = out
	return n, nil
}

// hideable lists the type bitmaps a service's NSEC record takes when
// health hides one or both of its address families.
func hideable(v *regions.ServiceView, types []uint16) [][]uint16 {
	var fams []uint16
	for f, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if v.HealthMayHide(f) && slices.Contains(types, t) {
			fams = append(fams, t)
		}
	}
	var out [][]uint16
	for mask := 1; mask < 1<<len(fams); mask++ {
		out = append(out, slices.DeleteFunc(slices.Clone(types), func(t uint16) bool {
			for i, h := range fams {
				if mask&(1<<i) != 0 && t == h {
					return true
				}
			}
			return false
		}))
	}
	return out
}

// Sweep drops from the cache every signature that neither st nor the
// last Foresee uses, after a signer published st.
func (s *Signer) Sweep(st *State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(st)
}

// Entries lists the signatures a zone's signer holds now, by RRset hash:
// what a publisher writes to etcd (a copy; the entries are immutable).
func (s *Signer) Entries(origin string) map[Hash]*Entry {
	sg := s.signers[dns.CanonicalName(origin)]
	if sg == nil {
		return nil
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return maps.Clone(sg.cache)
}

// sweep drops the cache entries st and the last Foresee no longer use.
// Keyless zones have no cache.
func (s *Signer) sweep(st *State) {
	s.mark++
	m := s.mark
	for _, zs := range st.byZone {
		if zs.sg.src != nil {
			continue
		}
		for _, e := range zs.chain.entries {
			zs.sg.mark(e.sigs, m)
		}
		for _, e := range zs.own {
			zs.sg.mark(e, m)
		}
	}
	for _, ss := range st.services {
		if ss.zs.sg.src != nil {
			continue
		}
		for _, set := range ss.sets {
			ss.zs.sg.mark(set.whole, m)
			for _, e := range set.windows {
				ss.zs.sg.mark(e, m)
			}
		}
	}
	for _, e := range s.foreseen {
		if e != nil {
			e.mark = m
		}
	}
	for _, sg := range s.signers {
		if sg.src == nil {
			sg.sweep(m)
		}
	}
}
