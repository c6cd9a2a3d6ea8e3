package regions

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unsafe"
)

// svcEntry is one service of the state as a snapshot compiled it: the
// object it was compiled from, the view (nil when it was skipped) and the
// problems found. Entries are shared between snapshots while the object
// and its regions stay the same.
type svcEntry struct {
	svc      *Service
	v        *ServiceView
	problems []string
	// dup: skipped because another key holds the same name; compiled
	// again by the next snapshot, which may no longer have the other.
	dup bool
}

// buildGeo picks the tables and the location table of the database geo
// maps are compiled against.
func (s *Snapshot) buildGeo(prev *Snapshot) {
	switch {
	case s.opts.Tables != nil:
		s.geo.tables = s.opts.Tables
	case s.opts.GeoIP == nil:
		return
	case prev != nil && prev.geo.tables != nil:
		s.geo.tables = prev.geo.tables
	default:
		s.geo.tables = NewGeoTables(GeoTablesOptions{})
	}
	if s.opts.GeoIP == nil {
		return
	}
	db := s.opts.GeoIP.Current()
	if db == nil {
		return
	}
	s.geo.db = db
	lt, err := s.geo.tables.location(db)
	if err != nil {
		s.problemf("geo tables: %s; geo services look each client up in the database", err)
	}
	s.geo.lt = lt
}

// buildServices compiles the state's services. With prev (built with
// the same options) it takes over every entry whose service object is the
// same; when the regions are the same too, an entry whose regions' health,
// drains or addresses changed gets a refreshed view, and the rest are
// shared as they are.
func (s *Snapshot) buildServices(prev *Snapshot) {
	st := s.state
	regionsSame := prev != nil && len(prev.regions) == len(s.regions)
	var changed []bool // by region id: what services copy of it changed
	// loadChanged: by region id, its load readings changed, which only
	// services steering by load read.
	var loadChanged []bool
	// Whether unknown health lowers the TTL depends on probers being
	// registered (setRegions).
	probingChanged := prev != nil && prev.probing() != s.probing()
	if regionsSame {
		changed = make([]bool, len(s.regions))
		loadChanged = make([]bool, len(s.regions))
		for i := range s.regions {
			a, b := &s.regions[i], &prev.regions[i]
			switch {
			case a.Name != b.Name:
				regionsSame = false
			case a.Region != b.Region || a.Status != b.Status || a.Status == HealthUnknown && probingChanged || a.ejectSig != b.ejectSig ||
				!slices.Equal(s.healthy[i][0], prev.healthy[i][0]) ||
				!slices.Equal(s.healthy[i][1], prev.healthy[i][1]):
				changed[i] = true
			}
			loadChanged[i] = !slices.Equal(a.loads, b.loads)
		}
	}
	ltSame := prev != nil && prev.geo.lt == s.geo.lt
	anyChanged := slices.Contains(changed, true)
	anyLoad := slices.Contains(loadChanged, true)
	now := s.now.UnixNano()

	// The previous entries, copied whole (cheaper than one insert each),
	// then the changed ones replaced and the gone ones deleted.
	if prev != nil {
		s.built = maps.Clone(prev.built)
	} else {
		s.built = make(map[string]*svcEntry, len(st.Services))
	}
	sameKeys := prev != nil && len(prev.built) == len(st.Services)
	for key, svc := range st.Services {
		e := s.built[key]
		switch {
		case e == nil:
			sameKeys = false
			e = s.compileEntry(key, svc, nil)
			s.fresh(e.v, true)
		case e.dup || e.svc != svc || !regionsSame || !ltSame && e.v != nil && e.v.geo != nil && e.v.geo.needsLoc:
			e = s.compileEntry(key, svc, e.v)
			s.fresh(e.v, true)
		case e.v != nil && (anyChanged && e.v.uses(changed) || e.v.next != 0 && e.v.next <= now ||
			anyLoad && e.v.svc.Load != nil && e.v.uses(loadChanged)):
			// Health, drains or addresses changed, or the factors are
			// due to move, or the load readings a factor follows.
			e = &svcEntry{svc: svc, v: s.refreshView(e.v), problems: e.problems}
			s.fresh(e.v, false)
			s.stats.Refreshed++
		default:
			s.due(e.v)
			continue
		}
		s.built[key] = e
		s.due(e.v)
	}
	if len(s.built) != len(st.Services) {
		sameKeys = false
		for key := range s.built {
			if _, ok := st.Services[key]; !ok {
				delete(s.built, key)
			}
		}
	}
	s.stats.Services = len(st.Services)

	if sameKeys {
		s.keys = prev.keys
	} else {
		s.keys = slices.Sorted(maps.Keys(st.Services))
	}
	// Names are checked to be canonical, so views sorted by key are
	// sorted by name unless a key is spelled in another case.
	s.services = make([]*ServiceView, 0, len(s.keys))
	odd := false
	for _, key := range s.keys {
		if e := s.built[key]; e.v != nil {
			s.services = append(s.services, e.v)
			odd = odd || key != e.v.name
		}
	}
	if odd {
		s.services = s.services[:0]
		seen := map[string]bool{}
		for _, key := range s.keys {
			e := s.built[key]
			switch {
			case e.v == nil:
			case seen[e.v.name]:
				// Two keys of one name: the first in key order wins.
				s.built[key] = &svcEntry{svc: e.svc, dup: true,
					problems: append(slices.Clip(e.problems), fmt.Sprintf("service %s: stored twice; skipped %q", e.v.name, key))}
			default:
				seen[e.v.name] = true
				s.services = append(s.services, e.v)
			}
		}
		slices.SortFunc(s.services, func(a, b *ServiceView) int { return strings.Compare(a.name, b.name) })
	}
	s.attachGeo()

	if prev != nil && len(prev.services) == len(s.services) && slices.EqualFunc(prev.services, s.services, func(a, b *ServiceView) bool { return a.name == b.name }) {
		s.names = prev.names
		return
	}
	s.names = &nameIndex{m: make(map[string]int32, len(s.services))}
	for i, v := range s.services {
		s.names.m[v.name] = int32(i)
	}
}

