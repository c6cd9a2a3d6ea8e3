package regions

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Closing the loop (docs/controller.md). A region's effective weight in
// a service is
//
//	configured weight × shift × health × load factor × ramp factor
//
// computed here, when a snapshot is built, never on the query path.
// shift × load × ramp is the region's kept fraction p: the share of its
// full share of answers it keeps. For
// weighted services the effective weights are solved so that each region
// gets p of its full share; for the other policies a region keeps the
// clients whose rendezvous position for it is below p and sends the rest
// to their next candidate.
//
// The resolvers' caches stand between an answer and the traffic it
// sends: an answer given at time s is used until s + TTL, so with
// resolvers asking at staggered times the traffic share at t is the mean
// of the answer shares over [t - TTL, t] (slow start models the
// resolvers' asks more closely: see resolvers). The factors live in the
// snapshot as state carried from one build to the next, per (service,
// region), and move only at ticks of a quarter TTL (at least a second),
// each move bounded, so that a controller which acts through caches
// neither overshoots nor oscillates. While a factor moves the snapshot
// says when it next changes (NextChange) and is built again then; only
// the services due are refreshed.

// ticksPerTTL is how many times per TTL the factors are evaluated while
// they move.
const ticksPerTTL = 4

const (
	// deadband: a load factor does not move for less than this...
	deadband = 0.02
	// ...nor, turning back, for less than this (hysteresis).
	reverseBand = 0.05
	// minTraffic: below this kept fraction in the traffic, a region's
	// utilisation says too little of its demand to act on.
	minTraffic = 0.05
)

// keepAll is slot.keep of a region that keeps all its clients.
const keepAll = ^uint64(0)

// weightScale turns weights into the fixed point of slot.eff, so that a
// factor below 1 still weighs something for a weight of 1.
const weightScale = 1 << 16

// tickOf is the tick index of t for ticks of length d (the grid is the
// same on every server).
func tickOf(t int64, d time.Duration) int64 { return t / int64(d) }

// tickLen is the service's tick: a quarter TTL, at least a second.
func (v *ServiceView) tickLen() time.Duration {
	return max(time.Second, time.Duration(v.ttl)*time.Second/ticksPerTTL)
}

// cacheWindow is how long the answers given now stay in caches: the TTL
// they carry.
func (v *ServiceView) cacheWindow() time.Duration {
	if v.lowTTL {
		return time.Duration(v.degradedTTL) * time.Second
	}
	return time.Duration(v.ttl) * time.Second
}

// histLen bounds a history: three TTLs of ticks, the oldest reading a
// load signal may use included.
const histLen = 12

// hist is a piecewise constant history of a fraction: v[i] from at[i]
// (unix ns) until at[i+1], the last until now; before the first, the
// first value.
type hist struct {
	n  int
	at [histLen]int64
	v  [histLen]float32
}

// push records that the value is x from t on (t not before the last).
func (h *hist) push(t int64, x float64) {
	if h.n > 0 && h.v[h.n-1] == float32(x) {
		return
	}
	if h.n > 0 && h.at[h.n-1] >= t {
		h.v[h.n-1] = float32(x) // the same instant: the newer value
		return
	}
	if h.n == histLen {
		copy(h.at[:], h.at[1:])
		copy(h.v[:], h.v[1:])
		h.n--
	}
	h.at[h.n], h.v[h.n] = t, float32(x)
	h.n++
}

// value is the value at t.
func (h *hist) value(t int64) float64 {
	if h.n == 0 {
		return 0
	}
	x := h.v[0]
	for i := 0; i < h.n && h.at[i] <= t; i++ {
		x = h.v[i]
	}
	return float64(x)
}

// integral is the integral of the history over [a, b], in seconds.
func (h *hist) integral(a, b int64) float64 {
	if h.n == 0 || b <= a {
		return 0
	}
	sum := 0.0
	for i := -1; i < h.n; i++ {
		// Segment i covers [from, to); segment -1 is before the first.
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		x := h.v[0]
		if i >= 0 {
			from, x = h.at[i], h.v[i]
		}
		if i+1 < h.n {
			to = h.at[i+1]
		}
		lo, hi := max(from, a), min(to, b)
		if hi > lo {
			sum += float64(x) * float64(hi-lo)
		}
	}
	return sum / 1e9
}

// nResolvers is the size of the model population of resolvers with
// which a slow start predicts the traffic its answers will send.
const nResolvers = 64

