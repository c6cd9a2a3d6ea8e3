package regions

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// Locator tells where a client address is; *geo.DB is one. Decide calls
// it at most once per decision, and only when the policy needs a place.
type Locator interface {
	Locate(netip.Addr) geo.Location
}

var _ Locator = (*geo.DB)(nil)

// Client is who asks.
type Client struct {
	// Addr is the ECS address or, without ECS, the packet's source;
	// IPv4 unmapped.
	Addr netip.Addr
	// Bits is how many leading bits of Addr are meaningful: the ECS
	// source prefix length, else 32 or 128. 0 means nothing is known of
	// the client (ECS /0), so no decision depends on it.
	Bits int
	// Locator is nil when no GeoIP database is loaded.
	Locator Locator

	// continent is what a decision learned of the client's continent
	// when it located the client: 0 nothing (no lookup), -1 none, else
	// the index in Continents plus one. See Snapshot.ClientContinent.
	continent int8
}

// located notes the continent of a lookup's location in c.
func (c *Client) located(continent int) {
	c.continent = int8(continent + 1)
	if continent < 0 {
		c.continent = -1
	}
}

// ClientContinent is the index in Continents of the client's continent,
// or -1 when it is not known, for counting answers by continent. A
// decision that located the client (geo, nearest, latency without a
// table entry) left it in c; otherwise the snapshot's location table is
// read when it was built from the client's database (one binary search,
// no allocation, no lock). Without that table, -1: the database itself
// is not read on the query path for a count. A client without
// meaningful bits (ECS /0) has no continent.
func (s *Snapshot) ClientContinent(c *Client) int {
	if c == nil {
		return -1
	}
	switch {
	case c.continent > 0:
		return int(c.continent) - 1
	case c.continent < 0:
		return -1
	}
	addr, cbits := clientAddr(c)
	lt := s.geo.lt
	if cbits == 0 || lt == nil || c.Locator == nil || locatorDB(c.Locator) != lt.db {
		return -1
	}
	cont := lt.continent(addr)
	c.located(cont)
	return cont
}

// DecisionKind says what to answer.
type DecisionKind uint8

// The decision kinds. The zero Decision is a NODATA.
const (
	KindNoData DecisionKind = iota // no address of the asked type: NOERROR, empty answer
	KindAnswer                     // answer Addrs
)

func (k DecisionKind) String() string {
	if k == KindAnswer {
		return "answer"
	}
	return "nodata"
}

// MarshalText writes "answer" or "nodata".
func (k DecisionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText writes, so that clients of the
// API decode decisions.
func (k *DecisionKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "answer":
		*k = KindAnswer
	case "nodata":
		*k = KindNoData
	default:
		return fmt.Errorf("decision kind %q: want answer or nodata", b)
	}
	return nil
}

// Decision is the steering result for one query.
type Decision struct {
	Kind DecisionKind `json:"kind"`
	// Region is the chosen region; "" for a fallback or NODATA.
	Region string `json:"region,omitempty"`
	// RegionIndex is Region's index in the snapshot's Regions, so
	// callers can count by region without looking the name up.
	RegionIndex int `json:"-"`
	// Addrs is SHARED and read-only: the chosen region's VIPs of the
	// asked family, or the fallback addresses of that family.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Start and Count: send Addrs[(Start+i)%len(Addrs)] for i < Count
	// (see Addr). Rotating the start spreads load over the VIPs.
	Start int `json:"start"`
	Count int `json:"count"`
	// TTL is the service TTL, or its degraded TTL while a region of the
	// service is down or of unknown health with probers registered, or
	// when failing open or falling back.
	TTL uint32 `json:"ttl"`
	// Scope is the ECS SCOPE PREFIX-LENGTH: how many leading bits of the
	// client address the decision depended on (IPv4 bits for IPv4), never
	// more than Client.Bits; 0 when it did not depend on the client.
	Scope    int  `json:"scope"`
	FailOpen bool `json:"fail_open,omitempty"`
	Fallback bool `json:"fallback,omitempty"`
	Degraded bool `json:"degraded,omitempty"`
}

