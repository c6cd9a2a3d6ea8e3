package main

import (
	"fmt"
	"math"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// result is what `make sim` prints of a scenario.
type result struct {
	name string
	// settle is the time after the event until the measured quantity
	// stays within its bound for good, in TTLs.
	settle float64
	// overshoot is how far the quantity went past its target, as a
	// percentage of the target.
	overshoot float64
	// reversals counts the turns of the controlled region's kept
	// fraction.
	reversals int
	// maxDev is the largest deviation from the reference, in points.
	maxDev float64
}

func (r result) String() string {
	return fmt.Sprintf("scenario=%s settle_ttls=%.1f overshoot_pct=%.1f reversals=%d max_dev_pts=%.1f",
		r.name, round1(r.settle), round1(r.overshoot), r.reversals, round1(r.maxDev))
}

// The scenarios' common set-up: a geo service over three regions, one
// per continent, each continent's clients preferring their own region,
// then the nearest other.
const (
	ttl      = 30
	service  = "www.example."
	interval = 5 * time.Second
)

var threeRegions = []regionSpec{
	{"us-east", "NA", 1000},
	{"eu-west", "EU", 1000},
	{"ap-south", "AS", 1000},
}

func geoService() *regions.Service {
	return &regions.Service{Name: service, TTL: ttl, Policy: regions.PolicyGeo,
		Regions: []regions.ServiceRegion{{Region: "us-east", Weight: 100}, {Region: "eu-west", Weight: 100}, {Region: "ap-south", Weight: 100}},
		Geo: &regions.GeoMap{Continents: map[string][]string{
			"NA": {"us-east", "eu-west", "ap-south"},
			"EU": {"eu-west", "us-east", "ap-south"},
			"AS": {"ap-south", "eu-west", "us-east"},
		}, Default: []string{"eu-west"}},
	}
}

func baseSpec(svc *regions.Service, seed uint64) worldSpec {
	return worldSpec{svc: svc, regions: threeRegions, networks: 1000, rate: 200, probers: 3, interval: interval, noise: 0.02, seed: seed}
}

// turns counts the changes of direction of a series, ignoring moves
// smaller than eps.
type turns struct {
	last, eps float64
	dir, n    int
	started   bool
}

func (t *turns) add(x float64) {
	if !t.started {
		t.last, t.started = x, true
		return
	}
	d := x - t.last
	if math.Abs(d) < t.eps {
		return
	}
	dir := 1
	if d < 0 {
		dir = -1
	}
	if t.dir != 0 && dir != t.dir {
		t.n++
	}
	t.dir, t.last = dir, x
}

// spike: eu-west's own clients ask five times as much (its utilisation
// goes from 0.2 to 1.0 at its full share). The target is the utilisation
// on the watermark line, where the controller should settle: within 10%
// of it in at most 3 TTLs, less than 10% past it, at most one turn.
func spike(seed uint64) result {
	svc := geoService()
	lo, hi := 0.7, 0.9
	svc.Load = &regions.LoadSteering{LowWatermark: lo, HighWatermark: hi}
	w := newWorld(baseSpec(svc, seed))
	w.advance(5*time.Minute, nil)
	const eu, factor = 1, 5.0
	w.setDemand(eu, factor)
	// The demand at the full share: eu-west's utilisation were it to
	// keep all its clients.
	d := 0.0
	for _, n := range w.nets {
		if n.continent == eu {
			d += n.rate * factor
		}
	}
	d /= threeRegions[eu].capacity
	target := d * hi / (hi - lo + d)
	return settleRun(w, "spike", "eu-west", eu, target, 10*time.Minute)
}

// spikeWeighted is spike for a sticky weighted service over the same
// regions, all clients spread by weight: eu-west's capacity drops to a
// fifth (its utilisation goes from 0.2 to 1.0 at its full share), and
// its weight is solved down until it sits on the watermark line.
func spikeWeighted(seed uint64) result {
	svc := geoService()
	svc.Policy, svc.Geo, svc.Sticky = regions.PolicyWeighted, nil, true
	lo, hi := 0.7, 0.9
	svc.Load = &regions.LoadSteering{LowWatermark: lo, HighWatermark: hi}
	w := newWorld(baseSpec(svc, seed))
	w.advance(5*time.Minute, nil)
	const eu = 1
	w.capacity[eu] /= 5
	d := w.load()[eu] / w.capacity[eu]
	target := d * hi / (hi - lo + d)
	return settleRun(w, "spike-weighted", "eu-west", eu, target, 10*time.Minute)
}

// settleRun follows region r's utilisation after an event until dur
// has passed: when it stays within 10% of target, how far past target
// it went, how often its kept fraction turned, and its largest
// deviation after settling, in points of utilisation.
func settleRun(w *world, name, region string, r int, target float64, dur time.Duration) result {
	res := result{name: name}
	t0 := w.now
	var settledAt time.Time
	crossed, above := false, w.utilisation(r) > target
	low, high := target, target
	tr := turns{eps: 1e-3}
	var series []struct {
		at time.Time
		u  float64
	}
	w.advance(dur, func() {
		u := w.utilisation(r)
		series = append(series, struct {
			at time.Time
			u  float64
		}{w.now, u})
		if (u > target) != above {
			crossed = true
		}
		if crossed {
			low, high = min(low, u), max(high, u)
		}
		tr.add(w.kept(region))
	})
	for i := len(series) - 1; i >= 0; i-- {
		if math.Abs(series[i].u-target) > 0.1*target {
			break
		}
		settledAt = series[i].at
	}
	if settledAt.IsZero() {
		res.settle = math.Inf(1)
	} else {
		res.settle = settledAt.Sub(t0).Seconds() / ttl
		steady := settledAt.Add(time.Duration(ttl) * time.Second)
		for _, s := range series {
			if !s.at.Before(steady) {
				res.maxDev = max(res.maxDev, 100*math.Abs(s.u-target))
			}
		}
	}
	if above {
		res.overshoot = 100 * (target - low) / target
	} else {
		res.overshoot = 100 * (high - target) / target
	}
	res.reversals = tr.n
	return res
}

// rampRun follows region r's traffic share from the moment the snapshot
// answers it again: its largest distance from the slow-start curve
// times its full share, in points; when it reaches its full share for
// good (within a point), in TTLs; how far above the full share it went;
// and how often it turned.
func rampRun(w *world, name, region string, r int, full float64, ss *regions.SlowStart, dur time.Duration) result {
	res := result{name: name}
	var t0 time.Time
	tr := turns{eps: 0.002}
	var lastOff time.Time
	w.advance(dur, func() {
		if t0.IsZero() {
			if !w.answerable(region) {
				return
			}
			t0 = w.now
		}
		x := w.traffic()[r]
		want := full * curve(ss, w.now.Sub(t0))
		res.maxDev = max(res.maxDev, 100*math.Abs(x-want))
		res.overshoot = max(res.overshoot, 100*(x-full)/full)
		if math.Abs(x-full) > 0.01 {
			lastOff = w.now
		}
		tr.add(x)
	})
	if !lastOff.IsZero() {
		res.settle = lastOff.Sub(t0).Seconds() / ttl
	}
	res.reversals = tr.n
	return res
}

// curve is Envoy's slow-start curve, the reference the traffic should
// follow (written out here, not taken from package regions).
func curve(ss *regions.SlowStart, t time.Duration) float64 {
	w := time.Duration(ss.Window)
	if t >= w {
		return 1
	}
	ag, mw := ss.Aggression, ss.MinWeight
	if ag == 0 {
		ag = 1
	}
	if mw == 0 {
		mw = regions.DefaultMinWeight
	}
	return math.Max(mw, math.Pow(float64(t)/float64(w), 1/ag))
}

// recover: eu-west fails for two minutes, then comes back with a slow
// start of 60 s; its traffic share should follow the curve within 5
// points.
func recoverScenario(seed uint64) result {
	return returnRun(seed, "recover", func(w *world, back bool) {
		w.up[1] = back
		if !back {
			w.advance(2*time.Minute, nil)
		}
	})
}

// shiftExpire: a shift drains eu-west from the service for ten minutes
// (POST /v1/shifts); at its expiry the snapshot built at NextChange no
// longer applies it, with no change of the state, and eu-west returns
// through the slow start of 60 s.
func shiftExpire(seed uint64) result {
	return returnRun(seed, "shift-expire", func(w *world, back bool) {
		if back {
			if w.answerable("eu-west") {
				panic("shift-expire: eu-west is answered before its shift expired")
			}
			// Nothing to do: the shift ends by itself.
			return
		}
		w.addShift(&regions.Shift{ID: "drain-eu-west", Service: w.spec.svc.Name, Drain: "eu-west", CreatedBy: "sim",
			Created: w.now, Expires: w.now.Add(10 * time.Minute)})
		// Up to the step before the expiry: the snapshot that stops
		// applying the shift is rampRun's to see.
		w.advance(10*time.Minute-step, func() {
			if w.traffic()[1] > 0 && w.now.Sub(w.start) > 3*time.Minute+2*ttl*time.Second {
				panic("shift-expire: eu-west still takes traffic two TTLs into its drain")
			}
		})
	})
}

// returnRun takes eu-west away from a steady geo service with a slow
// start of 60 s and brings it back (out(w, false), then out(w, true)),
// and follows the ramp (rampRun).
func returnRun(seed uint64, name string, out func(w *world, back bool)) result {
	svc := geoService()
	ss := &regions.SlowStart{Window: regions.Duration(60 * time.Second)}
	svc.SlowStart = ss
	w := newWorld(baseSpec(svc, seed))
	w.advance(3*time.Minute, nil)
	const eu = 1
	full := w.traffic()[eu]
	out(w, false)
	out(w, true)
	return rampRun(w, name, "eu-west", eu, full, ss, 5*time.Minute)
}

// staleSignal: the spike of spike, and ten seconds into the controller's
// answer the load readings stop. Once the last reading is older than
// max_signal_age, nothing may change: the kept fraction holds (no
// turn), and the answers' shares stay where they were.
func staleSignal(seed uint64) result {
	svc := geoService()
	svc.Load = &regions.LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9}
	w := newWorld(baseSpec(svc, seed))
	w.advance(5*time.Minute, nil)
	const eu = 1
	w.setDemand(eu, 5)
	w.advance(10*time.Second, nil)
	w.loadFrozen = true
	// Until the newest reading is older than max_signal_age.
	var newest time.Time
	for _, p := range w.probers {
		for _, vh := range p.last {
			if vh.LoadObserved.After(newest) {
				newest = vh.LoadObserved
			}
		}
	}
	maxAge := 3 * interval
	w.advance(newest.Add(maxAge).Sub(w.now)+step, nil)
	res := result{name: "stale-signal"}
	k0 := w.kept("eu-west")
	x0 := -1.0
	var moved time.Time
	tr := turns{eps: 1e-6}
	t0 := w.now
	w.advance(10*time.Minute, func() {
		k := w.kept("eu-west")
		tr.add(k)
		if k != k0 {
			moved = w.now
		}
		// The traffic follows the answers given before the signal aged
		// out for one more TTL; after that it must be still.
		if w.now.Sub(t0) < time.Duration(ttl)*time.Second {
			return
		}
		x := w.traffic()[eu]
		if x0 < 0 {
			x0 = x
		}
		res.maxDev = max(res.maxDev, 100*math.Abs(x-x0))
	})
	// settle: when the kept fraction last moved after the age-out.
	if !moved.IsZero() {
		res.settle = moved.Sub(t0).Seconds() / ttl
	}
	res.reversals = tr.n
	return res
}

// scenario is one line of `make sim`.
type scenario struct {
	name string
	run  func(seed uint64) result
}

var scenarios = []scenario{
	{"spike", spike},
	{"spike-weighted", spikeWeighted},
	{"recover", recoverScenario},
	{"shift-expire", shiftExpire},
	{"stale-signal", staleSignal},
}
