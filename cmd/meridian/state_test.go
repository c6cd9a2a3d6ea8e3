package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

const twoDays = 48 * time.Hour

// oldStateFile writes into dir what a server would have left there two
// days ago: the zone, the steering files, and a state file with the
// steering regions and services and one prober's report, confirmed
// current two days ago.
func oldStateFile(t *testing.T, dir string) (confirmed time.Time) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(testZone(1, "192.0.2.1")), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range steeringFiles(t) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := regions.LoadDesired(filepath.Join(dir, "state.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	confirmed = time.Now().Add(-twoDays).Truncate(time.Second).UTC()
	st := regions.NewState()
	st.Revision = 77
	for _, r := range d.Regions {
		st.Regions[r.Name] = r
	}
	for _, svc := range d.Services {
		st.Services[svc.Name] = svc
	}
	st.Probers["p1"] = &regions.ProberInfo{ID: "p1", Region: "na", Version: "1", Started: confirmed.Add(-time.Hour), Lease: 5}
	st.Health["eu"] = map[string]*regions.HealthReport{"p1": {Region: "eu", Prober: "p1", ProberRegion: "na", Trusted: true, Lease: 5,
		Observed: confirmed.Add(-time.Minute),
		VIPs:     []regions.VIPHealth{{Addr: netip.MustParseAddr("192.0.2.10"), Up: true, Successes: 3, Since: confirmed.Add(-time.Hour)}}}}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveState(filepath.Join(dir, "data", "state.json"), st, confirmed); err != nil {
		t.Fatal(err)
	}
	return confirmed
}

// getDoc reads a JSON document from url.
func getDoc(t testing.TB, url string) map[string]any {
	t.Helper()
	var m map[string]any
	getJSON(t, url, &m)
	return m
}

// jsonPath walks a decoded JSON document: keys of objects, indexes of arrays.
func jsonPath(v any, steps ...any) any {
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// metric reads one sample from the server's /metrics; series is the name
// with its labels as exposed ("name" or `name{label="value"}`).
func metric(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	resp, err := ts.hc.Get(ts.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

var ecsEurope = func(m *dns.Msg) {
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("193.0.0.0")})
}

// checkEurope: geo.example.org answers the European region.
func checkEurope(t *testing.T, ts *testServer) {
	t.Helper()
	r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, ecsEurope)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Fatalf("geo answer %v", r)
	}
}