// Addr is the i-th address to send, i < Count.
func (d *Decision) Addr(i int) netip.Addr {
	// Start < len(Addrs) and i < Count <= len(Addrs): one subtraction
	// wraps it, where % would cost a division per address.
	j := d.Start + i
	if j >= len(d.Addrs) {
		j -= len(d.Addrs)
	}
	return d.Addrs[j]
}

// DNS query types Decide answers.
const (
	QTypeA    = 1
	QTypeAAAA = 28
)

// Decide is the query path: it steers one A or AAAA query for service v
// (docs/architecture.md, Steering). rnd is a random value from the caller,
// injected so tests are exact. It does not allocate, takes no lock and
// calls c.Locator at most once, only when the policy needs a location.
// Other query types, and a nil v, get a NODATA decision; c may be nil
// (nothing known of the client).
func (s *Snapshot) Decide(v *ServiceView, c *Client, qtype uint16, rnd uint64) Decision {
	return s.decide(v, c, qtype, rnd, nil)
}

// decide is the one implementation behind Decide and Explain. tr is nil
// on the query path; every use of it is behind a nil check so that the
// query path neither formats nor allocates.
func (s *Snapshot) decide(v *ServiceView, c *Client, qtype uint16, rnd uint64, tr *tracer) Decision {
	if v == nil {
		return Decision{}
	}
	d := Decision{TTL: v.ttl}
	if v.lowTTL {
		d.TTL, d.Degraded = v.degradedTTL, true
	}
	var fi int
	switch qtype {
	case QTypeA:
		fi = 0
	case QTypeAAAA:
		fi = 1
	default:
		if tr != nil {
			tr.noData("the query type is neither A nor AAAA")
		}
		return d
	}
	fv := &v.fam[fi]
	if tr != nil {
		tr.family(fi)
	}
	if fv.any == 0 {
		return d
	}

	set, n := *fv.up, int(fv.nUp)
	if tr != nil {
		tr.health(fi)
	}
	if n == 0 {
		d.TTL, d.Degraded = v.degradedTTL, true
		switch v.mode {
		case downClosed:
			if tr != nil {
				tr.allDown("fail-closed: NODATA")
			}
			return d
		case downFallback:
			if len(v.fallback[fi]) == 0 {
				if tr != nil {
					tr.allDown("fallback, but no fallback address of the asked family: NODATA")
				}
				return d
			}
			if tr != nil {
				tr.allDown("fallback: answering the all_down addresses")
			}
			d.Kind, d.Fallback = KindAnswer, true
			d.pickAddrs(v.fallback[fi], v.maxAnswers, rnd)
			return d
		default:
			if fv.nCands == 0 {
				if tr != nil {
					tr.allDown("fail-open, but every region is drained: NODATA")
				}
				return d
			}
			if tr != nil {
				tr.allDown("fail-open: answering as if every region that is not drained were up")
			}
			set, n = *fv.cands, int(fv.nCands)
			d.FailOpen = true
		}
	}

	addr, cbits := clientAddr(c)
	var chosen, scope int
	if v.spill {
		chosen, scope = s.chooseSpill(v, set, c, addr, cbits, rnd, tr)
	} else {
		chosen, scope = s.choose(v, &set, n, c, addr, cbits, rnd, tr, nil)
	}
	sl := &v.slots[chosen]
	d.Kind = KindAnswer
	d.Region, d.RegionIndex = sl.name, sl.region
	addrs := sl.addrs[fi]
	switch {
	case d.FailOpen:
		addrs = sl.all[fi]
	case sl.vr != nil && sl.vr.steady[fi] != nil:
		var sc int
		addrs, sc = s.vipRampAddrs(sl, fi, addr, cbits, rnd, tr)
		scope = max(scope, sc)
	}
	d.Scope = min(scope, cbits)
	d.pickAddrs(addrs, v.maxAnswers, rnd)
	return d
}

