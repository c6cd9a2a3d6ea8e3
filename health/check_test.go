package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
)

var testVIP = netip.MustParseAddr("192.0.2.1")

// runCheck compiles c for testVIP mapped to addr and runs it once,
// failing the test if it outlives a generous bound.
func runCheck(t *testing.T, c regions.HealthCheck, addr string) Result {
	t.Helper()
	c.Address = map[netip.Addr]string{testVIP: addr}
	if err := (&regions.Region{Name: "r", VIPs: []netip.Addr{testVIP}, Check: c}).Validate(); err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	ch := newChecker(newSpec(c, testVIP), d.DialContext, "meridian-prober/test")
	return within(t, func() Result { return ch.run(context.Background()) })
}

// within runs f, failing the test if it outlives by far the timeout that
// bounds every check and stats read.
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("a check or read outlived its timeout by far")
		var zero T
		return zero
	}
}

func TestHTTPCheck(t *testing.T) {
	big := strings.Repeat("x", regions.MaxCheckBody) + "needle"
	mux := http.NewServeMux()
	var host atomic.Value
	host.Store("")
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","load":12.5,"capacity":100}`))
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"load":1}`)) })
	mux.HandleFunc("/bad-load", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Write([]byte(`{"load":-1,"capacity":"many"}`))
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/down", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(big)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	check := func(path string, edit func(*regions.HealthCheck)) regions.HealthCheck {
		c := regions.HealthCheck{Type: "http", Port: 80, Path: path, Timeout: regions.Duration(2 * time.Second)}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	f := func(x float64) *float64 { return &x }
	cases := []struct {
		name           string
		check          regions.HealthCheck
		ok             bool
		reason         string
		load, capacity *float64
	}{
		{"up with load", check("/ok", nil), true, "", f(12.5), f(100)},
		{"not JSON: no load", check("/plain", nil), true, "", nil, nil},
		{"bad load values", check("/bad-load", nil), true, "", nil, nil},
		{"503", check("/down", nil), false, "status 503, want 200-399", nil, nil},
		{"503 expected", check("/down", func(c *regions.HealthCheck) { c.Expect = regions.StatusRanges{{Lo: 503, Hi: 503}} }), true, "", nil, nil},
		{"redirect judged, not followed", check("/moved", nil), true, "", nil, nil},
		{"redirect not expected", check("/moved", func(c *regions.HealthCheck) { c.Expect = regions.StatusRanges{{Lo: 200, Hi: 299}} }), false, "status 302, want 200-299", nil, nil},
		{"404", check("/nope", nil), false, "status 404", nil, nil},
		{"body found", check("/ok", func(c *regions.HealthCheck) { c.Body = `"status":"ok"` }), true, "", f(12.5), f(100)},
		{"body missing", check("/ok", func(c *regions.HealthCheck) { c.Body = "ready" }), false, `body: no "ready" in the first`, nil, nil},
		{"body beyond the bounded read", check("/big", func(c *regions.HealthCheck) { c.Body = "needle" }), false, "in the first 65536 bytes", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCheck(t, tc.check, addr)
			if r.OK != tc.ok || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("ok %t reason %q, want %t %q", r.OK, r.Reason, tc.ok, tc.reason)
			}
			if r.RTT <= 0 {
				t.Errorf("RTT %v", r.RTT)
			}
			if !sameNumber(r.Load, tc.load) || !sameNumber(r.Capacity, tc.capacity) {
				t.Errorf("load %v capacity %v", r.Load, r.Capacity)
			}
		})
	}
	t.Run("host header", func(t *testing.T) {
		if r := runCheck(t, check("/ok", func(c *regions.HealthCheck) { c.Host = "eu.lb.example" }), addr); !r.OK {
			t.Fatal(r.Reason)
		}
		if h := host.Load(); h != "eu.lb.example" {
			t.Errorf("Host %q", h)
		}
	})
	t.Run("refused", func(t *testing.T) {
		closed := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens there
		r := runCheck(t, check("/", nil), closed)
		if r.OK || !strings.Contains(r.Reason, "refused") {
			t.Fatalf("ok %t reason %q", r.OK, r.Reason)
		}
	})
}

func TestHTTPSCheck(t *testing.T) {
	var sni atomic.Value
	sni.Store("")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c := regions.HealthCheck{Type: "https", Port: 443, Path: "/", Host: "eu.lb.example", Body: "ok", Timeout: regions.Duration(2 * time.Second)}

	t.Run("self-signed fails with verify", func(t *testing.T) {
		r := runCheck(t, c, addr)
		if r.OK || !strings.Contains(r.Reason, "certificate") {
			t.Fatalf("ok %t reason %q", r.OK, r.Reason)
		}
	})
	t.Run("self-signed passes with tls_skip_verify", func(t *testing.T) {
		c := c
		c.TLSSkipVerify = true
		if r := runCheck(t, c, addr); !r.OK {
			t.Fatal(r.Reason)
		}
		if got := sni.Load(); got != "eu.lb.example" {
			t.Errorf("SNI %q, want the check's host", got)
		}
	})
}

// TestCheckTimeouts: a check never runs longer than its timeout, whatever
// the target does, and the reason says where it got stuck.
func TestCheckTimeouts(t *testing.T) {
	// silent accepts connections and never says a word.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	hang := newLB(t)
	hang.set(lbHang)
	timeout := regions.Duration(150 * time.Millisecond)
	cases := []struct {
		name   string
		check  regions.HealthCheck
		addr   string
		reason string
	}{
		{"http: accepts and never answers", regions.HealthCheck{Type: "http", Port: 80, Timeout: timeout}, silent.Addr().String(), "timeout after 150ms waiting for the answer"},
		{"http: answer never comes", regions.HealthCheck{Type: "http", Port: 80, Timeout: timeout}, hang.addr(), "timeout after 150ms waiting for the answer"},
		{"https: handshake never comes", regions.HealthCheck{Type: "https", Port: 443, Timeout: timeout}, silent.Addr().String(), "timeout after 150ms in the TLS handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCheck(t, tc.check, tc.addr)
			if r.OK || r.Reason != tc.reason {
				t.Fatalf("ok %t reason %q, want %q", r.OK, r.Reason, tc.reason)
			}
		})
	}
}

func TestTCPCheck(t *testing.T) {
	tt := newTCPTarget(t)
	c := regions.HealthCheck{Type: "tcp", Port: 1, Timeout: regions.Duration(time.Second)}
	if r := runCheck(t, c, tt.addr()); !r.OK || r.RTT <= 0 {
		t.Fatalf("up: %+v", r)
	}
	tt.stop()
	if r := runCheck(t, c, tt.addr()); r.OK || !strings.Contains(r.Reason, "refused") {
		t.Fatalf("down: %+v", r)
	}
}

func TestVIPStateMachine(t *testing.T) {
	ok, bad := Result{OK: true, RTT: 10 * time.Millisecond}, Result{Reason: "boom"}
	type step struct {
		r       Result
		changed bool
		known   bool
		up      bool
	}
	cases := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"rises after rise successes", 2, 3, []step{{ok, false, false, false}, {ok, true, true, true}, {ok, false, true, true}}},
		{"falls after fall failures", 2, 3, []step{{ok, false, false, false}, {ok, true, true, true}, {bad, false, true, true}, {bad, false, true, true}, {bad, true, true, false}}},
		{"a new target's failures decide down", 2, 2, []step{{bad, false, false, false}, {bad, true, true, false}}},
		{"a success resets the failures", 1, 3, []step{{ok, true, true, true}, {bad, false, true, true}, {bad, false, true, true}, {ok, false, true, true}, {bad, false, true, true}, {bad, false, true, true}}},
		{"flapping never moves", 2, 2, []step{{ok, false, false, false}, {ok, true, true, true}, {bad, false, true, true}, {ok, false, true, true}, {bad, false, true, true}, {ok, false, true, true}}},
		{"comes back after rise", 2, 1, []step{{bad, true, true, false}, {ok, false, true, false}, {ok, true, true, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s vipState
			for i, st := range tc.steps {
				changed := s.observe(st.r, false, tc.rise, tc.fall, true, time.Now())
				if changed != st.changed || s.known != st.known || s.up != st.up {
					t.Fatalf("step %d: changed %t known %t up %t, want %t %t %t", i, changed, s.known, s.up, st.changed, st.known, st.up)
				}
				if (s.successes == 0) == (s.failures == 0) {
					t.Fatalf("step %d: successes %d failures %d: one of them must be 0", i, s.successes, s.failures)
				}
			}
		})
	}
	t.Run("rtt moving average", func(t *testing.T) {
		var s vipState
		s.observe(Result{OK: true, RTT: 100 * time.Millisecond}, false, 1, 1, true, time.Now())
		s.observe(Result{Reason: "x"}, false, 1, 1, true, time.Now()) // failures do not move it
		s.observe(Result{OK: true, RTT: 200 * time.Millisecond}, false, 1, 1, true, time.Now())
		if s.rtt != 125*time.Millisecond {
			t.Fatalf("rtt %v, want 125ms", s.rtt)
		}
		if s.reason != "x" {
			t.Errorf("last failure reason %q kept after recovery", s.reason)
		}
	})
}

// TestVIPVoteAfterDistrust: a down state decided on failures seen while
// the prober distrusted itself, or before it last regained trust, is not
// voted by a trusted report until fall failures seen since confirm it or
// the VIP rises; up states and confirmed downs are voted as before, and an
// untrusted report shows every decided state.
func TestVIPVoteAfterDistrust(t *testing.T) {
	const rise, fall = 2, 3
	// A step is one result seen trusted (ok, bad) or untrusted (OK, BAD),
	// or the prober regaining trust (regain).
	type step struct {
		ev    string
		voted bool // by a trusted report after the step
		up    bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"down seen trusted is voted", []step{{"bad", false, false}, {"bad", false, false}, {"bad", true, false}}},
		{"up is voted whatever the trust", []step{{"OK", false, false}, {"OK", true, true}, {"regain", true, true}}},
		{"down seen untrusted is not voted", []step{{"ok", false, false}, {"ok", true, true}, {"BAD", true, true}, {"BAD", true, true}, {"BAD", false, false}}},
		{"global outage and recovery", []step{
			{"ok", false, false}, {"ok", true, true},
			{"BAD", true, true}, {"BAD", true, true}, {"BAD", false, false}, {"BAD", false, false},
			{"OK", false, false}, {"regain", false, false}, // the first success restores trust; still down, not voted
			{"ok", true, true}, // risen
		}},
		{"still down after trust returns: confirmed by fall trusted failures", []step{
			{"BAD", false, false}, {"BAD", false, false}, {"BAD", false, false}, {"regain", false, false},
			{"bad", false, false}, {"bad", false, false}, {"bad", true, false}, {"bad", true, false},
		}},
		{"a confirmed down is forgotten when trust returns", []step{
			{"bad", false, false}, {"bad", false, false}, {"bad", true, false}, {"BAD", true, false}, {"regain", false, false},
			{"bad", false, false}, {"bad", false, false}, {"bad", true, false},
		}},
		{"failures before a success do not confirm", []step{
			{"BAD", false, false}, {"BAD", false, false}, {"BAD", false, false}, {"regain", false, false},
			{"bad", false, false}, {"bad", false, false}, {"ok", false, false}, {"bad", false, false}, {"bad", false, false}, {"bad", true, false},
		}},
		{"a confirmed down stays voted through a success short of rise", []step{
			{"bad", false, false}, {"bad", false, false}, {"bad", true, false}, {"ok", true, false}, {"ok", true, true},
		}},
		{"a later fall after rising needs its own confirmation", []step{
			{"bad", false, false}, {"bad", false, false}, {"bad", true, false}, {"ok", true, false}, {"ok", true, true},
			{"bad", true, true}, {"BAD", true, true}, {"BAD", false, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s vipState
			for i, st := range tc.steps {
				switch st.ev {
				case "regain":
					s.regainedTrust()
				case "ok", "OK":
					s.observe(Result{OK: true}, false, rise, fall, st.ev == "ok", time.Now())
				case "bad", "BAD":
					s.observe(Result{Reason: "x"}, false, rise, fall, st.ev == "bad", time.Now())
				default:
					t.Fatalf("step %d: unknown event %q", i, st.ev)
				}
				if s.voted(true) != st.voted || s.up != st.up {
					t.Fatalf("step %d (%s): voted %t up %t, want %t %t", i, st.ev, s.voted(true), s.up, st.voted, st.up)
				}
				if s.known && !s.voted(false) {
					t.Fatalf("step %d (%s): a decided state missing from an untrusted report", i, st.ev)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{ID: "p1", Region: "eu-west", Canary: Canary{URL: "https://canary.example/ping"}}, nil},
		{"ok tcp canary", Config{ID: "p1", Region: "eu-west", Canary: Canary{Address: "192.0.2.1:53"}}, nil},
		{"bad id and region", Config{ID: "a/b", Region: "EU"}, []string{"id: ", "region: "}},
		{"numbers", Config{ID: "p", Region: "r", Concurrency: -1, Refresh: -1, LeaseTTL: time.Second}, []string{"concurrency", "refresh", "lease_ttl"}},
		{"canary both", Config{ID: "p", Region: "r", Canary: Canary{URL: "http://x.example", Address: "x.example:1"}}, []string{"canary.url: a canary is a url or an address, not both"}},
		{"canary url", Config{ID: "p", Region: "r", Canary: Canary{URL: "ftp://x.example"}}, []string{"canary.url"}},
		{"canary address", Config{ID: "p", Region: "r", Canary: Canary{Address: "x.example"}}, []string{"canary.address"}},
		{"canary timing", Config{ID: "p", Region: "r", Canary: Canary{Address: "x.example:1", Interval: time.Millisecond, Timeout: -1}}, []string{"canary.interval", "canary.timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: lacks %q", err, w)
				}
			}
		})
	}
}
