package regions

import (
	"cmp"
	"slices"
	"time"
)

// A region's load signal (docs/controller.md, The load signal): each
// prober whose votes count reads the load and capacity of the region's
// VIPs; its reading is the sums over the VIPs that reported both. The
// region's load is the median of the readings not older than the
// service's max_signal_age: one prober reading a stale stats page, or
// one cut off from a region, moves nothing, and stale load never steers.

// loadReading is one counted prober's reading of a region.
type loadReading struct {
	prober         string
	load, capacity float64
	util           float64
	// observed is when the oldest of the VIP readings summed was taken.
	observed time.Time
	source   string
}

// RegionLoad is a region's load signal at one time: the median of the
// fresh readings of the probers whose votes count.
type RegionLoad struct {
	// Utilisation is load / capacity of the median reading.
	Utilisation float64 `json:"utilisation"`
	Load        float64 `json:"load"`
	Capacity    float64 `json:"capacity"`
	// Observed is when the median reading was taken; AgeSeconds is its
	// age when the signal was read.
	Observed   time.Time `json:"observed"`
	AgeSeconds float64   `json:"age_seconds"`
	// Source is where the median reading came from: "health" (the
	// check's JSON answer), "haproxy" or "prometheus".
	Source string `json:"source"`
	// Probers counts the fresh readings in the median; Stale the counted
	// readings older than MaxSignalAge, which are ignored.
	Probers int `json:"probers"`
	Stale   int `json:"stale"`
	// MaxSignalAge is the age beyond which a reading is ignored.
	MaxSignalAge Duration `json:"max_signal_age"`
	// Errors lists why configured statistics gave no load (by prober
	// and VIP), from the counted reports.
	Errors []string `json:"errors,omitempty"`
}

// regionLoads collects the readings of the counted reports on a region,
// sorted by prober id (rs.Reports is).
func regionLoads(r *Region, reports []*HealthReport, counted func(*HealthReport) bool) (out []loadReading, errs []string) {
	vips := make(map[[16]byte]bool, len(r.VIPs))
	for _, a := range r.VIPs {
		vips[a.Unmap().As16()] = true
	}
	for _, rep := range reports {
		if !counted(rep) {
			continue
		}
		rd := loadReading{prober: rep.Prober}
		n := 0
		for i := range rep.VIPs {
			vh := &rep.VIPs[i]
			if !vips[vh.Addr.Unmap().As16()] {
				continue
			}
			if vh.LoadError != "" {
				errs = append(errs, rep.Prober+" "+vh.Addr.String()+": "+vh.LoadError)
			}
			if vh.Load == nil || vh.Capacity == nil || !(*vh.Load >= 0) || !(*vh.Capacity >= 0) {
				continue
			}
			at := vh.LoadObserved
			if at.IsZero() {
				at = rep.Observed
			}
			if n == 0 || at.Before(rd.observed) {
				rd.observed = at
			}
			src := vh.LoadSource
			if src == "" {
				src = "health"
			}
			if rd.source == "" {
				rd.source = src
			} else if rd.source != src {
				rd.source = "mixed"
			}
			rd.load += *vh.Load
			rd.capacity += *vh.Capacity
			n++
		}
		// VIPs of one load balancer report the same numbers: their
		// ratio is the balancer's utilisation whether summed or not.
		if n == 0 || !(rd.capacity > 0) {
			continue
		}
		rd.util = rd.load / rd.capacity
		out = append(out, rd)
	}
	return out, errs
}

// defaultSignalAge is the max_signal_age of a region when the service
// gives none: three of its check intervals.
func defaultSignalAge(r *Region) time.Duration {
	return 3 * time.Duration(r.Check.WithDefaults().Interval)
}

// loadSignal is the median of the readings observed at or after now -
// maxAge, and how many were fresh and stale. ok is false without a fresh
// reading.
func loadSignal(rds []loadReading, now time.Time, maxAge time.Duration) (sig loadReading, fresh, stale int, ok bool) {
	var buf [16]loadReading
	use := buf[:0]
	cut := now.Add(-maxAge)
	for _, rd := range rds {
		if rd.observed.Before(cut) {
			stale++
			continue
		}
		use = append(use, rd)
	}
	if len(use) == 0 {
		return loadReading{}, 0, stale, false
	}
	slices.SortFunc(use, func(a, b loadReading) int {
		return cmp.Or(cmp.Compare(a.util, b.util), cmp.Compare(a.prober, b.prober))
	})
	m := use[len(use)/2]
	if len(use)%2 == 0 {
		// The mean of the middle two, observed when the older was.
		a := use[len(use)/2-1]
		m.util = (a.util + m.util) / 2
		m.load = (a.load + m.load) / 2
		m.capacity = (a.capacity + m.capacity) / 2
		if a.observed.Before(m.observed) {
			m.observed = a.observed
		}
		if a.source != m.source {
			m.source = "mixed"
		}
	}
	return m, len(use), stale, true
}

// LoadAt is the region's load signal at now with readings up to maxAge
// old (0: three check intervals); nil when no counted prober reads the
// region's load.
func (rs *RegionStatus) LoadAt(now time.Time, maxAge time.Duration) *RegionLoad {
	if len(rs.loads) == 0 && len(rs.loadErrs) == 0 {
		return nil
	}
	if maxAge <= 0 {
		maxAge = defaultSignalAge(rs.Region)
	}
	out := &RegionLoad{MaxSignalAge: Duration(maxAge), Errors: rs.loadErrs}
	m, fresh, stale, ok := loadSignal(rs.loads, now, maxAge)
	out.Probers, out.Stale = fresh, stale
	if ok {
		out.Utilisation, out.Load, out.Capacity, out.Observed, out.Source = m.util, m.load, m.capacity, m.observed, m.source
		out.AgeSeconds = max(now.Sub(m.observed), 0).Seconds()
	}
	return out
}
