package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// browser is a headless Chromium driven through the DevTools protocol,
// collecting the page's console errors, uncaught exceptions and failed
// loads (a refused Content-Security-Policy among them).
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// screenshotDir is where the browser tests save their screenshots:
// $MERIDIAN_SCREENSHOTS when set (docs/dashboard.png is one), else the
// test's temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("MERIDIAN_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	exe := testtool.Need(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.Flag("no-proxy-server", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
			}
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				msg = "log: " + ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// run runs steps, bounded in time.
func (b *browser) run(t *testing.T, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v (console: %v)", err, b.consoleErrors())
	}
}

// value runs an action that returns a value, bounded in time.
func value[T any](t *testing.T, b *browser, timeout time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v (console: %v)", err, b.consoleErrors())
	}
	return v
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png := value(t, b, 20*time.Second, chromedp.FullScreenshot(100))
	path := filepath.Join(screenshotDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// poll waits in the page until the JavaScript expression is true.
func poll(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

// dashboardState: three regions checked over HTTP on stand-in load
// balancers, a geo service (the map's lines), a failover service whose
// answers a weight of 0 moves, and a weighted one.
const dashboardState = `regions:
  - name: eu
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.9, country: NL, continent: EU}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.10: "%s"}}
  - name: na
    vips: [192.0.2.20]
    location: {lat: 38.9, lon: -77.0, country: US, continent: NA}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.20: "%s"}}
  - name: as
    vips: [192.0.2.30]
    location: {lat: 35.7, lon: 139.7, country: JP, continent: AS}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.30: "%s"}}
services:
  - name: geo.example.org.
    ttl: 60
    policy: geo
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]
    geo:
      continents: {EU: [eu, na], NA: [na, eu], AS: [as, na]}
      default: [na, eu, as]
  - name: fo.example.org.
    ttl: 30
    policy: failover
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}]
  - name: lb.example.org.
    ttl: 30
    policy: weighted
    regions: [{region: eu, weight: 2}, {region: na, weight: 1}, {region: as, weight: 1}]
`

// startProbers runs `meridian prober` in this process, one per region,
// against ts's embedded etcd with the probers' certificate.
func startProbers(t *testing.T, ts *testServer, regionsOf ...string) {
	t.Helper()
	ec := ts.etcdConfig(true)
	config := writeFile(t, filepath.Join(ts.dir, "dashboard-prober.yaml"), fmt.Sprintf("etcd:\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n", ec.CAFile, ec.CertFile, ec.KeyFile))
	etcd := ec.Endpoints[0]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, region := range regionsOf {
		wg.Add(1)
		stderr := &testlog.Buffer{}
		go func() {
			defer wg.Done()
			args := []string{"--region", region, "--etcd", etcd, "--config", config, "--id", fmt.Sprintf("p%d-%s", i+1, region), "--log-level", "warn"}
			if code := runProber(ctx, args, &strings.Builder{}, stderr); code != 0 && ctx.Err() == nil {
				t.Errorf("prober %d exited with %d:\n%s", i+1, code, stderr)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// ecsQuery asks name (A) for a client in subnet and returns the first
// address answered.
func ecsQuery(addr, name string, subnet netip.Prefix) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(subnet.Bits()), Address: subnet.Addr().AsSlice()})
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return "", err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("%s: no address in %v", name, r)
}

// The clients of the geo service by continent (the GeoIP database of
// steeringFiles places them).
var dashboardClients = map[string]netip.Prefix{
	"EU": netip.MustParsePrefix("193.0.1.0/24"),
	"NA": netip.MustParsePrefix("8.8.8.0/25"),
	"AS": netip.MustParsePrefix("202.12.27.0/24"),
}

// queryLoad asks the geo service for clients of every continent, one
// query every 4 ms, until stop is closed or a minute has passed.
func queryLoad(t *testing.T, addr string) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Minute)
		tk := time.NewTicker(4 * time.Millisecond)
		defer tk.Stop()
		conts := []string{"EU", "NA", "AS"}
		for i := 0; i < 15000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			_, _ = ecsQuery(addr, "geo.example.org.", dashboardClients[conts[i%len(conts)]])
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// TestDashboard drives the dashboard in headless Chromium against a real
// server with real probers checking stand-in load balancers over HTTP:
// the page loads without a console error; a failed region turns down on
// the page and its continent's line moves within 2 s of the DNS answers
// moving; a weight change made on the page, after its preview, changes
// the DNS answers; the page's explanation is /v1/explain's.
func TestDashboard(t *testing.T) {
	eu, na, as := newStandIn(t), newStandIn(t), newStandIn(t)
	files := steeringFiles(t)
	files["state.yaml"] = []byte(fmt.Sprintf(dashboardState, eu.srv.Listener.Addr(), na.srv.Listener.Addr(), as.srv.Listener.Addr()))
	ts := startServerWith(t, serverSetup{extra: apiConfig + steeringConfig, files: files})
	startProbers(t, ts, "eu", "na", "as")
	queryLoad(t, ts.addr())
	adminToken, err := os.ReadFile(filepath.Join(ts.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, 1400, 1100)
	start := time.Now()
	b.run(t, 30*time.Second,
		chromedp.Navigate(ts.url()+"/ui/"),
		poll(`document.querySelector("#conn").dataset.state === "live"`, 20*time.Second),
		// Every region up with a counted vote, and EU's answers drawn to eu.
		poll(`["eu","na","as"].every(r => document.querySelector('#region-table tr[data-region="'+r+'"][data-state="up"]'))`, 20*time.Second),
		poll(`(() => { const l = document.querySelector('#map path.flow[data-continent="EU"][data-region="eu"]'); return l && +l.dataset.share > 0.9 })()`, 20*time.Second),
	)
	t.Logf("page live with every region up and EU's line to eu: %v after navigating", time.Since(start).Round(time.Millisecond))
	b.screenshot(t, "dashboard.png")

	t.Run("region down moves its lines", func(t *testing.T) {
		eu.down.Store(true)
		defer eu.down.Store(false)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := ecsQuery(ts.addr(), "geo.example.org.", dashboardClients["EU"])
			if err == nil && got == "192.0.2.20" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("EU's answers did not move to na: %q, %v", got, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		moved := time.Now()
		b.run(t, 10*time.Second,
			poll(`document.querySelector('#region-table tr[data-region="eu"][data-state="down"]') && document.querySelector('#map g.region[data-region="eu"][data-state="down"]')`, 5*time.Second),
			poll(`(() => { const l = document.querySelector('#map path.flow[data-continent="EU"][data-region="na"]'); return l && +l.dataset.share > 0.5 })()`, 5*time.Second),
		)
		took := time.Since(moved)
		t.Logf("region down and EU's line moved to na %v after the DNS answers moved", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("the page took %v after the answers moved, want within 2 s", took)
		}
		b.screenshot(t, "dashboard-eu-down.png")
		eu.down.Store(false)
		b.run(t, 20*time.Second, poll(`document.querySelector('#region-table tr[data-region="eu"][data-state="up"]') !== null`, 15*time.Second))
	})

	t.Run("weight change with preview changes answers", func(t *testing.T) {
		if got, err := ecsQuery(ts.addr(), "fo.example.org.", dashboardClients["EU"]); err != nil || got != "192.0.2.10" {
			t.Fatalf("fo.example.org before: %q, %v; want eu's 192.0.2.10", got, err)
		}
		// Without a token the API refuses the write, and the page says so.
		b.run(t, 20*time.Second,
			chromedp.SetValue(chromedp.CSS("#w-service"), "fo.example.org."),
			chromedp.Evaluate[chromedp.Void](`void document.querySelector("#w-service").dispatchEvent(new Event("change"))`),
			chromedp.SetValue(chromedp.CSS(`#w-fields input[data-region="eu"]`), "0"),
			chromedp.Evaluate[chromedp.Void](`void document.querySelector("#w-fields").dispatchEvent(new Event("input"))`),
			chromedp.Click(chromedp.CSS(`#weights-form button[type="submit"]`)),
			poll(`document.querySelector("#preview .error")?.textContent.includes("refused (401)")`, 5*time.Second),
		)
		b.run(t, 20*time.Second,
			chromedp.SetValue(chromedp.CSS("#token"), strings.TrimSpace(string(adminToken))),
			chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
			poll(`document.querySelector("#conn").dataset.state === "live"`, 10*time.Second),
			chromedp.SetValue(chromedp.CSS("#w-service"), "fo.example.org."),
			chromedp.Evaluate[chromedp.Void](`void document.querySelector("#w-service").dispatchEvent(new Event("change"))`),
			chromedp.SetValue(chromedp.CSS(`#w-fields input[data-region="eu"]`), "0"),
			chromedp.Evaluate[chromedp.Void](`void document.querySelector("#w-fields").dispatchEvent(new Event("input"))`),
			chromedp.Click(chromedp.CSS(`#weights-form button[type="submit"]`)),
			poll(`document.querySelector('#preview td[data-after="na"]') !== null`, 5*time.Second),
		)
		after := value(t, b, 5*time.Second, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll("#preview td[data-after]")].map(td => [td.dataset.after, td.textContent]))`))
		if after["eu"] != "0%" || after["na"] != "100%" {
			t.Errorf("preview's shares after: %v, want eu 0%% and na 100%%", after)
		}
		// The preview is a dry run: the answers have not moved.
		if got, _ := ecsQuery(ts.addr(), "fo.example.org.", dashboardClients["EU"]); got != "192.0.2.10" {
			t.Errorf("after the preview fo.example.org answers %q, want still 192.0.2.10", got)
		}
		b.screenshot(t, "dashboard-preview.png")
		b.run(t, 10*time.Second,
			chromedp.Click(chromedp.CSS("#confirm")),
			poll(`document.querySelector("#done") !== null`, 5*time.Second),
		)
		waitAnswer(t, ts.addr(), "fo.example.org.", "192.0.2.20")
		b.run(t, 10*time.Second, poll(`[...document.querySelectorAll("#audit tbody td")].some(td => td.textContent.includes("set-weights service fo.example.org.") && td.textContent.includes("eu 1→0"))`, 5*time.Second))
	})

	t.Run("explain equals the API's", func(t *testing.T) {
		b.run(t, 10*time.Second,
			chromedp.SetValue(chromedp.CSS("#ex-name"), "geo.example.org."),
			chromedp.SetValue(chromedp.CSS("#ex-client"), "202.12.27.0/24"),
			chromedp.Click(chromedp.CSS(`#explain-form button[type="submit"]`)),
			poll(`document.querySelector("#explain-json") !== null`, 5*time.Second),
		)
		pageJSON := value(t, b, 5*time.Second, chromedp.Evaluate[string](`document.querySelector("#explain-json").textContent`))
		shown := value(t, b, 5*time.Second, chromedp.Evaluate[string](`document.querySelector("#explain-out .result").textContent`))
		var fromPage, fromAPI map[string]any
		if err := json.Unmarshal([]byte(pageJSON), &fromPage); err != nil {
			t.Fatalf("the page's explanation: %v\n%s", err, pageJSON)
		}
		getJSON(t, ts.url()+"/v1/explain?name=geo.example.org.&client=202.12.27.0/24&type=A", &fromAPI)
		// The probers' reports move etcd's revision between the two
		// requests; the decision and every step must be the same.
		pageRev, apiRev := fromPage["revision"].(float64), fromAPI["revision"].(float64)
		if pageRev <= 0 || apiRev < pageRev {
			t.Errorf("revisions: page %v, API %v (asked later)", pageRev, apiRev)
		}
		for _, m := range []map[string]any{fromPage, fromAPI} {
			delete(m, "revision")
			if x, ok := m["explanation"].(map[string]any); ok {
				delete(x, "revision")
			}
		}
		if d := cmp.Diff(fromAPI, fromPage); d != "" {
			t.Errorf("the page's explanation differs from /v1/explain (-api +page):\n%s", d)
		}
		if !strings.Contains(shown, "as") || !strings.Contains(shown, "192.0.2.30") {
			t.Errorf("the page shows %q, want the region as and 192.0.2.30", shown)
		}
		b.screenshot(t, "dashboard-explain.png")
	})

	t.Run("traffic by service", func(t *testing.T) {
		choose := func(service string, then chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
			return []chromedp.Action[chromedp.Void]{
				chromedp.SetValue(chromedp.CSS("#t-service"), service),
				chromedp.Evaluate[chromedp.Void](`void document.querySelector("#t-service").dispatchEvent(new Event("change"))`),
				then,
			}
		}
		// The geo service's answers come from its three regions.
		b.run(t, 20*time.Second, choose("geo.example.org.",
			poll(`document.querySelector("#conn").dataset.state === "live" && state.hist.len > 5 &&
				["eu","na","as"].every(r => document.querySelector('#chart polyline.series[data-region="'+r+'"]')) &&
				document.querySelector('#chart polyline.service[data-service="geo.example.org."]') !== null`, 15*time.Second))...)
		// Its answers by region add up to its answers: the two counters
		// are read a moment apart, so a few answers may fall in between
		// at each end of the hour.
		sums := value(t, b, 5*time.Second, chromedp.Evaluate[map[string]int](`(() => {
			const h = state.hist, out = {total: h.services["geo.example.org."].reduce((a, v) => a + v, 0)};
			for (const [r, v] of Object.entries(h.serviceRegions)) out[r] = v.reduce((a, x) => a + x, 0);
			return out })()`))
		byRegion := sums["eu"] + sums["na"] + sums["as"]
		t.Logf("geo.example.org.'s answers over the page's hour: %v", sums)
		if len(sums) != 4 || sums["eu"] == 0 || sums["na"] == 0 || sums["as"] == 0 || byRegion > sums["total"]+10 || byRegion < sums["total"]-10 {
			t.Errorf("geo.example.org.'s answers by region %v, want eu, na and as adding up to the total", sums)
		}
		b.screenshot(t, "dashboard-service-traffic.png")
		// Every service again: the regions' series, no service's total.
		b.run(t, 20*time.Second, choose("",
			poll(`document.querySelector("#conn").dataset.state === "live" && state.hist.len > 5 &&
				document.querySelectorAll('#chart polyline.series').length === 3 && document.querySelector('#chart polyline.service') === null`, 15*time.Second))...)
	})

	t.Run("a shift shows as shifted and is marked", func(t *testing.T) {
		id, _ := createShift(t, ts, "--service", "lb.example.org", "--drain", "as", "--for", "4s", "--reason", "dashboard test")
		b.run(t, 20*time.Second,
			poll(`document.querySelector('#region-table tr[data-region="as"][data-state="shifted"]') !== null && document.querySelector('#map g.region[data-region="as"][data-state="shifted"]') !== null`, 5*time.Second),
			poll(`document.querySelector('#marks li[data-region="as"][data-to="shifted"]')?.textContent.includes("shift `+id+`: drain as from lb.example.org.")`, 5*time.Second),
		)
		if got := value(t, b, 5*time.Second, chromedp.Evaluate[string](`document.querySelector('#region-table tr[data-region="as"] td').textContent`)); !strings.Contains(got, "shift "+id) {
			t.Errorf("the region's state says %q, want the shift %s named", got, id)
		}
		b.screenshot(t, "dashboard-shifted.png")
		// At its expiry the region is up again, and the end is marked too.
		b.run(t, 30*time.Second,
			poll(`document.querySelector('#region-table tr[data-region="as"][data-state="up"]') !== null &&
				document.querySelector('#marks li[data-region="as"][data-to="up"]')?.textContent.includes("shift `+id+` expired")`, 20*time.Second),
			poll(`document.querySelectorAll('#chart line.mark.shift[data-region="as"]').length === 2`, 5*time.Second),
		)
	})

	t.Run("no console errors", func(t *testing.T) {
		for _, e := range b.consoleErrors() {
			// The browser's own report of the write refused on purpose
			// above is not the page's error.
			if !strings.Contains(e, "status of 401") || !strings.Contains(e, "/weights?dry_run=true") {
				t.Errorf("the page logged: %s", e)
			}
		}
	})
}

// freeLoopbackListener holds a TCP port for the many regions' checks.
func freeLoopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// TestDashboardManyRegions renders a service of 50 regions, each VIP
// with the votes of 10 real probers, and wants the page drawn with all
// of them in under a second from the start of its navigation.
func TestDashboardManyRegions(t *testing.T) {
	const nRegions, nProbers = 50, 10
	lb := freeLoopbackListener(t)
	var st strings.Builder
	st.WriteString("regions:\n")
	var names []string
	for i := range nRegions {
		name := fmt.Sprintf("r%02d", i)
		names = append(names, name)
		vip := fmt.Sprintf("198.51.100.%d", i+1)
		fmt.Fprintf(&st, "  - name: %s\n    vips: [%s]\n    location: {lat: %d, lon: %d}\n", name, vip, -50+(i%10)*12, -170+(i/10)*70+(i%10)*6)
		fmt.Fprintf(&st, "    check: {type: tcp, port: 80, interval: 1s, timeout: 500ms, address: {%s: \"%s\"}}\n", vip, lb.Addr())
	}
	st.WriteString("services:\n  - name: many.example.org.\n    ttl: 30\n    policy: weighted\n    regions:\n")
	for _, n := range names {
		fmt.Fprintf(&st, "      - {region: %s, weight: 1}\n", n)
	}
	ts := startServerWith(t, serverSetup{extra: "bootstrap: state.yaml\n", files: map[string][]byte{"state.yaml": []byte(st.String())}})
	startProbers(t, ts, names[:nProbers]...)
	waitVotes(t, ts, "10 counted up votes on every VIP", func(v map[string][]string) bool {
		for i := range nRegions {
			if len(v[fmt.Sprintf("198.51.100.%d", i+1)]) != nProbers {
				return false
			}
		}
		return true
	})

	b := newBrowser(t, 1400, 1100)
	b.run(t, 30*time.Second,
		chromedp.Navigate(ts.url()+"/ui/"),
		poll(`document.body.dataset.firstStatusMs !== undefined`, 20*time.Second),
	)
	rows := value(t, b, 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#region-table tbody tr[data-state="up"]').length`))
	votes := value(t, b, 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#region-table .votes li').length`))
	dots := value(t, b, 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('#map g.region').length`))
	ms := value(t, b, 5*time.Second, chromedp.Evaluate[float64](`+document.body.dataset.firstStatusMs`))
	render := value(t, b, 5*time.Second, chromedp.Evaluate[float64](`+document.body.dataset.firstRenderMs`))
	t.Logf("%d regions up, %d votes, %d on the map: drawn %.0f ms after navigation started (the drawing itself %.1f ms)", rows, votes, dots, ms, render)
	if rows != nRegions || votes != nRegions*nProbers || dots != nRegions {
		t.Errorf("the page shows %d regions up, %d votes and %d regions on the map; want %d, %d and %d", rows, votes, dots, nRegions, nRegions*nProbers, nRegions)
	}
	// The goal is 1 s; the suite fails at twice it, as for every timed
	// goal, so that a loaded machine (-race, a shared CI runner) does not
	// fail it while a regression still does.
	if ms >= 2000 {
		t.Errorf("the page was drawn %.0f ms after navigation started, want under 1 s (bound 2 s)", ms)
	} else if ms >= 1000 {
		t.Logf("over the 1 s goal, within its bound of twice it")
	}
	// The chart's legend names 12 regions and says how many it leaves out.
	b.run(t, 10*time.Second, poll(`document.querySelector("#chart text.more")?.textContent.startsWith("and 38 more regions")`, 5*time.Second))
	b.screenshot(t, "dashboard-50-regions.png")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestDashboardReconnects: a server with an empty state says so on the page;
// when the server restarts (on the same addresses, now with its regions)
// the page reconnects by itself and shows them.
func TestDashboardReconnects(t *testing.T) {
	ports := testport.Free(t, 3)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	setup := serverSetup{extra: steeringConfig, files: steeringFiles(t), embeddedPorts: ports[:2],
		args: []string{"--http-listen", httpAddr}, notReady: true}
	setup.extra = "geoip:\n  database: country.mmdb\n" // no bootstrap: etcd is empty
	ts := startServerWith(t, setup)

	b := newBrowser(t, 1200, 900)
	b.run(t, 30*time.Second,
		chromedp.Navigate("http://"+httpAddr+"/ui/"),
		poll(`document.querySelector("#conn").dataset.state === "live"`, 20*time.Second),
		poll(`document.querySelector("#region-table tbody").textContent.includes("No regions are configured.")`, 20*time.Second),
	)

	if code := ts.stop(); code != 0 {
		t.Fatalf("server exited with %d:\n%s", code, ts.stderr)
	}
	b.run(t, 20*time.Second, poll(`document.querySelector("#conn").dataset.state === "reconnecting"`, 15*time.Second))
	setup.dir, setup.files, setup.notReady = ts.dir, nil, false
	setup.extra = steeringConfig // now with the regions
	startServerWith(t, setup)
	b.run(t, 40*time.Second,
		poll(`document.querySelector("#conn").dataset.state === "live" && document.querySelector('#region-table tr[data-region="eu"]') !== null`, 30*time.Second),
	)
	if errs := b.consoleErrors(); len(errs) > 0 {
		// A refused connection while the server is away is the browser's
		// own report of the reconnection, not the page's error.
		for _, e := range errs {
			if !strings.Contains(e, "ERR_CONNECTION_REFUSED") && !strings.Contains(e, "Failed to fetch") {
				t.Errorf("the page logged: %s", e)
			}
		}
	}
}

// wantText wants the text of the element at sel to contain want.
func (b *browser) wantText(t *testing.T, sel, want, what string) {
	t.Helper()
	got := value(t, b, 5*time.Second, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`).textContent`))
	t.Logf("%s: the page says %q", what, got)
	if !strings.Contains(got, want) {
		t.Errorf("%s: the page says %q, want %q in it", what, got, want)
	}
}

// finish saves a screenshot and fails on any console error but the
// browser's own reports of requests the test made fail on purpose (a
// refused write, etcd away): each names the path, allowed lists them.
func (b *browser) finish(t *testing.T, screenshot string, allowed ...string) {
	t.Helper()
	b.screenshot(t, screenshot)
next:
	for _, e := range b.consoleErrors() {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue next
			}
		}
		t.Errorf("the page logged: %s", e)
	}
}

// TestDashboardBadInput: the page says what is missing and keeps
// working with a server that has no snapshot yet (etcd out of reach
// from the start), a region with no location, etcd stopped under a
// running server (its writes refused, the page saying why), and a write
// with a read token.
func TestDashboardBadInput(t *testing.T) {
	t.Run("no snapshot yet", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens there
		ts := startServerWith(t, serverSetup{extra: steeringConfig, files: steeringFiles(t), etcdEndpoints: []string{dead}, notReady: true})
		b := newBrowser(t, 1200, 900)
		b.run(t, 30*time.Second,
			chromedp.Navigate(ts.url()+"/ui/"),
			poll(`document.querySelector("#conn").dataset.state === "live"`, 20*time.Second),
			poll(`(t => t.includes("This server has no snapshot yet") && t.includes("etcd is not reachable"))(document.querySelector("#notices").textContent)`, 20*time.Second),
			poll(`document.querySelector("#region-table tbody").textContent.includes("No snapshot yet: nothing to show.")`, 5*time.Second),
			// It keeps working: an explanation asked for gets the API's answer.
			chromedp.SetValue(chromedp.CSS("#ex-name"), "geo.example.org."),
			chromedp.Click(chromedp.CSS(`#explain-form button[type="submit"]`)),
			poll(`document.querySelector("#explain-out .error, #explain-out .result") !== null`, 5*time.Second),
		)
		b.wantText(t, "#explain-out", "snapshot", "explain without a snapshot")
		b.finish(t, "dashboard-no-snapshot.png", "/v1/explain?", "/v1/audit?")
	})

	t.Run("no location, etcd stopped, a read token", func(t *testing.T) {
		files := steeringFiles(t)
		files["state.yaml"] = []byte(strings.Replace(steeringState, "regions:\n", "regions:\n  - name: nowhere\n    vips: [192.0.2.99]\n    check: {type: tcp, port: 80}\n", 1))
		a := startServerWith(t, serverSetup{extra: steeringConfig, files: files})
		files = steeringFiles(t)
		delete(files, "state.yaml")
		const adminToken, readToken = "admin-token-0123456789abcdef", "viewer-token-0123456789abcdef"
		hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
		files["tokens.yaml"] = []byte(fmt.Sprintf("tokens:\n  - {name: admin, role: admin, sha256: %s}\n  - {name: viewer, role: read, sha256: %s}\n", hash(adminToken), hash(readToken)))
		ts := startServerWith(t, serverSetup{extra: apiConfig + "  write_timeout: 500ms\ngeoip:\n  database: country.mmdb\n", files: files, etcdFrom: a})
		waitService(t, ts, "lb.example.org.")

		b := newBrowser(t, 1200, 1000)
		b.run(t, 30*time.Second,
			chromedp.Navigate(ts.url()+"/ui/"),
			poll(`document.querySelector("#conn").dataset.state === "live"`, 20*time.Second),
			// Not on the map, said so, and still in the table.
			poll(`document.querySelector("#notices").textContent.includes("Not on the map, no location configured: nowhere.")`, 20*time.Second),
			poll(`document.querySelector('#region-table tr[data-region="nowhere"]') !== null && document.querySelector('#map g.region[data-region="nowhere"]') === null && document.querySelector('#map g.region[data-region="eu"]') !== null`, 5*time.Second),
		)

		// A read token reads, and a write with it is refused (403): the page says so.
		b.run(t, 20*time.Second,
			chromedp.SetValue(chromedp.CSS("#token"), readToken),
			chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
			poll(`document.querySelector("#conn").dataset.state === "live"`, 10*time.Second),
			chromedp.SetValue(chromedp.CSS("#d-region"), "eu"),
			chromedp.Click(chromedp.CSS(`#drain-form button[type="submit"]`)),
			poll(`document.querySelector("#preview .error")?.textContent.includes("refused (403)")`, 5*time.Second),
		)

		// etcd stops (it is a's, embedded): the page says so and keeps
		// showing the last snapshot; a write is refused (503) and the page
		// says why.
		if code := a.stop(); code != 0 {
			t.Fatalf("the server holding etcd exited with %d:\n%s", code, a.stderr)
		}
		b.run(t, 40*time.Second,
			poll(`document.querySelector("#notices").textContent.includes("etcd is not reachable")`, 30*time.Second),
			poll(`document.querySelector("#conn").dataset.state === "live" && document.querySelector('#region-table tr[data-region="eu"]') !== null && document.querySelector('#map g.region[data-region="eu"]') !== null`, 5*time.Second),
			chromedp.SetValue(chromedp.CSS("#token"), adminToken),
			chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
			poll(`document.querySelector("#conn").dataset.state === "live"`, 10*time.Second),
			// The read token's refusal above is cleared first.
			chromedp.Evaluate[chromedp.Void](`void (document.querySelector("#preview").innerHTML = "")`),
			chromedp.SetValue(chromedp.CSS("#d-region"), "eu"),
			chromedp.Click(chromedp.CSS(`#drain-form button[type="submit"]`)),
			poll(`document.querySelector("#preview .error") !== null`, 10*time.Second),
		)
		b.wantText(t, "#preview .error", "etcd", "a drain with etcd stopped")
		b.finish(t, "dashboard-etcd-stopped.png", "/drain?dry_run=true", "/v1/audit?")
	})
}
