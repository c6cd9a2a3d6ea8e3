package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-gslb/meridian/internal/histogram"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// Defaults of a prober's configuration.
const (
	DefaultConcurrency    = 256
	DefaultRefresh        = time.Minute
	DefaultCanaryInterval = time.Second
	DefaultCanaryTimeout  = time.Second
	// minLeaseTTL is the shortest lease asked for: etcd refuses shorter
	// ones on its default timing, and keep-alives go every third of it.
	minLeaseTTL = 2 * time.Second
	// leaseFactor: the lease lives this many of the shortest check
	// interval, so a dead prober's votes go after a few missed checks.
	leaseFactor = 3
	// jitterFraction spreads each wait between checks over ±10% of the
	// interval, so probers that start together drift apart.
	jitterFraction = 0.1
	// writeTimeout bounds one etcd write of the publisher.
	writeTimeout = 5 * time.Second
)

// Config configures a prober.
type Config struct {
	// ID names the prober (regions.ValidProberID); Region is the region
	// it runs in.
	ID, Region string
	// Version is shown in the registration.
	Version string
	// Concurrency caps the checks in flight; 0 means DefaultConcurrency.
	// Keep it above targets × timeout / interval so that even hanging
	// targets leave room for the others.
	Concurrency int
	// Refresh is how often a report whose states did not change is
	// rewritten, and then only when its RTT, load or failure reason
	// moved; 0 means DefaultRefresh.
	Refresh time.Duration
	// LeaseTTL is the lifetime of the prober's etcd lease; 0 means three
	// times the shortest check interval when the lease is granted, at
	// least 2s.
	LeaseTTL time.Duration
	// Canary is the self-check target; zero: none.
	Canary Canary
	// Dial opens every connection of checks and canary; nil means a
	// net.Dialer.
	Dial Dialer
	// Prefix is where Meridian's keys are in etcd; "" means the default.
	Prefix string
	Logger *slog.Logger
}

// Canary is a target the prober must reach to trust its own checks: a URL
// (GET, answered 200-399) or a host:port (TCP connect).
type Canary struct {
	URL     string
	Address string
	// Interval between canary checks (0: 1s) and the timeout of one
	// (0: 1s, at most the interval).
	Interval time.Duration
	Timeout  time.Duration
}

func (c Canary) configured() bool { return c.URL != "" || c.Address != "" }

