package regions

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// svcEntry is one service of the state as a snapshot compiled it: the
// object it was compiled from, the view (nil when it was skipped) and the
// problems found. Entries are shared between snapshots while the object
// and its regions stay the same.
type svcEntry struct {
	key      string
	svc      *Service
	v        *ServiceView
	problems []string
	// dup: skipped because another key holds the same name; compiled
	// again by the next snapshot, which may no longer have the other.
	dup bool
	// odd: the key is not the view's name (another case).
	odd bool
	gen uint64 // the build that made the entry (Snapshot.gen)
}

// keyIndex maps the state's keys to their entries' index in
// Snapshot.entries.
type keyIndex struct{ m map[string]int32 }

// buildGens numbers snapshot builds (Snapshot.gen).
var buildGens atomic.Uint64

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
// shared as they are. When the state was derived from prev's
// (State.Derive), only the services it changed are looked at, the rest
// taken over without a look; and only when a region changed is every
// service visited.
func (s *Snapshot) buildServices(prev *Snapshot) {
	s.gen = buildGens.Add(1)
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
	// Shifts that started or ended: a drain of every service changes
	// its region, the others their services.
	shifted := s.shiftChanges(prev, changed)
	ltSame := prev != nil && prev.geo.lt == s.geo.lt
	anyChanged := slices.Contains(changed, true)
	anyLoad := slices.Contains(loadChanged, true)
	now := s.now.UnixNano()

	b := &entriesBuild{s: s, prev: prev}
	if keys, ok := s.state.servicesChangedSince(prevState(prev)); ok {
		keys = append(keys, prev.dups...)
		slices.Sort(keys)
		b.some(slices.Compact(keys))
	} else {
		b.all()
	}
	if prev != nil && regionsSame && ltSame && !anyChanged && len(shifted) == 0 && !anyLoad && (prev.next == 0 || prev.next > now) {
		// Nothing of the regions or the shifts changed and no factor
		// is due: the entries taken over stay as they are. The next
		// change is prev's at the latest (early when it was a replaced
		// view's: that build then visits them all), or the expiry of a
		// shift in force (buildShifts).
		s.dueAt(prev.next)
		for _, r := range b.replaced {
			if r[1] != nil {
				s.due(r[1].v)
			}
		}
	} else {
		s.visit(b, regionsSame, ltSame, changed, loadChanged, shifted, now)
	}
	s.stats.Services = len(s.entries)
	b.finish()
	s.attachGeo(prev, b.replaced)
}

// visit looks at every entry b did not compile: compiled again when the
// regions or the location table changed under it, refreshed when its
// regions' health, drains or addresses changed (changed), a shift of
// its own started or ended (shifted, by name), its factors are due or
// the load readings they follow changed (loadChanged).
func (s *Snapshot) visit(b *entriesBuild, regionsSame, ltSame bool, changed, loadChanged []bool, shifted map[string]bool, now int64) {
	anyChanged := slices.Contains(changed, true)
	anyLoad := slices.Contains(loadChanged, true)
	for i, e := range s.entries {
		if e.gen == s.gen {
			s.due(e.v) // compiled above
			continue
		}
		switch {
		case !regionsSame || !ltSame && e.v != nil && e.v.geo != nil && e.v.geo.needsLoc:
			b.set(i, s.compileEntry(e.key, e.svc, e.v))
		case e.v != nil && (anyChanged && e.v.uses(changed) || shifted[e.v.name] || e.v.next != 0 && e.v.next <= now ||
			anyLoad && e.v.svc.Load != nil && e.v.uses(loadChanged)):
			// Health, drains or addresses changed, or a shift of the
			// service started or ended, or the factors are due to move,
			// or the load readings a factor follows. Same name, same
			// map: nothing for the name index or the geo users to
			// follow.
			s.entries[i] = s.refreshEntry(e)
			s.stats.Refreshed++
		}
		s.due(s.entries[i].v)
	}
}

