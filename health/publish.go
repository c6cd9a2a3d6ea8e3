package health

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// publish keeps the prober's lease and registration and writes its
// reports: at once when a state changes (or trust, or a region's VIPs),
// and every Refresh only when RTT, load or the failure reason moved. When
// the lease is lost (etcd expired it during a partition, or revoked it)
// the prober registers again under a new one and rewrites every report.
// When ctx ends the lease is revoked, which deletes the registration and
// every report at once.
func (p *Prober) publish(ctx context.Context) error {
	var sess *concurrency.Session
	defer func() {
		switch {
		case sess == nil:
		case p.testCrash.Load():
			sess.Orphan() // as if the process died: the lease expires on its own
		default:
			p.revoke(sess)
		}
	}()
	every := p.tickInterval()
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false // registration or writes failing: log the transition only
	for {
		var lost <-chan struct{}
		if sess != nil {
			lost = sess.Done()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-tick.C:
		case <-lost:
			p.log.Warn("etcd lease lost; registering again", "lease", int64(sess.Lease()))
			sess = nil
			p.forgetWritten()
		}
		var err error
		if sess == nil && p.hasRegions() {
			sess, err = p.register(ctx)
		}
		if sess != nil {
			err = p.flush(ctx, sess.Lease())
			if errors.Is(err, store.ErrNotRegistered) {
				// The registration went before the keep-alive noticed.
				p.log.Warn("registration gone; registering again", "lease", int64(sess.Lease()))
				sess.Orphan()
				sess = nil
				p.forgetWritten()
				p.poke()
			}
		}
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			p.log.Warn("cannot publish to etcd; retrying", "err", err)
			failing = true
		case err == nil && failing:
			p.log.Info("publishing to etcd again")
			failing = false
		}
		if d := p.tickInterval(); d != every {
			every = d
			tick.Reset(every)
		}
	}
}

// tickInterval is how often the publisher looks at its reports without
// being woken: for refreshes, to retry failed writes, and four times per
// check interval, so that a load reading due at loadFreshIntervals is
// written within a quarter interval of it.
func (p *Prober) tickInterval() time.Duration {
	d := min(time.Second, p.cfg.Refresh)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range p.regions {
		for _, t := range rs.targets {
			d = min(d, t.spec.interval/4)
		}
	}
	return max(d, regions.MinCheckInterval/4)
}

func (p *Prober) hasRegions() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regions) > 0
}

// leaseTTL is the configured TTL, or leaseFactor times the shortest
// interval of the current checks, at least minLeaseTTL; in whole seconds
// as etcd counts them.
func (p *Prober) leaseTTL() int64 {
	ttl := p.cfg.LeaseTTL
	if ttl == 0 {
		shortest := regions.DefaultCheckInterval
		p.mu.Lock()
		for _, rs := range p.regions {
			for _, t := range rs.targets {
				shortest = min(shortest, t.spec.interval)
			}
		}
		p.mu.Unlock()
		ttl = max(minLeaseTTL, leaseFactor*shortest)
	}
	return int64(math.Ceil(ttl.Seconds()))
}

// register grants a lease, keeps it alive and registers the prober under
// it. The TTL is fixed for the lease's life; a new lease (after a loss or
// a restart) takes the regions' intervals at that time.
func (p *Prober) register(ctx context.Context) (*concurrency.Session, error) {
	ttl := p.leaseTTL()
	gctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	resp, err := p.cli.Grant(gctx, ttl)
	if err != nil {
		return nil, err
	}
	// The keep-alive outlives ctx: on the way out the lease is revoked,
	// not left to expire.
	sess, err := concurrency.NewSession(p.cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		p.revokeID(resp.ID)
		return nil, err
	}
	info := &regions.ProberInfo{ID: p.cfg.ID, Region: p.cfg.Region, Version: p.cfg.Version, Started: p.started}
	if err := p.store.RegisterProber(gctx, info, resp.ID); err != nil {
		sess.Orphan()
		p.revokeID(resp.ID)
		return nil, err
	}
	p.mu.Lock()
	p.lease = resp.ID
	p.stats.Registrations++
	p.mu.Unlock()
	p.log.Info("prober registered", "id", p.cfg.ID, "lease", int64(resp.ID), "ttl", time.Duration(resp.TTL)*time.Second)
	return sess, nil
}

// revoke ends the session and its lease: the registration and every
// report go with it.
func (p *Prober) revoke(sess *concurrency.Session) {
	sess.Orphan()
	p.revokeID(sess.Lease())
	p.mu.Lock()
	p.lease = clientv3.NoLease
	p.mu.Unlock()
}