// choose applies the policy's preference to the n candidates in set,
// then breaks the tie by weight. It returns the slot chosen and the
// scope the choice depended on. lc (nil on the plain path) keeps the
// client's location between the choices of chooseSpill.
func (s *Snapshot) choose(v *ServiceView, set *slotSet, n int, c *Client, addr netip.Addr, cbits int, rnd uint64, tr *tracer, lc *located) (int, int) {
	scope := 0
	if tr != nil {
		tr.beginPreference(set)
	}
	if n > 1 {
		switch v.policy {
		case kindFailover:
			set.keepOnly(set.first(v.nw), v.nw)
			if tr != nil {
				tr.endStep(set, "failover: the first candidate in the service's order")
			}
		case kindGeo:
			scope = s.preferGeo(v, set, c, addr, cbits, tr, lc)
		case kindNearest:
			scope = s.preferNearest(v, set, c, addr, cbits, tr, lc)
		case kindLatency:
			scope = s.preferLatency(v, set, c, addr, cbits, tr, lc)
		default:
			if tr != nil {
				tr.endStep(set, "weighted: every candidate is equally preferred")
			}
		}
	} else if tr != nil {
		tr.endStep(set, "a single candidate: nothing to prefer")
	}
	chosen, sc := s.tieBreak(v, set, addr, cbits, rnd, tr)
	return chosen, max(scope, sc)
}

// chooseSpill is choose for a service a region of which keeps less than
// all its clients (docs/controller.md): a client whose rendezvous
// position for the chosen region is at or above the region's kept
// fraction goes to its next candidate, the one the policy chooses
// without that region, and so on; the last candidate left keeps it. The
// position hashes the client network as sticky choices do, so the same
// clients move first and come back last, whatever the policy. It
// returns the slot and the scope.
func (s *Snapshot) chooseSpill(v *ServiceView, set slotSet, c *Client, addr netip.Addr, cbits int, rnd uint64, tr *tracer) (int, int) {
	var lc located
	sb := s.stickyBits(addr, cbits)
	var nh uint64
	if cbits > 0 {
		nh = networkHash(addr, sb)
	}
	n := set.count(v.nw)
	work := set
	chosen, scope := s.choose(v, &work, n, c, addr, cbits, rnd, tr, &lc)
	for ; n > 1; n-- {
		sl := &v.slots[chosen]
		if sl.keep == keepAll {
			break
		}
		// Nothing known of the client: a random position, as a
		// weighted draw would.
		pos := mix64(rnd ^ sl.hash)
		if cbits > 0 {
			pos = spillPosition(nh, sl.hash)
			scope = max(scope, sb)
		}
		stay := pos < sl.keep
		if tr != nil {
			tr.spill(chosen, pos, stay, addr, sb, cbits)
		}
		if stay {
			break
		}
		set.remove(chosen)
		work = set
		var sc int
		chosen, sc = s.choose(v, &work, n-1, c, addr, cbits, rnd, tr, &lc)
		scope = max(scope, sc)
	}
	return chosen, scope
}

// vipRampAddrs is the addresses of a region some of whose VIPs ramp in
// after coming back up (docs/controller.md, Slow start): all its healthy
// VIPs for the clients whose rendezvous position is below the VIPs'
// ramp, the others without them. It returns the scope that depended on.
func (s *Snapshot) vipRampAddrs(sl *slot, fi int, addr netip.Addr, cbits int, rnd uint64, tr *tracer) ([]netip.Addr, int) {
	vr := sl.vr
	h := sl.hash ^ vipRampSalt
	pos, scope := mix64(rnd^h), 0
	if cbits > 0 {
		scope = s.stickyBits(addr, cbits)
		pos = spillPosition(networkHash(addr, scope), h)
	}
	with := pos < vr.keep
	if tr != nil {
		tr.vipRamp(sl, fi, pos, with, addr, scope)
	}
	if with {
		return sl.addrs[fi], scope
	}
	return vr.steady[fi], scope
}