func prevState(prev *Snapshot) *State {
	if prev == nil {
		return nil
	}
	return prev.state
}

// entriesBuild makes a snapshot's entries from the previous snapshot's.
type entriesBuild struct {
	s, prev *Snapshot
	// replaced pairs each entry replaced (nil when added) with its
	// replacement (nil when removed): what the geo users and the name
	// index must follow.
	replaced [][2]*svcEntry
	// names: keys came or went; touched: the indexes of the entries
	// replaced otherwise.
	names   bool
	touched []int
}

// all makes the entries from every service of the state, taking over
// those of prev whose object is the same.
func (b *entriesBuild) all() {
	s, prev, st := b.s, b.prev, b.s.state
	sameKeys := prev != nil && len(prev.entries) == len(st.Services)
	if sameKeys {
		for key := range st.Services {
			if _, ok := prev.keys.m[key]; !ok {
				sameKeys = false
				break
			}
		}
	}
	if sameKeys {
		s.keys = prev.keys
		s.entries = slices.Clone(prev.entries)
		for i, e := range s.entries {
			if svc := st.Services[e.key]; e.dup || e.svc != svc {
				b.set(i, s.compileEntry(e.key, svc, e.v))
			}
		}
		return
	}
	keys := slices.Sorted(maps.Keys(st.Services))
	s.entries = make([]*svcEntry, len(keys))
	s.keys = &keyIndex{m: make(map[string]int32, len(keys))}
	b.names = true
	for i, key := range keys {
		s.keys.m[key] = int32(i)
		var old *svcEntry
		if prev != nil {
			if j, ok := prev.keys.m[key]; ok {
				old = prev.entries[j]
			}
		}
		switch svc := st.Services[key]; {
		case old != nil && !old.dup && old.svc == svc:
			s.entries[i] = old
		default:
			var ov *ServiceView
			if old != nil {
				ov = old.v
			}
			s.entries[i] = s.compileEntry(key, svc, ov)
			b.replaced = append(b.replaced, [2]*svcEntry{old, s.entries[i]})
		}
	}
	if prev != nil {
		for _, e := range prev.entries {
			if _, ok := s.keys.m[e.key]; !ok {
				b.replaced = append(b.replaced, [2]*svcEntry{e, nil})
			}
		}
	}
}

// some makes the entries from prev's, looking only at the services of
// keys (sorted, each once).
func (b *entriesBuild) some(keys []string) {
	s, prev, st := b.s, b.prev, b.s.state
	s.keys, s.entries = prev.keys, slices.Clone(prev.entries)
	var added []*svcEntry // in key order
	removed := 0
	for _, key := range keys {
		svc, is := st.Services[key]
		i, was := s.keys.m[key]
		switch {
		case was && !is:
			b.replaced = append(b.replaced, [2]*svcEntry{s.entries[i], nil})
			s.entries[i] = nil
			removed++
		case was && (s.entries[i].dup || s.entries[i].svc != svc):
			b.set(int(i), s.compileEntry(key, svc, s.entries[i].v))
		case !was && is:
			e := s.compileEntry(key, svc, nil)
			added = append(added, e)
			b.replaced = append(b.replaced, [2]*svcEntry{nil, e})
		}
	}
	if len(added) == 0 && removed == 0 {
		return
	}
	// Keys came or went: the entries merged in key order, indexed anew.
	b.names = true
	entries := make([]*svcEntry, 0, len(s.entries)-removed+len(added))
	for _, e := range s.entries {
		if e == nil {
			continue
		}
		for len(added) > 0 && added[0].key < e.key {
			entries = append(entries, added[0])
			added = added[1:]
		}
		entries = append(entries, e)
	}
	s.entries = append(entries, added...)
	s.keys = &keyIndex{m: make(map[string]int32, len(s.entries))}
	for i, e := range s.entries {
		s.keys.m[e.key] = int32(i)
	}
}