// resolvers models the resolvers asking for a service: each holds its
// last answer until the answer expires, and asks again then. Their asks
// follow the TTLs the service handed out: after a time of degraded TTLs
// (a region was down), every resolver asked within the shorter TTL, and
// asks again in a burst a TTL later, which traffic shows and a uniform
// model of the caches would not. A build never changes one: advancing
// it makes a new one.
type resolvers struct {
	at int64 // advanced to (unix ns)
	// ttls is the TTL, in seconds, the answers carried.
	ttls hist
	// last and next are each resolver's last and next ask (unix ns).
	last, next [nResolvers]int64
}

// newResolvers is a population asking at even intervals of ttl, as in
// a steady state.
func newResolvers(now int64, ttl time.Duration) *resolvers {
	r := &resolvers{at: now}
	r.ttls.push(now, ttl.Seconds())
	for i := range r.next {
		r.next[i] = now + int64(i+1)*int64(ttl)/nResolvers
		r.last[i] = r.next[i] - int64(ttl)
	}
	return r
}

// advance is r with every ask up to now made, the answers given from
// now on carrying ttl.
func (r *resolvers) advance(now int64, ttl time.Duration) *resolvers {
	n := *r
	n.at = max(now, r.at)
	changed := n.ttls.at[n.ttls.n-1] // the last change of TTL
	for i := range n.next {
		for n.next[i] <= now {
			n.last[i] = n.next[i]
			t := int64(n.ttls.value(n.last[i]) * 1e9)
			if t <= 0 {
				t = int64(time.Second)
			}
			n.next[i] = n.last[i] + t
			if n.last[i] >= changed {
				// One TTL since: skip whole periods.
				k := (now - n.next[i]) / t
				if k > 0 {
					n.next[i] += k * t
					n.last[i] += k * t
				}
			}
		}
	}
	n.ttls.push(now, ttl.Seconds())
	return &n
}

// slotCtl is the controller state of one region of one service. A
// snapshot never changes it: a build that moves a factor makes a new one.
type slotCtl struct {
	// at is when the factors were last evaluated (unix ns).
	at int64
	// up: the region was answerable at the last build (not down, not
	// drained, weight above 0).
	up bool
	// load is the load factor; target what it was heading for at the
	// last evaluation; dir and moved the direction (+1, -1) and time of
	// its last move.
	load, target float64
	dir          int8
	moved        int64
	// ramp is the region's slow start; vips are the VIPs that came back
	// while the region was answered, which vipRamp ramps into its
	// answers.
	ramp    ramp
	vipRamp ramp
	vips    []netip.Addr
	// down are the region's VIPs that its answers did not carry at the
	// last build (down, not kept by max_ejection).
	down []netip.Addr
	// p is the kept fraction the answers carried (health included: 0
	// while the region was not answerable).
	p hist
	// loadWhy says what the last evaluation of the load did, for
	// explain.
	loadWhy string
	// settled: the load factor is at its target and no move is still
	// on its way through the caches.
	settled bool
}

// shiftEffect is what a shift does to a region of a service: a weight
// that replaces the configured one, and a factor (shiftOf).
type shiftEffect struct {
	weight uint32
	factor float64
	note   string
	// by is the shift in force (nil: none).
	by *Shift
}

// factorsOn says whether a service has anything that makes factors
// move: load steering or slow start.
func (v *ServiceView) factorsOn() bool { return v.svc.Load != nil || v.svc.SlowStart != nil }

// answerable says whether a slot can be answered, factors aside.
func (sl *slot) answerable() bool { return sl.weight > 0 && sl.status != codeDown }

// slotIn finds the slot of region name in v (nil v: -1); i is where it
// was in a view with the same regions.
func slotIn(v *ServiceView, i int, name string) int {
	if v == nil {
		return -1
	}
	if i < len(v.slots) && v.slots[i].name == name {
		return i
	}
	for j := range v.slots {
		if v.slots[j].name == name {
			return j
		}
	}
	return -1
}

