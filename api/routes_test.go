package api

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// routeCase is what the test of every route knows about one route.
type routeCase struct {
	method, pattern string
	// path and body make a request that succeeds with status ok.
	path, body string
	ok         int
	check      func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder)
	// etcd: the route needs etcd (503 while it is away); the others keep
	// answering.
	etcd bool
	// invalidPath and invalidBody make a request that fails validation,
	// naming invalidField ("" path: the success path).
	invalidPath, invalidBody, invalidField string
	// staleKind and staleName: the object an If-Match on this route is
	// about (412 test).
	staleKind, staleName string
	// jsonBody: the route takes a JSON body (unknown fields, size);
	// rawBody: another body with a size limit.
	jsonBody, rawBody bool
	// local: the write changes what this server serves, not etcd; prep
	// readies the fixture for it.
	local bool
	prep  func(t *testing.T, f *fixture)
}

const (
	regionBody  = `{"name":"eu-west","vips":["192.0.2.11"],"location":{"lat":52.37,"lon":4.9},"check":{"type":"tcp","port":443},"capacity":100}`
	serviceBody = `{"name":"www.gslb.example","ttl":120,"policy":"failover","regions":[{"region":"eu-west","weight":1},{"region":"us-east","weight":1}]}`
)

// routeCases are the cases of every route; each GET route's HEAD twin
// follows it, with the GET's case without the check of the body (the
// order stays: routes with a prep last).
func routeCases() []routeCase {
	var cases []routeCase
	for _, tc := range routeCasesGetAndOthers() {
		cases = append(cases, tc)
		if tc.method == http.MethodGet {
			head := tc
			head.method, head.check = http.MethodHead, nil
			cases = append(cases, head)
		}
	}
	return cases
}

