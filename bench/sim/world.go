package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions"
)

// The world: client networks on three continents behind caching
// resolvers, three regions with capacities, probers that read the
// regions' load, and the real snapshot building and decisions of package
// regions, all on a simulated clock.

// step is the simulated clock's tick.
const step = 250 * time.Millisecond

// continents of the client networks and of the regions.
var continents = []string{"NA", "EU", "AS"}

// regionSpec is one region of the world.
type regionSpec struct {
	name      string
	continent string
	capacity  float64 // requests per second
}

// worldSpec is what a scenario sets up.
type worldSpec struct {
	svc      *regions.Service
	regions  []regionSpec
	networks int     // client networks per continent
	rate     float64 // requests per second per continent
	probers  int
	interval time.Duration // of the checks, and of the load readings
	// noise is the relative standard deviation of a load reading.
	noise float64
	seed  uint64
}

// network is one client network (a /24) and its resolver's cache entry
// for the service.
type network struct {
	addr      netip.Addr
	continent int
	rate      float64 // requests per second
	region    int     // where its cached answer sends it; -1: none
	expires   time.Time
}

// world is a running simulation.
type world struct {
	spec  worldSpec
	start time.Time
	now   time.Time
	rng   *rand.Rand

	st   *regions.State
	snap *regions.Snapshot
	opts regions.SnapshotOptions
	loc  *continentLocator

	nets []network
	// due holds the networks whose resolver asks at each step (by step
	// number since the start); loads is each region's load now.
	due   map[int64][]int32
	loads []float64
	// demand multiplies the rate of each continent's networks; capacity
	// is each region's capacity now.
	demand   []float64
	capacity []float64
	// up and drained are the regions' states the probers and the
	// operator give; regionOf maps a snapshot region index to ours.
	up       []bool
	regionOf map[string]int

	probers []prober
	// loadFrozen: the probers' load readings stop (the stats page went
	// away): reports keep the last reading with its time.
	loadFrozen bool
	builds     int
}

type prober struct {
	id   string
	next time.Time
	// last is the last load reading per region, kept when readings stop.
	last []regions.VIPHealth
}

// continentLocator places 10.(16 C).0.0/12 on continent C.
type continentLocator struct{}

func (continentLocator) Locate(a netip.Addr) geo.Location {
	b := a.As4()
	if c := int(b[1] >> 4); a.Is4() && b[0] == 10 && c < len(continents) {
		return geo.Location{Continent: continents[c], Network: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b[1] &^ 15, 0, 0}), 12)}
	}
	return geo.Location{}
}

func newWorld(spec worldSpec) *world {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &world{spec: spec, start: t0, now: t0, rng: rand.New(rand.NewPCG(spec.seed, 0x5eed)), loc: &continentLocator{},
		demand: make([]float64, len(continents)), up: make([]bool, len(spec.regions)), regionOf: map[string]int{},
		due: map[int64][]int32{}, loads: make([]float64, len(spec.regions))}
	st := regions.NewState()
	st.Revision = 1
	for i, r := range spec.regions {
		w.up[i] = true
		w.capacity = append(w.capacity, r.capacity)
		w.regionOf[r.name] = i
		st.Regions[r.name] = &regions.Region{Name: r.name, VIPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})},
			Location: regions.Location{Continent: r.continent}, Check: regions.HealthCheck{Type: "tcp", Port: 80, Interval: regions.Duration(spec.interval)}}
	}
	st.Services[spec.svc.Name] = spec.svc
	w.st = st
	for c := range continents {
		w.demand[c] = 1
		for k := range spec.networks {
			// Rates from half to one and a half of the mean.
			r := spec.rate / float64(spec.networks) * (0.5 + w.rng.Float64())
			// The k-th /24 of the continent's /12.
			addr := netip.AddrFrom4([4]byte{10, byte(c<<4 | k>>8), byte(k), 1})
			w.nets = append(w.nets, network{addr: addr, continent: c, rate: r, region: -1})
		}
	}
	for i := range spec.probers {
		off := time.Duration(i) * spec.interval / time.Duration(spec.probers)
		p := prober{id: fmt.Sprintf("prober-%d", i+1), next: t0.Add(off)}
		st.Probers[p.id] = &regions.ProberInfo{ID: p.id, Region: spec.regions[i%len(spec.regions)].name, Lease: int64(100 + i)}
		w.probers = append(w.probers, p)
	}
	w.rebuild()
	if spec.networks > 1<<12 {
		panic("more client networks than /24s in a /12")
	}
	// Every prober has reported once: no region starts of unknown
	// health, which would give the first answers the degraded TTL.
	for i := range w.probers {
		w.publish(&w.probers[i])
	}
	// Every resolver asks once, at a random point of the first TTL: the
	// staggered expiries of a steady state.
	ttl := time.Duration(spec.svc.TTL) * time.Second
	for i := range w.nets {
		w.ask(i, t0.Add(time.Duration(w.rng.Int64N(int64(ttl)))))
	}
	return w
}

// rebuild builds the snapshot from the served one, as the server's Live
// does on every change and at NextChange.
func (w *world) rebuild() {
	w.snap = regions.BuildSnapshotAt(w.st, w.snap, w.opts, w.now)
	w.builds++
}

// change applies f to a copy of the state and rebuilds.
func (w *world) change(f func(st *regions.State)) {
	st := w.st.Clone()
	st.Revision++
	f(st)
	w.st = st
	w.rebuild()
}

