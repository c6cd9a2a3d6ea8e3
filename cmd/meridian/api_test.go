package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/miekg/dns"
)

// apiConfig gives the test server API tokens: an admin token created on
// first start, and reads open.
const apiConfig = "api:\n  tokens_file: tokens.yaml\n  admin_token_file: admin.token\n  open_reads: true\n"

// apiState is the steering tests' state with a sticky weighted service,
// whose choice depends on the client network only.
const apiState = steeringState + `  - name: sticky.example.org.
    ttl: 30
    policy: weighted
    sticky: true
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]
`

// startAPIServer runs a server with tokens and GeoIP; bootstrap loads
// apiState, and the server is returned once it serves the state's last
// service (the bootstrap writes them one by one, and audits each),
// otherwise etcd starts empty.
func startAPIServer(t testing.TB, bootstrap bool) *testServer {
	t.Helper()
	files := steeringFiles(t)
	files["state.yaml"] = []byte(apiState)
	extra := apiConfig + "geoip:\n  database: country.mmdb\n"
	if bootstrap {
		extra += "bootstrap: state.yaml\n"
	}
	ts := startServerWith(t, serverSetup{extra: extra, files: files})
	if bootstrap {
		waitService(t, ts, "sticky.example.org.")
	}
	return ts
}

func (ts *testServer) url() string { return cmp.Or(ts.scheme, "http") + "://" + ts.HTTP.String() }

// ctl runs `meridian ctl` against the test server with its admin token.
func (ts *testServer) ctl(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"ctl", "--server", ts.url(), "--token-file", filepath.Join(ts.dir, "admin.token")}, args...)
	code = run(context.Background(), all, &out, &errb)
	return out.String(), errb.String(), code
}