// setFactors evolves the factors of v's slots from old (the previous
// snapshot's view of the service; nil for a new service or the first
// snapshot) to s.now, and composes the effective weights and kept
// fractions. setRegions has set the slots' health and weights.
func (s *Snapshot) setFactors(v *ServiceView, old *ServiceView) {
	now := s.now.UnixNano()
	v.spill, v.next = false, 0
	on := v.factorsOn()
	v.asks = nil
	if v.svc.SlowStart != nil {
		switch {
		case old != nil && old.asks != nil:
			v.asks = old.asks.advance(now, v.cacheWindow())
		default:
			v.asks = newResolvers(now, v.cacheWindow())
		}
	}
	for i := range v.slots {
		sl := &v.slots[i]
		sl.ctl = nil
		if !on {
			continue
		}
		j := slotIn(old, i, sl.name)
		var oc *slotCtl
		wasUp := sl.answerable() // a first sight starts no ramp
		if j >= 0 {
			osl := &old.slots[j]
			oc, wasUp = osl.ctl, osl.answerable()
			if oc != nil {
				wasUp = oc.up
			}
		} else if old != nil {
			wasUp = false // a region added to the service: from weight 0
		}
		sl.ctl = s.evolve(v, sl, oc, wasUp, now)
	}
	if on && v.svc.Load != nil {
		s.steerLoad(v, now)
	}
	s.compose(v, now)
}

// evolve carries a slot's state to now: health changes, the start and
// end of a ramp, and the ramp's move at a tick. The load factor moves in
// steerLoad, which needs every slot's signal first.
func (s *Snapshot) evolve(v *ServiceView, sl *slot, oc *slotCtl, wasUp bool, now int64) *slotCtl {
	c := &slotCtl{load: 1, target: 1, ramp: ramp{value: 1}, vipRamp: ramp{value: 1}, settled: true}
	if oc != nil {
		*c = *oc
	} else {
		// First sight: as if it had been so for ever.
		c.up = wasUp
		h := 0.0
		if wasUp {
			h = 1
		}
		c.p.push(now, h)
		c.ramp.h.push(now, h)
	}
	if v.svc.Load == nil {
		c.load, c.target, c.dir, c.loadWhy, c.settled = 1, 1, 0, "", true
	}
	up := sl.answerable()
	ss := v.svc.SlowStart
	tick := v.tickLen()
	due := c.at == 0 || tickOf(now, tick) > tickOf(c.at, tick)
	switch {
	case ss == nil || !up:
		c.ramp.stop()
	case !wasUp:
		c.ramp.start(now)
		due = true
	}
	if s.vipsBack(v, sl, c, oc != nil && wasUp && up) {
		due = true
	}
	c.up = up
	if due && up {
		c.ramp.step(v, now, "the region")
		c.vipRamp.step(v, now, "the returned VIPs")
		if c.vipRamp.from == 0 {
			c.vips = nil
		}
	}
	if due {
		c.at = now
	}
	return c
}

// vipsBack keeps the set of a slot's VIPs in slow start: the VIPs that
// came back up while the region stayed answered (stayed: it was and is)
// join it, and start its ramp if none runs; the VIPs down again leave
// it. It reports whether a ramp started.
func (s *Snapshot) vipsBack(v *ServiceView, sl *slot, c *slotCtl, stayed bool) bool {
	// Answered: among the region's healthy VIPs, or kept in the answers
	// by the service's max_ejection although passive health ejects it.
	answered := func(a netip.Addr) bool {
		for f := range sl.addrs {
			if slices.Contains(sl.addrs[f], a) {
				return true
			}
		}
		return false
	}
	var down []netip.Addr
	for _, vs := range s.regions[sl.region].VIPs {
		if a := vs.Addr.Unmap(); !answered(a) {
			down = append(down, a)
		}
	}
	wasDown := c.down
	c.down = down
	if v.svc.SlowStart == nil || !stayed {
		c.vips = nil
		c.vipRamp.stop()
		return false
	}
	// Copy on write: the previous snapshot shares the old slice.
	vips := slices.DeleteFunc(slices.Clone(c.vips), func(a netip.Addr) bool { return !answered(a) })
	for _, a := range wasDown {
		if answered(a) && !slices.Contains(vips, a) {
			vips = append(vips, a)
		}
	}
	started := false
	if len(vips) > len(c.vips) && c.vipRamp.from == 0 {
		c.vipRamp.start(s.now.UnixNano())
		started = true
	}
	c.vips = vips
	if len(vips) == 0 {
		c.vips = nil
		c.vipRamp.stop()
	}
	return started
}

// curve is the slow-start curve at t after the start: the share of its
// full traffic a region should take, max(MinWeight,
// (t/Window)^(1/Aggression)), 1 from Window on.
func (ss *SlowStart) curve(t time.Duration) float64 {
	w := time.Duration(ss.Window)
	if t >= w || w <= 0 {
		return 1
	}
	ag := ss.Aggression
	if ag <= 0 {
		ag = 1
	}
	mw := ss.MinWeight
	if mw <= 0 {
		mw = DefaultMinWeight
	}
	return min(1, max(mw, math.Pow(max(float64(t), 0)/float64(w), 1/ag)))
}

