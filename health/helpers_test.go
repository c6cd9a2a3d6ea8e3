package health

// Helpers for the prober's tests: stand-in load balancers on loopback, a
// real etcd (internal/etcdtest), probers run as goroutines, and a watcher
// that builds the snapshots the DNS server would answer from.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// lbMode is how a stand-in load balancer answers its health checks.
type lbMode int32

const (
	lbUp   lbMode = iota // 200 {"status":"ok"}
	lbDown               // 503
	lbHang               // accepts, reads the request, never answers
	lbFlap               // up and down on alternate requests
)

// lb is a stand-in load balancer: an HTTP server on loopback whose health
// endpoint answers as its mode says.
type lb struct {
	srv      *httptest.Server
	mode     atomic.Int32
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	body     atomic.Value // string answered when up
	hang     chan struct{}
	lastHost atomic.Value
}

func newLB(t testing.TB) *lb {
	l := &lb{hang: make(chan struct{})}
	l.body.Store(`{"status":"ok"}`)
	l.lastHost.Store("")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := l.requests.Add(1)
		in := l.inFlight.Add(1)
		defer l.inFlight.Add(-1)
		for {
			m := l.maxIn.Load()
			if in <= m || l.maxIn.CompareAndSwap(m, in) {
				break
			}
		}
		l.lastHost.Store(r.Host)
		mode := lbMode(l.mode.Load())
		if mode == lbFlap {
			mode = lbMode(n % 2)
		}
		switch mode {
		case lbUp:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, l.body.Load().(string))
		case lbDown:
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
		case lbHang:
			select {
			case <-l.hang:
			case <-r.Context().Done():
			}
		}
	})
	l.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		close(l.hang)
		l.srv.Close()
	})
	return l
}

func (l *lb) set(m lbMode) { l.mode.Store(int32(m)) }

// addr is the server's host:port.
func (l *lb) addr() string { return l.srv.Listener.Addr().String() }

// tcpTarget is a TCP endpoint that accepts and closes connections; stop
// closes the listener (connection refused), start opens it again on the
// same port. The port is below the ephemeral range: while the target is
// stopped, no connect() can take it, nor can a check's dial to it be
// given it as its own port and connect to itself.
type tcpTarget struct {
	mu   sync.Mutex
	ln   net.Listener
	port string
}

func newTCPTarget(t testing.TB) *tcpTarget {
	tt := &tcpTarget{}
	tt.start(t, fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]))
	t.Cleanup(tt.stop)
	return tt
}