// Validate checks a configuration; the problems name fields as in the
// prober's configuration file.
func (c *Config) Validate() error {
	var probs []regions.FieldProblem
	add := func(field, format string, args ...any) {
		probs = append(probs, regions.FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	// The registration's own validation names the same fields.
	var ve *regions.ValidationError
	if errors.As((&regions.ProberInfo{ID: c.ID, Region: c.Region}).Validate(), &ve) {
		probs = append(probs, ve.Problems...)
	}
	if c.Concurrency < 0 || c.Concurrency > 100_000 {
		add("concurrency", "%d: want 1 to 100000 (0 for %d)", c.Concurrency, DefaultConcurrency)
	}
	if c.Refresh < 0 {
		add("refresh", "must not be negative")
	}
	if c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < minLeaseTTL) {
		add("lease_ttl", "%s: want at least %s (0 for %d times the shortest check interval)", c.LeaseTTL, minLeaseTTL, leaseFactor)
	}
	if c.Canary.configured() {
		if _, err := canarySpec(c.Canary); err != nil {
			f := "canary.url"
			if c.Canary.URL == "" {
				f = "canary.address"
			}
			add(f, "%v", err)
		}
	}
	if c.Canary.Interval < 0 || (c.Canary.Interval > 0 && c.Canary.Interval < regions.MinCheckInterval) {
		add("canary.interval", "%s: want at least %s", c.Canary.Interval, regions.MinCheckInterval)
	}
	if c.Canary.Timeout < 0 || (c.Canary.Timeout > 0 && c.Canary.Timeout < regions.MinCheckTimeout) {
		add("canary.timeout", "%s: want at least %s", c.Canary.Timeout, regions.MinCheckTimeout)
	}
	if len(probs) > 0 {
		return &regions.ValidationError{Kind: "prober", Name: c.ID, Problems: probs}
	}
	return nil
}

// Prober checks every VIP of every region and publishes what it sees.
type Prober struct {
	cfg     Config
	log     *slog.Logger
	cli     *clientv3.Client
	store   *store.Store
	watcher *store.Watcher
	canary  *checker // nil: no canary
	agent   string
	started time.Time // shown in every registration

	sem  chan struct{} // the concurrency cap
	wake chan struct{} // tells the publisher a state changed

	mu           sync.Mutex
	ctx          context.Context // Run's; the targets' checks run under it
	regions      map[string]*regionState
	orphans      map[string]bool // regions gone whose report may still be in etcd
	trusted      bool
	distrust     string // why not trusted
	canaryOK     bool
	canaryUp     int  // canary successes in a row
	canaryFailed bool // the canary has failed at least once
	canaryWhy    string
	lease        clientv3.LeaseID
	stats        Stats
	wg           sync.WaitGroup // target goroutines

	// checkTime: how long checks took, by result (0 failed, 1 passed),
	// from the connection's start to the verdict, the wait for a slot
	// under the cap left out.
	checkTime [2]*histogram.Histogram
	// wentBack is the watcher's count of listings that found etcd behind
	// what it had seen (restored from a backup): after one, the reports
	// in etcd are the backup's, so every report is written again.
	wentBack int

	// testCrash makes Run end without revoking the lease, as a killed
	// process would.
	testCrash atomic.Bool
}

// regionState is one region as the prober checks it.
type regionState struct {
	name    string
	vips    []netip.Addr // the region's order
	targets map[netip.Addr]*target
	// written is the report as last written to etcd (nil: none), at
	// writtenAt.
	written   *regions.HealthReport
	writtenAt time.Time
}

// target is one VIP's check and state.
type target struct {
	region string
	vip    netip.Addr
	spec   spec
	key    string
	gen    uint64 // bumped when the check changes: older results are dropped
	cancel context.CancelFunc
	state  vipState
}

// Stats count what a prober did.
type Stats struct {
	Checks        uint64 // check results recorded
	Writes        uint64 // reports written or deleted in etcd
	WriteErrors   uint64
	Registrations uint64 // leases granted and registered
}

// New builds a prober over an etcd client; Run starts it.
func New(cfg Config, cli *clientv3.Client) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Canary.Interval == 0 {
		cfg.Canary.Interval = DefaultCanaryInterval
	}
	if cfg.Canary.Timeout == 0 {
		cfg.Canary.Timeout = min(DefaultCanaryTimeout, cfg.Canary.Interval)
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Prober{
		cfg:      cfg,
		log:      cfg.Logger,
		cli:      cli,
		store:    store.NewStore(cli, cfg.Prefix, cfg.Logger),
		watcher:  store.NewWatcher(cli, cfg.Prefix, cfg.Logger.With("component", "watch")),
		agent:    "meridian-prober/" + cfg.Version,
		started:  time.Now().UTC(),
		sem:      make(chan struct{}, cfg.Concurrency),
		wake:     make(chan struct{}, 1),
		regions:  map[string]*regionState{},
		orphans:  map[string]bool{},
		trusted:  true,
		canaryOK: true,
	}
	for i := range p.checkTime {
		p.checkTime[i] = histogram.New(CheckTimeBounds)
	}
	p.watcher.Subtree = store.NewKeys(cfg.Prefix).Regions()
	if cfg.Canary.configured() {
		s, _ := canarySpec(cfg.Canary) // validated
		p.canary = newChecker(s, cfg.Dial, p.agent)
		// Not trusted until the canary answers once.
		p.canaryOK, p.canaryWhy = false, "the canary has not answered yet"
		p.trusted, p.distrust = false, p.canaryWhy
	}
	return p, nil
}

// Run checks and publishes until ctx ends, then revokes the prober's
// lease so its reports vanish at once. It returns nil when ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	p.log.Info("prober starting", "id", p.cfg.ID, "region", p.cfg.Region, "concurrency", p.cfg.Concurrency, "canary", p.canary != nil)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.watcher.Run(gctx, p.setState) })
	g.Go(func() error { return p.publish(gctx) })
	if p.canary != nil {
		g.Go(func() error { return p.runCanary(gctx) })
	}
	err := g.Wait()
	cancel()
	p.mu.Lock()
	for _, rs := range p.regions {
		for _, t := range rs.targets {
			t.cancel()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.log.Info("prober stopped", "id", p.cfg.ID)
	return err
}

// setState takes the regions of a new State from the watcher: targets
// are started for new VIPs, restarted (keeping their state) when their
// check changed, and stopped for VIPs and regions that are gone.
func (p *Prober) setState(st *regions.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	if wb := p.watcher.Status().WentBack; wb != p.wentBack {
		p.wentBack = wb
		for _, rs := range p.regions {
			rs.written = nil
		}
		changed = true
		p.log.Warn("etcd went back; writing every report again")
	}
	for name, r := range st.Regions {
		rs := p.regions[name]
		if rs == nil {
			rs = &regionState{name: name, targets: map[netip.Addr]*target{}}
			p.regions[name] = rs
			delete(p.orphans, name)
			p.log.Info("checking region", "region", name, "vips", len(r.VIPs), "check", r.Check.Type)
		}
		if !slices.Equal(rs.vips, r.VIPs) {
			rs.vips = slices.Clone(r.VIPs)
			changed = true
		}
		restarted := 0
		for _, vip := range r.VIPs {
			s := newSpec(r.Check, vip)
			key := s.key()
			t := rs.targets[vip]
			switch {
			case t == nil:
				t = &target{region: name, vip: vip}
				rs.targets[vip] = t
			case t.key == key:
				continue
			default:
				// The state carries over: the new check moves it by
				// rise and fall like any other result.
				t.cancel()
				restarted++
			}
			t.spec, t.key = s, key
			t.gen++
			p.startLocked(t)
		}
		if restarted > 0 {
			p.log.Info("check changed; checking again at once", "region", name, "vips", restarted)
		}
		for vip, t := range rs.targets {
			if !slices.Contains(r.VIPs, vip) {
				t.cancel()
				delete(rs.targets, vip)
				changed = true
			}
		}
	}
	for name, rs := range p.regions {
		if st.Regions[name] == nil {
			for _, t := range rs.targets {
				t.cancel()
			}
			delete(p.regions, name)
			if rs.written != nil {
				p.orphans[name] = true
			}
			changed = true
			p.log.Info("region gone; no longer checked", "region", name)
		}
	}
	if p.updateTrustLocked() || changed {
		p.poke()
	}
}

// startLocked starts t's goroutine under the prober's context.
func (p *Prober) startLocked(t *target) {
	ctx, cancel := context.WithCancel(p.ctx)
	t.cancel = cancel
	c := newChecker(t.spec, p.cfg.Dial, p.agent)
	sr := newStatsReader(t.spec.stats, p.cfg.Dial, p.agent)
	p.wg.Add(1)
	go p.runTarget(ctx, t, t.gen, c, sr)
}

// runTarget checks at once, then every interval (±10%), each check
// within its timeout, waiting for a free slot under the concurrency cap.
// A slow target holds one slot for at most its timeout and delays no
// other target's schedule. With a stats source (sr), its page is read at
// the same time as the check, within the same timeout.
func (p *Prober) runTarget(ctx context.Context, t *target, gen uint64, c *checker, sr *statsReader) {
	defer p.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		var rd *reading
		var read chan reading
		if sr != nil {
			read = make(chan reading, 1)
			go func() { read <- sr.read(ctx) }()
		}
		checkStart := time.Now()
		res := c.run(ctx)
		took := time.Since(checkStart)
		if read != nil {
			r := <-read
			rd = &r
		}
		<-p.sem
		if ctx.Err() != nil {
			return // stopped mid-check: the result says nothing of the target
		}
		p.checkTime[b2i(res.OK)].Observe(took)
		p.record(t, gen, res, rd)
		timer.Reset(max(0, jitter(c.spec.interval)-time.Since(start)))
	}
}

// jitter spreads d over ±jitterFraction.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*rand.Float64()))
}

