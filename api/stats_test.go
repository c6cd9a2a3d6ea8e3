package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
)

// TestStatsThroughTheAPI: a region's stats source and passive check, and
// a service's max_ejection, are written and read back through the API; a
// bad one is refused with a problem naming each field, and nothing is
// written.
func TestStatsThroughTheAPI(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	const stats = `"stats":{"type":"prometheus","url":"http://{host}:9901/stats/prometheus",` +
		`"load":{"metric":"envoy_http_downstream_rq_active","labels":{"envoy_http_conn_manager_prefix":"ingress_http"}},` +
		`"capacity":{"value":1000},"requests":{"metric":"envoy_http_downstream_rq_total"},` +
		`"errors":{"metric":"envoy_http_downstream_rq_xx","labels":{"envoy_response_code_class":"5"}}},` +
		`"passive":{"window":"10s","min_requests":100,"error_ratio":0.25}`
	good := strings.Replace(regionBody, `"port":443}`, `"port":443,`+stats+`}`, 1)
	t.Run("accepted", func(t *testing.T) {
		rec := f.do(req{method: "PUT", path: "/v1/regions/eu-west", body: good, token: adminSecret})
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		r, _, err := f.st.GetRegion(etcdtest.Ctx(t), "eu-west")
		if err != nil || r.Check.Stats == nil || r.Check.Stats.Errors.Labels["envoy_response_code_class"] != "5" || *r.Check.Passive.ErrorRatio != 0.25 {
			t.Fatalf("stored %+v (%v)", r.Check, err)
		}
		rec = f.do(req{method: "GET", path: "/v1/regions/eu-west", token: adminSecret})
		mustContain(t, rec.Body.String(), `"url": "http://{host}:9901/stats/prometheus"`, `"error_ratio": 0.25`)
	})
	cases := []struct {
		name, path, body string
		fields           []string
	}{
		{"a ratio outside 0-1, a bad URL, an unknown type", "/v1/regions/eu-west",
			strings.NewReplacer(`"error_ratio":0.25`, `"error_ratio":1.5`, `"url":"http://{host}:9901/stats/prometheus"`, `"url":"ftp://lb/stats"`).Replace(good),
			[]string{"check.passive.error_ratio", "check.stats.url"}},
		{"an unknown stats type", "/v1/regions/eu-west", strings.Replace(good, `"type":"prometheus"`, `"type":"nginx"`, 1), []string{"check.stats.type"}},
		{"a metric name missing", "/v1/regions/eu-west", strings.Replace(good, `"metric":"envoy_http_downstream_rq_total"`, `"labels":{"x":"y"}`, 1),
			[]string{"check.stats.requests.metric"}},
		{"max_ejection above 1", "/v1/services/www.gslb.example", strings.Replace(serviceBody, `"ttl":120`, `"ttl":120,"max_ejection":1.5`, 1), []string{"max_ejection"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.unchanged(t, func() {
				p := problem(t, f.do(req{method: "PUT", path: tc.path, body: tc.body, token: adminSecret}), http.StatusBadRequest)
				for _, field := range tc.fields {
					if !namesField(p, field) {
						t.Errorf("the problem does not name %s: %+v", field, p)
					}
				}
			})
		})
	}
}