// fresh notes that v (may be nil) was compiled (or only refreshed) by
// this build: attachGeo may still change it in place, and a compiled
// one's geoTable too.
func (s *Snapshot) fresh(v *ServiceView, compiled bool) {
	if v == nil {
		return
	}
	if s.new == nil {
		s.new = map[*ServiceView]bool{}
	}
	s.new[v] = compiled
}

// due notes when v's factors change next (v may be nil).
func (s *Snapshot) due(v *ServiceView) {
	if v != nil && v.next != 0 && (s.next == 0 || v.next < s.next) {
		s.next = v.next
	}
}

// compileEntry compiles one service of the state from scratch; old is
// the previous snapshot's view of it (nil if none), whose factors it
// carries on.
func (s *Snapshot) compileEntry(key string, svc *Service, old *ServiceView) *svcEntry {
	s.stats.Compiled++
	c := &svcCompiler{s: s}
	e := &svcEntry{svc: svc}
	switch name := ""; {
	case svc == nil:
		c.problemf("service %q: no data; skipped", key)
	case !isHostname(CanonicalName(svc.Name)):
		c.problemf("service %q: %q is not a host name; skipped", key, svc.Name)
	case CanonicalName(key) != CanonicalName(svc.Name):
		c.problemf("service %q: stored under the name %q; skipped", svc.Name, key)
	default:
		name = CanonicalName(svc.Name)
		e.v = c.compile(key, name, svc, old)
	}
	e.problems = c.probs
	return e
}

// svcCompiler compiles one service, collecting its problems.
type svcCompiler struct {
	s     *Snapshot
	probs []string
}

func (c *svcCompiler) problemf(format string, args ...any) {
	c.probs = append(c.probs, fmt.Sprintf(format, args...))
}

