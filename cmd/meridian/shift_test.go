package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// euVIP is the IPv4 VIP of region eu in the steering tests' state.
const euVIP = "192.0.2.10"

// shiftClient is one client of the shift tests: a service asked for
// with an ECS subnet.
type shiftClient struct {
	service string
	subnet  netip.Prefix
}

// shiftClients are the clients a drain of eu must move: the geo
// service's European clients (eu first), and for the sticky and
// weighted services a spread of client networks, about a third of which
// land on eu.
func shiftClients() []shiftClient {
	out := []shiftClient{
		{"geo.example.org.", netip.MustParsePrefix("193.0.0.0/24")},
		{"geo.example.org.", netip.MustParsePrefix("8.8.8.0/25")},
		{"geo.example.org.", netip.MustParsePrefix("202.12.27.0/24")},
	}
	for i := range 24 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{193, 0, byte(1 + i), 0}), 24)
		out = append(out, shiftClient{"sticky.example.org.", p}, shiftClient{"lb.example.org.", p})
	}
	return out
}

// answersOf asks ts for every client's A record once and counts the
// clients answered with each address.
func answersOf(t *testing.T, ts *testServer, clients []shiftClient, service string) map[string]int {
	t.Helper()
	c := &dns.Client{Timeout: 2 * time.Second}
	counts := map[string]int{}
	for _, cl := range clients {
		if service != "" && cl.service != service {
			continue
		}
		m := new(dns.Msg)
		m.SetQuestion(cl.service, dns.TypeA)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(cl.subnet.Bits()), Address: net.IP(cl.subnet.Addr().AsSlice())})
		m.Extra = append(m.Extra, o)
		r, _, err := c.Exchange(m, ts.addr())
		if err != nil {
			t.Fatalf("%s for %s: %v", cl.service, cl.subnet, err)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("%s for %s: %v", cl.service, cl.subnet, r)
		}
		counts[r.Answer[0].(*dns.A).A.String()]++
	}
	return counts
}

// waitEU asks every client again until eu is (on) or is not (!on) in
// some answer, and returns how long that took from since.
func waitEU(t *testing.T, ts *testServer, clients []shiftClient, service string, on bool, since time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(etcdtest.WaitLimit)
	for {
		got := answersOf(t, ts, clients, service)
		if (got[euVIP] > 0) == on {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("eu in the answers %v, want %v: %v", got[euVIP] > 0, on, got)
		}
	}
}

