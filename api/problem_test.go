package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
)

// neutral fails the test when a problem document shows what only the
// server should know: an etcd key (its prefix), etcd's address, gRPC's
// or etcd's own error texts.
func neutral(t *testing.T, body string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, "rpc error", "etcdserver", "dial tcp", "transport:") {
		if s != "" && strings.Contains(body, s) {
			t.Errorf("the answer shows %q:\n%s", s, body)
		}
	}
}

// TestProblemsNeutral: what etcd says about a failed request (its keys,
// its address, its errors) reaches the server's log, not the client: a
// value that does not decode is a 500 that names no key, a failed
// precondition names the object as the client knows it, etcd gone is a
// 503 that names no address.
func TestProblemsNeutral(t *testing.T) {
	m := etcdtest.NewMember(t, "neutral")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	var logs testlog.Buffer
	f := newFixture(t, fixtureOpts{client: etcdtest.Connect(t, m.ClientURL()), timeout: 300 * time.Millisecond, logs: &logs})
	u, err := url.Parse(m.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{f.prefix, u.Host}

	if _, err := f.c.Put(etcdtest.Ctx(t), f.prefix+"regions/broken", "{not json"); err != nil {
		t.Fatal(err)
	}
	rec := f.do(req{method: "GET", path: "/v1/regions/broken", token: adminSecret})
	p := problem(t, rec, http.StatusInternalServerError)
	neutral(t, rec.Body.String(), secrets...)
	if p.Detail != internalDetail {
		t.Errorf("500 detail %q, want %q", p.Detail, internalDetail)
	}
	if !strings.Contains(logs.String(), f.prefix+"regions/broken") {
		t.Errorf("the log does not name the key that failed:\n%s", logs.String())
	}

	rec = f.do(req{method: "POST", path: "/v1/regions/eu-west/drain", token: adminSecret, hdr: map[string]string{"If-Match": `"1"`}})
	p = problem(t, rec, http.StatusPreconditionFailed)
	neutral(t, rec.Body.String(), secrets...)
	if !strings.HasPrefix(p.Detail, `region "eu-west": revision conflict: current revision is `) {
		t.Errorf("412 detail %q", p.Detail)
	}

	m.Stop()
	rec = f.do(req{method: "PATCH", path: "/v1/services/api.gslb.example/weights", body: `{"weights":{"us-east":1}}`, token: adminSecret})
	problem(t, rec, http.StatusServiceUnavailable)
	neutral(t, rec.Body.String(), secrets...)
	if !strings.Contains(logs.String(), "etcd did not answer in time") {
		t.Errorf("the log does not hold the 503's cause:\n%s", logs.String())
	}
}