// record applies a check result, and the stats reading taken with it
// (rd, nil without a stats source), to its target. A passing check whose
// stats show too many errors fails on passive health.
func (p *Prober) record(t *target, gen uint64, res Result, rd *reading) {
	now := time.Now()
	p.mu.Lock()
	if t.gen != gen {
		p.mu.Unlock()
		return
	}
	p.stats.Checks++
	s := &t.state
	prevSeen := s.verdict.summary
	if rd == nil {
		s.takeCheckLoad(res, now)
	} else {
		s.takeReading(rd, t.spec.stats.kind)
	}
	passive := false
	if t.spec.passive != nil && rd != nil {
		s.verdict = s.window.observe(t.spec.passive, rd)
		if res.OK && s.verdict.fail {
			res.OK, res.Reason, passive = false, "passive: "+s.verdict.summary, true
		}
	}
	// Trust depends on whether the last active check of each target
	// failed: only a result unlike the previous one can change it. It is
	// updated before the result is applied, so that a failure which
	// makes the prober distrust itself counts as seen untrusted.
	activeOK := res.OK || passive
	flipped := !s.checked || s.lastOK != activeOK
	s.checked, s.lastOK = true, activeOK
	trust := flipped && p.updateTrustLocked()
	voted := s.voted(p.trusted)
	changed := s.observe(res, passive, t.spec.rise, t.spec.fall, p.trusted, now)
	revoted := s.voted(p.trusted) != voted
	st := *s
	// setState replaces t.spec under p.mu when the check changes.
	judged := t.spec.passive != nil
	p.mu.Unlock()
	switch {
	case changed && st.up:
		p.log.Info("VIP up", "region", t.region, "vip", t.vip, "after", st.successes, "rtt", st.rtt)
	case changed:
		p.log.Warn("VIP down", "region", t.region, "vip", t.vip, "after", st.failures, "reason", st.reason, "confirmed", st.confirmed, "passive", st.failPassive)
	case revoted && st.confirmed:
		p.log.Warn("VIP down, confirmed since the self-check passed again", "region", t.region, "vip", t.vip, "after", st.trustedFailures, "reason", st.reason)
	}
	if rd != nil && judged && !rd.counted && rd.countErr != prevSeen && rd.loadErr == "" {
		// The page answers, but not with what passive health reads: a
		// configuration to fix, said once per change.
		p.log.Warn("passive health cannot judge the stats", "region", t.region, "vip", t.vip, "why", rd.countErr)
	}
	if changed || trust || revoted {
		p.poke()
	}
}