// rampGrid is how many points of the next TTL a ramp step compares
// the predicted traffic with the curve at.
const rampGrid = 32

// ramp is a slow start: of a region into its service's answers, or of
// returned VIPs into their region's answers.
type ramp struct {
	// from is when it began (unix ns; 0: no ramp), value the share of
	// the answers it gives now (1 without a ramp).
	from  int64
	value float64
	// h is the value the answers carried over time (0 while they did
	// not carry it at all).
	h   hist
	why string
}

// start begins a ramp at now: until now the answers gave nothing.
func (r *ramp) start(now int64) {
	*r = ramp{from: now}
	r.h.push(now, 0)
}

// stop ends the ramp: the full share.
func (r *ramp) stop() { r.from, r.value, r.why = 0, 1, "" }

// step sets the ramp's value for the answers until the next tick tn,
// for the traffic at tn to be on the curve. Traffic is what the
// resolvers' cached answers send: at time t each resolver holds the
// answer of its last ask (v.asks models who asks when, after the TTLs
// the service gave). Over the next TTL, the predicted traffic is
//
//	held answers + value × (the resolvers asking before tn) + the later askers' answers
//
// assuming the later ticks answer at the curve half a TTL ahead (which
// keeps traffic on the curve while the asks are spread evenly). The
// value is the least-squares fit of that prediction to the curve, at
// least what the askers got earlier in the ramp (the clients that
// return stay), at most 1. So at the start, where the curve rises faster
// than caches let traffic follow, it gives all it may and catches up;
// and after degraded TTLs, when the resolvers ask in bursts, a burst's
// answers cover the quiet time after it. what names what ramps, for
// explain.
func (r *ramp) step(v *ServiceView, now int64, what string) {
	if r.from == 0 {
		return
	}
	ss := v.svc.SlowStart
	tick := v.tickLen()
	tn := (tickOf(now, tick) + 1) * int64(tick)
	ttl := int64(v.cacheWindow())
	curve := func(t int64) float64 { return ss.curve(time.Duration(t - r.from)) }
	var held, lead [nResolvers]float64
	floor := 0.0
	for i, next := range v.asks.next {
		held[i] = r.h.value(v.asks.last[i])
		lead[i] = curve(next + ttl/2)
		if next < tn && v.asks.last[i] >= r.from {
			// Clients the ramp let in keep what they got. (Answers from
			// before the ramp, left from a drain shorter than a TTL,
			// are no promise.)
			floor = max(floor, held[i])
		}
	}
	var num, den float64
	for g := 1; g <= rampGrid; g++ {
		t := now + int64(g)*ttl/rampGrid
		var a, b float64 // traffic = a + value × b
		for i, next := range v.asks.next {
			switch {
			case next > t:
				a += held[i]
			case next < tn:
				b++ // asks this tick, holds its answer past t
			default:
				a += lead[i]
			}
		}
		a /= nResolvers
		b /= nResolvers
		num += b * (curve(t) - a)
		den += b * b
	}
	x := r.value
	if den > 0 {
		x = num / den
	}
	r.value = min(1, max(x, floor, 0))
	r.why = fmt.Sprintf("slow start of %s, %s of %s: answers at %.2f of the full share so that traffic, cached answers included, follows the curve (%.2f now)",
		what, time.Duration(now-r.from).Round(time.Second), time.Duration(ss.Window), r.value, curve(now))
	if tn-r.from >= int64(ss.Window) && r.value >= 1 {
		r.stop()
		r.why = "slow start of " + what + " over: the answers are back at the full share"
	}
}

// loadPolicy is a service's load steering with its defaults.
type loadPolicy struct {
	lo, hi, step float64
	maxAge       time.Duration // 0: per region
}

func (v *ServiceView) loadPolicy() loadPolicy {
	l := v.svc.Load
	p := loadPolicy{lo: l.LowWatermark, hi: l.HighWatermark, step: l.MaxStep, maxAge: time.Duration(l.MaxSignalAge)}
	if p.step <= 0 {
		p.step = DefaultMaxStep
	}
	return p
}