// set replaces entry i with e.
func (b *entriesBuild) set(i int, e *svcEntry) {
	b.replaced = append(b.replaced, [2]*svcEntry{b.s.entries[i], e})
	b.s.entries[i] = e
	b.touched = append(b.touched, i)
}

// sameNames says whether the compiled services are those of prev, with
// the same names in the same order.
func (b *entriesBuild) sameNames() bool {
	if b.prev == nil || b.names || b.prev.names == nil {
		return false
	}
	for _, i := range b.touched {
		old, e := b.prev.entries[i], b.s.entries[i]
		if (old.v == nil) != (e.v == nil) || old.dup != e.dup || old.v != nil && old.v.name != e.v.name {
			return false
		}
	}
	return true
}

// finish lists the compiled services by name and indexes them; the
// index is prev's when the names are the same.
func (b *entriesBuild) finish() {
	s := b.s
	s.services = make([]*ServiceView, 0, len(s.entries))
	s.dups = nil
	odd := false
	for _, e := range s.entries {
		if e.v != nil {
			s.services = append(s.services, e.v)
			odd = odd || e.odd
		}
	}
	if odd {
		// Names are checked to be canonical, so views sorted by key are
		// sorted by name unless a key is spelled in another case.
		s.services = s.services[:0]
		seen := map[string]bool{}
		for i, e := range s.entries {
			switch {
			case e.v == nil:
			case seen[e.v.name]:
				// Two keys of one name: the first in key order wins.
				b.set(i, &svcEntry{key: e.key, svc: e.svc, dup: true, gen: s.gen,
					problems: append(slices.Clip(e.problems), fmt.Sprintf("service %s: stored twice; skipped %q", e.v.name, e.key))})
				s.dups = append(s.dups, e.key)
			default:
				seen[e.v.name] = true
				s.services = append(s.services, e.v)
			}
		}
		slices.SortFunc(s.services, func(a, b *ServiceView) int { return strings.Compare(a.name, b.name) })
	}
	if b.sameNames() {
		s.names = b.prev.names
		return
	}
	s.names = &nameIndex{m: make(map[string]int32, len(s.services))}
	for i, v := range s.services {
		s.names.m[v.name] = int32(i)
	}
}

// due notes when v's factors change next (v may be nil).
func (s *Snapshot) due(v *ServiceView) {
	if v != nil {
		s.dueAt(v.next)
	}
}

// dueAt notes a time the snapshot answers differently (unix ns; 0:
// none), keeping the earliest in s.next.
func (s *Snapshot) dueAt(at int64) {
	if at != 0 && (s.next == 0 || at < s.next) {
		s.next = at
	}
}

