//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// loadBalancer stands in for a region's load balancer: an HTTP server on
// a loopback address whose health endpoint the suite can fail, slow down
// or cut off, and restore. It runs in the test process; the probers that
// check it are real processes.
type loadBalancer struct {
	addr string // host:port

	mu    sync.Mutex
	code  int           // status of /healthz
	delay time.Duration // before answering
	ln    net.Listener  // nil while cut off
	srv   *http.Server
}

// newLoadBalancer listens on addr and answers /healthz with 200.
func newLoadBalancer(t testing.TB, addr string) *loadBalancer {
	t.Helper()
	lb := &loadBalancer{addr: addr, code: http.StatusOK}
	lb.srv = &http.Server{Handler: http.HandlerFunc(lb.serve), ReadHeaderTimeout: 5 * time.Second}
	if err := lb.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.srv.Close() })
	return lb
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
	ln, err := net.Listen("tcp", lb.addr)
	if err != nil {
		return err
	}
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
// rely on: fail, slow down, cut off, restore.
func TestLoadBalancerStandIn(t *testing.T) {
	pp := &ports{t: t}
	port := pp.pick("127.0.0.31")
	pp.release()
	lb := newLoadBalancer(t, fmt.Sprintf("127.0.0.31:%d", port))
	client := &http.Client{Timeout: 300 * time.Millisecond}
	get := func() (int, error) {
		resp, err := client.Get("http://" + lb.addr + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	steps := []struct {
		name    string
		do      func() error
		code    int
		wantErr bool
	}{
		{"up", func() error { return nil }, http.StatusOK, false},
		{"failed", func() error { lb.fail(); return nil }, http.StatusServiceUnavailable, false},
		{"slower than the client's timeout", func() error { lb.slow(2 * time.Second); return nil }, 0, true},
		{"restored", lb.restore, http.StatusOK, false},
		{"cut off", func() error { lb.cut(); return nil }, 0, true},
		{"restored after a cut", lb.restore, http.StatusOK, false},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		code, err := get()
		if (err != nil) != s.wantErr || code != s.code {
			t.Fatalf("%s: got %d, %v; want %d, error %v", s.name, code, err, s.code, s.wantErr)
		}
		var ne net.Error
		if s.wantErr && s.name == "slower than the client's timeout" && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("%s: want a timeout, got %v", s.name, err)
		}
	}
}