func routeCasesGetAndOthers() []routeCase {
	svc := "/v1/services/api.gslb.example"
	return []routeCase{
		{method: "GET", pattern: "/health/live", path: "/health/live", ok: 200},
		{method: "GET", pattern: "/health/ready", path: "/health/ready", ok: 200},
		{method: "GET", pattern: "/health/details", path: "/health/details", ok: 200,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				mustContain(t, rec.Body.String(), `"origin": "gslb.example."`, `"ready": true`, `"status": {`)
			}},
		{method: "GET", pattern: "/metrics", path: "/metrics", ok: 200,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				parser := expfmt.NewTextParser(model.UTF8Validation)
				fams, err := parser.TextToMetricFamilies(rec.Body)
				if err != nil || fams["meridian_test_total"] == nil {
					t.Fatalf("metrics: %v (%d families)", err, len(fams))
				}
			}},
		{method: "GET", pattern: "/v1/openapi.json", path: "/v1/openapi.json", ok: 200,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				mustContain(t, rec.Body.String(), `"openapi": "3.1.0"`)
			}},
		{method: "GET", pattern: "/v1/status", path: "/v1/status", ok: 200,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var st apitypes.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
					t.Fatal(err)
				}
				if len(st.Regions) != 4 || len(st.Services) != 2 || st.Revision == 0 || st.Snapshot == nil || st.Snapshot.Source != "etcd" {
					t.Fatalf("status %s", rec.Body)
				}
				if st.Regions[1].Name != "eu-west" || st.Regions[1].Answers != 7 || len(st.Regions[1].VIPs) != 2 || st.Regions[1].VIPs[0].Votes == nil {
					t.Errorf("region %+v", st.Regions[1])
				}
				if sh := st.Services[0].ExpectedShare["ipv4"]; sh.Regions["us-east"] != 0.5 {
					t.Errorf("shares %+v", st.Services[0].ExpectedShare)
				}
			}},
		{method: "GET", pattern: "/v1/explain", path: "/v1/explain?name=api.gslb.example&client=192.0.2.1&seed=1", ok: 200,
			invalidPath: "/v1/explain?client=192.0.2.1", invalidField: "name",
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				mustContain(t, rec.Body.String(), `"step": "weights"`)
			}},
		{method: "GET", pattern: "/v1/regions", path: "/v1/regions", ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var l apitypes.RegionList
				if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || len(l.Regions) != 4 || rec.Header().Get("ETag") != etag(l.Revision) {
					t.Fatalf("%s (%v) ETag %s", rec.Body, err, rec.Header().Get("ETag"))
				}
			}},
		{method: "GET", pattern: "/v1/regions/{name}", path: "/v1/regions/eu-west", ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				if rec.Header().Get("ETag") != etag(f.revOf("region", "eu-west")) {
					t.Errorf("ETag %s", rec.Header().Get("ETag"))
				}
				mustContain(t, rec.Body.String(), `"name": "eu-west"`)
			}},
		{method: "PUT", pattern: "/v1/regions/{name}", path: "/v1/regions/eu-west", body: regionBody, ok: 200, etcd: true,
			invalidBody: strings.Replace(regionBody, `"lat":52.37`, `"lat":200`, 1), invalidField: "location.lat",
			staleKind: "region", staleName: "eu-west", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				r, rev, err := f.st.GetRegion(etcdtest.Ctx(t), "eu-west")
				if err != nil || r.Capacity != 100 || rec.Header().Get("ETag") != etag(rev) {
					t.Fatalf("after PUT: %+v %v, ETag %s vs %d", r, err, rec.Header().Get("ETag"), rev)
				}
			}},
		{method: "DELETE", pattern: "/v1/regions/{name}", path: "/v1/regions/spare", ok: 200, etcd: true,
			invalidPath: "/v1/regions/spare?dry_run=maybe", invalidField: "dry_run", staleKind: "region", staleName: "spare",
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				if _, ok := f.keys()[f.st.Keys().Region("spare")]; ok {
					t.Fatal("region still there")
				}
			}},
		{method: "POST", pattern: "/v1/regions/{name}/drain", path: "/v1/regions/us-east/drain", ok: 200, etcd: true,
			invalidPath: "/v1/regions/us-east/drain?dry_run=maybe", invalidField: "dry_run", staleKind: "region", staleName: "us-east",
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				etcdtest.WaitUntil(t, "the snapshot drains us-east", func() bool {
					rs, _ := f.live.Current().RegionStatus("us-east")
					return rs.Drained
				})
			}},
		{method: "POST", pattern: "/v1/regions/{name}/undrain", path: "/v1/regions/us-east/undrain", ok: 200, etcd: true,
			invalidPath: "/v1/regions/us-east/undrain?dry_run=maybe", invalidField: "dry_run", staleKind: "region", staleName: "us-east"},
		{method: "GET", pattern: "/v1/services", path: "/v1/services", ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				mustContain(t, rec.Body.String(), `"name": "api.gslb.example."`, `"name": "www.gslb.example."`)
			}},
		{method: "GET", pattern: "/v1/services/{name}", path: svc, ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				if rec.Header().Get("ETag") != etag(f.revOf("service", "api.gslb.example.")) {
					t.Errorf("ETag %s", rec.Header().Get("ETag"))
				}
			}},
		{method: "PUT", pattern: "/v1/services/{name}", path: "/v1/services/www.gslb.example", body: serviceBody, ok: 200, etcd: true,
			invalidBody: strings.Replace(serviceBody, `"ttl":120`, `"ttl":0`, 1), invalidField: "ttl",
			staleKind: "service", staleName: "www.gslb.example.", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				s, _, err := f.st.GetService(etcdtest.Ctx(t), "www.gslb.example.")
				if err != nil || s.TTL != 120 || s.Name != "www.gslb.example." {
					t.Fatalf("after PUT: %+v %v", s, err)
				}
			}},
		{method: "POST", pattern: "/v1/services", path: "/v1/services", body: `{"services":[` + serviceBody + `]}`, ok: 200, etcd: true,
			invalidBody: `{"services":[` + serviceBody + `,` + strings.Replace(serviceBody, `"ttl":120`, `"ttl":0`, 1) + `]}`, invalidField: "services[1].ttl",
			jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var br apitypes.BatchResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &br); err != nil || len(br.Changes) != 1 || br.Counts.Created+br.Counts.Replaced+br.Counts.Unchanged != 1 {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
				s, _, err := f.st.GetService(etcdtest.Ctx(t), "www.gslb.example.")
				if err != nil || s.TTL != 120 {
					t.Fatalf("after POST: %+v %v", s, err)
				}
			}},
		{method: "DELETE", pattern: "/v1/services/{name}", path: "/v1/services/www.gslb.example.", ok: 200, etcd: true,
			invalidPath: "/v1/services/www.gslb.example.?dry_run=maybe", invalidField: "dry_run", staleKind: "service", staleName: "www.gslb.example."},
		{method: "GET", pattern: "/v1/services/{name}/weights", path: svc + "./weights", ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var wr apitypes.Weights
				if err := json.Unmarshal(rec.Body.Bytes(), &wr); err != nil || wr.Weights["us-east"] != 50 || wr.ExpectedShare["ipv4"].Regions["eu-west"] != 0.3 {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
			}},
		{method: "PUT", pattern: "/v1/services/{name}/weights", path: svc + "/weights", body: `{"weights":{"eu-west":100}}`, ok: 200, etcd: true,
			invalidBody: `{"weights":{"us-east":-5}}`, invalidField: "weights.us-east", staleKind: "service", staleName: "api.gslb.example.", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var ch apitypes.ChangeResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || ch.ExpectedShare["ipv4"].Regions["eu-west"] != 1 || ch.ExpectedShare["ipv4"].Regions["us-east"] != 0 {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
			}},
		{method: "PATCH", pattern: "/v1/services/{name}/weights", path: svc + "/weights", body: `{"weights":{"us-east":0,"eu-west":100,"ap-northeast":0}}`, ok: 200, etcd: true,
			invalidBody: `{"weights":{"nowhere":1}}`, invalidField: "weights.nowhere", staleKind: "service", staleName: "api.gslb.example.", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				etcdtest.WaitUntil(t, "the snapshot has the new weights", func() bool {
					v := f.live.Current().ServiceByName("api.gslb.example")
					sh, _ := f.live.Current().ExpectedShares(v, regions.QTypeA)
					return sh.Regions["eu-west"] == 1
				})
			}},
		{method: "GET", pattern: "/v1/latency", path: "/v1/latency", ok: 200, etcd: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var l apitypes.Latency
				if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
					t.Fatal(err)
				}
				want := []apitypes.LatencyRegion{{Name: "eu-west", Entries: 2, Known: true}, {Name: "us-east", Entries: 1, Known: true}}
				if l.Entries != 3 || l.Prefixes != 2 || !slices.Equal(l.Regions, want) || !l.Served || l.ServedID != l.ID || l.Created.IsZero() ||
					l.AgeSeconds < 0 || l.Bytes != len(testLatency) || len(l.SHA256) != 64 {
					t.Fatalf("%s", rec.Body)
				}
			}},
		{method: "PUT", pattern: "/v1/latency", path: "/v1/latency", body: "cidr,region,rtt_ms\n192.0.2.0/24,eu-west,10\n", ok: 200, etcd: true,
			invalidBody: "192.0.2.0/24,eu-west,10\nnonsense\n", invalidField: "body", rawBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				mustContain(t, rec.Body.String(), `"entries": 1`, `"entries_before": 3`, `"kind": "latency"`)
			}},
		{method: "GET", pattern: "/v1/shifts", path: "/v1/shifts", ok: 200, etcd: true, prep: withShift,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var l apitypes.ShiftList
				if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || len(l.Shifts) != 1 || l.Shifts[0].ID != "s1" || l.Shifts[0].State != regions.ShiftActive ||
					l.Shifts[0].ExpiresInSeconds <= 0 || l.Shifts[0].Does != "drain us-east from api.gslb.example." || rec.Header().Get("ETag") != etag(l.Revision) {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
			}},
		{method: "POST", pattern: "/v1/shifts", path: "/v1/shifts", body: `{"service":"api.gslb.example","drain":"eu-west","expires_in":"30m","reason":"maintenance"}`, ok: 201, etcd: true,
			invalidBody: `{"service":"api.gslb.example","drain":"eu-west","expires_in":"73h"}`, invalidField: "expires_in", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var ch apitypes.ShiftChange
				if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || ch.Shift == nil || ch.Shift.CreatedBy != "alice" || ch.Shift.Reason != "maintenance" ||
					rec.Header().Get("Location") != "/v1/shifts/"+ch.Name || ch.ServicesTotal != 1 || len(ch.Services) != 1 {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
				if s := ch.Services[0]; s.Service != "api.gslb.example." || s.Before["ipv4"].Regions["eu-west"] != 0.3 || s.After["ipv4"].Regions["eu-west"] != 0 {
					t.Fatalf("shares %+v", s)
				}
				if left := ch.Shift.Expires.Sub(ch.Shift.Created); left < 29*time.Minute || left > 31*time.Minute {
					t.Fatalf("expires %v after it was made", left)
				}
			}},
		{method: "GET", pattern: "/v1/shifts/{id}", path: "/v1/shifts/s1", ok: 200, etcd: true, prep: withShift,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				if rec.Header().Get("ETag") != etag(f.revOf("shift", "s1")) {
					t.Errorf("ETag %s", rec.Header().Get("ETag"))
				}
				mustContain(t, rec.Body.String(), `"id": "s1"`, `"state": "active"`)
			}},
		{method: "PATCH", pattern: "/v1/shifts/{id}", path: "/v1/shifts/s1", body: `{"expires_in":"2h"}`, ok: 200, etcd: true, prep: withShift,
			invalidBody: `{"expires":"2001-01-01T00:00:00Z"}`, invalidField: "expires", staleKind: "shift", staleName: "s1", jsonBody: true,
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				sh, _, err := f.st.GetShift(etcdtest.Ctx(t), "s1")
				if err != nil || time.Until(sh.Expires) < 119*time.Minute || !strings.Contains(rec.Body.String(), `"action": "extend"`) {
					t.Fatalf("%+v %v\n%s", sh, err, rec.Body)
				}
			}},
		{method: "DELETE", pattern: "/v1/shifts/{id}", path: "/v1/shifts/s1", ok: 200, etcd: true, prep: withShift,
			invalidPath: "/v1/shifts/s1?dry_run=maybe", invalidField: "dry_run", staleKind: "shift", staleName: "s1",
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var ch apitypes.ShiftChange
				if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || ch.Shift == nil || ch.Shift.State != regions.ShiftCancelled || ch.Shift.Ended.By != "alice" {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
				if s := ch.Services[0]; s.Before["ipv4"].Regions["us-east"] != 0 || s.After["ipv4"].Regions["us-east"] != 0.5 {
					t.Fatalf("shares %+v", s)
				}
			}},
		{method: "GET", pattern: "/v1/audit", path: "/v1/audit?limit=2", ok: 200, etcd: true,
			invalidPath: "/v1/audit?limit=0", invalidField: "limit",
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				var page apitypes.AuditPage
				if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.Records) != 2 || page.Next == "" || page.Records[0].Actor != "seed" {
					t.Fatalf("%s (%v)", rec.Body, err)
				}
			}},
		{method: "POST", pattern: "/v1/state/accept-empty", path: "/v1/state/accept-empty", ok: 200, local: true,
			invalidPath: "/v1/state/accept-empty?dry_run=maybe", invalidField: "dry_run",
			prep: func(t *testing.T, f *fixture) { f.refuseEmpty(t) },
			check: func(t *testing.T, f *fixture, rec *httptest.ResponseRecorder) {
				if f.live.Status().EmptyRefused != nil || len(f.live.Current().Services()) != 0 {
					t.Fatalf("the empty state is not served after %s", rec.Body)
				}
				// Nothing refused any more: 409, and nothing changes.
				problem(t, f.do(req{method: "POST", path: "/v1/state/accept-empty", token: adminSecret}), http.StatusConflict)
			}},
	}
}

