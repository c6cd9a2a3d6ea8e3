//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
)

// loadBalancer stands in for a region's load balancer: an HTTP server on
// a loopback address whose health endpoint the suite can fail, slow down
// or cut off, and restore, and which can blackhole the connections of
// one source address (a prober whose own network is cut). It runs in
// the test process; the probers that check it are real processes.
type loadBalancer struct {
	addr string // host:port

	mu      sync.Mutex
	code    int           // status of /healthz
	delay   time.Duration // before answering
	ln      net.Listener  // nil while cut off
	srv     *http.Server
	blocked map[netip.Addr]bool     // sources whose connections are held silent
	held    map[net.Conn]struct{}   // those connections, until their client gives up
	seen    map[netip.Addr]struct{} // every source that connected
}

// newLoadBalancer listens on addr and answers /healthz with 200.
func newLoadBalancer(t testing.TB, addr string) *loadBalancer {
	t.Helper()
	lb := &loadBalancer{addr: addr, code: http.StatusOK, blocked: map[netip.Addr]bool{},
		held: map[net.Conn]struct{}{}, seen: map[netip.Addr]struct{}{}}
	lb.srv = &http.Server{Handler: http.HandlerFunc(lb.serve), ReadHeaderTimeout: 5 * time.Second}
	if err := lb.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lb.close)
	return lb
}

// close stops serving and drops the connections held.
func (lb *loadBalancer) close() {
	lb.srv.Close()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for c := range lb.held {
		c.Close()
	}
}

func (lb *loadBalancer) serve(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	code, delay := lb.code, lb.delay
	lb.mu.Unlock()
	if r.URL.Path != "/healthz" {
		http.NotFound(w, r)
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":%q}`, http.StatusText(code))
}

func (lb *loadBalancer) listen() error {
	inner, err := net.Listen("tcp", lb.addr)
	if err != nil {
		return err
	}
	ln := &sourceFilter{Listener: inner, lb: lb}
	lb.mu.Lock()
	lb.ln = ln
	lb.mu.Unlock()
	go func() { _ = lb.srv.Serve(ln) }()
	return nil
}

// fail makes /healthz answer 503.
func (lb *loadBalancer) fail() { lb.set(http.StatusServiceUnavailable, 0) }

// slow delays every answer by d.
func (lb *loadBalancer) slow(d time.Duration) { lb.set(http.StatusOK, d) }

func (lb *loadBalancer) set(code int, d time.Duration) {
	lb.mu.Lock()
	lb.code, lb.delay = code, d
	lb.mu.Unlock()
}

// cut closes the listener: connections are refused, as when the load
// balancer is gone.
func (lb *loadBalancer) cut() {
	lb.mu.Lock()
	ln := lb.ln
	lb.ln = nil
	lb.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// blackhole holds every new connection from src silent: accepted (as the
// kernel does), never read, never answered, until the client gives up.
// To the client it is a path that drops its packets: the check runs into
// its timeout. Other sources are served as before.
func (lb *loadBalancer) blackhole(src netip.Addr) {
	lb.mu.Lock()
	lb.blocked[src] = true
	lb.mu.Unlock()
}

// unblock serves src again (connections already held stay so).
func (lb *loadBalancer) unblock(src netip.Addr) {
	lb.mu.Lock()
	delete(lb.blocked, src)
	lb.mu.Unlock()
}

// sources lists every source address that has connected.
func (lb *loadBalancer) sources() []netip.Addr {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	out := make([]netip.Addr, 0, len(lb.seen))
	for a := range lb.seen {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// sourceFilter passes the server the connections of sources not
// blackholed, and holds the others.
type sourceFilter struct {
	net.Listener
	lb *loadBalancer
}

func (f *sourceFilter) Accept() (net.Conn, error) {
	for {
		c, err := f.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		f.lb.mu.Lock()
		f.lb.seen[src] = struct{}{}
		blocked := f.lb.blocked[src]
		if blocked {
			f.lb.held[c] = struct{}{}
		}
		f.lb.mu.Unlock()
		if !blocked {
			return c, nil
		}
		go func() {
			_, _ = io.Copy(io.Discard, c) // until the client closes
			c.Close()
			f.lb.mu.Lock()
			delete(f.lb.held, c)
			f.lb.mu.Unlock()
		}()
	}
}

// restore answers 200 at once again, listening again after a cut.
func (lb *loadBalancer) restore() error {
	lb.set(http.StatusOK, 0)
	lb.mu.Lock()
	cut := lb.ln == nil
	lb.mu.Unlock()
	if cut {
		return lb.listen()
	}
	return nil
}

// TestLoadBalancerStandIn checks the stand-in does what the scenarios
// rely on: fail, slow down, cut off, blackhole one source, restore.
func TestLoadBalancerStandIn(t *testing.T) {
	pp := testport.NewPicker(t)
	port := pp.Pick("127.0.0.31")
	pp.Release()
	lb := newLoadBalancer(t, fmt.Sprintf("127.0.0.31:%d", port))
	// Two clients: one from 127.0.0.1 (the system's choice), one from
	// 127.0.0.32, a source some steps blackhole.
	src := netip.MustParseAddr("127.0.0.32")
	clients := map[string]*http.Client{
		"127.0.0.1": {Timeout: 300 * time.Millisecond},
		src.String(): {Timeout: 300 * time.Millisecond, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}).DialContext}},
	}
	get := func(from string) (int, error) {
		resp, err := clients[from].Get("http://" + lb.addr + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	steps := []struct {
		name        string
		do          func() error
		from        string
		code        int
		wantErr     bool
		wantTimeout bool
	}{
		{"up", func() error { return nil }, "127.0.0.1", http.StatusOK, false, false},
		{"up for another source", func() error { return nil }, src.String(), http.StatusOK, false, false},
		{"failed", func() error { lb.fail(); return nil }, "127.0.0.1", http.StatusServiceUnavailable, false, false},
		{"slower than the client's timeout", func() error { lb.slow(2 * time.Second); return nil }, "127.0.0.1", 0, true, true},
		{"restored", lb.restore, "127.0.0.1", http.StatusOK, false, false},
		{"cut off", func() error { lb.cut(); return nil }, "127.0.0.1", 0, true, false},
		{"restored after a cut", lb.restore, "127.0.0.1", http.StatusOK, false, false},
		{"a source blackholed", func() error { lb.blackhole(src); return nil }, src.String(), 0, true, true},
		{"the others served meanwhile", func() error { return nil }, "127.0.0.1", http.StatusOK, false, false},
		{"the source unblocked", func() error { lb.unblock(src); return nil }, src.String(), http.StatusOK, false, false},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		code, err := get(s.from)
		if (err != nil) != s.wantErr || code != s.code {
			t.Fatalf("%s: got %d, %v; want %d, error %v", s.name, code, err, s.code, s.wantErr)
		}
		var ne net.Error
		if s.wantTimeout && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("%s: want a timeout, got %v", s.name, err)
		}
	}
	if got, want := lb.sources(), []netip.Addr{netip.MustParseAddr("127.0.0.1"), src}; !slices.Equal(got, want) {
		t.Fatalf("sources seen: %v, want %v", got, want)
	}
}
