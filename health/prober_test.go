package health

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// allUp waits until every VIP of every region has n counted up votes.
func (e *env) allUp(n int) *regions.Snapshot {
	e.t.Helper()
	return e.waitSnap("every VIP up with counted votes", func(s *regions.Snapshot) bool {
		for _, rs := range s.Regions() {
			for _, v := range rs.VIPs {
				if v.Up != n || v.Down != 0 {
					return false
				}
			}
		}
		return len(s.Regions()) > 0
	})
}

func (e *env) waitAnswers(name string, want ...string) {
	e.t.Helper()
	slices.Sort(want)
	etcdtest.WaitUntil(e.t, name+" answering "+strings.Join(want, ","), func() bool {
		s := e.current()
		return s != nil && slices.Equal(answers(s, name), want)
	})
}

// TestFailoverPerVIP: a VIP whose endpoint fails leaves the answers once
// fall checks failed, the region's other VIP keeps answering; a region
// with every VIP down is answered away from; both come back after rise
// successes.
func TestFailoverPerVIP(t *testing.T) {
	e := newEnv(t)
	a1, a2, b := newLB(t), newLB(t), newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a1.addr(), "192.0.2.2": a2.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.3": b.addr()})
	e.service("www.example.", "a", "b")
	p1 := e.startProber(Config{ID: "p1"})
	p2 := e.startProber(Config{ID: "p2"})
	e.allUp(2)
	e.waitAnswers("www.example.", "192.0.2.1", "192.0.2.2")

	a1.set(lbDown)
	e.waitAnswers("www.example.", "192.0.2.2")
	s := e.current()
	v := vip(s, "a", "192.0.2.1")
	if v.Status != regions.HealthDown || regionStatus(s, "a") != regions.HealthUp {
		t.Fatalf("after one VIP failed: %s", describe(s))
	}
	for _, vote := range v.Votes {
		if vote.Up || !strings.Contains(vote.Reason, "status 503") {
			t.Errorf("vote %+v", vote)
		}
	}
	for _, p := range []*proberRun{p1, p2} {
		for _, ts := range p.Status().Targets {
			if ts.VIP == netip.MustParseAddr("192.0.2.1") && (ts.Up || ts.Failures < 3) {
				t.Errorf("%s sees %+v: down only after fall (3) failures", p.cfg.ID, ts)
			}
		}
	}

	a2.set(lbDown)
	e.waitAnswers("www.example.", "192.0.2.3")
	if s := e.current(); regionStatus(s, "a") != regions.HealthDown {
		t.Fatalf("region with every VIP down: %s", describe(s))
	}

	a1.set(lbUp)
	a2.set(lbUp)
	e.waitAnswers("www.example.", "192.0.2.1", "192.0.2.2")
	e.allUp(2)
	for _, p := range []*proberRun{p1, p2} {
		for _, ts := range p.Status().Targets {
			if ts.Region == "a" && (!ts.Up || ts.Successes < 2) {
				t.Errorf("%s sees %+v: up only after rise (2) successes", p.cfg.ID, ts)
			}
		}
	}
}

