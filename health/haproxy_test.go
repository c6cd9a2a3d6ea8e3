package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
)

// realHAProxy is an HAProxy process in front of one backend server: the
// frontend "www" (maxconn 300) and the stats page, both on loopback.
type realHAProxy struct {
	front, stats string // host:port
}

func startHAProxy(t *testing.T, backend string) *realHAProxy {
	bin := testtool.Need(t, "haproxy")
	ports := testport.Free(t, 2) // HAProxy binds them
	h := &realHAProxy{front: fmt.Sprintf("127.0.0.1:%d", ports[0]), stats: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg := testtool.HAProxy{Stats: h.stats, Front: h.front, Backend: backend, MaxConn: 300, Timeout: 10 * time.Second}.Config()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	exited := testtool.Start(t, cmd).Done()
	etcdtest.WaitUntil(t, "HAProxy's stats page", func() bool {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		resp, err := http.Get("http://" + h.stats + "/stats;csv")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}

// TestRealHAProxy: a prober reads a real HAProxy's stats: the sessions
// in use and the frontend's maxconn as load and capacity; a backend that
// answers its application's requests with 503 while its health endpoint
// still says ok (a bad deploy) takes the VIP out of the answers by
// passive health after fall checks, and it comes back after rise checks
// once the errors stop.
func TestRealHAProxy(t *testing.T) {
	var failing atomic.Bool
	release := make(chan struct{})
	var holding atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, "ok")
		case "/hold":
			holding.Add(1)
			defer holding.Add(-1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			if failing.Load() {
				http.Error(w, "bad deploy", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "hello")
		}
	}))
	t.Cleanup(backend.Close)
	hp := startHAProxy(t, backend.Listener.Addr().String())

	e := newEnv(t)
	interval := 200 * time.Millisecond
	check := regions.HealthCheck{Type: "http", Port: 1, Path: "/health", Interval: regions.Duration(interval), Timeout: regions.Duration(150 * time.Millisecond),
		Rise: 2, Fall: 3,
		Stats:   &regions.StatsSource{Type: "haproxy", URL: "http://" + hp.stats + "/stats;csv", Proxy: "www"},
		Passive: &regions.PassiveHealth{Window: regions.Duration(time.Second), MinRequests: 20, ErrorRatio: f(0.5)}}
	e.region("lb", check, map[string]string{"192.0.2.1": hp.front})
	e.region("other", fast("http"), map[string]string{"192.0.2.2": newLB(t).addr()})
	e.service("www.example.", "lb", "other")
	e.startProber(Config{ID: "p1"})
	e.allUp(1)
	e.waitAnswers("www.example.", "192.0.2.1")

	// Traffic through HAProxy, as clients would send it: one request
	// every 5 ms, at most for the test's wait limit.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: time.Second}
		deadline := time.Now().Add(etcdtest.WaitLimit)
		for i := 0; i < 20000 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
			if resp, err := client.Get("http://" + hp.front + "/app"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})

	t.Run("load and capacity", func(t *testing.T) {
		var held sync.WaitGroup
		for range 5 {
			held.Add(1)
			go func() {
				defer held.Done()
				if resp, err := http.Get("http://" + hp.front + "/hold"); err == nil {
					resp.Body.Close()
				}
			}()
		}
		etcdtest.WaitUntil(t, "5 requests held by the backend", func() bool { return holding.Load() == 5 })
		v := e.waitVIP("the held sessions read as load", "lb", "p1", func(v *regions.VIPHealth) bool { return v.Load != nil && *v.Load >= 5 })
		if v.LoadSource != "haproxy" || v.Capacity == nil || *v.Capacity != 300 || v.LoadError != "" {
			t.Errorf("VIP %+v", v)
		}
		close(release)
		held.Wait()
		t.Logf("load %v of capacity %v", *v.Load, *v.Capacity)
	})
	t.Run("5xx take it out", func(t *testing.T) {
		start := time.Now()
		failing.Store(true)
		e.waitAnswers("www.example.", "192.0.2.2")
		took := time.Since(start)
		v := e.report("lb", "p1").VIPs[0]
		if v.Up || !v.Passive || v.Failures < 3 || !strings.HasPrefix(v.Reason, "passive: 5xx ") {
			t.Fatalf("VIP %+v, want down by passive health after fall (3) failures", v)
		}
		t.Logf("out of the answers %v after the backend turned to 503 (window 1s, fall 3 × interval %v): %s", took.Round(time.Millisecond), interval, v.Reason)
	})
	t.Run("back after rise", func(t *testing.T) {
		start := time.Now()
		failing.Store(false)
		e.waitAnswers("www.example.", "192.0.2.1")
		v := e.report("lb", "p1").VIPs[0]
		if !v.Up || v.Passive || v.Successes < 2 {
			t.Fatalf("VIP %+v, want up after rise (2) successes", v)
		}
		t.Logf("back in the answers %v after the errors stopped", time.Since(start).Round(time.Millisecond))
	})
}