func (p *Prober) revokeID(id clientv3.LeaseID) {
	// No longer than the lease would live anyway: a prober stopping while
	// etcd is away should not hang.
	ctx, cancel := context.WithTimeout(context.Background(), min(writeTimeout, time.Duration(p.leaseTTL())*time.Second))
	defer cancel()
	if _, err := p.cli.Revoke(ctx, id); err != nil {
		p.log.Warn("cannot revoke the lease; it expires on its own", "lease", int64(id), "err", err)
		return
	}
	p.log.Info("lease revoked; reports withdrawn", "lease", int64(id))
}

// forgetWritten marks every report as not in etcd (a new lease).
func (p *Prober) forgetWritten() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range p.regions {
		rs.written = nil
	}
	clear(p.orphans) // their reports went with the lease
	p.lease = clientv3.NoLease
}

// job is one write of the publisher: a report, or the deletion of one
// (rep nil).
type job struct {
	region string
	rs     *regionState // nil for an orphan
	rep    *regions.HealthReport
}

// flush writes the reports that need it: those whose states changed, those
// whose load moved or is about to age out (each at most once per check
// interval; when one is written, the others that would be due within an
// interval go with it), and the slow refreshes. The reports go in one
// transaction (more only past etcd's limits), so a flush is one etcd
// revision however many regions it covers. It stops at the first
// failure; what is left is tried again on the next round.
func (p *Prober) flush(ctx context.Context, lease clientv3.LeaseID) error {
	now := time.Now().UTC()
	var jobs, soon []job
	loadDue := false
	p.mu.Lock()
	for name, rs := range p.regions {
		rep := p.reportLocked(rs, now)
		iv := rs.interval()
		switch {
		case len(rep.VIPs) == 0 && rs.written == nil:
		case len(rep.VIPs) == 0:
			jobs = append(jobs, job{region: name, rs: rs})
		case rs.written == nil || statesDiffer(rs.written, rep):
			jobs = append(jobs, job{region: name, rs: rs, rep: rep})
		case now.Sub(rs.writtenAt) < iv:
		default:
			switch loadWrite(rs.written, rep, now, iv) {
			case loadNow:
				jobs = append(jobs, job{region: name, rs: rs, rep: rep})
				loadDue = true
			case loadSoon:
				soon = append(soon, job{region: name, rs: rs, rep: rep})
			default:
				if now.Sub(rs.writtenAt) >= p.cfg.Refresh && worthRefresh(rs.written, rep) {
					jobs = append(jobs, job{region: name, rs: rs, rep: rep})
				}
			}
		}
	}
	if loadDue {
		jobs = append(jobs, soon...)
	}
	for name := range p.orphans {
		jobs = append(jobs, job{region: name})
	}
	p.mu.Unlock()
	// In a stable order, so logs and tests read the same every time.
	slices.SortFunc(jobs, func(a, b job) int { return strings.Compare(a.region, b.region) })
	var puts []job
	var reps []*regions.HealthReport
	for _, j := range jobs {
		if j.rep != nil {
			puts = append(puts, j)
			reps = append(reps, j.rep)
		}
	}
	if len(reps) > 0 {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		n, rev, err := p.store.PutHealthReports(wctx, reps, lease)
		cancel()
		if n > 0 {
			// The prober's watcher follows the regions only; it must
			// know etcd was at this revision to notice a restore that
			// takes etcd back behind these reports.
			p.watcher.Saw(rev)
		}
		p.mu.Lock()
		p.stats.Writes += uint64(n)
		for _, j := range puts[:n] {
			if p.regions[j.region] == j.rs {
				j.rs.written, j.rs.writtenAt = j.rep, now
			} else {
				p.orphans[j.region] = true // the region went while its report was being written
			}
		}
		if err != nil {
			p.stats.WriteErrors++
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
	for _, j := range jobs {
		if j.rep != nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := p.store.DeleteHealthReport(wctx, j.region, p.cfg.ID)
		cancel()
		p.mu.Lock()
		if err != nil {
			p.stats.WriteErrors++
			p.mu.Unlock()
			return err
		}
		p.stats.Writes++
		if j.rs == nil {
			delete(p.orphans, j.region)
		} else if p.regions[j.region] == j.rs {
			j.rs.written, j.rs.writtenAt = nil, now
		}
		p.mu.Unlock()
	}
	return nil
}

// reportLocked is region rs's report as the prober sees it now: the VIPs
// whose state is decided (and, while trusted, confirmed when down; see
// vipState.voted), in the region's order.
func (p *Prober) reportLocked(rs *regionState, now time.Time) *regions.HealthReport {
	rep := &regions.HealthReport{Region: rs.name, Prober: p.cfg.ID, ProberRegion: p.cfg.Region, Trusted: p.trusted, Observed: now, VIPs: []regions.VIPHealth{}}
	for _, vip := range rs.vips {
		t := rs.targets[vip]
		if t == nil || !t.state.voted(p.trusted) {
			continue
		}
		s := &t.state
		vh := regions.VIPHealth{Addr: vip, Up: s.up, Since: s.since.UTC(), Successes: s.successes, Failures: s.failures,
			Reason: s.reason, RTT: regions.Duration(s.rtt), Load: s.load, Capacity: s.capacity,
			LoadSource: s.loadSource, LoadError: s.loadErr, Passive: s.passiveDown()}
		if !s.loadAt.IsZero() {
			vh.LoadObserved = s.loadAt.UTC()
		}
		rep.VIPs = append(rep.VIPs, vh)
	}
	return rep
}

// interval is the shortest check interval of the region's VIPs (the
// default before any is known).
func (rs *regionState) interval() time.Duration {
	d := time.Duration(0)
	for _, t := range rs.targets {
		if d == 0 || t.spec.interval < d {
			d = t.spec.interval
		}
	}
	if d == 0 {
		d = regions.DefaultCheckInterval
	}
	return d
}

// statesDiffer says whether b changes what a says to the quorum: trust,
// the VIPs voted on, a VIP's state, its last transition, or whether it
// is down by passive health alone (which a service's max_ejection
// bounds).
func statesDiffer(a, b *regions.HealthReport) bool {
	if a.Trusted != b.Trusted || len(a.VIPs) != len(b.VIPs) {
		return true
	}
	for i := range a.VIPs {
		x, y := &a.VIPs[i], &b.VIPs[i]
		if x.Addr != y.Addr || x.Up != y.Up || !x.Since.Equal(y.Since) || x.Passive != y.Passive {
			return true
		}
	}
	return false
}

// worthRefresh says whether b is worth a slow refresh of a: an RTT that
// moved by more than a fifth and a millisecond, or another failure
// reason. Counts alone change on every check and are not; load has its
// own rule (loadWrite).
func worthRefresh(a, b *regions.HealthReport) bool {
	for i := range a.VIPs {
		x, y := &a.VIPs[i], &b.VIPs[i]
		d := time.Duration(y.RTT - x.RTT).Abs()
		if d > time.Millisecond && float64(d) > 0.2*float64(x.RTT) {
			return true
		}
		if x.Reason != y.Reason {
			return true
		}
	}
	return false
}

// How load readings are published (docs/health.md, Publishing).
const (
	// loadMove: a load (or capacity) that moved by more than this share
	// of the capacity (of the larger reading, without one) is written.
	loadMove = 0.05
	// loadFreshIntervals: a reading is written again once the published
	// one is this many check intervals old, before the default
	// max_signal_age (3 intervals) stops steering by it.
	loadFreshIntervals = 2
)

type loadUrgency int

const (
	loadNo   loadUrgency = iota
	loadSoon             // due within an interval: written if another load write happens
	loadNow
)

// loadWrite says whether b's load readings are worth writing over a's
// (published): a reading that appeared, went, failed or changed its
// source; one that moved by more than loadMove; or a newer reading when
// the published one is loadFreshIntervals old (loadSoon from one
// interval).
func loadWrite(a, b *regions.HealthReport, now time.Time, interval time.Duration) loadUrgency {
	u := loadNo
	for i := range a.VIPs {
		x, y := &a.VIPs[i], &b.VIPs[i]
		if x.LoadSource != y.LoadSource || x.LoadError != y.LoadError || (x.Load == nil) != (y.Load == nil) ||
			(x.Capacity == nil) != (y.Capacity == nil) {
			return loadNow
		}
		if y.Load == nil {
			continue
		}
		scale := max(*x.Load, *y.Load)
		if y.Capacity != nil && *y.Capacity > 0 {
			scale = *y.Capacity
		}
		if moved(*x.Load, *y.Load, scale) || x.Capacity != nil && moved(*x.Capacity, *y.Capacity, max(*x.Capacity, *y.Capacity)) {
			return loadNow
		}
		if !y.LoadObserved.After(x.LoadObserved) {
			continue // nothing newer to say
		}
		switch age := now.Sub(x.LoadObserved); {
		case age >= loadFreshIntervals*interval:
			return loadNow
		case age >= interval:
			u = loadSoon
		}
	}
	return u
}

// moved says whether a and b differ by more than loadMove of scale.
func moved(a, b, scale float64) bool {
	return math.Abs(a-b) > loadMove*scale
}