// withShift gives the fixture the shift s1: us-east drained from
// api.gslb.example. for an hour, served.
func withShift(t *testing.T, f *fixture) {
	t.Helper()
	sh := &regions.Shift{ID: "s1", Service: "api.gslb.example.", Drain: "us-east", Expires: time.Now().Add(time.Hour)}
	if _, err := f.st.CreateShift(etcdtest.Ctx(t), sh, store.By("seed")); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitUntil(t, "the shift served", func() bool { return f.live.Current().State().Shifts["s1"] != nil })
}

func mustContain(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("lacks %q:\n%s", w, s)
		}
	}
}

// routeAccess finds what a route needs from the route table.
func routeAccess(t *testing.T, method, pattern string) access {
	t.Helper()
	for _, rt := range newAPIServer(Options{}).routes() {
		if rt.method == method && rt.pattern == pattern {
			return rt.access
		}
	}
	t.Fatalf("no route %s %s", method, pattern)
	return 0
}

// TestEveryRoute runs, for every route: success; 401 without a token and
// with a bad one; 403 with a read token on writes; a validation failure
// naming the field; 412 on a stale If-Match; an oversized body; an
// unknown field; a dry run. Every refused request leaves etcd unchanged.
func TestEveryRoute(t *testing.T) {
	cases := routeCases()
	// Every route of the router has a case.
	var routes []string
	if err := chi.Walk(NewRouter(Options{}).(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// The dashboard's files and its event stream, which never ends by
		// itself, have tests of their own (TestUI, TestEvents).
		if !isUIRoute(route) && route != "/v1/events" {
			routes = append(routes, method+" "+route)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, tc := range cases {
		covered = append(covered, tc.method+" "+tc.pattern)
	}
	slices.Sort(routes)
	slices.Sort(covered)
	if !slices.Equal(routes, covered) {
		t.Fatalf("routes\n%v\ncases\n%v", routes, covered)
	}

	for _, tc := range cases {
		t.Run(tc.method+" "+tc.pattern, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{maxBody: 4096, maxLatency: 4096})
			if tc.prep != nil {
				tc.prep(t, f)
			}
			acc := routeAccess(t, tc.method, tc.pattern)
			good := adminSecret
			if acc != accessWrite {
				good = readSecret
			}
			request := func(token, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
				return f.do(req{method: tc.method, path: path, body: body, token: token, hdr: hdr})
			}
			if acc != accessOpen {
				t.Run("401 without a token", func(t *testing.T) {
					f.unchanged(t, func() {
						rec := request("", tc.path, tc.body, nil)
						problem(t, rec, http.StatusUnauthorized)
						if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
							t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
						}
					})
				})
				t.Run("401 with a bad token", func(t *testing.T) {
					f.unchanged(t, func() { problem(t, request("not-a-token-0123456789", tc.path, tc.body, nil), http.StatusUnauthorized) })
				})
			}
			if acc == accessWrite {
				t.Run("403 with a read token", func(t *testing.T) {
					f.unchanged(t, func() { problem(t, request(readSecret, tc.path, tc.body, nil), http.StatusForbidden) })
				})
			}
			if tc.invalidField != "" {
				t.Run("validation", func(t *testing.T) {
					path, body := tc.invalidPath, tc.invalidBody
					if path == "" {
						path = tc.path
					}
					f.unchanged(t, func() {
						p := problem(t, request(good, path, body, nil), http.StatusBadRequest)
						if !namesField(p, tc.invalidField) {
							t.Errorf("the problem does not name %s: %+v", tc.invalidField, p)
						}
					})
				})
			}
			if tc.staleKind != "" {
				t.Run("412 on a stale If-Match", func(t *testing.T) {
					rev := f.revOf(tc.staleKind, tc.staleName)
					f.unchanged(t, func() {
						p := problem(t, request(good, tc.path, tc.body, map[string]string{"If-Match": etag(rev - 1)}), http.StatusPreconditionFailed)
						if p.CurrentRevision == nil || *p.CurrentRevision != rev {
							t.Errorf("current revision %v, want %d", p.CurrentRevision, rev)
						}
					})
				})
			}
			if tc.jsonBody || tc.rawBody {
				t.Run("oversized body", func(t *testing.T) {
					big := `{"name":"` + strings.Repeat("x", 5000) + `"}`
					if tc.rawBody {
						big = strings.Repeat("192.0.2.0/24,eu-west,10\n", 200)
					}
					f.unchanged(t, func() { problem(t, request(good, tc.path, big, nil), http.StatusRequestEntityTooLarge) })
				})
			}
			if tc.jsonBody {
				t.Run("unknown field", func(t *testing.T) {
					body := strings.TrimSuffix(tc.body, "}") + `,"colour":"red"}`
					f.unchanged(t, func() {
						p := problem(t, request(good, tc.path, body, nil), http.StatusBadRequest)
						if !namesField(p, "colour") {
							t.Errorf("the problem does not name the field: %+v", p)
						}
					})
				})
			}
			if acc == accessWrite {
				t.Run("dry run", func(t *testing.T) {
					sep := "?"
					if strings.Contains(tc.path, "?") {
						sep = "&"
					}
					f.unchanged(t, func() {
						rec := request(good, tc.path+sep+"dry_run=true", tc.body, nil)
						var ch apitypes.ChangeResponse
						if err := json.Unmarshal(rec.Body.Bytes(), &ch); rec.Code != http.StatusOK || err != nil || !ch.DryRun {
							t.Fatalf("%d %s", rec.Code, rec.Body)
						}
					})
				})
			}
			t.Run("success", func(t *testing.T) {
				before := f.keys()
				rec := request(good, tc.path, tc.body, nil)
				if rec.Code != tc.ok {
					t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.ok)
				}
				// The OpenAPI document's own keys are the specification's.
				if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && tc.pattern != "/v1/openapi.json" {
					checkStyle(t, rec.Body.Bytes())
				}
				if acc == accessWrite {
					var ch apitypes.ChangeResponse
					if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || ch.DryRun {
						t.Fatalf("%s (%v)", rec.Body, err)
					}
					wrote := len(f.keys()) != len(before) || !sameRevs(before, f.keys())
					if tc.local {
						wrote = !wrote // etcd must stay as it is; the server's state changed
					}
					if wrote != ch.Changed {
						t.Errorf("changed %v but etcd written %v", ch.Changed, wrote)
					}
				}
				if tc.check != nil {
					tc.check(t, f, rec)
				}
			})
		})
	}
}

