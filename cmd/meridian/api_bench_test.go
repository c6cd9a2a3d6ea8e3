package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// apiClient sends authenticated requests to a test server's API.
type apiClient struct {
	ts    *testServer
	token string
	c     *http.Client
}

func newAPIClient(tb testing.TB, ts *testServer) *apiClient {
	return &apiClient{ts: ts, token: strings.TrimSpace(mustReadFile(tb, filepath.Join(ts.dir, "admin.token"))),
		c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// do sends a request and returns the status and the ETag.
func (a *apiClient) do(tb testing.TB, method, path, body string, hdr map[string]string) (int, string) {
	req, err := http.NewRequest(method, a.ts.url()+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("ETag")
}

func percentiles(d []time.Duration) (p50, p99, maxd float64) {
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	return ms(d[len(d)/2]), ms(d[len(d)*99/100]), ms(d[len(d)-1])
}

// BenchmarkAPIWeightsPropagation measures how long a weight change made
// through the API takes to change the DNS answer of the server: from the
// start of PATCH /v1/services/{name}/weights to the first changed answer,
// over 100 changes (the answers are polled over UDP). It also reports the
// PATCH round trip alone. Run with -benchtime 1x; times in ms.
func BenchmarkAPIWeightsPropagation(b *testing.B) {
	ts := startAPIServer(b, true)
	api := newAPIClient(b, ts)
	c := &dns.Client{Timeout: time.Second}
	answer := func() string { return ts.soleA(c, "lb.example.org.") }
	targets := []struct{ body, want string }{
		{`{"weights":{"eu":0,"na":0,"as":1}}`, "192.0.2.30"},
		{`{"weights":{"eu":1,"na":0,"as":0}}`, "192.0.2.10"},
	}
	// as has no IPv6 VIP: moving everything there leaves AAAA NODATA.
	path := "/v1/services/lb.example.org/weights?force=true"
	deadline := time.Now().Add(30 * time.Second)
	for answer() != targets[1].want {
		if time.Now().After(deadline) {
			b.Fatal("the server never took the first change")
		}
		api.do(b, "PATCH", path, targets[1].body, nil)
		time.Sleep(50 * time.Millisecond)
	}
	b.ResetTimer()
	for range b.N {
		var total, patch []time.Duration
		for i := range 100 {
			tg := targets[i%2]
			start := time.Now()
			if code, _ := api.do(b, "PATCH", path, tg.body, nil); code != http.StatusOK {
				b.Fatalf("PATCH: %d", code)
			}
			patch = append(patch, time.Since(start))
			for answer() != tg.want {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("change %d not seen after 10s", i)
				}
			}
			total = append(total, time.Since(start))
		}
		p50, p99, mx := percentiles(total)
		b.ReportMetric(p50, "p50-ms")
		b.ReportMetric(p99, "p99-ms")
		b.ReportMetric(mx, "max-ms")
		p50, p99, _ = percentiles(patch)
		b.ReportMetric(p50, "patch-p50-ms")
		b.ReportMetric(p99, "patch-p99-ms")
	}
}

// BenchmarkAPIWritesCAS measures API write throughput with
// compare-and-swap: "sequential" chains PATCHes, each with the ETag of the
// one before as If-Match; "contended" has 4 clients read-modify-write one
// service with If-Match and retry on 412, and reports the conflicts per
// accepted write. Each write is validated, checked against the regions
// it names and audited in one etcd transaction.
func BenchmarkAPIWritesCAS(b *testing.B) {
	ts := startAPIServer(b, true)
	api := newAPIClient(b, ts)
	path := "/v1/services/lb.example.org/weights"
	bodies := []string{`{"weights":{"eu":1}}`, `{"weights":{"eu":2}}`}
	b.Run("sequential", func(b *testing.B) {
		_, tag := api.do(b, "GET", "/v1/services/lb.example.org", "", nil)
		start := time.Now()
		for i := range b.N {
			code, next := api.do(b, "PATCH", path, bodies[i%2], map[string]string{"If-Match": tag})
			if code != http.StatusOK {
				b.Fatalf("PATCH: %d", code)
			}
			tag = next
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
	})
	b.Run("contended", func(b *testing.B) {
		var done, conflicts atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := range 4 {
			wg.Go(func() {
				for {
					n := done.Add(1)
					if n > int64(b.N) {
						return
					}
					// A weight of its own, so that every write changes the service.
					body := fmt.Sprintf(`{"weights":{"eu":%d}}`, 10+n*4+int64(w))
					for attempt := 0; ; attempt++ {
						if attempt > 1000 {
							b.Error("a write did not get through in 1000 attempts")
							return
						}
						_, tag := api.do(b, "GET", "/v1/services/lb.example.org", "", nil)
						code, _ := api.do(b, "PATCH", path, body, map[string]string{"If-Match": tag})
						if code == http.StatusOK {
							break
						}
						if code != http.StatusPreconditionFailed {
							b.Errorf("PATCH: %d", code)
							return
						}
						conflicts.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		b.ReportMetric(float64(conflicts.Load())/float64(b.N), "412/write")
	})
}