// vipRampSalt sets a region's order of clients for its VIPs' slow start
// apart from its order for its own share.
const vipRampSalt = 0x6a09e667f3bcc909

// stickyBits is how much of addr a rendezvous hash takes: the sticky
// prefix of its family, at most the client's bits.
func (s *Snapshot) stickyBits(addr netip.Addr, cbits int) int {
	sb := s.opts.StickyBitsV6
	if addr.Is4() {
		sb = s.opts.StickyBitsV4
	}
	return min(sb, cbits)
}

// located is a client's location, looked up once per decision.
type located struct {
	done, ok bool
	scope    int
	loc      geo.Location
}

// pickAddrs sets Addrs, Start and Count. The rotation comes from rnd
// remixed, so that it does not follow the weighted draw.
func (d *Decision) pickAddrs(addrs []netip.Addr, maxAnswers int, rnd uint64) {
	d.Addrs = addrs
	n := len(addrs)
	d.Count = n
	if maxAnswers > 0 && maxAnswers < n {
		d.Count = maxAnswers
	}
	hi, _ := bits.Mul64(mix64(rnd^0x5851f42d4c957f2d), uint64(n))
	d.Start = int(hi)
}

// clientAddr returns the client address (unmapped) and the number of its
// bits that are meaningful.
func clientAddr(c *Client) (netip.Addr, int) {
	if c == nil || !c.Addr.IsValid() {
		return netip.Addr{}, 0
	}
	a := c.Addr.Unmap().WithZone("")
	return a, min(max(c.Bits, 0), a.BitLen())
}

// locate asks the client's Locator where it is. It also returns the
// number of leading address bits the answer depends on: the database
// network's length, or all the client's bits when the database had no
// network for it (we do not know how far the miss reaches). ok is false
// when no lookup was made.
//
// lc, when not nil, keeps the result for the next call of the decision.
func (s *Snapshot) locate(c *Client, addr netip.Addr, cbits int, tr *tracer, lc *located) (loc geo.Location, scope int, ok bool) {
	if lc != nil {
		if lc.done {
			return lc.loc, lc.scope, lc.ok
		}
		loc, scope, ok = s.locate(c, addr, cbits, tr, nil)
		*lc = located{done: true, ok: ok, scope: scope, loc: loc}
		return loc, scope, ok
	}
	if c == nil || c.Locator == nil || cbits == 0 {
		if tr != nil {
			tr.location(loc, 0, false)
		}
		return loc, 0, false
	}
	loc = c.Locator.Locate(addr)
	c.located(continentIndex(loc.Continent))
	if n := loc.Network; n.IsValid() {
		scope = n.Bits()
		if addr.Is4() && n.Addr().Is6() {
			scope = max(scope-96, 0)
		}
	} else {
		scope = cbits
	}
	if tr != nil {
		tr.location(loc, scope, true)
	}
	return loc, scope, true
}

// Geo lists in the order preferGeo walks them.
const (
	geoCountry = iota
	geoContinent
	geoDefault
	numGeoLists
)

// preferGeo keeps the first candidate of the first list that has one:
// the client's country list, its continent list, the default list, and
// when none has a candidate, the first candidate in the service's order.
//
// When the snapshot has the location table of the database the client
// is located with, the class comes from the service's partition instead
// of a lookup: the same choice (the table was built from the same
// database), and a scope as wide as the client's run of its group (its
// location interval until the partition's merge is built).
func (s *Snapshot) preferGeo(v *ServiceView, set *slotSet, c *Client, addr netip.Addr, cbits int, tr *tracer, lc *located) int {
	g := v.geo
	if p := g.part; p != nil && cbits > 0 && c != nil && c.Locator != nil && locatorDB(c.Locator) == p.lt.db {
		group, scope, loc := p.lookupLoc(g.merge, addr)
		c.located(int(p.lt.cont[loc]))
		chosen := -1
		for _, sl := range g.orders[group] {
			if set.has(int(sl)) {
				chosen = int(sl)
				break
			}
		}
		if chosen < 0 {
			chosen = set.first(v.nw)
		}
		if tr != nil {
			tr.geoBlock(c, addr, scope, set, chosen)
		}
		set.keepOnly(chosen, v.nw)
		return scope
	}
	var loc geo.Location
	lists := [numGeoLists]int{-1, -1, g.def}
	scope := 0
	if g.needsLoc {
		var ok bool
		loc, scope, ok = s.locate(c, addr, cbits, tr, lc)
		if ok {
			lists = g.listsFor(loc)
		}
	}
	chosen, used := g.pick(v, set, lists)
	if tr != nil {
		tr.geoLists(loc, lists, used)
	}
	set.keepOnly(chosen, v.nw)
	if tr != nil {
		tr.endStep(set, tr.geoReason(loc, lists, used))
	}
	return scope
}