func (ts *testServer) mustCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := ts.ctl(t, args...)
	if code != 0 {
		t.Fatalf("ctl %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

// getJSON fetches an API path into v.
func getJSON(t testing.TB, url string, v any) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return b
}

// waitShares waits until the served snapshot expects want (region:
// share of IPv4 answers) for service.
func waitShares(t testing.TB, ts *testServer, service string, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Services []struct {
				Name          string `json:"name"`
				ExpectedShare map[string]struct {
					Regions map[string]float64 `json:"regions"`
				} `json:"expected_share"`
			} `json:"services"`
		}
		getJSON(t, ts.url()+"/v1/status", &st)
		for _, s := range st.Services {
			if s.Name == service {
				got := s.ExpectedShare["ipv4"].Regions
				ok := true
				for r, w := range want {
					ok = ok && math.Abs(got[r]-w) < 1e-9
				}
				if ok {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never expected %v for %s", want, service)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// digArgs is the start of dig's (or delv's) arguments for asking the
// server at addr (127.0.0.x:port), from srcPort (0: one the kernel picks)
// and from a loopback address other than the server's. The UDP sockets of
// BIND's tools ask for SO_REUSEPORT before they bind (dig to port 0, delv
// to a port it picks at random), and Linux then lets one have the port of
// a socket of the same user that has SO_REUSEPORT too, as a name
// server's sockets do: with the server's address as well, dig's query to
// the server comes back to dig itself (its socket, connected to that very
// address and port, is the better match), and dig takes it for a reply
// without QR ("Warning: query response not set") and without answers.
// From another address its socket never matches what is sent to the
// server.
func digArgs(t testing.TB, addr string, srcPort int) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	src := "127.0.0.2"
	if host == src {
		src = "127.0.0.3"
	}
	if srcPort != 0 {
		src += "#" + strconv.Itoa(srcPort)
	}
	return []string{"-b", src, "@" + host, "-p", port}
}

// digMany asks dig for name n times in one run (dig -f) and counts the
// addresses answered; options are dig's (+subnet=...).
func digMany(t *testing.T, dig string, ts *testServer, name string, n int, options ...string) map[string]int {
	t.Helper()
	batch := filepath.Join(t.TempDir(), "queries")
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "%s A\n", name)
	}
	if err := os.WriteFile(batch, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(digArgs(t, ts.addr(), 0), "+short", "+norec", "+time=2", "+tries=2", "-f", batch)
	counts := digAddrs(t, dig, append(args, options...)...)
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != n {
		t.Fatalf("dig answered %d of %d queries: %v", total, n, counts)
	}
	return counts
}

// digAddrs runs dig +short and counts the addresses it printed. Any other
// line (a warning, an error, a name) fails the test: it is no answer.
func digAddrs(t *testing.T, dig string, args ...string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := execOutput(ctx, dig, args...)
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	counts := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		a, err := netip.ParseAddr(l)
		if err != nil {
			t.Fatalf("dig printed %q, not an address:\n%s", l, out)
		}
		counts[a.String()]++
	}
	return counts
}

// TestAPIEndToEnd drives a running server through ctl and its API and
// checks the DNS answers: weights shift traffic within sampling error, a
// drained region is in no answer, explain agrees with DNS, and writes
// without a token or with bad input change nothing.
func TestAPIEndToEnd(t *testing.T) {
	dig := testtool.Need(t, "dig")
	ts := startAPIServer(t, true)

	t.Run("weights set shifts the answers", func(t *testing.T) {
		out := ts.mustCtl(t, "weights", "set", "lb.example.org", "eu=70", "na=30", "as=0")
		mustContain(t, out, "weights changed", "eu", "1 -> 70", "70.0%", "30.0%")
		waitShares(t, ts, "lb.example.org.", map[string]float64{"eu": 0.7, "na": 0.3, "as": 0})
		const n = 1000
		counts := digMany(t, dig, ts, "lb.example.org", n)
		// Five standard deviations of a binomial count: a false alarm
		// about once in two million runs.
		sd := math.Sqrt(n * 0.7 * 0.3)
		if eu := counts["192.0.2.10"]; math.Abs(float64(eu)-0.7*n) > 5*sd || counts["192.0.2.30"] != 0 || counts["192.0.2.10"]+counts["192.0.2.20"] != n {
			t.Fatalf("answers %v, want about 700 eu, 300 na, no as", counts)
		}
	})
	t.Run("a drained region is in no answer", func(t *testing.T) {
		mustContain(t, ts.mustCtl(t, "drain", "eu"), "region eu drained")
		mustContain(t, ts.mustCtl(t, "drain", "eu"), "already drained")
		waitShares(t, ts, "lb.example.org.", map[string]float64{"eu": 0, "na": 1})
		for _, name := range []string{"lb.example.org", "geo.example.org", "sticky.example.org"} {
			for _, subnet := range []string{"193.0.0.0/24", "8.8.8.0/24", "202.12.27.0/24"} {
				if c := digMany(t, dig, ts, name, 50, "+subnet="+subnet); c["192.0.2.10"] != 0 {
					t.Fatalf("%s for %s answered the drained region: %v", name, subnet, c)
				}
			}
		}
		out := ts.mustCtl(t, "explain", "geo.example.org", "--client", "193.0.0.0/24")
		mustContain(t, out, "drained (the region is drained)", "answer: 192.0.2.20")
		status := ts.mustCtl(t, "get", "status")
		if !regexp.MustCompile(`(?m)^eu\s+\S+\s+yes`).MatchString(status) {
			t.Errorf("status does not show eu drained:\n%s", status)
		}
		mustContain(t, ts.mustCtl(t, "undrain", "eu"), "region eu undrained")
		// Explain and DNS below each read the served snapshot: the undrain
		// must be in it, or it can come between an explanation and its
		// queries. (geo without ECS answers na either way.)
		waitShares(t, ts, "lb.example.org.", map[string]float64{"eu": 0.7, "na": 0.3, "as": 0})
	})
	t.Run("explain matches DNS", func(t *testing.T) {
		for _, name := range []string{"geo.example.org", "sticky.example.org"} {
			for _, subnet := range []string{"193.0.0.0/24", "8.8.8.0/24", "202.12.27.0/24", "1.1.1.0/24", "9.9.9.0/24", "193.0.1.0/24"} {
				var ex struct {
					Explanation struct {
						Answer []string `json:"answer"`
					} `json:"explanation"`
				}
				out := ts.mustCtl(t, "explain", name, "--client", subnet, "-o", "json")
				if err := json.Unmarshal([]byte(out), &ex); err != nil {
					t.Fatal(err)
				}
				got := digMany(t, dig, ts, name, 5, "+subnet="+subnet)
				want := map[string]int{}
				for _, a := range ex.Explanation.Answer {
					want[a] = 5
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s for %s: DNS %v, explain %v", name, subnet, got, ex.Explanation.Answer)
				}
			}
		}
	})
	t.Run("refused writes change nothing", func(t *testing.T) {
		before := getJSON(t, ts.url()+"/v1/services/lb.example.org", nil)
		req, _ := http.NewRequest("PATCH", ts.url()+"/v1/services/lb.example.org/weights", strings.NewReader(`{"weights":{"eu":1}}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a write without a token: %d", resp.StatusCode)
		}
		_, errOut, code := ts.ctl(t, "weights", "set", "lb.example.org", "eu=1", "nowhere=2")
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "400") || !strings.Contains(errOut, "weights.nowhere") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
		req, _ = http.NewRequest("PATCH", ts.url()+"/v1/services/lb.example.org/weights", strings.NewReader(`{"weights":{"eu":-5}}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(mustReadFile(t, filepath.Join(ts.dir, "admin.token"))))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"field":"weights.eu"`) {
			t.Fatalf("negative weight: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if after := getJSON(t, ts.url()+"/v1/services/lb.example.org", nil); !bytes.Equal(before, after) {
			t.Fatalf("a refused write changed the service:\n%s\n%s", before, after)
		}
	})
	t.Run("audit", func(t *testing.T) {
		out := ts.mustCtl(t, "audit", "--limit", "3")
		mustContain(t, out, "admin", "undrain", "drain", "region")
	})
	t.Run("metrics parse", func(t *testing.T) {
		_, fams := scrape(t, ts.url()+"/metrics")
		answers := map[string]float64{}
		if f := fams["meridian_dns_region_answers_total"]; f != nil {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "region" {
						answers[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
		if answers["eu"] < 500 || answers["na"] < 100 {
			t.Errorf("answers by region %v", answers)
		}
		for _, name := range []string{"meridian_snapshot_revision", "meridian_dns_responses_total", "meridian_dns_steered_total"} {
			if fams[name] == nil {
				t.Errorf("no %s", name)
			}
		}
	})
	t.Run("one JSON style", func(t *testing.T) {
		for _, path := range []string{"/v1/status", "/health/details", "/v1/regions", "/v1/services", "/v1/audit", "/v1/explain?name=geo.example.org&client=193.0.0.1&type=AAAA"} {
			checkJSONStyle(t, path, getJSON(t, ts.url()+path, nil))
		}
	})
}

var jsonKey = regexp.MustCompile(`^([a-z0-9][a-z0-9_.\-]*|[A-Z]{2})$`)

// checkJSONStyle: snake_case keys (region and service names and country
// codes as map keys), no null but for an absent object before or after a
// change.
func checkJSONStyle(t *testing.T, what string, b []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !jsonKey.MatchString(k) {
					t.Errorf("%s %s: key %q", what, path, k)
				}
				if e == nil && k != "before" && k != "after" {
					t.Errorf("%s %s.%s is null", what, path, k)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	walk("", v)
}

func mustReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCtlApply: apply creates what the file holds and shows it; applied
// again it changes nothing; an edit shows as a diff; a dry run writes
// nothing.
func TestCtlApply(t *testing.T) {
	ts := startAPIServer(t, false)
	if st, err := os.Stat(filepath.Join(ts.dir, "admin.token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token: %v %v", st, err)
	}
	file := filepath.Join(ts.dir, "state.yaml")
	revision := func() int64 {
		var l struct {
			Revision int64 `json:"revision"`
		}
		getJSON(t, ts.url()+"/v1/services", &l)
		return l.Revision
	}

	out := ts.mustCtl(t, "apply", "-f", file)
	mustContain(t, out, "+ region eu created", "+ service geo.example.org. created", `+   "name": "eu"`, "6 created, 0 changed, 0 unchanged")
	rev := revision()

	out = ts.mustCtl(t, "apply", "-f", file)
	mustContain(t, out, "no changes (6 unchanged)")
	if revision() != rev {
		t.Fatalf("the second apply wrote: revision %d -> %d", rev, revision())
	}

	edited := strings.Replace(apiState, "ttl: 30\n    policy: weighted\n    regions: [{region: eu, weight: 1}", "ttl: 30\n    policy: weighted\n    regions: [{region: eu, weight: 5}", 1)
	if edited == apiState {
		t.Fatal("the edit did not apply")
	}
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out = ts.mustCtl(t, "apply", "-f", file, "--dry-run")
	mustContain(t, out, "~ service lb.example.org. would be changed", `-       "weight": 1`, `+       "weight": 5`, "dry run: 0 would be created, 1 changed, 5 unchanged")
	if revision() != rev {
		t.Fatal("a dry run wrote")
	}
	out = ts.mustCtl(t, "apply", "-f", file, "-o", "json")
	var res struct {
		Changes []struct {
			Name    string `json:"name"`
			Changed bool   `json:"changed"`
		} `json:"changes"`
		Unchanged int `json:"unchanged"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Changes) != 1 || res.Changes[0].Name != "lb.example.org." || res.Unchanged != 5 {
		t.Fatalf("%v: %s", err, out)
	}

	// A drain made through the API survives an apply of a file that does
	// not mention it.
	ts.mustCtl(t, "drain", "as")
	mustContain(t, ts.mustCtl(t, "apply", "-f", file), "no changes")
	mustContain(t, ts.mustCtl(t, "get", "regions"), "as", "yes")

	t.Run("bad file", func(t *testing.T) {
		bad := filepath.Join(ts.dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("regions:\n  - name: x\n    vips: [nope]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := ts.ctl(t, "apply", "-f", bad)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "bad.yaml") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
}

// TestCtlFailures: every failure is one line on stderr and a non-zero
// exit status.
func TestCtlFailures(t *testing.T) {
	ts := startAPIServer(t, true)
	closed := fmt.Sprintf("http://127.0.0.1:%d", testport.Free(t, 1)[0])
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"server down", []string{"--server", closed, "get", "regions"}, 1, "cannot reach the Meridian API at " + closed},
		{"no token", []string{"--token", "", "--token-file", "/dev/null", "drain", "eu"}, 1, "token file /dev/null is empty"},
		{"bad token", []string{"--token", "wrong-wrong-wrong-wrong", "drain", "eu"}, 1, "401"},
		{"unknown region", []string{"drain", "nowhere"}, 1, "404"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad weight", []string{"weights", "set", "lb.example.org", "eu=-1"}, 2, `"eu=-1"`},
		{"bad output", []string{"-o", "xml", "get", "regions"}, 2, `-o "xml": want table, wide, json, yaml`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := ts.ctl(t, tc.args...)
			if code != tc.code || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "meridian ctl: ") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q on one line", code, errOut, tc.code, tc.want)
			}
		})
	}
	t.Run("tables and json", func(t *testing.T) {
		mustContain(t, ts.mustCtl(t, "get", "services"), "SERVICE", "lb.example.org.", "eu=1 na=1 as=1")
		mustContain(t, ts.mustCtl(t, "weights", "get", "lb.example.org"), "33.3%")
		var l struct {
			Regions []any `json:"regions"`
		}
		if err := json.Unmarshal([]byte(ts.mustCtl(t, "get", "regions", "-o", "json")), &l); err != nil || len(l.Regions) != 3 {
			t.Fatalf("%v %v", l, err)
		}
	})
	t.Run("latency import", func(t *testing.T) {
		csv := filepath.Join(ts.dir, "latency.csv")
		if err := os.WriteFile(csv, []byte("cidr,region,rtt_ms\n193.0.0.0/16,eu,10\n193.0.0.0/16,na,90\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustContain(t, ts.mustCtl(t, "latency", "import", csv, "--dry-run"), "2 entries is valid")
		mustContain(t, ts.mustCtl(t, "latency", "import", csv), "2 entries imported")
		mustContain(t, ts.mustCtl(t, "latency", "import", csv), "unchanged")
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("MERIDIAN_SERVER", ts.url())
		t.Setenv("MERIDIAN_TOKEN_FILE", filepath.Join(ts.dir, "admin.token"))
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"ctl", "undrain", "eu"}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		mustContain(t, out.String(), "region eu was already undrained")
	})
}

func execOutput(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}

// TestAPIWithEtcdGone: with etcd gone, a write through the API gets 503
// with Retry-After within the write timeout, ctl says so in one line, and
// DNS keeps answering from the last state.
func TestAPIWithEtcdGone(t *testing.T) {
	a := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t)})
	files := steeringFiles(t)
	delete(files, "state.yaml")
	b := startServerWith(t, serverSetup{extra: apiConfig + "  write_timeout: 500ms\ngeoip:\n  database: country.mmdb\n", files: files, etcdFrom: a})
	waitService(t, b, "lb.example.org.") // a's bootstrap's last service
	b.mustCtl(t, "weights", "set", "lb.example.org", "eu=1", "na=0", "as=0")
	// The weighted service answers eu at random before the change too:
	// wait until b serves the change itself, not an answer that fits it.
	waitShares(t, b, "lb.example.org.", map[string]float64{"eu": 1, "na": 0, "as": 0})
	if code := a.stop(); code != 0 { // etcd goes away with a
		t.Fatalf("a exited %d", code)
	}
	api := newAPIClient(t, b)
	for _, w := range []struct{ method, path, body string }{
		{"PATCH", "/v1/services/lb.example.org/weights", `{"weights":{"na":1}}`},
		{"POST", "/v1/regions/eu/drain", ""},
		{"GET", "/v1/regions", ""},
	} {
		req, _ := http.NewRequest(w.method, b.url()+w.path, strings.NewReader(w.body))
		req.Header.Set("Authorization", "Bearer "+api.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s with etcd gone: %d %v %s", w.method, w.path, resp.StatusCode, resp.Header, body)
		}
	}
	_, errOut, code := b.ctl(t, "drain", "eu")
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "503") {
		t.Fatalf("ctl with etcd gone: exit %d %q", code, errOut)
	}
	for range 20 {
		r := query(t, "udp", b.addr(), "lb.example.org.", dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
			t.Fatalf("DNS with etcd gone: %v", r)
		}
	}
	// The status answers from the snapshot.
	getJSON(t, b.url()+"/v1/status", nil)
}