// TestQuorumAndSelfCheck: a prober whose network is cut marks its reports
// untrusted and drains nothing; one prober of two seeing a VIP down is a
// tie and keeps it up; a majority takes it down; a canary that cannot be
// reached makes a prober distrust itself until it answers again.
func TestQuorumAndSelfCheck(t *testing.T) {
	e := newEnv(t)
	a, b := newLB(t), newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.2": b.addr()})
	e.service("www.example.", "a", "b")
	nets := []*netSwitch{newNetSwitch(), newNetSwitch(), newNetSwitch()}
	var ps []*proberRun
	for i, n := range nets {
		ps = append(ps, e.startProber(Config{ID: "p" + string(rune('1'+i)), Dial: n.dial}))
	}
	e.allUp(3)

	t.Run("one prober cut off", func(t *testing.T) {
		e := e.with(t)
		nets[2].cut(true)
		s := e.waitSnap("p3's votes down and not counted", func(s *regions.Snapshot) bool {
			for _, addr := range []string{"192.0.2.1", "192.0.2.2"} {
				v := vip(s, map[string]string{"192.0.2.1": "a", "192.0.2.2": "b"}[addr], addr)
				if len(v.Votes) != 3 || v.Votes[2].Up || v.Votes[2].Counted {
					return false
				}
			}
			return true
		})
		for _, r := range []string{"a", "b"} {
			if regionStatus(s, r) != regions.HealthUp {
				t.Errorf("region %s taken out by a cut-off prober: %s", r, describe(s))
			}
		}
		if v := vip(s, "a", "192.0.2.1").Votes[2]; !strings.Contains(v.Ignored, "self-check") {
			t.Errorf("p3's vote: %+v", v)
		}
		if st := ps[2].Status(); st.Trusted || !strings.Contains(st.Distrust, "every VIP") {
			t.Errorf("p3 status: trusted %t (%s)", st.Trusted, st.Distrust)
		}
		e.waitAnswers("www.example.", "192.0.2.1")
	})

	t.Run("one of two counted votes down is a tie", func(t *testing.T) {
		e := e.with(t)
		nets[0].block(true, a.addr())
		e.waitSnap("p1's vote on a down", func(s *regions.Snapshot) bool {
			v := vip(s, "a", "192.0.2.1")
			return v.Down == 1 && v.Up == 1
		})
		if s := e.current(); vip(s, "a", "192.0.2.1").Status != regions.HealthUp {
			t.Fatalf("a tie took the VIP down: %s", describe(s))
		}
		if st := ps[0].Status(); !st.Trusted {
			t.Errorf("p1 distrusts itself while b answers: %s", st.Distrust)
		}
		e.waitAnswers("www.example.", "192.0.2.1")
	})

	t.Run("a majority takes it down", func(t *testing.T) {
		e := e.with(t)
		nets[1].block(true, a.addr())
		e.waitAnswers("www.example.", "192.0.2.2")
		if s := e.current(); regionStatus(s, "a") != regions.HealthDown {
			t.Fatalf("%s", describe(s))
		}
	})

	t.Run("healed", func(t *testing.T) {
		e := e.with(t)
		for _, n := range nets {
			n.cut(false)
			n.block(false, a.addr())
		}
		e.allUp(3)
		e.waitAnswers("www.example.", "192.0.2.1")
	})

	t.Run("canary", func(t *testing.T) {
		e := e.with(t)
		canary := newTCPTarget(t)
		p := e.startProber(Config{ID: "p4", Canary: Canary{Address: canary.addr(), Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond}})
		e.allUp(4)
		port := canary.port
		canary.stop()
		s := e.waitSnap("p4 untrusted", func(s *regions.Snapshot) bool {
			v := vip(s, "a", "192.0.2.1")
			return len(v.Votes) == 4 && !v.Votes[3].Counted
		})
		if v := vip(s, "a", "192.0.2.1"); !v.Votes[3].Up || v.Status != regions.HealthUp {
			t.Errorf("p4 still sees a up, untrusted: %s", describe(s))
		}
		if st := p.Status(); st.Trusted || !strings.Contains(st.Distrust, "canary unreachable") {
			t.Errorf("p4: trusted %t (%s)", st.Trusted, st.Distrust)
		}
		canary.start(t, "127.0.0.1:"+port)
		e.allUp(4)
	})
}

