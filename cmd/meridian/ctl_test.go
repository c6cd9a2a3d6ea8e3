package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// ctlFails runs ctl expecting exit code with one line on stderr holding
// every want.
func (ts *testServer) ctlFails(t *testing.T, code int, args []string, want ...string) string {
	t.Helper()
	_, errOut, got := ts.ctl(t, args...)
	if got != code || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "meridian ctl: ") {
		t.Fatalf("ctl %s: exit %d, stderr %q; want exit %d and one line", strings.Join(args, " "), got, errOut, code)
	}
	mustContain(t, errOut, want...)
	return errOut
}

// auditCount is how many writes the audit log holds.
func auditCount(t *testing.T, ts *testServer) int {
	t.Helper()
	var page apitypes.AuditPage
	getJSON(t, ts.url()+"/v1/audit?limit=500", &page)
	return len(page.Records)
}

// TestCtlGetDelete: get one region or service by name, in every output
// format; delete with a dry run; a region in use is not deleted; unknown
// names get "did you mean".
func TestCtlGetDelete(t *testing.T) {
	ts := startAPIServer(t, true)

	t.Run("one region, table and wide", func(t *testing.T) {
		out := ts.mustCtl(t, "get", "regions", "eu")
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "eu ") ||
			!strings.Contains(lines[1], "192.0.2.10,2001:db8::10") {
			t.Fatalf("%q", out)
		}
		mustContain(t, ts.mustCtl(t, "get", "regions", "eu", "-o", "wide"), "CONTINENT", "CAPACITY", "CHECK DETAIL")
	})
	t.Run("one service, json and yaml", func(t *testing.T) {
		var svc regions.Service
		if err := json.Unmarshal([]byte(ts.mustCtl(t, "get", "services", "lb.example.org", "-o", "json")), &svc); err != nil || svc.Name != "lb.example.org." || len(svc.Regions) != 3 {
			t.Fatalf("%+v %v", svc, err)
		}
		y := ts.mustCtl(t, "get", "service", "lb.example.org", "-o", "yaml")
		// The YAML reads back as the state file's service: the same
		// names, so `get -o yaml` output can go into apply -f.
		var back regions.Service
		if err := yaml.Unmarshal([]byte(y), &back); err != nil || !sameJSON(&back, &svc) || !strings.HasPrefix(y, "name: lb.example.org.\nttl: 30\n") {
			t.Fatalf("%v\n%s", err, y)
		}
		mustContain(t, ts.mustCtl(t, "get", "services", "-o", "wide"), "DEGRADED TTL", "STICKY", "fail-open", "3 continents")
	})
	t.Run("did you mean", func(t *testing.T) {
		ts.ctlFails(t, 1, []string{"get", "regions", "ue"}, "404", `did you mean "eu"?`)
		ts.ctlFails(t, 1, []string{"weights", "get", "lb.exmaple.org"}, "404", `did you mean "lb.example.org."?`)
		ts.ctlFails(t, 1, []string{"explain", "sticky.example.og"}, "404", `did you mean "sticky.example.org."?`)
		ts.ctlFails(t, 1, []string{"drain", "nq"}, "404", `did you mean "na"?`)
		ts.ctlFails(t, 1, []string{"weights", "set", "lb.example.org", "ue=1"}, `400 invalid service: weights.ue: "ue" is not one of the service's regions; did you mean "eu"?`)
	})
	t.Run("a region in use is not deleted", func(t *testing.T) {
		n := auditCount(t, ts)
		ts.ctlFails(t, 1, []string{"delete", "region", "as"}, "409 in use", "geo.example.org., lb.example.org., sticky.example.org.", "remove it from these services first")
		ts.ctlFails(t, 2, []string{"delete", "region", "as", "--force"}, "delete does not take --force")
		if auditCount(t, ts) != n {
			t.Fatal("a refused delete wrote")
		}
	})
	t.Run("delete a service, dry run first", func(t *testing.T) {
		n := auditCount(t, ts)
		mustContain(t, ts.mustCtl(t, "delete", "service", "sticky.example.org", "--dry-run"), "- service sticky.example.org. would be deleted", `-   "name": "sticky.example.org."`)
		if auditCount(t, ts) != n {
			t.Fatal("a dry run wrote")
		}
		mustContain(t, ts.mustCtl(t, "delete", "service", "sticky.example.org"), "- service sticky.example.org. deleted", "revision")
		ts.ctlFails(t, 1, []string{"get", "services", "sticky.example.org"}, "404")
		var ch apitypes.ChangeResponse
		if err := json.Unmarshal([]byte(ts.mustCtl(t, "delete", "service", "geo.example.org", "--dry-run", "-o", "json")), &ch); err != nil || !ch.DryRun || !ch.Changed {
			t.Fatalf("%+v %v", ch, err)
		}
	})
}