// TestSlowStartThroughTheServer: a region undrained on a running server
// ramps in on its own (the server builds its snapshot again while the
// ramp moves): status and explain show the ramp factor below 1, then the
// region back at its full share with the ramp over.
func TestSlowStartThroughTheServer(t *testing.T) {
	files := steeringFiles(t)
	files["state.yaml"] = []byte(steeringState + `  - name: ramp.example.org.
    ttl: 2
    policy: weighted
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}]
    slow_start: {window: 10s}
`)
	ts := startServerWith(t, serverSetup{extra: apiConfig + "geoip:\n  database: country.mmdb\nbootstrap: state.yaml\n", files: files})
	waitShares(t, ts, "ramp.example.org.", map[string]float64{"eu": 0.5, "na": 0.5})
	ts.mustCtl(t, "drain", "eu")
	waitShares(t, ts, "ramp.example.org.", map[string]float64{"eu": 0, "na": 1})
	ts.mustCtl(t, "undrain", "eu")

	// The ramp shows until it is over, with the region's share rising.
	type factors struct {
		Ramp     float64 `json:"ramp"`
		RampNote string  `json:"ramp_note"`
		Kept     float64 `json:"kept"`
	}
	rampOf := func() factors {
		var st struct {
			Services []struct {
				Name    string `json:"name"`
				Regions []struct {
					Region  string  `json:"region"`
					Factors factors `json:"factors"`
				} `json:"regions"`
			} `json:"services"`
		}
		getJSON(t, ts.url()+"/v1/status", &st)
		for _, s := range st.Services {
			for _, r := range s.Regions {
				if s.Name == "ramp.example.org." && r.Region == "eu" {
					return r.Factors
				}
			}
		}
		t.Fatal("no ramp.example.org. eu in the status")
		return factors{}
	}
	deadline := time.Now().Add(time.Minute)
	sawRamp := false
	for f := rampOf(); ; f = rampOf() {
		if f.Ramp < 1 {
			sawRamp = true
			if !strings.HasPrefix(f.RampNote, "slow start") {
				t.Fatalf("ramp %v with note %q", f.Ramp, f.RampNote)
			}
			out := ts.mustCtl(t, "explain", "ramp.example.org")
			mustContain(t, out, "× ramp ", "slow start")
		}
		if f.Ramp == 1 && f.Kept == 1 && sawRamp {
			break
		}
		if !sawRamp && f.Ramp == 1 && strings.Contains(f.RampNote, "over") {
			t.Fatal("the ramp was over before the status showed it: slow machine, or no ramp")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ramp did not end within a minute: %+v", f)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitShares(t, ts, "ramp.example.org.", map[string]float64{"eu": 0.5, "na": 0.5})
}