// listsFor returns the lists that apply to a client at loc, in the order
// preferGeo walks them (-1: none).
func (g *geoTable) listsFor(loc geo.Location) [numGeoLists]int {
	lists := [numGeoLists]int{-1, -1, g.def}
	if g.countries != nil && loc.Country != "" {
		if li, found := g.countries[loc.Country]; found {
			lists[geoCountry] = li
		}
	}
	if ci := continentIndex(loc.Continent); ci >= 0 {
		lists[geoContinent] = g.continents[ci]
	}
	return lists
}

// pick returns the first candidate in set of the first of lists that has
// one, and that list's position in lists; else the first candidate in the
// service's order and -1.
func (g *geoTable) pick(v *ServiceView, set *slotSet, lists [numGeoLists]int) (chosen, used int) {
	for k, li := range lists {
		if li < 0 {
			continue
		}
		for _, sl := range g.lists[li] {
			if set.has(sl) {
				return sl, k
			}
		}
	}
	return set.first(v.nw), -1
}

// earthRadiusKm is geo's: the antipodes are half a circumference apart.
var earthRadiusKm = geo.DistanceKm(0, 0, 0, 180) / math.Pi

// vec3 is a point on the unit sphere.
type vec3 struct{ x, y, z float64 }

func unitVector(lat, lon float64) vec3 {
	sinLat, cosLat := math.Sincos(lat * math.Pi / 180)
	sinLon, cosLon := math.Sincos(lon * math.Pi / 180)
	return vec3{cosLat * cosLon, cosLat * sinLon, sinLat}
}

// distanceKm is the biased great-circle distance from the client at c to
// the slot's region: the haversine formula of geo.DistanceKm, whose
// sin²(Δσ/2) is (chord/2)², with the regions' points turned into vectors
// at build time: one square root and one arcsine per region instead of
// four trigonometric functions. One function, so that both passes of
// preferNearest compute the same value.
func (sl *slot) distanceKm(c vec3) float64 {
	dx, dy, dz := c.x-sl.vec.x, c.y-sl.vec.y, c.z-sl.vec.z
	half := math.Sqrt(dx*dx+dy*dy+dz*dz) / 2
	return 2*earthRadiusKm*math.Asin(min(half, 1)) + sl.biasKm
}

func (s *Snapshot) preferNearest(v *ServiceView, set *slotSet, c *Client, addr netip.Addr, cbits int, tr *tracer, lc *located) int {
	loc, scope, ok := s.locate(c, addr, cbits, tr, lc)
	if !ok || !loc.HasCoords {
		if tr != nil {
			tr.endStep(set, "nearest: the client's location is unknown, every candidate is equally near")
		}
		return scope
	}
	cv := unitVector(loc.Lat, loc.Lon)
	// The first distances are kept so the second pass need not compute
	// them again; beyond that (services with many regions) it does.
	var buf [32]float64
	best := math.Inf(1)
	k := 0
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			i := w<<6 + bits.TrailingZeros64(word)
			d := v.slots[i].distanceKm(cv)
			if k < len(buf) {
				buf[k] = d
			}
			k++
			best = min(best, d)
			if tr != nil {
				tr.distance(i, d)
			}
		}
	}
	limit := best + v.nearTol
	var out slotSet
	k = 0
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			i := w<<6 + bits.TrailingZeros64(word)
			var d float64
			if k < len(buf) {
				d = buf[k]
			} else {
				d = v.slots[i].distanceKm(cv)
			}
			k++
			if d <= limit {
				out.add(i)
			}
		}
	}
	*set = out
	if tr != nil {
		tr.endStep(set, tr.nearestReason(best, v.nearTol))
	}
	return scope
}