// TestProbersGone: a stopped prober's registration and reports are gone
// when Run returns (the lease is revoked); a crashed one's stay until its
// lease expires; with every prober gone a region is unknown and answered
// again, even one that was down.
func TestProbersGone(t *testing.T) {
	e := newEnv(t)
	a, b := newLB(t), newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr(), "192.0.2.2": a.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.3": b.addr()})
	e.service("www.example.", "a", "b")
	p1 := e.startProber(Config{ID: "p1"})
	p2 := e.startProber(Config{ID: "p2"})
	p3 := e.startProber(Config{ID: "p3"})
	e.allUp(3)
	keys := store.NewKeys(e.prefix)
	exists := func(t *testing.T, key string) bool {
		resp, err := e.cli.Get(etcdtest.Ctx(t), key, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count > 0
	}

	t.Run("graceful stop", func(t *testing.T) {
		lease := p1.Status().Lease
		p1.stop(t)
		if exists(t, keys.Prober("p1")) || exists(t, keys.Health("a", "p1")) || exists(t, keys.Health("b", "p1")) {
			t.Fatal("registration or report left after a graceful stop")
		}
		ttl, err := e.cli.TimeToLive(etcdtest.Ctx(t), lease)
		if err != nil || ttl.TTL != -1 {
			t.Errorf("lease %x after stop: %+v %v (want revoked)", lease, ttl, err)
		}
	})

	t.Run("crash", func(t *testing.T) {
		lease := p2.Status().Lease
		p2.testCrash.Store(true)
		p2.stop(t)
		if !exists(t, keys.Health("a", "p2")) {
			t.Fatal("a crashed prober's report vanished before its lease expired")
		}
		ttl, err := e.cli.TimeToLive(etcdtest.Ctx(t), lease)
		if err != nil || ttl.TTL <= 0 || ttl.GrantedTTL != 2 {
			t.Fatalf("lease %x: %+v %v (want live, granted 2s: 3 × 100ms, at least 2s)", lease, ttl, err)
		}
		etcdtest.WaitUntil(t, "the crashed prober's report to expire", func() bool { return !exists(t, keys.Health("a", "p2")) })
		if exists(t, keys.Prober("p2")) {
			t.Error("registration left after its lease expired")
		}
	})

	t.Run("every prober gone", func(t *testing.T) {
		e := e.with(t)
		a.set(lbDown)
		e.waitAnswers("www.example.", "192.0.2.3")
		p3.stop(t)
		s := e.waitSnap("no votes", func(s *regions.Snapshot) bool { return regionStatus(s, "a") == regions.HealthUnknown })
		if v := vip(s, "a", "192.0.2.1"); v.Status != regions.HealthUnknown || len(v.Votes) != 0 {
			t.Errorf("%s", describe(s))
		}
		e.waitAnswers("www.example.", "192.0.2.1", "192.0.2.2")
	})
}

// TestLeaseLost: when etcd ends the prober's lease (as after a partition
// longer than its TTL), the prober registers again and rewrites its
// reports under the new lease.
func TestLeaseLost(t *testing.T) {
	e := newEnv(t)
	a := newLB(t)
	e.region("a", fast("tcp"), map[string]string{"192.0.2.1": newTCPTarget(t).addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.2": a.addr()})
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)
	old := p.Status().Lease
	if _, err := e.cli.Revoke(etcdtest.Ctx(t), old); err != nil {
		t.Fatal(err)
	}
	s := e.waitSnap("reports under a new lease", func(s *regions.Snapshot) bool {
		reg := s.State().Probers["p1"]
		if reg == nil || reg.Lease == int64(old) {
			return false
		}
		for _, r := range []string{"a", "b"} {
			rep := s.State().Health[r]["p1"]
			if rep == nil || rep.Lease != reg.Lease {
				return false
			}
		}
		return true
	})
	if st := p.Status(); st.Stats.Registrations != 2 || int64(st.Lease) != s.State().Probers["p1"].Lease {
		t.Errorf("status %+v", st)
	}
	e.allUp(1)
}

// TestFlappingEndpoint: an endpoint that is up and down on alternate
// checks never reaches fall failures in a row: the VIP stays up, the
// answers do not move and nothing is written.
func TestFlappingEndpoint(t *testing.T) {
	e := newEnv(t)
	a, b := newLB(t), newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.2": b.addr()})
	e.service("www.example.", "a", "b")
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)
	e.waitAnswers("www.example.", "192.0.2.1")
	before := p.Status()
	start := a.requests.Load()
	a.set(lbFlap)
	etcdtest.WaitUntil(t, "30 checks of the flapping endpoint", func() bool {
		if s := e.current(); !slices.Equal(answers(s, "www.example."), []string{"192.0.2.1"}) {
			t.Fatalf("answers moved: %s", describe(s))
		}
		return a.requests.Load()-start >= 30
	})
	after := p.Status()
	if after.Stats.Writes != before.Stats.Writes {
		t.Errorf("%d writes while flapping, want none", after.Stats.Writes-before.Stats.Writes)
	}
	if ts := after.Targets[0]; !ts.Up || ts.Failures > 1 || !strings.Contains(ts.Reason, "503") {
		t.Errorf("flapping target %+v", ts)
	}
}

// TestSteadyStateWrites: with nothing changing, a prober writes nothing to
// etcd, however many checks it makes, across several refresh periods (a
// refresh rewrites a report only when its RTT, load or failure reason
// moved). The refresh is shortened so that the test spans three of them.
// The checks dial through a delay of 200 ms: a refresh ignores RTT moves
// within a fifth (40 ms), so a busy machine's jitter is no move. The
// steady state starts once no report is due for a refresh: the first
// reports carry the RTTs of the first checks, which a refresh may still
// correct.
func TestSteadyStateWrites(t *testing.T) {
	const refresh = 300 * time.Millisecond
	e := newEnv(t)
	n := newNetSwitch()
	n.delay = 200 * time.Millisecond
	check := func(typ string) regions.HealthCheck {
		return regions.HealthCheck{Type: typ, Port: 1, Interval: regions.Duration(500 * time.Millisecond),
			Timeout: regions.Duration(400 * time.Millisecond), Rise: 2, Fall: 3}
	}
	lb := newLB(t)
	vips := map[string]string{}
	for i := range 5 {
		vips["192.0.2."+string(rune('1'+i))] = lb.addr()
	}
	e.region("a", check("http"), vips)
	e.region("b", check("tcp"), map[string]string{"192.0.2.10": newTCPTarget(t).addr()})
	ps := []*proberRun{
		e.startProber(Config{ID: "p1", Refresh: refresh, Dial: n.dial}),
		e.startProber(Config{ID: "p2", Refresh: refresh, Dial: n.dial}),
	}
	e.allUp(2)
	keys := store.NewKeys(e.prefix)
	// settled: every VIP's RTT in etcd is within half the move a refresh
	// needs of the RTT its prober holds now.
	settled := func() bool {
		for _, p := range ps {
			written := map[string]map[netip.Addr]time.Duration{}
			for _, ts := range p.Status().Targets {
				if written[ts.Region] == nil {
					resp, err := e.cli.Get(etcdtest.Ctx(t), keys.Health(ts.Region, p.cfg.ID))
					if err != nil || len(resp.Kvs) != 1 {
						return false
					}
					var rep regions.HealthReport
					if err := json.Unmarshal(resp.Kvs[0].Value, &rep); err != nil {
						t.Fatal(err)
					}
					written[ts.Region] = map[netip.Addr]time.Duration{}
					for _, v := range rep.VIPs {
						written[ts.Region][v.Addr] = time.Duration(v.RTT)
					}
				}
				w, ok := written[ts.Region][ts.VIP]
				if !ok || (ts.RTT-w).Abs() > max(time.Millisecond, w/5)/2 {
					return false
				}
			}
		}
		return true
	}
	etcdtest.WaitUntil(t, "no report due for a refresh", settled)
	rev := func() int64 {
		resp, err := e.cli.Get(etcdtest.Ctx(t), e.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var m int64
		for _, kv := range resp.Kvs {
			m = max(m, kv.ModRevision)
		}
		return m
	}
	stats := func() (checks, writes uint64) {
		for _, p := range ps {
			st := p.Status().Stats
			checks, writes = checks+st.Checks, writes+st.Writes
		}
		return checks, writes
	}
	r0, start := rev(), time.Now()
	c0, w0 := stats()
	etcdtest.WaitUntil(t, "three refresh periods and 60 more checks", func() bool {
		c, _ := stats()
		return time.Since(start) >= 3*refresh && c-c0 >= 60
	})
	c1, w1 := stats()
	if r := rev(); r != r0 || w1 != w0 {
		var rtts []string
		for _, p := range ps {
			for _, ts := range p.Status().Targets {
				rtts = append(rtts, fmt.Sprintf("%s %v %v", p.cfg.ID, ts.VIP, ts.RTT.Round(time.Millisecond)))
			}
		}
		t.Errorf("%d report writes in a steady state (keys' revision %d, then %d) over %d checks and %v, refresh %v: want none; RTTs now: %s",
			w1-w0, r0, r, c1-c0, time.Since(start).Round(time.Millisecond), refresh, strings.Join(rtts, ", "))
	}
}

// TestSlowTargetAndCap: a target that never answers holds one slot of the
// cap and delays no other target; the number of checks in flight never
// goes above the cap.
func TestSlowTargetAndCap(t *testing.T) {
	t.Run("slow target", func(t *testing.T) {
		e := newEnv(t)
		hang, ok := newLB(t), newLB(t)
		hang.set(lbHang)
		slow := regions.HealthCheck{Type: "http", Port: 1, Interval: regions.Duration(time.Minute), Timeout: regions.Duration(time.Minute)}
		e.region("slow", slow, map[string]string{"192.0.2.1": hang.addr()})
		e.region("quick", fast("http"), map[string]string{"192.0.2.2": ok.addr()})
		p := e.startProber(Config{ID: "p1", Concurrency: 2})
		etcdtest.WaitUntil(t, "20 checks of the quick target", func() bool {
			st := p.Status()
			return len(st.Targets) == 2 && st.Targets[0].Checks >= 20
		})
		if st := p.Status(); st.Targets[1].Checks != 0 || hang.requests.Load() != 1 {
			t.Fatalf("the slow target finished a check: %+v", st.Targets[1])
		}
	})
	t.Run("cap", func(t *testing.T) {
		e := newEnv(t)
		n := newNetSwitch()
		n.delay = 30 * time.Millisecond
		tcp := newTCPTarget(t)
		vips := map[string]string{}
		for i := range 20 {
			vips[netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String()] = tcp.addr()
		}
		e.region("a", fast("tcp"), vips)
		p := e.startProber(Config{ID: "p1", Concurrency: 3, Dial: n.dial})
		etcdtest.WaitUntil(t, "the cap reached and 100 checks", func() bool { return n.peak() >= 3 && p.Status().Stats.Checks >= 100 })
		if peak := n.peak(); peak != 3 {
			t.Fatalf("%d connections at once, cap 3", peak)
		}
	})
}

// TestRegionChangesPickedUp: a region added, whose check changed, or
// removed in etcd is checked, re-checked or dropped without a restart.
func TestRegionChangesPickedUp(t *testing.T) {
	e := newEnv(t)
	a, b := newLB(t), newLB(t)
	ra := e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr()})
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)

	t.Run("added", func(t *testing.T) {
		e := e.with(t)
		e.region("b", fast("http"), map[string]string{"192.0.2.2": b.addr()})
		e.waitSnap("votes on b", func(s *regions.Snapshot) bool { return vip(s, "b", "192.0.2.2").Up == 1 })
	})
	t.Run("check changed", func(t *testing.T) {
		e := e.with(t)
		r := *ra
		r.Check.Path = "/nope" // the stand-in answers 200 on every path: make it expect a 404 instead
		r.Check.Expect = regions.StatusRanges{{Lo: 404, Hi: 404}}
		if _, err := e.store.PutRegion(etcdtest.Ctx(t), &r, store.Always); err != nil {
			t.Fatal(err)
		}
		s := e.waitSnap("a down under its new check", func(s *regions.Snapshot) bool { return vip(s, "a", "192.0.2.1").Down == 1 })
		if v := vip(s, "a", "192.0.2.1").Votes[0]; !strings.Contains(v.Reason, "status 200, want 404") {
			t.Errorf("vote %+v", v)
		}
	})
	t.Run("removed", func(t *testing.T) {
		e := e.with(t)
		if err := e.store.DeleteRegion(etcdtest.Ctx(t), "b", store.Always); err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "b's report deleted", func() bool {
			resp, err := e.cli.Get(etcdtest.Ctx(t), store.NewKeys(e.prefix).Health("b", "p1"), clientv3.WithCountOnly())
			return err == nil && resp.Count == 0
		})
		if st := p.Status(); len(st.Targets) != 1 || st.Targets[0].Region != "a" {
			t.Errorf("targets %+v", st.Targets)
		}
	})
}