// waitStatus polls /v1/status until ok holds.
func waitStatus(t testing.TB, ts *testServer, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(etcdtest.WaitLimit + 15*time.Second)
	for {
		st := getDoc(t, "http://"+ts.HTTP.String()+"/v1/status")
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", " ")
			t.Fatalf("timed out waiting until %s; status:\n%s\nlog:\n%s", what, b, ts.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerEtcdDownAtStart: whether the embedded etcd cannot start or an
// external one does not answer, the server answers from its state file,
// reports the data's true age and etcd as down (status, health details,
// metrics), and follows etcd once it is there.
func TestServerEtcdDownAtStart(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) (setup serverSetup, fix func())
		reason  string // in etcd.reason while down
		code    string // meridian_etcd_down's label while down
	}{
		{
			name: "embedded etcd port taken",
			prepare: func(t *testing.T, dir string) (serverSetup, func()) {
				ports := testport.Free(t, 2)
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				return serverSetup{embeddedPorts: ports}, func() { ln.Close() }
			},
			reason: "address already in use",
			code:   "embedded_not_running",
		},
		{
			name: "embedded etcd directory unusable",
			prepare: func(t *testing.T, dir string) (serverSetup, func()) {
				p := filepath.Join(dir, "data", "etcd")
				if err := os.WriteFile(p, []byte("not a directory"), 0o600); err != nil {
					t.Fatal(err)
				}
				return serverSetup{}, func() {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			},
			reason: "not a directory",
			code:   "embedded_not_running",
		},
		{
			name: "external etcd not answering",
			prepare: func(t *testing.T, dir string) (serverSetup, func()) {
				m := etcdtest.NewMember(t, "external")
				t.Cleanup(m.Stop)
				return serverSetup{etcdEndpoints: []string{m.ClientURL()}}, func() {
					if err := m.Start(); err != nil {
						t.Fatal(err)
					}
				}
			},
			reason: "not in sync with etcd",
			code:   "unreachable",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			confirmed := oldStateFile(t, dir)
			setup, fix := tc.prepare(t, dir)
			setup.dir, setup.extra = dir, steeringConfig
			ts := startServerWith(t, setup)
			base := "http://" + ts.HTTP.String()

			checkEurope(t, ts)
			st := waitStatus(t, ts, "etcd is reported down with the reason", func(st map[string]any) bool {
				reason, _ := jsonPath(st, "etcd", "reason").(string)
				return strings.Contains(reason, tc.reason)
			})
			if up := jsonPath(st, "etcd", "up"); up != false {
				t.Errorf("etcd.up = %v", up)
			}
			if src := jsonPath(st, "snapshot", "source"); src != "file" {
				t.Errorf("source %v, want file", src)
			}
			if c := jsonPath(st, "snapshot", "confirmed"); c != confirmed.Format(time.RFC3339) {
				t.Errorf("confirmed %v, want %v", c, confirmed)
			}
			if age, _ := jsonPath(st, "snapshot", "age_seconds").(float64); age < twoDays.Seconds() || age > twoDays.Seconds()+3600 {
				t.Errorf("age %v s, want two days", age)
			}
			rep := jsonPath(st, "snapshot", "reports", 0)
			if age, _ := jsonPath(rep, "age_seconds").(float64); jsonPath(rep, "prober") != "p1" || age < (twoDays+time.Minute).Seconds() {
				t.Errorf("report %v: want p1's, two days old", rep)
			}
			var eu any
			for i := range 3 {
				if r := jsonPath(st, "regions", i); jsonPath(r, "name") == "eu" {
					eu = r
				}
			}
			if obs := jsonPath(eu, "vips", 0, "votes", 0, "observed"); obs != confirmed.Add(-time.Minute).Format(time.RFC3339) {
				t.Errorf("vote observed %v in region %v", obs, eu)
			}
			if tc.code == "embedded_not_running" {
				if f, _ := jsonPath(st, "etcd", "member", "failures").(float64); f < 1 || jsonPath(st, "etcd", "member", "running") != false {
					t.Errorf("member %v", jsonPath(st, "etcd", "member"))
				}
			}
			details := getDoc(t, base+"/health/details")
			if reason, _ := jsonPath(details, "status", "etcd", "reason").(string); jsonPath(details, "ready") != true || !strings.Contains(reason, tc.reason) {
				t.Errorf("details: ready %v, etcd %v", jsonPath(details, "ready"), jsonPath(details, "status", "etcd"))
			}
			if v := metric(t, ts, "meridian_snapshot_staleness_seconds"); v < twoDays.Seconds() {
				t.Errorf("staleness metric %v", v)
			}
			if v := metric(t, ts, "meridian_etcd_connected"); v != 0 {
				t.Errorf("meridian_etcd_connected %v", v)
			}
			if v := metric(t, ts, `meridian_etcd_down{reason="`+tc.code+`"}`); v != 1 {
				t.Errorf("meridian_etcd_down %v", v)
			}

			// etcd comes: the server follows it, the bootstrap fills it.
			fix()
			waitStatus(t, ts, "the state from etcd is served", func(st map[string]any) bool {
				age, _ := jsonPath(st, "snapshot", "age_seconds").(float64)
				svcs, _ := jsonPath(st, "snapshot", "services").(float64)
				return jsonPath(st, "etcd", "up") == true && jsonPath(st, "snapshot", "source") == "etcd" && svcs == 2 && age < 3600
			})
			checkEurope(t, ts)
			if v := metric(t, ts, `meridian_etcd_down{reason="`+tc.code+`"}`); v != 0 {
				t.Errorf("meridian_etcd_down %v after etcd came", v)
			}
			if v := metric(t, ts, "meridian_snapshot_staleness_seconds"); v > 3600 {
				t.Errorf("staleness metric %v after etcd came", v)
			}
		})
	}
}

// TestServerEmptyEtcd: an etcd with nothing under the prefix (here: the
// wrong prefix) does not wipe the served state; --accept-empty-state
// does.
func TestServerEmptyEtcd(t *testing.T) {
	dir := t.TempDir()
	oldStateFile(t, dir)
	ports := testport.Free(t, 2)
	noBootstrap := "geoip:\n  database: country.mmdb\n"

	ts := startServerWith(t, serverSetup{dir: dir, extra: noBootstrap, embeddedPorts: ports, etcdPrefix: "/other/"})
	st := waitStatus(t, ts, "the empty state is refused", func(st map[string]any) bool { return jsonPath(st, "snapshot", "empty_refused") != nil })
	checkEurope(t, ts)
	if msg, _ := jsonPath(st, "snapshot", "empty_refused", "message").(string); !strings.Contains(msg, "--accept-empty-state") ||
		jsonPath(st, "snapshot", "source") != "file" || jsonPath(st, "snapshot", "services") != 2.0 {
		t.Errorf("snapshot %v", jsonPath(st, "snapshot"))
	}
	if r := jsonPath(getDoc(t, "http://"+ts.HTTP.String()+"/health/details"), "status", "snapshot", "empty_refused"); r == nil {
		t.Error("health details do not say the empty state is refused")
	}
	if v := metric(t, ts, "meridian_state_empty_refused"); v != 1 {
		t.Errorf("meridian_state_empty_refused %v", v)
	}
	if n := strings.Count(ts.stderr.String(), "etcd holds no regions and no services"); n != 1 {
		t.Errorf("%d log lines about the refusal, want 1:\n%s", n, ts.stderr)
	}
	if code := ts.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	saved, err := store.LoadState(filepath.Join(dir, "data", "state.json"))
	if err != nil || len(saved.State.Services) != 2 {
		t.Fatalf("the state file lost its services: %v", err)
	}

	// The operator's other way out: the API (here through ctl), which
	// nothing can call by mistake on a server that refuses nothing.
	ts = startServerWith(t, serverSetup{dir: dir, extra: noBootstrap + apiConfig, embeddedPorts: ports, etcdPrefix: "/other/"})
	waitStatus(t, ts, "the empty state is refused again", func(st map[string]any) bool { return jsonPath(st, "snapshot", "empty_refused") != nil })
	if out := ts.mustCtl(t, "state", "accept-empty"); !strings.Contains(out, "now serves the empty state") {
		t.Errorf("ctl state accept-empty said %q", out)
	}
	waitStatus(t, ts, "the empty state is served after the API call", func(st map[string]any) bool {
		return jsonPath(st, "snapshot", "services") == 0.0 && jsonPath(st, "snapshot", "empty_refused") == nil
	})
	if _, stderr, code := ts.ctl(t, "state", "accept-empty"); code == 0 || !strings.Contains(stderr, "no empty state") {
		t.Errorf("a second accept-empty: exit %d, %q; want a failure saying nothing is refused", code, stderr)
	}
	if code := ts.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	oldStateFile(t, dir)

	ts = startServerWith(t, serverSetup{dir: dir, extra: noBootstrap, embeddedPorts: ports, etcdPrefix: "/other/", args: []string{"--accept-empty-state"}})
	waitStatus(t, ts, "the empty state is served", func(st map[string]any) bool {
		return jsonPath(st, "snapshot", "source") == "etcd" && jsonPath(st, "snapshot", "services") == 0.0 && jsonPath(st, "snapshot", "empty_refused") == nil
	})
	if r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, ecsEurope); r.Rcode != dns.RcodeNameError {
		t.Errorf("geo.example.org: %s, want NXDOMAIN once the empty state is accepted", dns.RcodeToString[r.Rcode])
	}
	if v := metric(t, ts, "meridian_state_empty_refused"); v != 0 {
		t.Errorf("meridian_state_empty_refused %v", v)
	}
	if code := ts.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	saved, err = store.LoadState(filepath.Join(dir, "data", "state.json"))
	if err != nil || len(saved.State.Services) != 0 || len(saved.State.Regions) != 0 {
		t.Fatalf("the state file still has the old state: %v", err)
	}
}