// latencySlot maps the i-th pair of a match to the service's slot, or -1.
func (s *Snapshot) latencySlot(v *ServiceView, m *latency.Match, i int) (int, float64) {
	id, rtt := m.RegionID(i)
	r := s.latRegion[id]
	if r < 0 {
		return -1, rtt
	}
	return int(v.slotOf[r]), rtt
}

func (s *Snapshot) preferLatency(v *ServiceView, set *slotSet, c *Client, addr netip.Addr, cbits int, tr *tracer, lc *located) int {
	scope := 0
	if s.lat != nil && cbits > 0 {
		m, ok := s.lat.Lookup(addr)
		scope = m.Bits()
		if tr != nil {
			tr.latencyMatch(&m, ok)
		}
		if ok {
			best := math.Inf(1)
			for i := 0; i < m.Len(); i++ {
				sl, rtt := s.latencySlot(v, &m, i)
				if set.has(sl) {
					best = min(best, rtt)
					if tr != nil {
						tr.rtt(sl, rtt)
					}
				}
			}
			if !math.IsInf(best, 1) {
				limit := best + v.latTol
				var out slotSet
				for i := 0; i < m.Len(); i++ {
					sl, rtt := s.latencySlot(v, &m, i)
					if set.has(sl) && rtt <= limit {
						out.add(sl)
					}
				}
				*set = out
				if tr != nil {
					tr.endStep(set, tr.latencyReason(best, v.latTol))
				}
				return scope
			}
		}
		if tr != nil {
			tr.latencyFallback(ok)
		}
	} else if tr != nil {
		tr.latencyFallback(false)
	}
	return max(scope, s.preferNearest(v, set, c, addr, cbits, tr, lc))
}

// tieBreak picks one of the equally preferred candidates by weight: a
// weighted draw with rnd or, for a sticky service, a weighted rendezvous
// hash of the client network. It returns the slot and the scope the pick
// depended on.
func (s *Snapshot) tieBreak(v *ServiceView, set *slotSet, addr netip.Addr, cbits int, rnd uint64, tr *tracer) (int, int) {
	if tr != nil {
		tr.beginWeights(set)
	}
	if set.count(v.nw) == 1 {
		i := set.first(v.nw)
		if tr != nil {
			tr.endWeights(i, "a single candidate left")
		}
		return i, 0
	}
	if v.sticky {
		sb := s.stickyBits(addr, cbits)
		nh := networkHash(addr, sb)
		chosen, best := -1, -1.0
		for w, word := range set[:v.nw] {
			for ; word != 0; word &= word - 1 {
				i := w<<6 + bits.TrailingZeros64(word)
				sl := &v.slots[i]
				sc := stickyScore(nh, sl.hash, sl.eff)
				if sc > best {
					chosen, best = i, sc
				}
				if tr != nil {
					tr.score(i, sc)
				}
			}
		}
		if tr != nil {
			tr.endWeights(chosen, tr.stickyReason(addr, sb))
		}
		return chosen, sb
	}
	var total uint64
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			total += v.slots[w<<6+bits.TrailingZeros64(word)].eff
		}
	}
	r, _ := bits.Mul64(rnd, total)
	draw := r
	chosen := -1
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			i := w<<6 + bits.TrailingZeros64(word)
			wt := v.slots[i].eff
			if r < wt {
				chosen = i
				break
			}
			r -= wt
		}
		if chosen >= 0 {
			break
		}
	}
	if tr != nil {
		tr.endWeights(chosen, tr.drawReason(draw, total))
	}
	return chosen, 0
}
