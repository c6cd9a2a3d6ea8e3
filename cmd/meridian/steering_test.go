package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/geo/geotest"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions/store"
)

// steeringState is the desired state of the steering tests: three regions
// and services steered by continent and by weight.
const steeringState = `regions:
  - name: eu
    vips: [192.0.2.10, "2001:db8::10"]
    location: {lat: 52.37, lon: 4.9}
    check: {type: tcp, port: 443}
  - name: na
    vips: [192.0.2.20, "2001:db8::20"]
    location: {lat: 38.9, lon: -77.0}
    check: {type: tcp, port: 443}
  - name: as
    vips: [192.0.2.30]
    location: {lat: 35.7, lon: 139.7}
    check: {type: tcp, port: 443}
services:
  - name: geo.example.org.
    ttl: 60
    policy: geo
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]
    geo:
      continents: {EU: [eu, na], NA: [na, eu], AS: [as, na]}
      default: [na, eu, as]
  - name: lb.example.org.
    ttl: 30
    policy: weighted
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]
`

func steeringFiles(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"state.yaml": []byte(steeringState),
		"country.mmdb": geotest.CountryDB(t,
			geotest.Net{CIDR: "193.0.0.0/16", Country: "NL"},
			geotest.Net{CIDR: "8.8.8.0/24", Country: "US"},
			// An Asian half of 8.8.8.0/24: the North American half is a
			// block of its own (/25), so a /24 source keeps scope /24.
			geotest.Net{CIDR: "8.8.8.128/25", Country: "JP"},
			geotest.Net{CIDR: "202.12.27.0/24", Country: "JP"},
			geotest.Net{CIDR: "2001:67c::/32", Country: "NL"},
		),
	}
}

const steeringConfig = "geoip:\n  database: country.mmdb\nbootstrap: state.yaml\n"

// waitAnswer queries until name answers want (or the deadline passes);
// edit changes the query (ECS).
func waitAnswer(t *testing.T, addr, name string, want string, edit ...func(*dns.Msg)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last *dns.Msg
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		for _, e := range edit {
			e(m)
		}
		c := &dns.Client{Timeout: 2 * time.Second}
		if r, _, err := c.Exchange(m, addr); err == nil {
			last = r
			if len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s at %s never answered %s; last reply:\n%v", name, addr, want, last)
}

// waitService waits until ts serves the service name: a bootstrap writes
// the services of its file one after another, so one answering does not
// mean the next is there yet.
func waitService(t testing.TB, ts *testServer, name string) {
	t.Helper()
	waitStatus(t, ts, name+" served", func(st map[string]any) bool {
		svcs, _ := jsonPath(st, "services").([]any)
		for _, s := range svcs {
			if jsonPath(s, "name") == name {
				return true
			}
		}
		return false
	})
}

func TestGeoSteeringWithKdig(t *testing.T) {
	kdig := testtool.Need(t, "kdig")
	ts := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t)})
	host, port, _ := net.SplitHostPort(ts.addr())
	waitService(t, ts, "lb.example.org.") // the bootstrap's last service
	base := []string{"@" + host, "-p", port, "+norec", "+time=3", "+retry=0"}
	cases := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"europe", []string{"+subnet=193.0.0.0/24", "geo.example.org", "A"}, []string{"192.0.2.10", "CLIENT-SUBNET: 193.0.0.0/24/16"}, nil},
		{"north america", []string{"+subnet=8.8.8.0/24", "geo.example.org", "A"}, []string{"192.0.2.20", "CLIENT-SUBNET: 8.8.8.0/24/24"}, nil},
		{"asia", []string{"+subnet=202.12.27.0/24", "geo.example.org", "A"}, []string{"192.0.2.30", "CLIENT-SUBNET: 202.12.27.0/24/24"}, nil},
		{"ipv6 client", []string{"+subnet=2001:67c:2e8::/48", "geo.example.org", "AAAA"}, []string{"2001:db8::10", "CLIENT-SUBNET: 2001:67c:2e8::/48/32"}, nil},
		{"longer source truncated", []string{"+subnet=8.8.8.8/32", "geo.example.org", "A"}, []string{"192.0.2.20", "CLIENT-SUBNET: 8.8.8.8/32/24"}, nil},
		{"no ECS: by source address", []string{"geo.example.org", "A"}, []string{"192.0.2.20"}, []string{"CLIENT-SUBNET"}},
		{"static name: scope 0", []string{"+subnet=193.0.0.0/24", "www.example.org", "A"}, []string{"192.0.2.1", "CLIENT-SUBNET: 193.0.0.0/24/0"}, nil},
		{"weighted: scope 0", []string{"+subnet=193.0.0.0/24", "lb.example.org", "A"}, []string{"CLIENT-SUBNET: 193.0.0.0/24/0", "ANSWER: 1"}, nil},
		{"other type: NODATA scope 0", []string{"+subnet=193.0.0.0/24", "geo.example.org", "TXT"}, []string{"status: NOERROR", "CLIENT-SUBNET: 193.0.0.0/24/0", "SOA"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runTool(t, kdig, append(base, tc.args...)...)
			mustContain(t, out, tc.want...)
			mustLack(t, out, tc.not...)
		})
	}

	t.Run("malformed ECS gets FORMERR", func(t *testing.T) {
		for _, opt := range [][]byte{
			{0, 3, 24, 0, 193, 0, 0},       // unknown family
			{0, 1, 33, 0, 193, 0, 0, 0, 0}, // longer than IPv4
			{0, 1, 20, 0, 193, 0, 255},     // bits set beyond the prefix
		} {
			r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, func(m *dns.Msg) {
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: opt})
			})
			if r.Rcode != dns.RcodeFormatError {
				t.Errorf("option % x: rcode %s", opt, dns.RcodeToString[r.Rcode])
			}
		}
	})

	t.Run("explain", func(t *testing.T) {
		var body struct {
			Decision struct {
				Region string `json:"region"`
			} `json:"decision"`
		}
		getJSON(t, "http://"+ts.HTTP.String()+"/v1/explain?name=geo.example.org&client=202.12.27.33", &body)
		if body.Decision.Region != "as" {
			t.Errorf("explained region %q, want as", body.Decision.Region)
		}
	})
}