// TestCtlNoData: a write that leaves a service answering NODATA is
// refused with the services named; its dry run is too; --force makes it
// and says what answers NODATA.
func TestCtlNoData(t *testing.T) {
	ts := startAPIServer(t, true)
	allZero := []string{"weights", "set", "lb.example.org", "eu=0", "na=0", "as=0"}
	refusal := "lb.example.org. answers: NODATA (A, AAAA): every region it lists is drained or has weight 0; --force makes the write anyway"

	n := auditCount(t, ts)
	ts.ctlFails(t, 1, allZero, "409 refused: "+refusal)
	ts.ctlFails(t, 1, append(allZero, "--dry-run"), refusal)
	ts.ctlFails(t, 1, []string{"weights", "set", "lb.example.org", "eu=0", "--replace"}, refusal)
	if auditCount(t, ts) != n {
		t.Fatal("a refused write wrote")
	}
	mustContain(t, ts.mustCtl(t, append(allZero, "--dry-run", "--force")...), "dry run, nothing written",
		"! lb.example.org. answers: NODATA (A, AAAA): every region it lists is drained or has weight 0")
	if auditCount(t, ts) != n {
		t.Fatal("a forced dry run wrote")
	}
	mustContain(t, ts.mustCtl(t, append(allZero, "--force")...), "weights changed", "answers: NODATA (A, AAAA)")
	waitNoData(t, ts, "lb.example.org.")
	mustContain(t, ts.mustCtl(t, "audit", "--limit", "1", "-o", "wide"), "set-weights", "lb.example.org. answers: NODATA (A, AAAA)")

	t.Run("drains", func(t *testing.T) {
		mustContain(t, ts.mustCtl(t, "drain", "eu"), "region eu drained")
		// na is the last region with an IPv6 VIP that geo and sticky
		// answer from.
		ts.ctlFails(t, 1, []string{"drain", "na"}, "geo.example.org. answers: NODATA (AAAA)", "sticky.example.org. answers: NODATA (AAAA)")
		mustContain(t, ts.mustCtl(t, "drain", "na", "--force"), "region na drained", "! geo.example.org. answers: NODATA (AAAA)")
		// as is their last region at all (lb answers NODATA already and is
		// not named again).
		out := ts.ctlFails(t, 1, []string{"drain", "as", "--dry-run"}, "geo.example.org. answers: NODATA (A)", "sticky.example.org. answers: NODATA (A)")
		if strings.Contains(out, "lb.example.org") {
			t.Errorf("names a service that answered NODATA before: %s", out)
		}
		mustContain(t, ts.mustCtl(t, "drain", "as", "--force"), "region as drained", "! geo.example.org. answers: NODATA (A)")
		row := regexp.MustCompile(`(?m)^as\s+unknown\s+yes\s+1/1\s+\d+\s+drained; no counted vote \(counted as up\)$`)
		etcdtest.WaitUntil(t, "status shows as drained with the reason", func() bool { return row.MatchString(ts.mustCtl(t, "get", "status")) })
	})
}

// waitNoData waits until the server answers service with NODATA.
func waitNoData(t *testing.T, ts *testServer, service string) {
	t.Helper()
	waitShares(t, ts, service, map[string]float64{"eu": 0, "na": 0, "as": 0})
}