func (c *svcCompiler) compile(key, name string, svc *Service, old *ServiceView) *ServiceView {
	s := c.s
	v := &ServiceView{name: name, key: key, svc: svc, sticky: svc.Sticky}
	switch svc.Policy {
	case PolicyWeighted:
		v.policy = kindWeighted
	case PolicyFailover:
		v.policy = kindFailover
	case PolicyGeo:
		v.policy = kindGeo
	case PolicyNearest:
		v.policy = kindNearest
	case PolicyLatency:
		v.policy = kindLatency
	default:
		c.problemf("service %s: unknown policy %q; skipped", name, svc.Policy)
		return nil
	}
	switch svc.AllDown.Mode {
	case "", AllDownFailOpen:
		v.mode = downOpen
	case AllDownFailClosed:
		v.mode = downClosed
	case AllDownFallback:
		v.mode = downFallback
		for _, a := range svc.AllDown.Addresses {
			switch {
			case !a.IsValid() || a.Zone() != "":
				c.problemf("service %s: all_down address %v cannot be answered; skipped", name, a)
			case a.Unmap().Is4():
				v.fam[0].fallback = append(v.fam[0].fallback, a.Unmap())
			default:
				v.fam[1].fallback = append(v.fam[1].fallback, a)
			}
		}
	default:
		c.problemf("service %s: unknown all_down mode %q; failing open", name, svc.AllDown.Mode)
	}
	v.maxAnswers = max(svc.MaxAnswers, 0)
	v.ttl = svc.TTL
	v.degradedTTL = svc.DegradedTTL
	if v.degradedTTL == 0 {
		v.degradedTTL = svc.TTL / 2
	}
	v.degradedTTL = min(max(v.degradedTTL, 1), v.ttl)
	if t := svc.NearestToleranceKm; t > 0 && !math.IsInf(t, 0) {
		v.nearTol = t
	}
	if t := svc.LatencyToleranceMs; t > 0 && !math.IsInf(t, 0) {
		v.latTol = t
	}

	v.slotOf = make([]int16, len(s.regions))
	for i := range v.slotOf {
		v.slotOf[i] = -1
	}
	v.slots = make([]slot, 0, len(svc.Regions))
	for _, sr := range svc.Regions {
		if len(v.slots) == MaxRegions {
			c.problemf("service %s: more than %d regions; %q and later are skipped", name, MaxRegions, sr.Region)
			break
		}
		r, ok := s.regionIdx[sr.Region]
		if !ok {
			c.problemf("service %s: region %q does not exist; skipped", name, sr.Region)
			continue
		}
		if v.slotOf[r] >= 0 {
			c.problemf("service %s: region %q is listed twice; the second is skipped", name, sr.Region)
			continue
		}
		bias := sr.BiasKm
		if math.IsNaN(bias) || math.IsInf(bias, 0) {
			c.problemf("service %s: region %s: bias %v ignored", name, sr.Region, bias)
			bias = 0
		}
		v.slotOf[r] = int16(len(v.slots))
		v.slots = append(v.slots, slot{name: s.regions[r].Name, region: r, base: sr.Weight, biasKm: bias, hash: regionHash(s.regions[r].Name)})
	}
	v.nw = (len(v.slots) + 63) / 64
	s.setRegions(v)
	s.setFactors(v, old)
	if v.policy == kindGeo {
		v.geo = c.compileGeo(v)
	} else if svc.Geo != nil {
		c.problemf("service %s: geo map ignored: the policy is %s", name, svc.Policy)
	}
	return v
}

// setRegions copies into v's slots what they take from their regions
// (health, addresses, location, drains) and derives the candidate sets.
// A slot's weight is the configured one as a shift leaves it (shiftOf),
// 0 for a drained region: it weighs 0 in every service, never answered,
// not even when failing open.
func (s *Snapshot) setRegions(v *ServiceView) {
	v.lowTTL = false
	probing := s.probing()
	for f := range v.fam {
		fb := v.fam[f].fallback
		v.fam[f] = famView{fallback: fb}
	}
	kept := s.passiveKept(v)
	for i := range v.slots {
		sl := &v.slots[i]
		reg := &s.regions[sl.region]
		sl.weight = s.shiftOf(v, sl).weight
		if reg.Region.Drained {
			sl.weight = 0
		}
		sl.vec, sl.status = s.vecs[sl.region], reg.Status
		sl.addrs, sl.all = s.healthy[sl.region], s.addrs[sl.region]
		if kept != nil && len(kept[i]) > 0 {
			// Ejecting these would exceed the service's max_ejection:
			// answered despite passive health.
			sl.addrs = s.withKept(sl.region, kept[i])
			if sl.status == HealthDown {
				sl.status = HealthUp
			}
		}
		if sl.weight > 0 && (sl.status == HealthDown || sl.status == HealthUnknown && probing) {
			v.lowTTL = true
		}
		for f := range v.fam {
			fv := &v.fam[f]
			if len(sl.all[f]) == 0 {
				continue
			}
			fv.any++
			if sl.weight == 0 {
				continue
			}
			fv.cands.add(i)
			fv.nCands++
			// Up for this family: a region whose every address of the
			// asked family is down is answered away from, even while
			// its other family's addresses are up.
			if len(sl.addrs[f]) > 0 {
				fv.up.add(i)
				fv.nUp++
			}
		}
	}
}