// TestPropagation: a weight change written to etcd shows in the answers
// of two servers watching the same etcd.
func TestPropagation(t *testing.T) {
	a := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t)})
	b := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t), etcdFrom: a})
	cli := a.etcdClient(t)
	st := store.NewStore(cli, "/meridian/", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitService(t, a, "lb.example.org.")
	for _, target := range []struct {
		weights map[string]uint32
		shares  map[string]float64
		want    string
	}{
		{map[string]uint32{"eu": 0, "na": 0, "as": 5}, map[string]float64{"eu": 0, "na": 0, "as": 1}, "192.0.2.30"},
		{map[string]uint32{"eu": 7, "na": 0, "as": 0}, map[string]float64{"eu": 1, "na": 0, "as": 0}, "192.0.2.10"},
	} {
		if _, err := st.SetWeights(ctx, "lb.example.org.", target.weights, store.Always, store.Force()); err != nil { // as has no IPv6 VIP
			t.Fatal(err)
		}
		// The weighted service answers want at random before the change
		// too: an answer alone does not show that the change arrived, the
		// expected shares each server serves do.
		for _, ts := range []*testServer{a, b} {
			waitShares(t, ts, "lb.example.org.", target.shares)
			waitAnswer(t, ts.addr(), "lb.example.org.", target.want)
		}
	}
}

// TestStaticStability: with etcd gone, a server keeps answering; restarted
// while etcd is still gone, it answers from the state it persisted.
func TestStaticStability(t *testing.T) {
	a := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t)})
	b := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t), etcdFrom: a})
	waitAnswer(t, b.addr(), "geo.example.org.", "192.0.2.20")
	checkEurope(t, b)
	waitPersisted(t, b)

	if code := a.stop(); code != 0 { // etcd goes away with a
		t.Fatalf("a exited %d", code)
	}
	waitStatus(t, b, "b sees etcd down", func(st map[string]any) bool { return jsonPath(st, "etcd", "up") == false })
	for range 20 {
		checkEurope(t, b)
	}

	if code := b.stop(); code != 0 {
		t.Fatalf("b exited %d", code)
	}
	b2 := startServerWith(t, serverSetup{dir: b.dir, extra: steeringConfig, etcdFrom: a})
	checkEurope(t, b2)
	if src := jsonPath(getDoc(t, b2.url()+"/v1/status"), "snapshot", "source"); src != "file" {
		t.Errorf("snapshot source %v, want file", src)
	}
	resp, err := http.Get(b2.url() + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ready %d: serving the persisted snapshot is ready", resp.StatusCode)
	}
}

// waitPersisted waits until the state file of ts holds the state it serves.
func waitPersisted(t *testing.T, ts *testServer) {
	t.Helper()
	path := filepath.Join(ts.dir, "data", "state.json")
	waitStatus(t, ts, "the served state is persisted", func(st map[string]any) bool {
		rev, _ := jsonPath(st, "snapshot", "revision").(float64)
		saved, err := store.LoadState(path)
		return err == nil && rev > 0 && saved.State.Revision == int64(rev)
	})
}

// TestGeoIPReloadUnderLoad replaces the database while queries run: none
// fails, and the answers follow the new data.
func TestGeoIPReloadUnderLoad(t *testing.T) {
	ts := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t)})
	waitAnswer(t, ts.addr(), "geo.example.org.", "192.0.2.20")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	stop := make(chan struct{})
	var queries atomic.Int64
	for range 4 {
		wg.Go(func() {
			c := &dns.Client{Timeout: 2 * time.Second}
			for range 50_000 { // bounded; stopped once the reloads are done
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion("geo.example.org.", dns.TypeA)
				ecsEurope(m)
				r, _, err := c.Exchange(m, ts.addr())
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					select {
					case errs <- fmt.Sprintf("query failed during reload: %v %v", err, r):
					default:
					}
					return
				}
				queries.Add(1)
			}
		})
	}
	// Each database places 193.0.0.0/16 in Japan (the as region) or in
	// the Netherlands (eu); each reload is done once the answer follows.
	db := filepath.Join(ts.dir, "country.mmdb")
	for i := range 5 {
		country, want := "JP", "192.0.2.30"
		if i%2 == 1 {
			country, want = "NL", "192.0.2.10"
		}
		geotest.WriteFile(t, db+".new", geotest.Net{CIDR: "193.0.0.0/16", Country: country})
		if err := os.Rename(db+".new", db); err != nil {
			t.Fatal(err)
		}
		ts.hup(t, "geoip database reloaded")
		waitAnswer(t, ts.addr(), "geo.example.org.", want, ecsEurope)
	}
	// A corrupt file leaves the last good one (JP) serving.
	if err := os.WriteFile(db+".new", []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".new", db); err != nil {
		t.Fatal(err)
	}
	ts.hup(t, "geoip reload failed; the previous database keeps serving")
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d queries during the reloads", queries.Load())
	r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, ecsEurope)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.30" {
		t.Fatalf("after a corrupt file, the last good database (JP) must serve: %v", r.Answer)
	}
}
