package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
)

// freeAddrs returns n distinct loopback addresses for the stand-ins to
// listen on.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for _, p := range testport.Free(t, n) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return addrs
}

// TestDemoLB: the stand-ins answer their region's checks, and fail and
// restore on the control API, by region or by VIP.
func TestDemoLB(t *testing.T) {
	addrs := freeAddrs(t, 5)
	a4, a6, b, tcp, control := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	state := fmt.Sprintf(`regions:
  - name: a
    vips: [192.0.2.1, "2001:db8::1", 192.0.2.9]
    location: {lat: 1, lon: 2}
    check: {type: http, port: 80, path: /healthz, address: {192.0.2.1: "%s", "2001:db8::1": "%s"}}
  - name: b
    vips: [192.0.2.2]
    location: {lat: 1, lon: 2}
    check: {type: https, port: 443, tls_skip_verify: true, address: {192.0.2.2: "%s"}}
  - name: c
    vips: [192.0.2.3]
    location: {lat: 1, lon: 2}
    check: {type: tcp, port: 1, address: {192.0.2.3: "%s"}}
`, a4, a6, b, tcp)
	path := filepath.Join(t.TempDir(), "state.yaml")
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- run(ctx, path, control, slog.New(slog.DiscardHandler), func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo-lb did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := &http.Client{Timeout: 5 * time.Second}
	status := func(url string) int {
		resp, err := c.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tcpUp := func() bool {
		conn, err := net.DialTimeout("tcp", tcp, 5*time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}
	post := func(q string) (int, string) {
		resp, err := c.Post("http://"+control+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	steps := []struct {
		name          string
		post          string
		code          int
		a4, a6, bHTTP int
		tcp           bool
	}{
		{"all up", "", 0, 200, 200, 200, true},
		{"one VIP failed", "/fail?vip=192.0.2.1", 200, 503, 200, 200, true},
		{"region failed", "/fail?region=a", 200, 503, 503, 200, true},
		{"region restored", "/restore?region=a", 200, 200, 200, 200, true},
		{"tcp failed", "/fail?region=c", 200, 200, 200, 200, false},
		{"tcp restored", "/restore?vip=192.0.2.3", 200, 200, 200, 200, true},
		{"nothing named", "/fail", 400, 200, 200, 200, true},
		{"unknown region", "/fail?region=zz", 404, 200, 200, 200, true},
	}
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecure()}}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.post != "" {
				if code, body := post(st.post); code != st.code {
					t.Fatalf("POST %s: %d %s", st.post, code, body)
				}
			}
			if got := status("http://" + a4 + "/healthz"); got != st.a4 {
				t.Errorf("192.0.2.1: %d, want %d", got, st.a4)
			}
			if got := status("http://" + a6 + "/healthz"); got != st.a6 {
				t.Errorf("2001:db8::1: %d, want %d", got, st.a6)
			}
			resp, err := https.Get("https://" + b + "/")
			if err != nil || resp.StatusCode != st.bHTTP {
				t.Errorf("https stand-in: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			if tcpUp() != st.tcp {
				t.Errorf("tcp stand-in listening: %t, want %t", !st.tcp, st.tcp)
			}
		})
	}
	resp, err := c.Get("http://" + control + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(body), `"vip"`) != 4 || strings.Contains(string(body), "192.0.2.9") {
		t.Errorf("listing (the VIP without an address is not served):\n%s", body)
	}
}

func insecure() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } // the demo's self-signed certificate