// TestReportContents: what a report holds, as etcd stores it.
func TestReportContents(t *testing.T) {
	e := newEnv(t)
	a := newLB(t)
	a.body.Store(`{"status":"ok","load":250,"capacity":1000}`)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr(), "2001:db8::1": a.addr()})
	e.region("b", fast("tcp"), map[string]string{"192.0.2.2": newTCPTarget(t).addr()})
	p := e.startProber(Config{ID: "p1", Region: "b", Version: "test"})
	e.allUp(1)
	resp, err := e.cli.Get(etcdtest.Ctx(t), store.NewKeys(e.prefix).Health("a", "p1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("%v %v", resp, err)
	}
	kv := resp.Kvs[0]
	if kv.Lease != int64(p.Status().Lease) {
		t.Errorf("report bound to lease %x, prober holds %x", kv.Lease, p.Status().Lease)
	}
	var rep regions.HealthReport
	if err := json.Unmarshal(kv.Value, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Region != "a" || rep.Prober != "p1" || rep.ProberRegion != "b" || !rep.Trusted || rep.Observed.IsZero() || len(rep.VIPs) != 2 {
		t.Fatalf("report %s", kv.Value)
	}
	for _, v := range rep.VIPs {
		if !v.Up || v.Since.IsZero() || v.Successes < 2 || v.Failures != 0 || v.RTT <= 0 || v.Load == nil || *v.Load != 250 || v.Capacity == nil || *v.Capacity != 1000 ||
			v.LoadSource != "health" || v.LoadObserved.IsZero() || v.LoadObserved.After(rep.Observed) || v.LoadError != "" || v.Passive {
			t.Errorf("VIP %s: %+v", v.Addr, v)
		}
	}
	if rep.VIPs[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("VIPs out of the region's order: %s", kv.Value)
	}
	reg := e.current().State().Probers["p1"]
	if reg == nil || reg.Region != "b" || reg.Version != "test" || reg.Started.IsZero() {
		t.Errorf("registration %+v", reg)
	}
	// A failure reason stays with the VIP after it recovered.
	a.set(lbDown)
	e.waitSnap("a down", func(s *regions.Snapshot) bool { return vip(s, "a", "192.0.2.1").Down == 1 })
	a.set(lbUp)
	s := e.allUp(1)
	if v := vip(s, "a", "192.0.2.1").Votes[0]; !strings.Contains(v.Reason, "status 503") {
		t.Errorf("vote after recovery: %+v", v)
	}
}

// TestEtcdAwayLongerThanLease: while etcd is away for longer than the
// prober's lease, the keep-alive gives up; when etcd is back the prober
// registers under a new lease and rewrites its reports, which survive the
// old lease's expiry.
func TestEtcdAwayLongerThanLease(t *testing.T) {
	m, cli := ownMember(t)
	e := newEnvOn(t, cli)
	a, b := newLB(t), newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.2": b.addr()})
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)
	old := p.Status().Lease

	m.Stop()
	etcdtest.WaitUntil(t, "the prober to give its lease up", func() bool { return p.Status().Lease == clientv3.NoLease })
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	counted := func(s *regions.Snapshot) bool {
		reg := s.State().Probers["p1"]
		return reg != nil && reg.Lease != int64(old) && vip(s, "a", "192.0.2.1").Up == 1 && vip(s, "b", "192.0.2.2").Up == 1
	}
	e.waitSnap("reports under a new lease", counted)
	// etcd extends the old lease when it restarts; once it expires, the
	// keys it held are the prober's no longer.
	etcdtest.WaitUntil(t, "the old lease to expire", func() bool {
		ttl, err := cli.TimeToLive(etcdtest.Ctx(t), old)
		return err == nil && ttl.TTL == -1
	})
	keys := store.NewKeys(e.prefix)
	for _, k := range []string{keys.Prober("p1"), keys.Health("a", "p1"), keys.Health("b", "p1")} {
		resp, err := cli.Get(etcdtest.Ctx(t), k)
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(p.Status().Lease) {
			t.Errorf("%s after the old lease expired: %v %v", k, resp, err)
		}
	}
}