func (tt *tcpTarget) start(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tt.mu.Lock()
	tt.ln = ln
	_, tt.port, _ = net.SplitHostPort(ln.Addr().String())
	tt.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (tt *tcpTarget) stop() {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.ln != nil {
		tt.ln.Close()
		tt.ln = nil
	}
}

func (tt *tcpTarget) addr() string { return "127.0.0.1:" + tt.port }

// env is one test's etcd prefix with a store, and the snapshots a server
// watching it would build. Its helpers fail e.t: a subtest uses e.with(t).
type env struct {
	t testing.TB
	*envState
}

type envState struct {
	cli    *clientv3.Client
	prefix string
	store  *store.Store

	mu   sync.Mutex
	snap *regions.Snapshot
	// seen, when set, is called with every snapshot built, in order.
	seen func(*regions.Snapshot)
}

// with is the same environment failing t.
func (e *env) with(t testing.TB) *env { return &env{t: t, envState: e.envState} }

func newEnv(t testing.TB) *env { return newEnvOn(t, etcdtest.Shared(t)) }

// ownMember starts an etcd member of the test's own, one it may stop,
// back up and restore, and connects to it as a prober does; both end
// with the test.
func ownMember(t testing.TB) (*etcdtest.Member, *clientv3.Client) {
	t.Helper()
	m := etcdtest.NewMember(t, "m0")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	cli, err := store.Connect(etcdtest.Ctx(t), store.EtcdConfig{Endpoints: []string{m.ClientURL()}, Logger: etcdtest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return m, cli
}

// newEnvOn is an environment on the etcd of cli.
func newEnvOn(t testing.TB, cli *clientv3.Client) *env {
	e := &env{t: t, envState: &envState{cli: cli, prefix: etcdtest.Prefix(t)}}
	e.store = store.NewStore(cli, e.prefix, etcdtest.Logger())
	w := store.NewWatcher(cli, e.prefix, etcdtest.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx, func(st *regions.State) {
			s := regions.BuildSnapshot(st, nil, regions.SnapshotOptions{})
			e.mu.Lock()
			e.snap = s
			if e.seen != nil {
				e.seen(s)
			}
			e.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e
}

// region writes a region whose VIPs' checks go to the given addresses.
func (e *env) region(name string, check regions.HealthCheck, vips map[string]string) *regions.Region {
	e.t.Helper()
	r := &regions.Region{Name: name, Location: regions.Location{Lat: 1, Lon: 2}, Check: check}
	r.Check.Address = map[netip.Addr]string{}
	for v, a := range vips {
		vip := netip.MustParseAddr(v)
		r.VIPs = append(r.VIPs, vip)
		r.Check.Address[vip] = a
	}
	slices.SortFunc(r.VIPs, func(a, b netip.Addr) int { return a.Compare(b) })
	if _, err := e.store.PutRegion(etcdtest.Ctx(e.t), r, store.Always); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// onSnapshot calls f with every snapshot built from now on, until it is
// called again (nil: none); f runs under the environment's lock.
func (e *env) onSnapshot(f func(*regions.Snapshot)) {
	e.mu.Lock()
	e.seen = f
	e.mu.Unlock()
}

// current is the latest snapshot (nil before the first).
func (e *env) current() *regions.Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snap
}

// waitSnap waits until the snapshot satisfies ok, and returns it.
func (e *env) waitSnap(what string, ok func(*regions.Snapshot) bool) *regions.Snapshot {
	e.t.Helper()
	var s *regions.Snapshot
	etcdtest.WaitUntil(e.t, what, func() bool {
		s = e.current()
		return s != nil && ok(s)
	})
	return s
}

// vip is the status of one VIP in a snapshot.
func vip(s *regions.Snapshot, region, addr string) regions.VIPStatus {
	rs, ok := s.RegionStatus(region)
	if !ok {
		return regions.VIPStatus{}
	}
	for _, v := range rs.VIPs {
		if v.Addr == netip.MustParseAddr(addr) {
			return v
		}
	}
	return regions.VIPStatus{}
}

func regionStatus(s *regions.Snapshot, region string) regions.HealthStatus {
	rs, ok := s.RegionStatus(region)
	if !ok {
		return ""
	}
	return rs.Status
}

// describe sums up a snapshot's health for failure messages.
func describe(s *regions.Snapshot) string {
	if s == nil {
		return "no snapshot"
	}
	var b strings.Builder
	for _, rs := range s.Regions() {
		fmt.Fprintf(&b, "%s %s:", rs.Name, rs.Status)
		for _, v := range rs.VIPs {
			fmt.Fprintf(&b, " %s=%s(", v.Addr, v.Status)
			for _, vote := range v.Votes {
				fmt.Fprintf(&b, " %s up=%t counted=%t %s", vote.Prober, vote.Up, vote.Counted, vote.Ignored)
			}
			b.WriteString(")")
		}
		b.WriteString("; ")
	}
	return b.String()
}

// proberRun is a prober running in a goroutine.
type proberRun struct {
	*Prober
	cancel context.CancelFunc
	done   chan error
}

// startProber runs a prober on the test's prefix until stop or the end
// of the test.
func (e *env) startProber(cfg Config) *proberRun {
	e.t.Helper()
	cfg.Prefix = e.prefix
	if cfg.Region == "" {
		cfg.Region = "test"
	}
	cfg.Logger = etcdtest.Logger().With("prober", cfg.ID)
	p, err := New(cfg, e.cli)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &proberRun{Prober: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop stops the prober gracefully and waits for Run to return.
func (r *proberRun) stop(t testing.TB) {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("prober: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(etcdtest.WaitLimit):
		t.Error("prober did not stop")
	}
}

// fast is a check on a short cycle for tests.
func fast(typ string) regions.HealthCheck {
	return regions.HealthCheck{Type: typ, Port: 1, Interval: regions.Duration(100 * time.Millisecond),
		Timeout: regions.Duration(80 * time.Millisecond), Rise: 2, Fall: 3}
}

// netSwitch is a dialer whose reachability a test changes: cut() fails
// every connection, like a prober whose own network is down; block(addrs)
// fails those targets only. Dials can be slowed down and are counted.
type netSwitch struct {
	mu      sync.Mutex
	cutOff  bool
	blocked map[string]bool
	delay   time.Duration
	open    int // connections dialled and not yet closed, dials in progress included
	maxOpen int
	d       net.Dialer
}

func newNetSwitch() *netSwitch { return &netSwitch{blocked: map[string]bool{}} }

func (n *netSwitch) cut(on bool) {
	n.mu.Lock()
	n.cutOff = on
	n.mu.Unlock()
}

func (n *netSwitch) block(on bool, addrs ...string) {
	n.mu.Lock()
	for _, a := range addrs {
		n.blocked[a] = on
	}
	n.mu.Unlock()
}

func (n *netSwitch) peak() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.maxOpen
}

func (n *netSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	refused := n.cutOff || n.blocked[addr]
	delay := n.delay
	n.open++
	n.maxOpen = max(n.maxOpen, n.open)
	n.mu.Unlock()
	done := func() {
		n.mu.Lock()
		n.open--
		n.mu.Unlock()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			done()
			return nil, ctx.Err()
		}
	}
	if refused {
		done()
		return nil, fmt.Errorf("dial %s: network is unreachable (test)", addr)
	}
	c, err := n.d.DialContext(ctx, network, addr)
	if err != nil {
		done()
		return nil, err
	}
	return &countedConn{Conn: c, done: done}, nil
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

// answers is what a query for service name (A) gets from a snapshot.
func answers(s *regions.Snapshot, name string) []string {
	v := s.ServiceByName(name)
	if v == nil {
		return nil
	}
	d := s.Decide(v, nil, regions.QTypeA, 1)
	out := make([]string, d.Count)
	for i := range d.Count {
		out[i] = d.Addr(i).String()
	}
	slices.Sort(out)
	return out
}

// service writes a failover service over regions.
func (e *env) service(name string, regionNames ...string) {
	e.t.Helper()
	svc := &regions.Service{Name: name, TTL: 30, Policy: regions.PolicyFailover}
	for _, r := range regionNames {
		svc.Regions = append(svc.Regions, regions.ServiceRegion{Region: r, Weight: 1})
	}
	if _, err := e.store.PutService(etcdtest.Ctx(e.t), svc, store.Always); err != nil {
		e.t.Fatal(err)
	}
}

func sameNumber(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