func sameRevs(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRoutesWithEtcdStopped: with etcd gone, every route that needs it
// answers 503 with Retry-After within the write timeout, and the others
// (status, explain, health, metrics, accepting an empty state) keep
// answering from the snapshot. Routes with a prep come last in the list:
// they may change what the server serves.
func TestRoutesWithEtcdStopped(t *testing.T) {
	m := etcdtest.NewMember(t, "stopped")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	f := newFixture(t, fixtureOpts{client: etcdtest.Connect(t, m.ClientURL()), timeout: 300 * time.Millisecond})
	m.Stop()
	for _, tc := range routeCases() {
		t.Run(tc.method+" "+tc.pattern, func(t *testing.T) {
			token := adminSecret
			// A route that needs etcd fails before it reads what a
			// prep would write there.
			if tc.prep != nil && !tc.etcd {
				tc.prep(t, f)
			}
			done := make(chan *httptest.ResponseRecorder, 1)
			go func() { done <- f.do(req{method: tc.method, path: tc.path, body: tc.body, token: token}) }()
			var rec *httptest.ResponseRecorder
			select {
			case rec = <-done:
			case <-time.After(etcdtest.WaitLimit):
				t.Fatal("no answer with etcd stopped")
			}
			if !tc.etcd {
				if rec.Code != tc.ok {
					t.Fatalf("%d %s: a route that does not need etcd failed without it", rec.Code, rec.Body)
				}
				return
			}
			p := problem(t, rec, http.StatusServiceUnavailable)
			neutral(t, rec.Body.String(), f.prefix, strings.TrimPrefix(m.ClientURL(), "http://"))
			if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra <= 0 || p.RetryAfter != ra {
				t.Errorf("Retry-After %q, problem %+v", rec.Header().Get("Retry-After"), p)
			}
		})
	}
	// Each 503 is counted for its route.
	counts := f.counts()
	for _, tc := range routeCases() {
		if n := counts[tc.method+" "+tc.pattern+" 503"]; tc.etcd && n != 1 || !tc.etcd && n != 0 {
			t.Errorf("%s %s: %v answers 503 counted", tc.method, tc.pattern, n)
		}
	}
}

// TestRequestMetrics: every request is counted once by method, route
// pattern and code (refusals by the guard, a handler's 404, a path or
// method no route has), and timed by method and route.
func TestRequestMetrics(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	requests := []req{
		{method: "GET", path: "/v1/regions/eu-west", token: readSecret},
		{method: "GET", path: "/v1/regions/eu-west", token: readSecret},
		{method: "HEAD", path: "/v1/regions/eu-west", token: readSecret},
		{method: "GET", path: "/v1/regions/nowhere", token: readSecret},
		{method: "GET", path: "/v1/regions/eu-west"},
		{method: "POST", path: "/v1/regions/eu-west/drain", token: readSecret},
		{method: "POST", path: "/v1/regions/eu-west/drain?dry_run=true", token: adminSecret},
		{method: "GET", path: "/v1/nothing/here"},
		{method: "BREW", path: "/v1/regions"},
		{method: "DELETE", path: "/metrics"},
	}
	for _, r := range requests {
		f.do(r)
	}
	want := map[string]float64{
		"GET /v1/regions/{name} 200":        2,
		"HEAD /v1/regions/{name} 200":       1,
		"GET /v1/regions/{name} 404":        1,
		"GET /v1/regions/{name} 401":        1,
		"POST /v1/regions/{name}/drain 403": 1,
		"POST /v1/regions/{name}/drain 200": 1,
		"GET unmatched 404":                 1,
		"OTHER unmatched 405":               1,
		"DELETE unmatched 405":              1,
	}
	if got := f.counts(); !maps.Equal(got, want) {
		t.Errorf("requests counted\n%v\nwant\n%v", got, want)
	}
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	timed := map[string]uint64{}
	for _, fam := range fams {
		if fam.GetName() == "meridian_http_request_duration_seconds" {
			for _, m := range fam.GetMetric() {
				timed[labelValue(m, "method")+" "+labelValue(m, "route")] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if timed["GET /v1/regions/{name}"] != 4 || timed["POST /v1/regions/{name}/drain"] != 2 || timed["GET unmatched"] != 1 {
		t.Errorf("requests timed %v", timed)
	}
}

// TestHead: over HTTP, HEAD on every GET route answers GET's status,
// Content-Type and ETag, without a body.
func TestHead(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	for _, tc := range routeCasesGetAndOthers() {
		if tc.method != http.MethodGet || tc.prep != nil {
			continue
		}
		t.Run(tc.pattern, func(t *testing.T) {
			do := func(method string) (*http.Response, []byte) {
				r, err := http.NewRequest(method, srv.URL+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+readSecret)
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp, b
			}
			get, _ := do(http.MethodGet)
			head, body := do(http.MethodHead)
			if head.StatusCode != get.StatusCode || head.StatusCode != tc.ok || len(body) != 0 {
				t.Fatalf("HEAD %d with %d bytes, GET %d, want %d without a body", head.StatusCode, len(body), get.StatusCode, tc.ok)
			}
			for _, h := range []string{"Content-Type", "ETag"} {
				if head.Header.Get(h) != get.Header.Get(h) {
					t.Errorf("%s: HEAD %q, GET %q", h, head.Header.Get(h), get.Header.Get(h))
				}
			}
		})
	}
}