// TestEtcdRestoredFromBackup: etcd restored from a backup holds the
// reports of the backup's time, under a lease that survived. The prober
// notices that etcd went back and writes every report again, so a VIP
// that went down after the backup is not left voted up.
func TestEtcdRestoredFromBackup(t *testing.T) {
	m, cli := ownMember(t)
	e := newEnvOn(t, cli)
	a := newLB(t)
	e.region("a", fast("http"), map[string]string{"192.0.2.1": a.addr()})
	// A lease long enough to outlive the restarts: the case where the
	// prober has no new lease to tell it that its reports are gone.
	p := e.startProber(Config{ID: "p1", LeaseTTL: 60 * time.Second})
	e.allUp(1)
	lease := p.Status().Lease

	// The backup: the data directory, copied while the member is stopped.
	backup := m.Backup()
	// After the backup, the VIP goes down.
	a.set(lbDown)
	e.waitSnap("a down", func(s *regions.Snapshot) bool { return vip(s, "a", "192.0.2.1").Down == 1 })

	// Restored: etcd holds the backup's report, which says up.
	m.Restore(backup)
	// Read etcd itself: the test's own watcher may still show what it
	// saw before the restore.
	key := store.NewKeys(e.prefix).Health("a", "p1")
	etcdtest.WaitUntil(t, "the report written again after the restore", func() bool {
		resp, err := cli.Get(etcdtest.Ctx(t), key)
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		var h regions.HealthReport
		return json.Unmarshal(resp.Kvs[0].Value, &h) == nil && len(h.VIPs) == 1 && !h.VIPs[0].Up
	})
	if got := p.Status().Lease; got != lease {
		t.Errorf("lease %x, want the lease that outlived the restore, %x", got, lease)
	}
}