// compileEntry compiles one service of the state from scratch; old is
// the previous snapshot's view of it (nil if none), whose factors it
// carries on.
func (s *Snapshot) compileEntry(key string, svc *Service, old *ServiceView) *svcEntry {
	s.stats.Compiled++
	c := &svcCompiler{s: s}
	e := &svcEntry{key: key, svc: svc, gen: s.gen}
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
		e.odd = e.v != nil && key != name
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
	v := &ServiceView{viewConst: &viewConst{name: name, key: key, svc: svc, sticky: svc.Sticky}, gen: s.gen}
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
				v.fallback[0] = append(v.fallback[0], a.Unmap())
			default:
				v.fallback[1] = append(v.fallback[1], a)
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
	n := min(len(svc.Regions), MaxRegions)
	v.slots = make([]slot, 0, n)
	// Never appended beyond n: the slots point into it.
	consts := make([]slotConst, 0, n)
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
		consts = append(consts, slotConst{name: s.regions[r].Name, region: r, base: sr.Weight, biasKm: bias, hash: regionHash(s.regions[r].Name)})
		v.slots = append(v.slots, slot{slotConst: &consts[len(consts)-1]})
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
// A slot's weight is the configured one as a shift in force leaves it
// (shiftOf), 0 for a drained region: it weighs 0 in every service, never answered,
// not even when failing open.
func (s *Snapshot) setRegions(v *ServiceView) {
	v.lowTTL = false
	probing := s.probing()
	old := v.fam
	var cands, up [2]slotSet
	for f := range v.fam {
		v.fam[f] = famView{}
	}
	kept := s.passiveKept(v)
	for i := range v.slots {
		sl := &v.slots[i]
		reg := &s.regions[sl.region]
		sl.weight = s.shiftOf(v, sl).weight
		if reg.Region.Drained {
			sl.weight = 0
		}
		sl.vec, sl.status = &s.vecs[sl.region], codeOf(reg.Status)
		sl.addrs, sl.all = &s.healthy[sl.region], &s.addrs[sl.region]
		if kept != nil && len(kept[i]) > 0 {
			// Ejecting these would exceed the service's max_ejection:
			// answered despite passive health.
			k := s.withKept(sl.region, kept[i])
			sl.addrs = &k
			if sl.status == codeDown {
				sl.status = codeUp
			}
		}
		if sl.weight > 0 && (sl.status == codeDown || sl.status == codeUnknown && probing) {
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
			cands[f].add(i)
			fv.nCands++
			// Up for this family: a region whose every address of the
			// asked family is down is answered away from, even while
			// its other family's addresses are up.
			if len(sl.addrs[f]) > 0 {
				up[f].add(i)
				fv.nUp++
			}
		}
	}
	for f := range v.fam {
		v.fam[f].cands = sharedSet(&cands[f], old[f].cands)
		v.fam[f].up = sharedSet(&up[f], old[f].up)
	}
}

// smallSets holds every set of the first eight slots, which the sets of
// nearly every service are: views point into it rather than carry
// their own. Read only.
var smallSets = func() (t [256]slotSet) {
	for i := range t {
		t[i][0] = uint64(i)
	}
	return t
}()

// sharedSet is a pointer to a set equal to set that no one writes
// through: old when it is equal (the view refreshed keeps its own),
// an entry of smallSets, or else a copy. A refreshed view thus carries
// two pointers per family instead of four sets of MaxRegions bits.
func sharedSet(set, old *slotSet) *slotSet {
	if old != nil && *old == *set {
		return old
	}
	if set[0] < uint64(len(smallSets)) && *set == smallSets[set[0]] {
		return &smallSets[set[0]]
	}
	c := *set
	return &c
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

// refreshEntry is e with its view refreshed: the entry, the view and
// (up to four regions) its slots in one allocation, as a region change
// refreshes thousands of them.
func (s *Snapshot) refreshEntry(e *svcEntry) *svcEntry {
	var ev *entryView
	var slots []slot
	switch n := len(e.v.slots); n {
	case 1:
		ev, slots = withSlots(func(a *[1]slot) []slot { return a[:] })
	case 2:
		ev, slots = withSlots(func(a *[2]slot) []slot { return a[:] })
	case 3:
		ev, slots = withSlots(func(a *[3]slot) []slot { return a[:] })
	case 4:
		ev, slots = withSlots(func(a *[4]slot) []slot { return a[:] })
	default:
		ev, slots = new(entryView), make([]slot, n)
	}
	s.refreshView(&ev.v, e.v, slots)
	ev.e = svcEntry{key: e.key, svc: e.svc, v: &ev.v, problems: e.problems, odd: e.odd, gen: s.gen}
	return &ev.e
}

// entryView is an entry and its view, allocated together.
type entryView struct {
	e svcEntry
	v ServiceView
}

// withSlots allocates an entryView with an array A of slots after it,
// and returns both, the array as a slice.
func withSlots[A any](slice func(*A) []slot) (*entryView, []slot) {
	r := new(struct {
		entryView
		a A
	})
	return &r.entryView, slice(&r.a)
}

// refreshView sets v to old with its regions' health, drains and
// addresses taken from s, its slots in slots (as many as old's);
// everything compiled from the service itself (its geo map above all)
// is shared.
func (s *Snapshot) refreshView(v, old *ServiceView, slots []slot) {
	*v = *old
	v.gen = s.gen
	copy(slots, old.slots)
	v.slots = slots
	s.setRegions(v)
	s.setFactors(v, old)
}

func (c *svcCompiler) compileGeo(v *ServiceView) *geoTable {
	g := &geoTable{def: -1, gen: c.s.gen}
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
// far, and tells the tables which partitions the snapshot uses. The
// number of services of each partition follows replaced (see
// entriesBuild) from prev's; the services are visited only when a merge
// came or went.
func (s *Snapshot) attachGeo(prev *Snapshot, replaced [][2]*svcEntry) {
	if s.geo.tables == nil || s.geo.lt == nil {
		return
	}
	partOf := func(e *svcEntry) *partition {
		if e != nil && e.v != nil && e.v.geo != nil {
			return e.v.geo.part
		}
		return nil
	}
	var users map[*partition]int
	if prev != nil && prev.geo.users != nil && prev.geo.lt == s.geo.lt {
		users = maps.Clone(prev.geo.users)
		for _, r := range replaced {
			if p := partOf(r[0]); p != nil {
				if users[p]--; users[p] <= 0 {
					delete(users, p)
				}
			}
			if p := partOf(r[1]); p != nil {
				users[p]++
			}
		}
	} else {
		users = map[*partition]int{}
		for _, v := range s.services {
			if v.geo != nil && v.geo.part != nil {
				users[v.geo.part]++
			}
		}
	}
	merges := s.geo.tables.settle(users)
	s.geo.users, s.geo.merges = users, merges
	if prev != nil && prev.geo.lt == s.geo.lt && maps.Equal(prev.geo.merges, merges) {
		// Every view taken over reads its partition's merge already;
		// the ones compiled here are given theirs.
		for _, r := range replaced {
			if e := r[1]; e != nil && e.v != nil && e.v.geo != nil && e.v.geo.part != nil && e.v.geo.gen == s.gen {
				e.v.geo.merge = merges[e.v.geo.part]
			}
		}
		return
	}
	for i, v := range s.services {
		g := v.geo
		if g == nil || g.part == nil || g.merge == merges[g.part] {
			continue
		}
		switch {
		case g.gen == s.gen:
			g.merge = merges[g.part] // built here, shared with no snapshot yet
			continue
		case v.gen == s.gen:
			ng := *g
			ng.merge, ng.gen = merges[g.part], s.gen
			v.geo = &ng
			continue
		}
		nv, ng := *v, *g
		ng.merge, ng.gen = merges[g.part], s.gen
		nv.geo, nv.gen = &ng, s.gen
		s.services[i] = &nv
		k := s.keys.m[v.key]
		e := s.entries[k]
		s.entries[k] = &svcEntry{key: e.key, svc: e.svc, v: &nv, problems: e.problems, odd: e.odd, gen: s.gen}
		s.stats.Refreshed++
	}
}

// Problems lists what the build skipped or replaced, and why: the
// state's, the regions', the latency table's and the geo tables', then
// each service's in key order.
func (s *Snapshot) Problems() []string {
	out := slices.Clone(s.problems)
	for _, e := range s.entries {
		out = append(out, e.problems...)
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
	n := int(unsafe.Sizeof(*v)) + int(unsafe.Sizeof(*v.viewConst)) + len(v.name) + 2*cap(v.slotOf) +
		int(unsafe.Sizeof(slot{})+unsafe.Sizeof(slotConst{}))*cap(v.slots) + 24*(cap(v.fallback[0])+cap(v.fallback[1]))
	if v.asks != nil {
		n += int(unsafe.Sizeof(*v.asks))
	}
	for f := range v.fam {
		for _, set := range []*slotSet{v.fam[f].cands, v.fam[f].up} {
			if set[0] >= uint64(len(smallSets)) || set != &smallSets[set[0]] {
				n += int(unsafe.Sizeof(*set))
			}
		}
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