// ask sends network i's query to the real decision code and caches the
// answer for its TTL; expires (if not zero) replaces the expiry, for
// the staggered start.
func (w *world) ask(i int, expires time.Time) {
	n := &w.nets[i]
	v := w.snap.ServiceByName(w.spec.svc.Name)
	d := w.snap.Decide(v, &regions.Client{Addr: n.addr, Bits: 24, Locator: w.loc}, regions.QTypeA, w.rng.Uint64())
	if n.region >= 0 {
		w.loads[n.region] -= n.rate * w.demand[n.continent]
	}
	n.region = -1
	if d.Kind == regions.KindAnswer {
		n.region = w.regionOf[d.Region]
		w.loads[n.region] += n.rate * w.demand[n.continent]
	}
	// The resolver asks again when a client asks after the expiry: for
	// these busy networks, a second later on average.
	n.expires = w.now.Add(time.Duration(d.TTL)*time.Second + time.Duration(w.rng.ExpFloat64()*float64(time.Second)))
	if !expires.IsZero() {
		n.expires = expires
	}
	k := w.stepOf(n.expires)
	w.due[k] = append(w.due[k], int32(i))
}

// stepOf is the first step at or after t.
func (w *world) stepOf(t time.Time) int64 {
	d := t.Sub(w.start)
	return int64((d + step - 1) / step)
}

// setDemand sets the demand multiplier of continent c's networks.
func (w *world) setDemand(c int, m float64) {
	w.demand[c] = m
	clear(w.loads)
	for i := range w.nets {
		if n := &w.nets[i]; n.region >= 0 {
			w.loads[n.region] += n.rate * w.demand[n.continent]
		}
	}
}

// load is each region's load now: the requests of the networks its
// cached answers send it.
func (w *world) load() []float64 { return append([]float64(nil), w.loads...) }

// traffic is each region's share of all requests now.
func (w *world) traffic() []float64 {
	l := w.load()
	total := 0.0
	for _, x := range l {
		total += x
	}
	for i := range l {
		l[i] /= total
	}
	return l
}

// utilisation is a region's load over its capacity now.
func (w *world) utilisation(r int) float64 {
	return w.load()[r] / w.capacity[r]
}

// kept is a region's kept fraction in the served snapshot.
func (w *world) kept(region string) float64 {
	v := w.snap.ServiceByName(w.spec.svc.Name)
	return w.snap.Factors(v, w.now)[region].Kept
}

// publish writes prober p's reports: each region's VIP up or down as
// the region is, with the load read now (or the last reading, with its
// time, once readings stop).
func (w *world) publish(p *prober) {
	l := w.load()
	if p.last == nil {
		p.last = make([]regions.VIPHealth, len(w.spec.regions))
	}
	reps := make([]*regions.HealthReport, len(w.spec.regions))
	for i := range w.spec.regions {
		vh := regions.VIPHealth{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Up: w.up[i], Since: w.start}
		if !w.loadFrozen {
			read := l[i] * (1 + w.spec.noise*w.rng.NormFloat64())
			capacity := w.capacity[i]
			p.last[i] = regions.VIPHealth{Load: &read, Capacity: &capacity, LoadObserved: w.now, LoadSource: "health"}
		}
		vh.Load, vh.Capacity, vh.LoadObserved, vh.LoadSource = p.last[i].Load, p.last[i].Capacity, p.last[i].LoadObserved, p.last[i].LoadSource
		reps[i] = &regions.HealthReport{Region: w.spec.regions[i].name, Prober: p.id, Trusted: true, Observed: w.now, VIPs: []regions.VIPHealth{vh}}
	}
	w.change(func(st *regions.State) {
		for i, r := range w.spec.regions {
			rep := reps[i]
			rep.Lease = st.Probers[p.id].Lease
			m := map[string]*regions.HealthReport{}
			for k, x := range st.Health[r.name] {
				m[k] = x
			}
			m[p.id] = rep
			st.Health[r.name] = m
		}
	})
}

// addShift makes a shift, as POST /v1/shifts does: the state holds it
// until the end of the run, and the snapshots apply it while it is
// active.
func (w *world) addShift(sh *regions.Shift) {
	w.change(func(st *regions.State) {
		st.Shifts[sh.ID] = sh
	})
}

// advance runs the world for d, calling each (may be nil) after every
// step.
func (w *world) advance(d time.Duration, each func()) {
	for end := w.now.Add(d); w.now.Before(end); {
		w.now = w.now.Add(step)
		for i := range w.probers {
			if p := &w.probers[i]; !w.now.Before(p.next) {
				p.next = p.next.Add(w.spec.interval)
				w.publish(p)
			}
		}
		if at := w.snap.NextChange(); !at.IsZero() && !w.now.Before(at) {
			w.rebuild()
		}
		k := w.stepOf(w.now)
		for _, i := range w.due[k] {
			w.ask(int(i), time.Time{})
		}
		delete(w.due, k)
		if each != nil {
			each()
		}
	}
}

// answerable says whether the served snapshot answers the region in
// the service: not down, not drained, its weight (as a shift leaves it)
// above 0.
func (w *world) answerable(region string) bool {
	v := w.snap.ServiceByName(w.spec.svc.Name)
	f := w.snap.Factors(v, w.now)[region]
	return f != nil && f.Health == 1
}

// round1 rounds to one decimal.
func round1(x float64) float64 { return math.Round(x*10) / 10 }