// TestGlobalOutageRecovery: when the load balancers of every region fail,
// every prober distrusts itself and every region is unknown: a
// fail-closed service keeps answering, with its degraded TTL. When they
// come back, no prober votes a VIP down on what it saw while it
// distrusted itself, so in no snapshot built from the first failure to
// the full recovery does the service answer NODATA, which resolvers would
// keep for the negative TTL.
func TestGlobalOutageRecovery(t *testing.T) {
	e := newEnv(t)
	// fall 4 at 100ms ±10%: every VIP has failed once, and every prober
	// distrusts itself, well before any VIP has failed four times.
	check := fast("http")
	check.Fall = 4
	var lbs []*lb
	svc := &regions.Service{Name: "closed.example.", TTL: 60, DegradedTTL: 7, Policy: regions.PolicyFailover,
		AllDown: regions.AllDown{Mode: regions.AllDownFailClosed}}
	for i, name := range []string{"a", "b", "c"} {
		l := newLB(t)
		lbs = append(lbs, l)
		e.region(name, check, map[string]string{fmt.Sprintf("192.0.2.%d", i+1): l.addr()})
		svc.Regions = append(svc.Regions, regions.ServiceRegion{Region: name, Weight: 1})
	}
	if _, err := e.store.PutService(etcdtest.Ctx(t), svc, store.Always); err != nil {
		t.Fatal(err)
	}
	var ps []*proberRun
	for _, id := range []string{"p1", "p2", "p3"} {
		ps = append(ps, e.startProber(Config{ID: id}))
	}
	e.allUp(3)
	e.waitAnswers("closed.example.", "192.0.2.1")

	// Every snapshot from here on: the answer, and its TTL whenever a
	// region's health is unknown.
	var (
		snaps, outage int
		bad           []string
	)
	e.onSnapshot(func(s *regions.Snapshot) {
		snaps++
		v := s.ServiceByName("closed.example.")
		d := s.Decide(v, nil, regions.QTypeA, 1)
		unknown := false
		for _, rs := range s.Regions() {
			unknown = unknown || rs.Status == regions.HealthUnknown
		}
		switch {
		case d.Kind != regions.KindAnswer:
			bad = append(bad, "NODATA: "+describe(s))
		case unknown && d.TTL != svc.DegradedTTL:
			bad = append(bad, fmt.Sprintf("TTL %d with a region unknown: %s", d.TTL, describe(s)))
		}
		if unknown && allUncounted(s, 3) {
			outage++
		}
	})

	for _, l := range lbs {
		l.set(lbDown)
	}
	etcdtest.WaitUntil(t, "every prober distrusting itself, every VIP down in its eyes", func() bool {
		for _, p := range ps {
			st := p.Status()
			if st.Trusted {
				return false
			}
			for _, ts := range st.Targets {
				if !ts.Known || ts.Up {
					return false
				}
			}
		}
		return true
	})
	e.waitSnap("every VIP voted down by every prober, no vote counted", func(s *regions.Snapshot) bool {
		for _, rs := range s.Regions() {
			for _, v := range rs.VIPs {
				for _, vote := range v.Votes {
					if vote.Up {
						return false
					}
				}
			}
		}
		return allUncounted(s, 3)
	})

	for _, l := range lbs {
		l.set(lbUp)
	}
	e.allUp(3)
	e.onSnapshot(nil)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d of %d snapshots wrong; the first: %s", len(bad), snaps, bad[0])
	}
	if outage == 0 {
		t.Fatalf("no snapshot of the outage among %d", snaps)
	}
	t.Logf("%d snapshots, %d with every vote uncounted", snaps, outage)
}

// allUncounted says whether every VIP has n votes, none of them counted.
func allUncounted(s *regions.Snapshot, n int) bool {
	for _, rs := range s.Regions() {
		for _, v := range rs.VIPs {
			if len(v.Votes) != n || v.Up+v.Down != 0 {
				return false
			}
		}
	}
	return len(s.Regions()) > 0
}