// TestCtlApplyPlan: a dry run against an empty cluster checks services
// against the regions the same plan creates, and writes nothing;
// --exit-code exits 2 while something differs, 0 after the apply, 1 on
// any failure.
func TestCtlApplyPlan(t *testing.T) {
	ts := startAPIServer(t, false)
	file := filepath.Join(ts.dir, "state.yaml")
	out, errOut, code := ts.ctl(t, "apply", "-f", file, "--dry-run", "--exit-code")
	if code != 2 || errOut != "" {
		t.Fatalf("exit %d, %s", code, errOut)
	}
	mustContain(t, out, "+ region eu would be created", "+ service lb.example.org. would be created", `+   "name": "geo.example.org."`,
		"dry run: 6 would be created, 0 changed, 0 unchanged; nothing was written")
	if n := auditCount(t, ts); n != 0 {
		t.Fatalf("the dry run wrote %d records", n)
	}
	var res applyResult
	out, _, code = ts.ctl(t, "apply", "-f", file, "--dry-run", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || !res.DryRun || len(res.Changes) != 6 {
		t.Fatalf("exit %d %v: %s", code, err, out)
	}
	ts.mustCtl(t, "apply", "-f", file)
	if out, _, code = ts.ctl(t, "apply", "-f", file, "--dry-run", "--exit-code"); code != 0 || !strings.Contains(out, "no changes (6 unchanged)") {
		t.Fatalf("exit %d: %s", code, out)
	}

	// A plan that creates the region sa and moves lb to it: the services
	// are checked against the regions as the plan leaves them.
	plan := func(saVIPs string) string {
		state := strings.Replace(apiState, "services:\n", "  - name: sa\n    vips: "+saVIPs+"\n    location: {lat: -23.5, lon: -46.6}\n    check: {type: tcp, port: 443}\nservices:\n", 1)
		moved := strings.Replace(state, "    ttl: 30\n    policy: weighted\n    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]",
			"    ttl: 30\n    policy: weighted\n    regions: [{region: eu, weight: 0}, {region: na, weight: 0}, {region: as, weight: 0}, {region: sa, weight: 1}]", 1)
		if moved == state {
			t.Fatal("the edit did not apply")
		}
		moved += "  - name: new.example.org.\n    ttl: 30\n    policy: failover\n    regions: [{region: sa, weight: 1}]\n"
		f := filepath.Join(t.TempDir(), "state.yaml")
		if err := os.WriteFile(f, []byte(moved), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Run("services that need a region the plan creates", func(t *testing.T) {
		out, errOut, code := ts.ctl(t, "apply", "-f", plan(`[192.0.2.40, "2001:db8::40"]`), "--dry-run", "--exit-code")
		if code != 2 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		mustContain(t, out, "+ region sa would be created", "~ service lb.example.org. would be changed", "+ service new.example.org. would be created",
			`+       "region": "sa",`, "dry run: 2 would be created, 1 changed, 5 unchanged")
		if n := auditCount(t, ts); n != 6 {
			t.Fatalf("the dry run wrote: %d records", n)
		}
	})
	t.Run("the plan's own NODATA check", func(t *testing.T) {
		f := plan("[192.0.2.40]") // sa has no IPv6 VIP: lb loses AAAA
		refusal := "lb.example.org. answers: NODATA (AAAA): no region it answers from (weight above 0, not drained) has an IPv6 VIP; --force makes the write anyway"
		ts.ctlFails(t, 1, []string{"apply", "-f", f, "--dry-run"}, "service lb.example.org.: refused: "+refusal)
		mustContain(t, ts.mustCtl(t, "apply", "-f", f, "--dry-run", "--force"), "! lb.example.org. answers: NODATA (AAAA)")
	})
	t.Run("failures exit 1 with --exit-code", func(t *testing.T) {
		ts.ctlFails(t, 1, []string{"apply", "-f", filepath.Join(ts.dir, "missing.yaml"), "--exit-code"}, "missing.yaml")
		ts.ctlFails(t, 1, []string{"apply", "--exit-code"}, "apply: want -f FILE")
		ts.ctlFails(t, 2, []string{"apply"}, "apply: want -f FILE")
	})
}

// TestCtlLatency: an import naming a region that does not exist is
// refused with its line before anything is sent; a dry run shows the
// entries before and after; latency get shows what is stored.
func TestCtlLatency(t *testing.T) {
	ts := startAPIServer(t, true)
	csv := func(body string) string {
		f := filepath.Join(t.TempDir(), "latency.csv")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	ts.ctlFails(t, 1, []string{"latency", "get"}, "404", "no latency table has been imported")
	bad := csv("cidr,region,rtt_ms\n193.0.0.0/16,eu,10\n193.0.0.0/16,ue,90\n8.8.8.0/24,ue,30\n")
	ts.ctlFails(t, 1, []string{"latency", "import", bad}, `line 3: region "ue" does not exist (named on 2 lines); did you mean "eu"?`)
	if n := auditCount(t, ts); n != 6 {
		t.Fatalf("a refused import wrote: %d records", n)
	}
	first := csv("193.0.0.0/16,eu,10\n193.0.0.0/16,na,90\n8.8.8.0/24,na,30\n")
	mustContain(t, ts.mustCtl(t, "latency", "import", first, "--dry-run"), "3 entries is valid (dry run, nothing written): no table -> 3 entries")
	mustContain(t, ts.mustCtl(t, "latency", "import", first), "3 entries imported", "no table -> 3 entries")
	second := csv("193.0.0.0/16,eu,10\n193.0.0.0/16,as,50\n")
	mustContain(t, ts.mustCtl(t, "latency", "import", second, "--dry-run"), "2 entries is valid (dry run, nothing written): 3 entries -> 2 entries")

	var l apitypes.Latency
	etcdtest.WaitUntil(t, "the server serves the table", func() bool {
		out, _, code := ts.ctl(t, "latency", "get", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(out), &l) == nil && l.Served
	})
	if l.Entries != 3 || l.Prefixes != 2 || len(l.Regions) != 2 || l.Regions[0] != (apitypes.LatencyRegion{Name: "eu", Entries: 1, Known: true}) {
		t.Fatalf("%+v", l)
	}
	out := ts.mustCtl(t, "latency", "get")
	mustContain(t, out, "3 entries on 2 networks", "served by this server", "REGION")
	if !regexp.MustCompile(`(?m)^na\s+2\s+yes$`).MatchString(out) {
		t.Errorf("no row for na:\n%s", out)
	}
}

// TestCtlSuggestions: mistyped commands, verbs, flags and kinds get "did
// you mean" and exit 2 without calling the server.
func TestCtlSuggestions(t *testing.T) {
	// No server: these fail before any request.
	ts := &testServer{Started: Started{HTTP: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}, dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(ts.dir, "admin.token"), []byte("unused-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"drian", "eu"}, `unknown command "drian"; did you mean "drain"?`},
		{[]string{"weights", "sett", "x", "a=1"}, `weights: unknown command "sett"; want get or set; did you mean "set"?`},
		{[]string{"latency", "imprt", "f"}, `did you mean "import"?`},
		{[]string{"get", "region", "eu", "--dryrun"}, "unknown flag --dryrun; did you mean --dry-run?"},
		{[]string{"get", "servces"}, `get "servces": want regions, services or status; did you mean "services"?`},
		{[]string{"delete", "regoin", "eu"}, `did you mean "region"?`},
		{[]string{"drain", "eu", "--replace"}, "drain does not take --replace"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ts.ctlFails(t, 2, tc.args, tc.want)
		})
	}
	t.Run("top level", func(t *testing.T) {
		var out, errb strings.Builder
		if code := run(t.Context(), []string{"ctll"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "ctll"; did you mean "ctl"?`) {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	})
}

// TestCtlExplainClient: explain says whose decision it is: the ECS
// subnet, or the resolver when the subnet is unusable; and the health
// step states the quorum rule.
func TestCtlExplainClient(t *testing.T) {
	ts := startAPIServer(t, true)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--client", "193.0.0.0/24"}, "client     193.0.0.0/24: the ECS subnet 193.0.0.0/24; reply scope /"},
		{[]string{"--client", "10.1.2.0/24", "--resolver", "193.0.0.1"},
			"client     193.0.0.1/32: the resolver 193.0.0.1 instead: the ECS subnet 10.1.2.0/24 is unusable (not a global address"},
		{[]string{"--client", "193.0.0.0/0", "--resolver", "8.8.8.8"}, "the resolver 8.8.8.8 instead of the ECS subnet 0.0.0.0/0, whose source prefix 0"},
		{[]string{"--resolver", "8.8.8.8"}, "client     8.8.8.8/32: the resolver 8.8.8.8 (no ECS option)"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := ts.mustCtl(t, append([]string{"explain", "geo.example.org"}, tc.args...)...)
			mustContain(t, out, tc.want, "a VIP is down only when more than 0.5 of its counted votes say down, a tie stays up")
		})
	}
}

// TestCtlYAML: every structured answer is valid YAML with the API's
// names, and the YAML holds exactly what the JSON holds.
func TestCtlYAML(t *testing.T) {
	ts := startAPIServer(t, true)
	for _, args := range [][]string{{"get", "status"}, {"get", "regions"}, {"weights", "get", "lb.example.org"}, {"audit"},
		{"explain", "geo.example.org", "--client", "193.0.0.1"}, {"drain", "eu", "--dry-run"}, {"get", "services", "geo.example.org"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			j := ts.mustCtl(t, append(args, "-o", "json")...)
			var fromJSON map[string]any
			if err := json.Unmarshal([]byte(j), &fromJSON); err != nil {
				t.Fatal(err)
			}
			// What ctl prints: YAML with the same keys.
			var printed map[string]any
			y := ts.mustCtl(t, append(args, "-o", "yaml")...)
			if err := yaml.Unmarshal([]byte(y), &printed); err != nil || !slices.Equal(slices.Sorted(maps.Keys(printed)), slices.Sorted(maps.Keys(fromJSON))) {
				t.Fatalf("%v\n%s", err, y)
			}
			// The conversion of this very answer holds the same values.
			conv, err := jsonToYAML([]byte(j))
			if err != nil {
				t.Fatal(err)
			}
			var back any
			if err := yaml.Unmarshal(conv, &back); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(fromJSON)
			b, _ := json.Marshal(normalizeYAML(back))
			if string(a) != string(b) {
				t.Fatalf("YAML differs from JSON:\n%s\n%s", a, b)
			}
		})
	}
}

// normalizeYAML makes what yaml.v3 decodes comparable with what
// encoding/json decodes: numbers as float64, times (which YAML reads as
// times) as the strings JSON has.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
	case int:
		return float64(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// TestCtlTokenSources: where ctl takes its token from. data/admin.token
// in the working directory is read for the default server only, so a
// token of this machine's server never goes to another; a token about to
// cross the network in clear draws a warning, and --help steers away
// from --token, which every user sees in ps.
func TestCtlTokenSources(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, filepath.Join(dir, "file.token"), "from-the-file-0123456789\n")
	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "data", "admin.token"), "make-run-token-0123456789\n")
	for _, tc := range []struct {
		name    string
		g       ctlFlags
		env     map[string]string
		want    string
		warning bool
	}{
		{name: "the default server takes data/admin.token", want: "make-run-token-0123456789"},
		{name: "the default server named", g: ctlFlags{server: "http://127.0.0.1:8053"}, want: "make-run-token-0123456789"},
		{name: "another server does not", g: ctlFlags{server: "http://127.0.0.1:9053"}, want: ""},
		{name: "nor one named in the environment", env: map[string]string{"MERIDIAN_SERVER": "https://127.0.0.1:8053"}, want: ""},
		{name: "a token file for another server", g: ctlFlags{server: "https://ns1.example.net:8053", tokenFile: "file.token"}, want: "from-the-file-0123456789"},
		{name: "the token file of the environment", g: ctlFlags{server: "https://ns1.example.net:8053"},
			env: map[string]string{"MERIDIAN_TOKEN_FILE": "file.token"}, want: "from-the-file-0123456789"},
		{name: "plain HTTP to another host warns", g: ctlFlags{server: "http://198.51.100.7:8053", tokenFile: "file.token"},
			want: "from-the-file-0123456789", warning: true},
		{name: "plain HTTP to localhost does not", g: ctlFlags{server: "http://localhost:8053", tokenFile: "file.token"}, want: "from-the-file-0123456789"},
		{name: "plain HTTP without a token does not", g: ctlFlags{server: "http://198.51.100.7:8053"}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"MERIDIAN_SERVER", "MERIDIAN_TOKEN", "MERIDIAN_TOKEN_FILE", "MERIDIAN_CACERT", "MERIDIAN_CERT", "MERIDIAN_KEY"} {
				t.Setenv(k, tc.env[k])
			}
			_, token, err := ctlServer(tc.g)
			if err != nil || token != tc.want {
				t.Errorf("token %q (%v), want %q", token, err, tc.want)
			}
			var stderr bytes.Buffer
			if _, err := newCtl(tc.g, io.Discard, &stderr); err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(stderr.String(), "over plain HTTP, readable on the way"); warned != tc.warning {
				t.Errorf("warning %v, want %v: %q", warned, tc.warning, stderr.String())
			}
		})
	}
	_, out, _ := runArgs("ctl", "--help")
	if !strings.Contains(out, "--token TOKEN") || !strings.Contains(out, "every user of the\n                      machine sees a command line (ps); use --token-file or $MERIDIAN_TOKEN_FILE") {
		t.Errorf("--help does not steer away from --token:\n%s", out)
	}
}