// updateTrustLocked re-evaluates the self-check and says whether trust
// changed. The prober distrusts itself while its canary is unreachable
// or while the last check of every VIP failed, across at least two
// regions: from where it stands it cannot tell that from its own network
// being cut (docs/health.md).
func (p *Prober) updateTrustLocked() bool {
	trusted, why := true, ""
	switch {
	case !p.canaryOK:
		trusted, why = false, p.canaryWhy
	default:
		n, failing, regionsChecked := 0, 0, 0
		for _, rs := range p.regions {
			if len(rs.targets) > 0 {
				regionsChecked++
			}
			for _, t := range rs.targets {
				n++
				if t.state.checked && !t.state.lastOK {
					failing++
				}
			}
		}
		if regionsChecked >= 2 && failing == n {
			trusted, why = false, fmt.Sprintf("the last check of every VIP failed (%d VIPs in %d regions)", n, regionsChecked)
		}
	}
	if trusted == p.trusted {
		p.distrust = why
		return false
	}
	p.trusted, p.distrust = trusted, why
	if trusted {
		// What was seen while untrusted decides nothing: a VIP that went
		// down meanwhile (every VIP, after a global outage) is voted on
		// again only once fall failures seen from now on confirm it, or
		// it rises. Voting it down at once would take every region out
		// of the answers for the rise checks of the recovery.
		unconfirmed := 0
		for _, rs := range p.regions {
			for _, t := range rs.targets {
				if t.state.known && !t.state.up {
					unconfirmed++
				}
				t.state.regainedTrust()
			}
		}
		p.log.Info("self-check passed; reports trusted again", "unconfirmed_down", unconfirmed)
	} else {
		p.log.Warn("self-check failed; reports marked untrusted", "reason", why)
	}
	return true
}

