package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
)

// newClient serves f's API over loopback and returns a client of it with
// token that refuses any field its types lack.
func newClient(t *testing.T, f *fixture, token string) *client.Client {
	t.Helper()
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.WithToken(token), client.WithStrictDecoding())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientReads: every read of the client against the API's handlers,
// decoded strictly, so the client's types hold every field the server
// sends.
func TestClientReads(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f, readSecret)
	ctx := etcdtest.Ctx(t)
	seed := uint64(1)
	// A prober's vote, with every field a report carries, so that the
	// status holds votes to decode.
	lease, err := f.c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.st.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "eu-west", Started: now}, lease.ID); err != nil {
		t.Fatal(err)
	}
	load := 0.5
	rep := &regions.HealthReport{Region: "eu-west", Prober: "p1", ProberRegion: "eu-west", Trusted: true, Observed: now,
		VIPs: []regions.VIPHealth{{Addr: netip.MustParseAddr("192.0.2.10"), Up: false, Since: now, Failures: 3, Reason: "connection refused",
			RTT: regions.Duration(time.Millisecond), Load: &load, LoadObserved: now, LoadSource: "health"}}}
	if _, err := f.st.PutHealthReport(ctx, rep, lease.ID); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitUntil(t, "the vote in the snapshot", func() bool {
		rs, _ := f.live.Current().RegionStatus("eu-west")
		return len(rs.VIPs) > 0 && len(rs.VIPs[0].Votes) == 1
	})
	cases := []struct {
		name string
		call func() error
	}{
		{"live", func() error {
			h, err := c.Live(ctx)
			if err == nil && h.Status != "live" {
				return errors.New(h.Status)
			}
			return err
		}},
		{"ready", func() error {
			h, err := c.Ready(ctx)
			if err == nil && h.Status != "ready" {
				return errors.New(h.Status)
			}
			return err
		}},
		{"details", func() error {
			d, err := c.Details(ctx)
			if err == nil && (!d.Ready || len(d.Zones) != 1 || d.Status.Revision == 0) {
				return errors.New("incomplete details")
			}
			return err
		}},
		{"metrics", func() error {
			m, err := c.Metrics(ctx)
			if err == nil && !strings.Contains(string(m), "meridian_test_total") {
				return errors.New("no test counter")
			}
			return err
		}},
		{"openapi", func() error {
			doc, err := c.OpenAPI(ctx)
			if err == nil && !strings.Contains(string(doc), `"openapi": "3.1.0"`) {
				return errors.New("not the document")
			}
			return err
		}},
		{"status", func() error {
			st, err := c.Status(ctx)
			if err == nil && (len(st.Regions) != 4 || len(st.Services) != 2 || st.Snapshot == nil || st.Snapshot.Latency == "" ||
				st.Regions[1].Name != "eu-west" || len(st.Regions[1].VIPs[0].Votes) != 1 || st.Regions[1].VIPs[0].Votes[0].Reason != "connection refused" ||
				!strings.Contains(st.Regions[1].Reason, "192.0.2.10 down (1 of 1 probers): connection refused")) {
				return fmt.Errorf("incomplete status: %+v", st.Regions)
			}
			return err
		}},
		{"explain", func() error {
			ex, err := c.Explain(ctx, client.ExplainRequest{Name: "api.gslb.example", Client: "192.0.2.1", Resolver: "198.51.100.1", Type: "AAAA", Seed: &seed})
			if err == nil && (ex.QType != "AAAA" || ex.Resolver != "198.51.100.1" || ex.ECS == nil || ex.Explanation == nil) {
				return errors.New("incomplete explanation")
			}
			return err
		}},
		{"regions", func() error {
			l, err := c.Regions(ctx)
			if err == nil && (len(l.Regions) != 4 || l.Revision == 0) {
				return errors.New("incomplete list")
			}
			return err
		}},
		{"region", func() error {
			r, etag, err := c.Region(ctx, "eu-west")
			if err == nil && (r.Name != "eu-west" || etag != client.RevisionTag(f.revOf("region", "eu-west"))) {
				return errors.New("wrong region or ETag " + etag)
			}
			return err
		}},
		{"services", func() error {
			l, err := c.Services(ctx)
			if err == nil && len(l.Services) != 2 {
				return errors.New("incomplete list")
			}
			return err
		}},
		{"service without the final dot", func() error {
			s, etag, err := c.Service(ctx, "api.gslb.example")
			if err == nil && (s.Name != "api.gslb.example." || etag == "") {
				return errors.New("wrong service")
			}
			return err
		}},
		{"weights", func() error {
			w, etag, err := c.Weights(ctx, "api.gslb.example.")
			if err == nil && (w.Weights["us-east"] != 50 || etag != client.RevisionTag(w.Revision)) {
				return errors.New("wrong weights")
			}
			return err
		}},
		{"latency", func() error {
			l, err := c.Latency(ctx)
			if err == nil && (l.Entries != 3 || !l.Served) {
				return errors.New("wrong table")
			}
			return err
		}},
		{"audit", func() error {
			p, err := c.Audit(ctx, 2, "")
			if err != nil || len(p.Records) != 2 || p.Next == "" {
				return errors.Join(err, errors.New("wrong first page"))
			}
			next, err := c.Audit(ctx, 2, p.Next)
			if err == nil && (len(next.Records) == 0 || next.Records[0].ID == p.Records[0].ID) {
				return errors.New("wrong second page")
			}
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("not ready is an answer, not an error", func(t *testing.T) {
		srv := httptest.NewServer(NewRouter(Options{Ready: func() error { return errors.New("no zones loaded") }}))
		defer srv.Close()
		c, _ := client.New(srv.URL, client.WithStrictDecoding())
		h, err := c.Ready(ctx)
		if err != nil || h.Status != "not ready" || h.Reason != "no zones loaded" {
			t.Fatalf("%+v %v", h, err)
		}
	})
}

// TestClientWrites: the client's writes and their options against the
// handlers: preconditions, dry runs, refusals as problems with their
// fields, the NODATA guard and force.
func TestClientWrites(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f, adminSecret)
	ctx := etcdtest.Ctx(t)
	region := &regions.Region{Name: "sa-east", VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.50")},
		Location: regions.Location{Lat: -23.5, Lon: -46.6}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}

	t.Run("create only, then 412 with the current revision", func(t *testing.T) {
		ch, err := c.PutRegion(ctx, region, client.CreateOnly())
		if err != nil || !ch.Changed || !apitypes.Absent(ch.Before) || ch.Revision == 0 {
			t.Fatalf("%+v %v", ch, err)
		}
		_, err = c.PutRegion(ctx, region, client.CreateOnly())
		p := client.ProblemOf(err)
		if client.StatusCode(err) != http.StatusPreconditionFailed || p == nil || p.CurrentRevision == nil || *p.CurrentRevision != ch.Revision {
			t.Fatalf("%v %+v", err, p)
		}
	})
	t.Run("If-Match", func(t *testing.T) {
		_, etag, err := c.Region(ctx, "sa-east")
		if err != nil {
			t.Fatal(err)
		}
		next := *region
		next.Capacity = 10
		if _, err := c.PutRegion(ctx, &next, client.IfRevision(1)); client.StatusCode(err) != http.StatusPreconditionFailed {
			t.Fatalf("a stale revision: %v", err)
		}
		if ch, err := c.PutRegion(ctx, &next, client.IfMatch(etag)); err != nil || !ch.Changed {
			t.Fatalf("the current ETag: %+v %v", ch, err)
		}
		if _, err := c.DeleteRegion(ctx, "nowhere", client.IfExists()); client.StatusCode(err) != http.StatusPreconditionFailed {
			t.Fatalf("If-Match * of a missing region: %v", err)
		}
	})
	t.Run("dry runs write nothing", func(t *testing.T) {
		f.unchanged(t, func() {
			ch, err := c.DeleteRegion(ctx, "sa-east", client.DryRun())
			if err != nil || !ch.DryRun || !ch.Changed || !apitypes.Absent(ch.After) {
				t.Fatalf("%+v %v", ch, err)
			}
			ch, err = c.ReplaceWeights(ctx, "api.gslb.example", map[string]uint32{"eu-west": 1}, client.DryRun())
			if err != nil || !ch.DryRun || ch.ExpectedShare["ipv4"].Regions["eu-west"] != 1 {
				t.Fatalf("%+v %v", ch, err)
			}
			ch, err = c.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,sa-east,5\n"), client.DryRun())
			if err != nil || !ch.DryRun || ch.Entries != 1 || ch.EntriesBefore != 3 {
				t.Fatalf("%+v %v", ch, err)
			}
		})
	})
	t.Run("invalid input names the field", func(t *testing.T) {
		f.unchanged(t, func() {
			_, err := c.SetWeights(ctx, "api.gslb.example", map[string]uint32{"nowhere": 1})
			var e *client.Error
			if !errors.As(err, &e) || e.StatusCode != 400 || e.Method != "PATCH" || !strings.HasSuffix(e.Path, "/weights") ||
				len(e.Problem.Errors) != 1 || e.Problem.Errors[0].Field != "weights.nowhere" ||
				!strings.HasPrefix(err.Error(), "400 invalid service: weights.nowhere: ") {
				t.Fatalf("%v (%+v)", err, e)
			}
			_, err = c.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,5\n192.0.2.0/24,eu-wset,5\n"))
			if p := client.ProblemOf(err); p == nil || !strings.Contains(err.Error(), `body: latency table: line 2: region "eu-wset" does not exist; did you mean "eu-west"?`) {
				t.Fatalf("%v", err)
			}
		})
	})
	t.Run("a region in use names its services", func(t *testing.T) {
		_, err := c.DeleteRegion(ctx, "us-east")
		if p := client.ProblemOf(err); client.StatusCode(err) != http.StatusConflict || !slices.Equal(p.InUseBy, []string{"api.gslb.example.", "www.gslb.example."}) {
			t.Fatalf("%v %+v", err, p)
		}
	})
	t.Run("a read token may not write", func(t *testing.T) {
		ro := newClient(t, f, readSecret)
		if _, err := ro.Drain(ctx, "eu-west"); client.StatusCode(err) != http.StatusForbidden {
			t.Fatalf("%v", err)
		}
	})
	t.Run("drains", func(t *testing.T) {
		ch, err := c.Drain(ctx, "sa-east")
		if err != nil || !ch.Changed || ch.Action != "drain" {
			t.Fatalf("%+v %v", ch, err)
		}
		if ch, err = c.Undrain(ctx, "sa-east"); err != nil || !ch.Changed || ch.Action != "undrain" {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("accept-empty with nothing refused", func(t *testing.T) {
		if _, err := c.AcceptEmpty(ctx); client.StatusCode(err) != http.StatusConflict {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a batch of services", func(t *testing.T) {
		mk := func(name string, w uint32) *regions.Service {
			return &regions.Service{Name: name, TTL: 30, Policy: regions.PolicyWeighted, Regions: []regions.ServiceRegion{{Region: "sa-east", Weight: w}}}
		}
		br, err := c.PutServices(ctx, []*regions.Service{mk("b1.gslb.example", 1), mk("b2.gslb.example", 1)})
		if err != nil || br.Counts.Created != 2 || len(br.Changes) != 2 || br.Changes[1].Name != "b2.gslb.example." {
			t.Fatalf("%+v %v", br, err)
		}
		// b2 at weight 0 would answer nothing: the batch is refused whole.
		f.unchanged(t, func() {
			_, err := c.PutServices(ctx, []*regions.Service{mk("b1.gslb.example", 2), mk("b2.gslb.example", 0)})
			p := client.ProblemOf(err)
			if client.StatusCode(err) != http.StatusConflict || len(p.NoData) != 1 || p.NoData[0].Service != "b2.gslb.example." || !strings.HasPrefix(p.Detail, "services[1]: ") {
				t.Fatalf("%v %+v", err, p)
			}
		})
		br, err = c.PutServices(ctx, []*regions.Service{mk("b1.gslb.example", 2), mk("b2.gslb.example", 0)}, client.Force())
		if err != nil || br.Counts.Replaced != 2 || len(br.Changes[1].NoData) != 1 || len(br.Changes[0].NoData) != 0 {
			t.Fatalf("%+v %v", br, err)
		}
	})
	t.Run("service lifecycle", func(t *testing.T) {
		svc := &regions.Service{Name: "new.gslb.example", TTL: 30, Policy: regions.PolicyWeighted, Regions: []regions.ServiceRegion{{Region: "sa-east", Weight: 1}}}
		if ch, err := c.PutService(ctx, svc); err != nil || !ch.Changed || ch.Name != "new.gslb.example." {
			t.Fatalf("%+v %v", ch, err)
		}
		if ch, err := c.DeleteService(ctx, "new.gslb.example"); err != nil || !ch.Changed || !apitypes.Absent(ch.After) {
			t.Fatalf("%+v %v", ch, err)
		}
	})
}

// TestNoDataRefused: writes that leave a service answering NODATA get
// 409 with the services in the problem, dry runs too, and change
// nothing; with force they are made and the change names them.
func TestNoDataRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := newClient(t, f, adminSecret)
	ctx := etcdtest.Ctx(t)
	allZero := map[string]uint32{"us-east": 0, "eu-west": 0, "ap-northeast": 0}
	cases := []struct {
		name  string
		write func(opts ...client.WriteOption) (*apitypes.ChangeResponse, error)
		want  []apitypes.NoData
	}{
		{"every weight 0", func(opts ...client.WriteOption) (*apitypes.ChangeResponse, error) {
			return c.SetWeights(ctx, "api.gslb.example", allZero, opts...)
		}, []apitypes.NoData{{Service: "api.gslb.example.", Types: []string{"A", "AAAA"}, Reason: "every region it lists is drained or has weight 0"}}},
		{"the last region drained", func(opts ...client.WriteOption) (*apitypes.ChangeResponse, error) {
			return c.Drain(ctx, "eu-west", opts...) // www.gslb.example's us-east is drained below
		}, []apitypes.NoData{{Service: "www.gslb.example.", Types: []string{"A", "AAAA"}, Reason: "every region it lists is drained or has weight 0"}}},
	}
	if _, err := c.Drain(ctx, "us-east"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, opts := range [][]client.WriteOption{nil, {client.DryRun()}} {
				f.unchanged(t, func() {
					_, err := tc.write(opts...)
					p := client.ProblemOf(err)
					if client.StatusCode(err) != http.StatusConflict || p.Title != "would answer NODATA" || !slices.EqualFunc(p.NoData, tc.want, sameNoData) ||
						!strings.Contains(p.Detail, "would answer NODATA to A and AAAA queries") || !strings.Contains(p.Detail, "force=true") {
						t.Fatalf("%v %+v", err, p)
					}
				})
			}
			ch, err := tc.write(client.DryRun(), client.Force())
			if err != nil || !ch.DryRun || !slices.EqualFunc(ch.NoData, tc.want, sameNoData) {
				t.Fatalf("forced dry run: %+v %v", ch, err)
			}
			ch, err = tc.write(client.Force())
			if err != nil || !ch.Changed || !slices.EqualFunc(ch.NoData, tc.want, sameNoData) {
				t.Fatalf("forced: %+v %v", ch, err)
			}
		})
	}
}

func sameNoData(a, b apitypes.NoData) bool {
	return a.Service == b.Service && slices.Equal(a.Types, b.Types) && a.Reason == b.Reason
}

// TestClientTransportErrors: a server that does not answer is an error
// of the transport, not an *Error; a bad base URL is refused.
func TestClientTransportErrors(t *testing.T) {
	c, err := client.New(fmt.Sprintf("http://127.0.0.1:%d", testport.Free(t, 1)[0])) // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	if err == nil || client.StatusCode(err) != 0 || client.ProblemOf(err) != nil {
		t.Fatalf("%v", err)
	}
	for _, bad := range []string{"ftp://x", "http://", "http://h?x=1", "::"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}