// signalAge is the max_signal_age that applies to a region of v.
func (s *Snapshot) signalAge(v *ServiceView, region int) time.Duration {
	if v.svc.Load != nil && v.svc.Load.MaxSignalAge > 0 {
		return time.Duration(v.svc.Load.MaxSignalAge)
	}
	return defaultSignalAge(s.regions[region].Region)
}

// equilibrium is the kept fraction at which a region whose demand (its
// utilisation were it to keep its whole share) is d sits on the
// watermark line: utilisation u = d × p with p = (hi - u) / (hi - lo),
// so p = hi / (hi - lo + d); 1 while d is at most lo.
func equilibrium(d, lo, hi float64) float64 {
	if d <= lo {
		return 1
	}
	return hi / (hi - lo + d)
}

// steerLoad moves the load factors of v's slots at a tick, towards the
// kept fraction at which each region's utilisation sits on its watermark
// line (equilibrium): the demand is estimated from the utilisation read
// and the share of its full traffic the region had when it was read (the
// answers of the TTL before, which the caches were still using). A move
// is at most max_step per TTL (a quarter of it per tick), none is made
// for less than a deadband, and none turns back before the last one has
// shown in a reading. Without a fresh reading a factor holds: stale load
// never steers. When every candidate is above the high watermark,
// shedding only moves clients between busy regions: the factors follow
// the remaining headroom instead.
func (s *Snapshot) steerLoad(v *ServiceView, now int64) {
	pol := v.loadPolicy()
	tick := v.tickLen()
	win := v.cacheWindow()
	type sigOf struct {
		u  float64
		at int64
		ok bool
	}
	sigs := make([]sigOf, len(v.slots))
	allAbove, ups, best := true, 0, 0.0
	for i := range v.slots {
		sl := &v.slots[i]
		if !sl.answerable() {
			continue
		}
		ups++
		m, _, _, ok := loadSignal(s.regions[sl.region].loads, s.now, s.signalAge(v, sl.region))
		sigs[i] = sigOf{u: m.util, at: m.observed.UnixNano(), ok: ok}
		if !ok || m.util < pol.hi {
			allAbove = false
		}
		best = max(best, 1-m.util)
	}
	allAbove = allAbove && ups > 1
	for i := range v.slots {
		sl := &v.slots[i]
		c := sl.ctl
		if c == nil || !c.up || !(c.at == now) {
			// Not answerable, or no tick since the last evaluation:
			// the factor holds.
			if c != nil && !c.up {
				c.settled = true
			}
			continue
		}
		sig := sigs[i]
		if !sig.ok {
			c.target, c.settled = c.load, true
			c.loadWhy = fmt.Sprintf("no load reading fresher than %s: the factor holds", s.signalAge(v, sl.region))
			continue
		}
		// The traffic share the reading saw: the answers' kept fraction
		// over the TTL before it.
		seen := c.p.integral(sig.at-int64(win), sig.at) / win.Seconds()
		var want float64
		var why string
		switch {
		case allAbove:
			want = 1
			if best > 0 {
				want = max(0, 1-sig.u) / best
			}
			why = fmt.Sprintf("every candidate is above the high watermark %.2f: shares follow the remaining headroom (%.2f here, %.2f at most)", pol.hi, max(0, 1-sig.u), best)
		case seen < minTraffic && sig.u < pol.lo:
			want = 1
			why = fmt.Sprintf("utilisation %.2f below the low watermark %.2f while the region took little traffic: back towards its full share", sig.u, pol.lo)
		case seen < minTraffic:
			want = c.load
			why = fmt.Sprintf("utilisation %.2f while the region took little traffic (%.2f of its share): too little to estimate its demand; the factor holds", sig.u, seen)
		default:
			d := sig.u / seen
			want = equilibrium(d, pol.lo, pol.hi)
			why = fmt.Sprintf("utilisation %.2f at %.2f of its share: demand %.2f of capacity at the full share; the watermarks %.2f-%.2f put it at %.2f",
				sig.u, seen, d, pol.lo, pol.hi, want)
		}
		// The load factor's part of the kept fraction wanted.
		rest := c.ramp.value
		if rest > 0 && rest < 1 {
			want = min(1, want/rest)
		}
		c.target = want
		diff := want - c.load
		reverse := c.dir != 0 && (diff > 0) != (c.dir > 0)
		switch {
		case math.Abs(diff) < deadband:
			c.loadWhy = why + fmt.Sprintf("; within %.2f of the factor %.2f: no move", deadband, c.load)
		case reverse && (math.Abs(diff) < reverseBand || sig.at < c.moved+int64(win)):
			c.loadWhy = why + fmt.Sprintf("; turning back waits for a reading taken a TTL after the last move and a change of %.2f at least: the factor holds at %.2f", reverseBand, c.load)
		default:
			limit := pol.step * min(tick.Seconds(), win.Seconds()) / win.Seconds()
			step := max(-limit, min(limit, diff))
			c.load += step
			c.moved = now
			c.dir = 1
			if step < 0 {
				c.dir = -1
			}
			c.loadWhy = why + fmt.Sprintf("; moved %+.3f to %.3f (at most %.2f per TTL)", step, c.load, pol.step)
		}
		// Settled once at the target and the last move has had a TTL
		// (and the reading's age) to reach the traffic.
		c.settled = math.Abs(c.target-c.load) < deadband && now >= c.moved+int64(win)+int64(s.signalAge(v, sl.region))
	}
}