// probing says whether probers are registered: without any, nothing
// checks health, and unknown is the steady state rather than a guess
// during an outage.
func (s *Snapshot) probing() bool { return len(s.state.Probers) > 0 }

// uses says whether v has a region marked in changed.
func (v *ServiceView) uses(changed []bool) bool {
	for i := range v.slots {
		if changed[v.slots[i].region] {
			return true
		}
	}
	return false
}

// refreshView is old with its regions' health, drains and addresses
// taken from s; everything compiled from the service itself (its geo
// map above all) is shared.
func (s *Snapshot) refreshView(old *ServiceView) *ServiceView {
	v := *old
	v.slots = slices.Clone(old.slots)
	s.setRegions(&v)
	s.setFactors(&v, old)
	return &v
}

func (c *svcCompiler) compileGeo(v *ServiceView) *geoTable {
	g := &geoTable{def: -1}
	for i := range g.continents {
		g.continents[i] = -1
	}
	m := v.svc.Geo
	if m == nil {
		c.problemf("service %s: the geo policy has no geo map; answering in region order", v.name)
		return g
	}
	s := c.s
	list := func(field string, names []string) int {
		var l []int
		for _, n := range names {
			r, ok := s.regionIdx[n]
			if !ok || v.slotOf[r] < 0 {
				c.problemf("service %s: geo %s: %q is not one of the service's regions; skipped", v.name, field, n)
				continue
			}
			l = append(l, int(v.slotOf[r]))
		}
		g.lists = append(g.lists, l)
		return len(g.lists) - 1
	}
	for _, cc := range sortedKeys(m.Countries) {
		if len(cc) != 2 || cc != strings.ToUpper(cc) {
			c.problemf("service %s: geo country %q is not an upper-case two-letter code; skipped", v.name, cc)
			continue
		}
		if g.countries == nil {
			g.countries = make(map[string]int)
		}
		g.countries[cc] = list("countries."+cc, m.Countries[cc])
		g.needsLoc = true
	}
	for _, cn := range sortedKeys(m.Continents) {
		ci := continentIndex(cn)
		if ci < 0 {
			c.problemf("service %s: geo continent %q is not a continent code; skipped", v.name, cn)
			continue
		}
		g.continents[ci] = list("continents."+cn, m.Continents[cn])
		g.needsLoc = true
	}
	if m.Default != nil {
		g.def = list("default", m.Default)
	}
	if g.needsLoc && s.geo.lt != nil {
		g.part, g.orders = g.partition(v, s.geo.lt)
		g.part = s.geo.tables.intern(g.part)
	}
	return g
}

// class is the order in which a client at a location with the given lists
// (see listsFor) prefers the service's slots: the lists one after the
// other, then the service's order, each slot at its first place. Two
// locations of one class get the same answer whatever the health, drains
// and weights.
func (g *geoTable) class(v *ServiceView, lists [numGeoLists]int) []int16 {
	out := make([]int16, 0, len(v.slots))
	var seen slotSet
	add := func(sl int) {
		if !seen.has(sl) {
			seen.add(sl)
			out = append(out, int16(sl))
		}
	}
	for _, li := range lists {
		if li >= 0 {
			for _, sl := range g.lists[li] {
				add(sl)
			}
		}
	}
	for i := range v.slots {
		add(i)
	}
	return out
}

