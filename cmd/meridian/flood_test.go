package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions/store"
)

// setWeight changes a weight of lb.example.org through the API, on a
// connection of its own, and fails the test unless it is accepted.
func setWeight(t *testing.T, ts *testServer, region string, weight int) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(ts.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PATCH", ts.url()+"/v1/services/lb.example.org/weights",
		strings.NewReader(fmt.Sprintf(`{"weights":{%q:%d}}`, region, weight)))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: etcdtest.WaitLimit}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH weights: %d %s", resp.StatusCode, body)
	}
}

// waitStateFile waits until the server's state file holds weight for
// region in lb.example.org.
func waitStateFile(t *testing.T, ts *testServer, region string, weight uint32) {
	t.Helper()
	etcdtest.WaitUntil(t, fmt.Sprintf("the state file has %s=%d", region, weight), func() bool {
		saved, err := store.LoadState(filepath.Join(ts.dir, "data", "state.json"))
		if err != nil {
			return false
		}
		svc := saved.State.Services["lb.example.org."]
		if svc == nil {
			return false
		}
		for _, sr := range svc.Regions {
			if sr.Region == region {
				return sr.Weight == weight
			}
		}
		return false
	})
}

// bootstrapped: the server serves the steering state, bootstrapped into
// etcd.
func bootstrapped(st map[string]any) bool {
	svcs, _ := jsonPath(st, "snapshot", "services").(float64)
	return jsonPath(st, "etcd", "up") == true && jsonPath(st, "snapshot", "source") == "etcd" && svcs == 2
}

// checkDNS: the server answers over UDP and TCP.
func checkDNS(t *testing.T, ts *testServer) {
	t.Helper()
	checkEurope(t, ts)
	r := query(t, "tcp", ts.DNSTCP[0].String(), "geo.example.org.", dns.TypeA, ecsEurope)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Fatalf("geo answer over TCP %v", r)
	}
}

// TestServerOutlastsHTTPFlood holds three times as many HTTP connections
// as the server takes, half idle after a request, half sending their
// header slowly, with timeouts too long to reap any: the server holds at
// most its limit, and DNS over UDP and TCP, the API (a read and a write)
// and the state file go on working.
func TestServerOutlastsHTTPFlood(t *testing.T) {
	const max = 64
	ts := startServerWith(t, serverSetup{files: steeringFiles(t), extra: steeringConfig + apiConfig + fmt.Sprintf(`http:
  max_connections: %d
  read_header_timeout: 5m
  read_timeout: 5m
  write_timeout: 5m
  idle_timeout: 5m
`, max)})
	waitStatus(t, ts, "the state comes from etcd", bootstrapped)

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 3 * max {
		c, err := net.Dial("tcp", ts.HTTP.String())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
		if i%2 == 1 {
			// Slowloris: a header begun and never finished.
			if _, err := io.WriteString(c, "GET /health/live HTTP/1.1\r\nHost: meridian\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Keep-alive: one request, then idle.
		if _, err := io.WriteString(c, "GET /health/live HTTP/1.1\r\nHost: meridian\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	checkDNS(t, ts)
	setWeight(t, ts, "eu", 37)
	waitStateFile(t, ts, "eu", 37)
	waitShares(t, ts, "lb.example.org.", map[string]float64{"eu": 37.0 / 39, "na": 1.0 / 39, "as": 1.0 / 39})

	var details struct {
		HTTP struct {
			Open    int    `json:"open"`
			Max     int    `json:"max"`
			Evicted uint64 `json:"evicted"`
		} `json:"http"`
	}
	getJSON(t, ts.url()+"/health/details", &details)
	if h := details.HTTP; h.Max != max || h.Open > max+1 || h.Evicted < 2*max {
		t.Errorf("HTTP connections %+v: want at most %d open and the %d over it closed", h, max+1, 2*max)
	}
	if v := metric(t, ts, "meridian_http_connections_evicted_total"); v < 2*max {
		t.Errorf("meridian_http_connections_evicted_total %v", v)
	}
	// What the kernel says: descriptors of this process on connections
	// to the HTTP port (the test's own ends are on other ports).
	n := acceptedFDs(t, ts.HTTP.(*net.TCPAddr).Port)
	t.Logf("the server holds %d descriptors of HTTP connections; the test holds %d connections", n, len(held))
	if n > max+1 {
		t.Errorf("the server holds %d descriptors of HTTP connections, want at most %d", n, max+1)
	}
}

// acceptedFDs counts this process's descriptors of TCP connections
// accepted on port: sockets whose local port it is, not listening.
func acceptedFDs(t *testing.T, port int) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] == "0A" { // 0A: LISTEN
				continue
			}
			if _, p, ok := strings.Cut(f[1], ":"); ok && p == fmt.Sprintf("%04X", port) {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && inodes[target] {
			n++
		}
	}
	return n
}

// TestServerEmbeddedEtcdDies: the embedded etcd's process ends (killed
// here; etcd itself ends it when it cannot write or purge its WAL): DNS
// goes on from the last snapshot, the status says so, and the member is
// started again, after which writes go through.
func TestServerEmbeddedEtcdDies(t *testing.T) {
	ts := startServerWith(t, serverSetup{files: steeringFiles(t), extra: steeringConfig + apiConfig})
	st := waitStatus(t, ts, "the embedded etcd runs and the state comes from it", func(st map[string]any) bool {
		pid, _ := jsonPath(st, "etcd", "member", "pid").(float64)
		return bootstrapped(st) && pid > 0
	})
	pid := int(jsonPath(st, "etcd", "member", "pid").(float64))
	if pid == os.Getpid() {
		t.Fatal("the member runs in the server's process")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ts, "the member is reported down", func(st map[string]any) bool {
		reason, _ := jsonPath(st, "etcd", "member", "last_error").(string)
		return jsonPath(st, "etcd", "member", "running") == false && strings.Contains(reason, "killed")
	})
	checkDNS(t, ts)
	if v := metric(t, ts, "meridian_etcd_embedded_failures_total"); v != 1 {
		t.Errorf("meridian_etcd_embedded_failures_total %v", v)
	}

	waitStatus(t, ts, "the member runs again", func(st map[string]any) bool {
		again, _ := jsonPath(st, "etcd", "member", "pid").(float64)
		return jsonPath(st, "etcd", "up") == true && jsonPath(st, "etcd", "member", "running") == true && int(again) != pid
	})
	setWeight(t, ts, "as", 5)
	waitStateFile(t, ts, "as", 5)
	checkDNS(t, ts)
	select {
	case code := <-ts.done:
		t.Fatalf("the server exited with %d", code)
	default:
	}
}