// keptOf is a slot's kept fraction: shift × load × ramp, from 0 to 1.
func (s *Snapshot) keptOf(v *ServiceView, sl *slot) float64 {
	p := s.shiftOf(v, sl).factor
	if c := sl.ctl; c != nil {
		p *= c.load * c.ramp.value
	}
	return min(1, max(p, 0))
}

// vipRamp is what answers need of a VIP slow start: per family, the
// healthy VIPs without the ones ramping in (nil: no VIP of the family
// ramps, or no other is healthy), and the rendezvous position below
// which a client's answers carry the ramping VIPs too.
type vipRamp struct {
	steady [2][]netip.Addr
	keep   uint64
}

// vipRampOf makes sl's vipRamp from c.
func vipRampOf(sl *slot, c *slotCtl) *vipRamp {
	vr := &vipRamp{keep: keepAll}
	if c.vipRamp.value < 1 {
		vr.keep = uint64(c.vipRamp.value * (1 << 64))
	}
	any := false
	for f := range vr.steady {
		rest := slices.DeleteFunc(slices.Clone(sl.addrs[f]), func(a netip.Addr) bool { return slices.Contains(c.vips, a.Unmap()) })
		if len(rest) > 0 && len(rest) < len(sl.addrs[f]) {
			vr.steady[f] = rest
			any = true
		}
	}
	if !any {
		return nil
	}
	return vr
}

// compose records the kept fractions in the histories, sets the
// effective weights (weighted) or the spill thresholds (the other
// policies) and when the service is due again.
func (s *Snapshot) compose(v *ServiceView, now int64) {
	var up, kept, total float64 // weighted: configured weights
	var ps [64]float64          // the kept fractions, of the first slots
	moving := false
	for i := range v.slots {
		sl := &v.slots[i]
		p := s.keptOf(v, sl)
		if i < len(ps) {
			ps[i] = p
		}
		sl.vr = nil
		if c := sl.ctl; c != nil {
			h := 0.0
			if c.up {
				h = 1
			}
			c.p.push(now, h*p)
			c.ramp.h.push(now, h*c.ramp.value)
			moving = moving || c.ramp.from != 0 || !c.settled
			if c.vipRamp.from != 0 {
				c.vipRamp.h.push(now, h*c.vipRamp.value)
				sl.vr = vipRampOf(sl, c)
				moving = true
			}
		}
		if sl.answerable() {
			total += float64(sl.weight)
			if p >= 1 {
				up += float64(sl.weight)
			} else {
				kept += p * float64(sl.weight)
			}
		}
	}
	for i := range v.slots {
		sl := &v.slots[i]
		p := 1.0
		if i < len(ps) {
			p = ps[i]
		} else {
			p = s.keptOf(v, sl)
		}
		w := float64(sl.weight)
		sl.keep = keepAll
		switch {
		case v.policy != kindWeighted:
			// The weights break ties; the kept fraction decides who
			// stays (Decide).
			if p < 1 {
				sl.keep = uint64(p * (1 << 64))
				v.spill = true
			}
		case p < 1 && sl.answerable() && up > 0:
			// Solved so that the region's share is kept × its full
			// share, the regions at 1 sharing the rest by weight.
			w *= p * up / (total - kept)
		default:
			w *= p
		}
		sl.eff = uint64(math.Round(w * weightScale))
		if sl.weight > 0 && sl.eff == 0 {
			sl.eff = 1
		}
	}
	if moving {
		tick := v.tickLen()
		v.next = (tickOf(now, tick) + 1) * int64(tick)
	}
}