// partition groups the locations of lt by their class.
func (g *geoTable) partition(v *ServiceView, lt *locTable) (*partition, [][]int16) {
	group := make([]uint16, len(lt.locs))
	var orders [][]int16
	byLists := map[[2]int]uint16{} // (country list, continent list) -> group
	byClass := map[string]uint16{}
	for id, l := range lt.locs {
		lists := g.listsFor(geoLocation(l))
		k := [2]int{lists[geoCountry], lists[geoContinent]}
		gr, ok := byLists[k]
		if !ok {
			cl := g.class(v, lists)
			ck := unsafe.String((*byte)(unsafe.Pointer(unsafe.SliceData(cl))), 2*len(cl))
			if gr, ok = byClass[ck]; !ok {
				gr = uint16(len(orders))
				byClass[strings.Clone(ck)] = gr
				orders = append(orders, cl)
			}
			byLists[k] = gr
		}
		group[id] = gr
	}
	return newPartition(lt, group, len(orders)), orders
}

// attachGeo gives every geo service the merge of its partition built so
// far, and tells the tables which partitions the snapshot uses.
func (s *Snapshot) attachGeo() {
	if s.geo.tables == nil || s.geo.lt == nil {
		return
	}
	users := map[*partition]int{}
	for _, v := range s.services {
		if v.geo != nil && v.geo.part != nil {
			users[v.geo.part]++
		}
	}
	merges := s.geo.tables.settle(users)
	for i, v := range s.services {
		g := v.geo
		if g == nil || g.part == nil || g.merge == merges[g.part] {
			continue
		}
		compiled, ok := s.new[v]
		switch {
		case compiled:
			g.merge = merges[g.part] // built here, shared with no snapshot yet
			continue
		case ok:
			ng := *g
			ng.merge = merges[g.part]
			v.geo = &ng
			continue
		}
		nv, ng := *v, *g
		ng.merge = merges[g.part]
		nv.geo = &ng
		s.services[i] = &nv
		e := s.built[v.key]
		s.built[v.key] = &svcEntry{svc: e.svc, v: &nv, problems: e.problems}
		s.stats.Refreshed++
	}
}

// Problems lists what the build skipped or replaced, and why: the
// state's, the regions', the latency table's and the geo tables', then
// each service's in key order.
func (s *Snapshot) Problems() []string {
	out := slices.Clone(s.problems)
	for _, k := range s.keys {
		out = append(out, s.built[k].problems...)
	}
	return out
}

// ServiceByName finds a service by name (any case, trailing dot optional).
func (s *Snapshot) ServiceByName(name string) *ServiceView {
	if s.names == nil {
		return nil
	}
	i, ok := s.names.m[name]
	if !ok {
		if i, ok = s.names.m[CanonicalName(name)]; !ok {
			return nil
		}
	}
	return s.services[i]
}

// NumServices counts the services; ServiceAt(i) for i below it is the
// i-th sorted by name.
func (s *Snapshot) NumServices() int { return len(s.services) }

// ServiceAt is the i-th service sorted by name.
func (s *Snapshot) ServiceAt(i int) *ServiceView { return s.services[i] }

// SameServiceNames says whether s and o have the same services under the
// same indexes (ServiceAt): true when one was built from the other and no
// service came or went, so an index of names over one serves the other.
func (s *Snapshot) SameServiceNames(o *Snapshot) bool {
	return o != nil && s.names != nil && s.names == o.names
}

// Stats says what building the snapshot did.
func (s *Snapshot) Stats() BuildStats { return s.stats }

// Bytes estimates the memory of the compiled service, without what it
// shares with others (its partition, the regions' addresses); with its
// factors' state (docs/controller.md).
func (v *ServiceView) Bytes() int {
	n := int(unsafe.Sizeof(*v)) + len(v.name) + 2*cap(v.slotOf) + int(unsafe.Sizeof(slot{}))*cap(v.slots)
	if v.asks != nil {
		n += int(unsafe.Sizeof(*v.asks))
	}
	for i := range v.slots {
		if c := v.slots[i].ctl; c != nil {
			n += int(unsafe.Sizeof(*c)) + 24*(cap(c.vips)+cap(c.down))
		}
		if vr := v.slots[i].vr; vr != nil {
			n += int(unsafe.Sizeof(*vr)) + 24*(cap(vr.steady[0])+cap(vr.steady[1]))
		}
	}
	if g := v.geo; g != nil {
		n += int(unsafe.Sizeof(*g)) + 40*len(g.countries)
		for _, l := range g.lists {
			n += 24 + 8*cap(l)
		}
		for _, o := range g.orders {
			n += 24 + 2*cap(o)
		}
	}
	return n
}
