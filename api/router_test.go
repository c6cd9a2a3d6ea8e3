package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/regions"
)

func testSnapshot() *regions.Snapshot {
	st := regions.NewState()
	st.Revision = 42
	for name, addr := range map[string]string{"eu": "192.0.2.10", "na": "192.0.2.20"} {
		st.Regions[name] = &regions.Region{Name: name, VIPs: []netip.Addr{netip.MustParseAddr(addr)}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
	}
	st.Services["www.example.org."] = &regions.Service{Name: "www.example.org.", TTL: 60, Policy: regions.PolicyFailover,
		Regions: []regions.ServiceRegion{{Region: "na", Weight: 1}, {Region: "eu", Weight: 1}}}
	return regions.BuildSnapshot(st, nil, regions.SnapshotOptions{})
}

func TestRouter(t *testing.T) {
	snap := testSnapshot()
	var notReady error
	h := NewRouter(Options{
		Ready:    func() error { return notReady },
		Status:   func() ServerStatus { return ServerStatus{Source: "etcd"} },
		Snapshot: func() *regions.Snapshot { return snap },
	})
	cases := []struct {
		name, path  string
		status      int
		contentType string
		body        string
	}{
		{"live", "/health/live", 200, "application/json", `"live"`},
		{"ready", "/health/ready", 200, "application/json", `"ready"`},
		{"status", "/v1/status", 200, "application/json", `"revision": 42`},
		{"status lists the services", "/v1/status", 200, "application/json", `"name": "www.example.org."`},
		{"status without the services", "/v1/status?services=false", 200, "application/json", `"services": []`},
		{"status bad services", "/v1/status?services=maybe", 400, "application/problem+json", `"field":"services"`},
		{"explain", "/v1/explain?name=www.example.org&client=198.51.100.7", 200, "application/json", `"region": "na"`},
		{"explain AAAA without addresses", "/v1/explain?name=www.example.org&client=2001:db8::1&type=AAAA", 200, "application/json", `"kind": "nodata"`},
		{"explain without name", "/v1/explain?client=192.0.2.1", 400, "application/problem+json", `"field":"name"`},
		{"explain bad client", "/v1/explain?name=www.example.org&client=nope", 400, "application/problem+json", `"field":"client"`},
		{"explain bad type", "/v1/explain?name=www.example.org&type=MX", 400, "application/problem+json", `"field":"type"`},
		{"explain bad seed", "/v1/explain?name=www.example.org&seed=-1", 400, "application/problem+json", `"field":"seed"`},
		{"explain unknown service", "/v1/explain?name=nope.example.org", 404, "application/problem+json", `nope.example.org. is not a service`},
		{"unknown path", "/v1/nothing", 404, "application/problem+json", `no such endpoint`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.RemoteAddr = "192.0.2.99:1234"
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.contentType || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d %s\n%s\nwant %d %s containing %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.status, tc.contentType, tc.body)
			}
			if strings.HasPrefix(tc.contentType, "application/problem") {
				var p Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tc.status || p.Title == "" {
					t.Errorf("problem %+v (%v)", p, err)
				}
			}
		})
	}
	t.Run("not ready", func(t *testing.T) {
		notReady = errors.New("no regions snapshot yet")
		defer func() { notReady = nil }()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health/ready", nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no regions snapshot yet") {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("explain: client is the ECS subnet, resolver the packet's source", func(t *testing.T) {
		for _, c := range []struct{ query, want string }{
			{"client=193.0.0.77&resolver=198.51.100.1", `"subnet": "193.0.0.77/32",
    "use": "used",`},
			{"client=193.0.0.77&resolver=198.51.100.1", `"client": "193.0.0.0/24"`},
			{"client=193.0.0.77/20", `"subnet": "193.0.0.0/20"`},
			{"client=::ffff:193.0.0.0/120", `"client": "193.0.0.0/24"`},
			{"client=10.1.2.0/24&resolver=198.51.100.1", `"client": "198.51.100.1/32"`},
			{"client=10.1.2.0/24&resolver=198.51.100.1", `"use": "unusable",
    "scope": 24`},
			{"client=0.0.0.0/0&resolver=198.51.100.1", `"use": "not-tailored"`},
			{"resolver=::ffff:198.51.100.1", `"resolver": "198.51.100.1"`},
		} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/explain?name=www.example.org&"+c.query, nil)
			req.RemoteAddr = "203.0.113.5:999"
			h.ServeHTTP(rec, req)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s: %d, want %s in\n%s", c.query, rec.Code, c.want, rec.Body)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/explain?name=www.example.org&resolver=192.0.2.0/24", nil))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"field":"resolver"`) {
			t.Errorf("bad resolver: %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("explain follows CNAMEs with Follow", func(t *testing.T) {
		h := NewRouter(Options{
			Snapshot: func() *regions.Snapshot { return snap },
			Follow: func(name string) (*regions.Snapshot, *regions.ServiceView, []string, error) {
				switch name {
				case "docs.example.org.":
					return snap, snap.ServiceByName("www.example.org."), []string{"docs.example.org.\t300\tIN\tCNAME\twww.example.org."}, nil
				case "bad.":
					return snap, nil, nil, errors.New("cannot follow")
				}
				return snap, nil, []string{"x.example.org.\t300\tIN\tCNAME\tnope.example.org."}, nil
			},
		})
		for _, c := range []struct {
			name   string
			status int
			want   string
		}{
			{"docs.example.org", 200, `"service": "www.example.org."`},
			{"docs.example.org", 200, `"cnames": [`},
			{"x.example.org", 404, `nor does its CNAME chain`},
			{"bad.", 400, `cannot follow`},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/explain?name="+c.name, nil))
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s: %d %s, want %d with %s", c.name, rec.Code, rec.Body, c.status, c.want)
			}
		}
	})
	t.Run("explain uses the caller's address", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/v1/explain?name=www.example.org", nil)
		req.RemoteAddr = "203.0.113.5:999"
		h.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"client": "203.0.113.5/32"`) {
			t.Errorf("%s", rec.Body)
		}
	})
}