// shiftList is `ctl shift list -o json`.
func shiftList(t *testing.T, ts *testServer) apitypes.ShiftList {
	t.Helper()
	var l apitypes.ShiftList
	if err := json.Unmarshal([]byte(ts.mustCtl(t, "shift", "list", "-o", "json")), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

var createdRE = regexp.MustCompile(`^shift ([0-9a-f]{8}) created: `)

// createShift runs ctl shift create with args and returns the id.
func createShift(t *testing.T, ts *testServer, args ...string) (string, string) {
	t.Helper()
	out := ts.mustCtl(t, append([]string{"shift", "create"}, args...)...)
	m := createdRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("shift create %s: %q", strings.Join(args, " "), out)
	}
	return m[1], out
}

// TestCtlShift drives shifts through ctl against a running server: a
// drain of eu from every service leaves every client's answers within
// 2 s; a short shift's expiry and a cancel bring eu back; dry runs show
// the shares and write nothing; bad input names the flag; status,
// explain, list and completion show the shifts.
func TestCtlShift(t *testing.T) {
	ts := startAPIServer(t, true)
	clients := shiftClients()
	if got := answersOf(t, ts, clients, ""); got[euVIP] == 0 {
		t.Fatalf("no client answered eu before the drain: %v", got)
	}

	t.Run("refused input names the flag and writes nothing", func(t *testing.T) {
		n := auditCount(t, ts)
		ts.ctlFails(t, 2, []string{"shift", "create", "--drain", "eu"}, "want --for DURATION")
		ts.ctlFails(t, 2, []string{"shift", "create", "--drain", "eu", "--for", "soon"}, `--for "soon": want a duration above 0`)
		ts.ctlFails(t, 1, []string{"shift", "create", "--drain", "eu", "--for", "73h"}, "400 invalid shift: --for: ", "a shift lasts at most 72h0m0s")
		ts.ctlFails(t, 1, []string{"shift", "create", "--drain", "ue", "--for", "1h"}, `404 not found: --drain: no region "ue"; did you mean "eu"?`)
		ts.ctlFails(t, 1, []string{"shift", "create", "--drain", "eu", "--service", "lb.exmaple.org", "--for", "1h"}, `404 not found: --service: no service "lb.exmaple.org."; did you mean "lb.example.org."?`)
		ts.ctlFails(t, 1, []string{"shift", "create", "--service", "geo.example.org", "--weights", "eu=1,ue=2", "--for", "1h"}, `--weights ue: no region "ue"; did you mean "eu"?`)
		ts.ctlFails(t, 2, []string{"shift", "create", "--service", "geo.example.org", "--weights", "eu=-1", "--for", "1h"}, "--weights")
		ts.ctlFails(t, 2, []string{"shift", "create", "--drain", "eu", "--for", "1h", "--revert-if", "unhelthy"}, `did you mean "unhealthy"?`)
		ts.ctlFails(t, 1, []string{"shift", "create", "--drain", "eu", "--for", "1h", "--revert-if", "high-watermark"}, "--revert-if high-watermark: ")
		ts.ctlFails(t, 1, []string{"shift", "extend", "0badc0de", "--for", "1h"}, "404")
		ts.ctlFails(t, 2, []string{"shift", "list", "--drain", "eu"}, "shift list does not take --drain")
		// Every weight of lb at 0: NODATA, refused without --force.
		ts.ctlFails(t, 1, []string{"shift", "create", "--service", "lb.example.org", "--weights", "eu=0,na=0,as=0", "--for", "1m"},
			"lb.example.org. answers: NODATA (A, AAAA)", "--force makes the write anyway")
		if auditCount(t, ts) != n {
			t.Fatal("a refused shift wrote")
		}
	})
	t.Run("a dry run shows the shares", func(t *testing.T) {
		n := auditCount(t, ts)
		out := ts.mustCtl(t, "shift", "create", "--drain", "eu", "--for", "30m", "--dry-run")
		mustContain(t, out, "shift would be created (dry run, nothing written): drain eu from every service until",
			"IPv4 BEFORE", "lb.example.org.", "33.3%", "50.0%", "0.0%")
		forced := ts.mustCtl(t, "shift", "create", "--service", "lb.example.org", "--weights", "eu=0,na=0,as=0", "--for", "1m", "--dry-run", "--force")
		mustContain(t, forced, "! lb.example.org. answers: NODATA (A, AAAA)")
		if auditCount(t, ts) != n || len(shiftList(t, ts).Shifts) != 0 {
			t.Fatal("a dry run wrote")
		}
	})

	var drainID string
	t.Run("a drain leaves every client's answers within 2 s", func(t *testing.T) {
		start := time.Now()
		id, out := createShift(t, ts, "--drain", "eu", "--for", "30m", "--reason", "network work", "--revert-if", "unhealthy")
		drainID = id
		mustContain(t, out, "drain eu from every service until", "geo.example.org.")
		took := waitEU(t, ts, clients, "", false, start)
		t.Logf("shift create --drain eu: every one of %d clients answered without eu %v after ctl started", len(clients), took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("the drain took %v, want at most 2 s", took)
		}
		status := ts.mustCtl(t, "get", "status")
		mustContain(t, status, "eu=1→0 (shift "+id+")", "SHIFT", id+"  active  drain eu from every service")
		mustContain(t, ts.mustCtl(t, "explain", "geo.example.org", "--client", "193.0.0.0/24"), "drained by shift "+id+" until", "answer: 192.0.2.20")
		l := shiftList(t, ts)
		if len(l.Shifts) != 1 || l.Shifts[0].ID != id || l.Shifts[0].Reason != "network work" || l.Shifts[0].CreatedBy != "admin" ||
			l.Shifts[0].RevertIf == nil || !l.Shifts[0].RevertIf.Unhealthy || l.Shifts[0].Baseline["na"] != 2 {
			t.Fatalf("%+v", l)
		}
		mustContain(t, ts.mustCtl(t, "shift", "list"), id, "active", "network work", "admin")
		mustContain(t, ts.mustCtl(t, "shift", "list", "-o", "wide"), "REVERT IF", "unhealthy")
		if n := metric(t, ts, `meridian_shifts{state="active"}`); n != 1 {
			t.Errorf("meridian_shifts active %v", n)
		}
		if got := completions(context.Background(), []string{"ctl", "--server", ts.url(), "shift", "cancel", ""}); len(got) != 1 || got[0] != id {
			t.Errorf("completion of the shift to cancel: %v", got)
		}
		mustContain(t, ts.mustCtl(t, "shift", "extend", id, "--for", "1h"), "shift "+id+" runs until")
		if left := shiftList(t, ts).Shifts[0].ExpiresInSeconds; left < 3500 {
			t.Errorf("extended: %v s left", left)
		}
	})
	t.Run("cancel brings the region back", func(t *testing.T) {
		start := time.Now()
		out := ts.mustCtl(t, "shift", "cancel", drainID)
		mustContain(t, out, "shift "+drainID+" cancelled", "the weights come back", "IPv4 AFTER")
		took := waitEU(t, ts, clients, "", true, start)
		t.Logf("shift cancel: eu answered again %v after ctl started", took.Round(time.Millisecond))
		mustContain(t, ts.mustCtl(t, "shift", "cancel", drainID), "had already ended (cancelled)")
		ts.ctlFails(t, 1, []string{"shift", "extend", drainID, "--for", "1h"}, "409 shift ended")
		mustContain(t, ts.mustCtl(t, "shift", "list", "-o", "wide"), "cancelled", "by admin")
	})
	t.Run("expiry brings the region back", func(t *testing.T) {
		geo := []shiftClient{clients[0]} // a European client: eu first
		id, _ := createShift(t, ts, "--drain", "eu", "--service", "geo.example.org", "--for", "2s")
		var expires time.Time
		for _, s := range shiftList(t, ts).Shifts {
			if s.ID == id {
				expires = s.Expires
			}
		}
		waitEU(t, ts, geo, "", false, time.Now())
		if time.Now().After(expires) {
			t.Fatal("the shift expired before the test saw it applied")
		}
		late := waitEU(t, ts, geo, "", true, expires)
		t.Logf("shift create --for 2s: eu answered again %v after the expiry", late.Round(time.Millisecond))
		if late > 2*time.Second {
			t.Errorf("eu came back %v after the expiry", late)
		}
		etcdtest.WaitUntil(t, "the expiry recorded", func() bool {
			for _, s := range shiftList(t, ts).Shifts {
				if s.ID == id && s.Ended != nil && s.Ended.How == regions.ShiftExpired {
					return true
				}
			}
			return false
		})
		mustContain(t, ts.mustCtl(t, "audit", "--limit", "5"), "expire", "shift", id)
	})
}

// TestShiftTwoServers: two servers on one etcd both stop applying a
// shift at its expiry and one audit record says so; with etcd gone, a
// server still expires a shift by itself.
func TestShiftTwoServers(t *testing.T) {
	a := startAPIServer(t, true)
	files := steeringFiles(t)
	delete(files, "state.yaml")
	b := startServerWith(t, serverSetup{extra: apiConfig + "geoip:\n  database: country.mmdb\n", files: files, etcdFrom: a})
	clients := shiftClients()[:1] // the European client of geo: eu first
	for _, ts := range []*testServer{a, b} {
		// The bootstrap's last service is served.
		waitService(t, ts, "sticky.example.org.")
		waitEU(t, ts, clients, "", true, time.Now())
	}
	id, _ := createShift(t, a, "--drain", "eu", "--service", "geo.example.org", "--for", "2s")
	for _, ts := range []*testServer{a, b} {
		waitEU(t, ts, clients, "", false, time.Now())
	}
	for _, ts := range []*testServer{a, b} {
		waitEU(t, ts, clients, "", true, time.Now())
	}
	// Both servers serve the recorded end: nothing writes it again.
	for _, ts := range []*testServer{a, b} {
		etcdtest.WaitUntil(t, "the end served", func() bool {
			var st apitypes.Status
			getJSON(t, ts.url()+"/v1/status", &st)
			for _, s := range st.Shifts {
				if s.ID == id && s.Ended != nil {
					return true
				}
			}
			return false
		})
	}
	var page apitypes.AuditPage
	getJSON(t, a.url()+"/v1/audit?limit=500", &page)
	var by []string
	for _, r := range page.Records {
		if r.Kind == "shift" && r.Name == id && r.Action == "expire" {
			by = append(by, r.Actor)
		}
	}
	aName, bName := fmt.Sprintf("(%s)", a.HTTP), fmt.Sprintf("(%s)", b.HTTP)
	if len(by) != 1 || !strings.HasSuffix(by[0], aName) && !strings.HasSuffix(by[0], bName) {
		t.Fatalf("expiry audited by %v, want one of the two servers", by)
	}
	t.Logf("the expiry of shift %s was recorded once, by %s", id, by[0])

	// etcd goes away with a; b expires a shift all the same.
	id, _ = createShift(t, b, "--drain", "eu", "--service", "geo.example.org", "--for", "3s")
	waitEU(t, b, clients, "", false, time.Now())
	if code := a.stop(); code != 0 {
		t.Fatalf("a exited %d", code)
	}
	var expires time.Time
	var st apitypes.Status
	getJSON(t, b.url()+"/v1/status", &st)
	for _, s := range st.Shifts {
		if s.ID == id {
			expires = s.Expires
		}
	}
	late := waitEU(t, b, clients, "", true, expires)
	t.Logf("with etcd gone, eu answered again %v after the expiry", late.Round(time.Millisecond))
	getJSON(t, b.url()+"/v1/status", &st)
	for _, s := range st.Shifts {
		if s.ID == id && (s.State != regions.ShiftExpired || s.Ended != nil) {
			t.Fatalf("with etcd gone: %+v", s)
		}
	}
}
