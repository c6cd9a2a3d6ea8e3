package api

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// TestShiftBodyFields: the body the handler reads has the fields the
// API documents (apitypes.ShiftRequest), by the same JSON names.
func TestShiftBodyFields(t *testing.T) {
	names := func(typ reflect.Type) []string {
		var out []string
		for i := range typ.NumField() {
			n, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	if a, b := names(reflect.TypeFor[shiftBody]()), names(reflect.TypeFor[apitypes.ShiftRequest]()); !slices.Equal(a, b) {
		t.Fatalf("read %v, documented %v", a, b)
	}
}

// TestShiftAPI drives the shift routes through the Go client: bad input
// names its field (404 for what does not exist) and changes nothing, the
// NODATA guard and force, a shift in status and explain, extend and
// cancel, and a cancelled shift refusing an extension.
func TestShiftAPI(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f, adminSecret)
	ctx := etcdtest.Ctx(t)

	refused := []struct {
		name   string
		req    apitypes.ShiftRequest
		status int
		field  string
	}{
		{"unknown service", apitypes.ShiftRequest{Service: "nope.gslb.example", Drain: "eu-west", ExpiresIn: "1h"}, 404, "service"},
		{"unknown region", apitypes.ShiftRequest{Drain: "atlantis", ExpiresIn: "1h"}, 404, "drain"},
		{"unknown weighed region", apitypes.ShiftRequest{Service: "www.gslb.example", Weights: map[string]uint32{"atlantis": 1}, ExpiresIn: "1h"}, 404, "weights.atlantis"},
		{"a region the service lacks", apitypes.ShiftRequest{Service: "www.gslb.example", Drain: "ap-northeast", ExpiresIn: "1h"}, 400, "drain"},
		{"no expiry", apitypes.ShiftRequest{Drain: "eu-west"}, 400, "expires_in"},
		{"expiry in the past", apitypes.ShiftRequest{Drain: "eu-west", Expires: "2001-01-01T00:00:00Z"}, 400, "expires"},
		{"expiry beyond 72 h", apitypes.ShiftRequest{Drain: "eu-west", Expires: time.Now().Add(73 * time.Hour).Format(time.RFC3339)}, 400, "expires"},
		{"a negative duration", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "-5m"}, 400, "expires_in"},
		{"not a duration", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "soon"}, 400, "expires_in"},
		{"both expiries", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "1h", Expires: time.Now().Add(time.Hour).Format(time.RFC3339)}, 400, "expires"},
		{"drain and weights", apitypes.ShiftRequest{Service: "www.gslb.example", Drain: "eu-west", Weights: map[string]uint32{"eu-west": 1}, ExpiresIn: "1h"}, 400, "weights"},
		{"weights of every service", apitypes.ShiftRequest{Weights: map[string]uint32{"eu-west": 1}, ExpiresIn: "1h"}, 400, "service"},
		{"an empty guard", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "1h", RevertIf: &regions.ShiftGuard{}}, 400, "revert_if"},
		{"a watermark without load steering", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "1h", RevertIf: &regions.ShiftGuard{HighWatermark: true}}, 400, "revert_if.high_watermark"},
		{"a reason too long", apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "1h", Reason: strings.Repeat("x", regions.MaxShiftReason+1)}, 400, "reason"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			f.unchanged(t, func() {
				_, err := c.CreateShift(ctx, tc.req)
				p := client.ProblemOf(err)
				if client.StatusCode(err) != tc.status || p == nil || !namesField(*p, tc.field) {
					t.Fatalf("%v, want %d naming %s", err, tc.status, tc.field)
				}
			})
		})
	}
	t.Run("a negative weight names its region", func(t *testing.T) {
		f.unchanged(t, func() {
			p := problem(t, f.do(req{method: "POST", path: "/v1/shifts", token: adminSecret,
				body: `{"service":"www.gslb.example","weights":{"eu-west":-1},"expires_in":"1h"}`}), http.StatusBadRequest)
			if !namesField(p, "weights.eu-west") {
				t.Fatalf("%+v", p)
			}
			p = problem(t, f.do(req{method: "POST", path: "/v1/shifts", token: adminSecret, hdr: map[string]string{"If-Match": `"5"`},
				body: `{"drain":"eu-west","expires_in":"1h"}`}), http.StatusBadRequest)
			if !namesField(p, "If-Match") {
				t.Fatalf("%+v", p)
			}
		})
	})
	t.Run("unknown shifts", func(t *testing.T) {
		f.unchanged(t, func() {
			if _, _, err := c.Shift(ctx, "0badc0de"); client.StatusCode(err) != 404 {
				t.Errorf("get: %v", err)
			}
			if _, err := c.ExtendShift(ctx, "0badc0de", apitypes.ShiftPatch{ExpiresIn: "1h"}); client.StatusCode(err) != 404 {
				t.Errorf("extend: %v", err)
			}
			if _, err := c.CancelShift(ctx, "0badc0de"); client.StatusCode(err) != 404 {
				t.Errorf("cancel: %v", err)
			}
		})
	})

	// us-east drained from every service: www keeps eu-west.
	all, err := c.CreateShift(ctx, apitypes.ShiftRequest{Drain: "us-east", ExpiresIn: "1h", Reason: "network work",
		RevertIf: &regions.ShiftGuard{Unhealthy: true}})
	if err != nil {
		t.Fatal(err)
	}
	if all.Shift == nil || all.Shift.Baseline["eu-west"] != 2 || all.Shift.Baseline["ap-northeast"] != 1 || len(all.Shift.Baseline) != 2 ||
		all.ServicesTotal != 2 || all.Services[0].Service != "api.gslb.example." || all.Services[1].After["ipv4"].Regions["eu-west"] != 1 {
		t.Fatalf("%+v", all)
	}
	// The previews below are made with the served state: the shift above
	// must be in it.
	etcdtest.WaitUntil(t, "the shift served", func() bool { return f.live.Current().State().Shifts[all.Name] != nil })
	t.Run("the NODATA guard", func(t *testing.T) {
		www := apitypes.ShiftRequest{Service: "www.gslb.example", Drain: "eu-west", ExpiresIn: "10m"}
		f.unchanged(t, func() {
			for _, opts := range [][]client.WriteOption{nil, {client.DryRun()}} {
				_, err := c.CreateShift(ctx, www, opts...)
				if p := client.ProblemOf(err); client.StatusCode(err) != http.StatusConflict || len(p.NoData) != 1 || p.NoData[0].Service != "www.gslb.example." {
					t.Fatalf("%v", err)
				}
			}
		})
		ch, err := c.CreateShift(ctx, www, client.Force(), client.DryRun())
		if err != nil || !ch.DryRun || len(ch.NoData) != 1 || ch.Services[0].After["ipv4"].Basis != "every region is drained: NODATA" {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("status and explain show the shift", func(t *testing.T) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Shifts) != 1 || st.Shifts[0].ID != all.Name || st.Shifts[0].State != regions.ShiftActive || st.Shifts[0].Does != "drain us-east from every service" {
			t.Fatalf("shifts %+v", st.Shifts)
		}
		us := st.Services[1].Regions[0]
		if us.Region != "us-east" || us.Weight != 50 || us.Shift == nil || us.Shift.ID != all.Name || us.Shift.Weight != 0 {
			t.Fatalf("www's us-east %+v", us)
		}
		ex, err := c.Explain(ctx, client.ExplainRequest{Name: "www.gslb.example"})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, step := range ex.Explanation.Steps {
			for _, cand := range step.Candidates {
				if cand.Region == "us-east" && cand.Shift != nil && cand.Shift.ID == all.Name && strings.HasPrefix(cand.Note, "drained by shift "+all.Name+" until ") {
					found = true
				}
			}
		}
		if !found || ex.Explanation.Decision.Region != "eu-west" {
			t.Fatalf("explain: %+v", ex.Explanation)
		}
	})
	t.Run("extend, list, cancel", func(t *testing.T) {
		reason := "longer work"
		ch, err := c.ExtendShift(ctx, all.Name, apitypes.ShiftPatch{ExpiresIn: "3h", Reason: &reason})
		if err != nil || ch.Action != "extend" || ch.Shift.Reason != reason || ch.Shift.ExpiresInSeconds < 3*3600-60 || len(ch.Services) != 0 {
			t.Fatalf("%+v %v", ch, err)
		}
		l, err := c.Shifts(ctx)
		if err != nil || len(l.Shifts) != 1 || l.Shifts[0].Reason != reason {
			t.Fatalf("%+v %v", l, err)
		}
		_, etag, err := c.Shift(ctx, all.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CancelShift(ctx, all.Name, client.IfRevision(1)); client.StatusCode(err) != http.StatusPreconditionFailed {
			t.Fatalf("a stale If-Match: %v", err)
		}
		ch, err = c.CancelShift(ctx, all.Name, client.IfMatch(etag))
		if err != nil || ch.Action != "cancel" || ch.Shift.State != regions.ShiftCancelled || ch.Shift.ExpiresInSeconds != 0 || ch.ServicesTotal != 2 {
			t.Fatalf("%+v %v", ch, err)
		}
		f.unchanged(t, func() {
			if ch, err := c.CancelShift(ctx, all.Name); err != nil || ch.Changed {
				t.Fatalf("cancel again: %+v %v", ch, err)
			}
			_, err := c.ExtendShift(ctx, all.Name, apitypes.ShiftPatch{ExpiresIn: "1h"})
			if p := client.ProblemOf(err); client.StatusCode(err) != http.StatusConflict || p.Title != "shift ended" {
				t.Fatalf("extend a cancelled shift: %v", err)
			}
		})
	})
	t.Run("a watermark guard on a service that steers by load", func(t *testing.T) {
		req := apitypes.ShiftRequest{Service: "api.gslb.example", Drain: "eu-west", ExpiresIn: "1h", RevertIf: &regions.ShiftGuard{HighWatermark: true}}
		f.unchanged(t, func() {
			if _, err := c.CreateShift(ctx, req, client.DryRun()); client.StatusCode(err) != http.StatusBadRequest {
				t.Fatalf("api steers by nothing yet: %v", err)
			}
		})
		svc := *testServices()[0]
		svc.Load = &regions.LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9}
		if _, err := f.st.PutService(ctx, &svc, store.Always, store.By("seed")); err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "the load steering served", func() bool {
			s := f.live.Current().State().Services[svc.Name]
			return s != nil && s.Load != nil
		})
		ch, err := c.CreateShift(ctx, req, client.DryRun())
		if err != nil || !ch.DryRun || ch.Shift == nil || ch.Shift.RevertIf == nil || !ch.Shift.RevertIf.HighWatermark {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("a read token may not shift", func(t *testing.T) {
		ro := newClient(t, f, readSecret)
		if _, err := ro.CreateShift(ctx, apitypes.ShiftRequest{Drain: "eu-west", ExpiresIn: "1h"}); client.StatusCode(err) != http.StatusForbidden {
			t.Fatalf("%v", err)
		}
		if _, err := ro.Shifts(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