// runCanary checks the canary every interval. One failure makes the
// prober distrust itself; two successes in a row restore it (one at
// start).
func (p *Prober) runCanary(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		start := time.Now()
		res := p.canary.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		was := p.canaryOK
		if res.OK {
			p.canaryUp++
			if !p.canaryOK && (p.canaryUp >= p.canary.spec.rise || !p.canaryFailed) {
				p.canaryOK, p.canaryWhy = true, ""
			}
		} else {
			p.canaryUp, p.canaryFailed = 0, true
			p.canaryOK, p.canaryWhy = false, "canary unreachable: "+res.Reason
		}
		trust := p.updateTrustLocked()
		p.mu.Unlock()
		if was != p.canaryOK && !res.OK {
			p.log.Warn("canary unreachable", "reason", res.Reason)
		}
		if trust {
			p.poke()
		}
		timer.Reset(max(0, jitter(p.cfg.Canary.Interval)-time.Since(start)))
	}
}

// poke wakes the publisher.
func (p *Prober) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// CheckTimeBounds are the buckets, in seconds, of the check durations
// (Status.CheckTimes): checks time out after at most their interval.
var CheckTimeBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Status is a prober's view, for tests, diagnostics and metrics.
type Status struct {
	Lease    clientv3.LeaseID
	Trusted  bool
	Distrust string
	// Canary: whether one is configured, and whether it answers.
	Canary, CanaryUp bool
	// Watch is the state of the watcher that follows the regions.
	Watch   store.WatchStatus
	Regions int
	Targets []TargetStatus
	Stats   Stats
	// CheckTimes are the durations of the checks that failed and of
	// those that passed (buckets: CheckTimeBounds).
	CheckTimes struct{ Failed, Passed histogram.Counts }
}

// Ready says why the prober's votes do not count now, nil when they do:
// it follows etcd's regions and, when there is any to check, holds its
// registration under a live lease.
func (p *Prober) Ready() error {
	ws := p.watcher.Status()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !ws.Connected:
		why := "not in sync with etcd"
		if ws.LastError != "" {
			why += ": " + ws.LastError
		}
		return errors.New(why)
	case len(p.regions) > 0 && p.lease == clientv3.NoLease:
		return errors.New("not registered in etcd (no lease)")
	}
	return nil
}

// TargetStatus is one VIP's check and state.
type TargetStatus struct {
	Region    string
	VIP       netip.Addr
	Addr      string // where the check connects
	Known, Up bool
	// Checks counts the results recorded, Failed those that failed
	// (passive health's included); Successes and Failures are the
	// current streak.
	Checks    uint64
	Failed    uint64
	Successes int
	Failures  int
	Reason    string
	RTT       time.Duration
	// The load reading, as reports carry it.
	Load, Capacity *float64
	LoadObserved   time.Time
	LoadSource     string
	LoadError      string
	// Passive: down by passive health alone; PassiveSeen is passive
	// health's last judgement ("5xx 2% of 1,204 requests in 10s") or why
	// it had none.
	Passive     bool
	PassiveSeen string
}

// Status returns the prober's current view, targets sorted by region and
// VIP.
func (p *Prober) Status() Status {
	ws := p.watcher.Status()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Lease: p.lease, Trusted: p.trusted, Distrust: p.distrust, Stats: p.stats,
		Canary: p.canary != nil, CanaryUp: p.canary != nil && p.canaryOK, Watch: ws, Regions: len(p.regions)}
	s.CheckTimes.Failed, s.CheckTimes.Passed = p.checkTime[0].Read(), p.checkTime[1].Read()
	for _, rs := range p.regions {
		for _, t := range rs.targets {
			st := t.state
			s.Targets = append(s.Targets, TargetStatus{Region: t.region, VIP: t.vip, Addr: t.spec.addr, Known: st.known, Up: st.up,
				Checks: st.checks, Failed: st.failedChecks, Successes: st.successes, Failures: st.failures, Reason: st.reason, RTT: st.rtt,
				Load: st.load, Capacity: st.capacity, LoadObserved: st.loadAt, LoadSource: st.loadSource, LoadError: st.loadErr,
				Passive: st.passiveDown(), PassiveSeen: st.verdict.summary})
		}
	}
	slices.SortFunc(s.Targets, func(a, b TargetStatus) int {
		if a.Region != b.Region {
			if a.Region < b.Region {
				return -1
			}
			return 1
		}
		return a.VIP.Compare(b.VIP)
	})
	return s
}
