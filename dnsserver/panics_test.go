package dnsserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/panics"
)

// TestPanicLogged: a panic the handler recovers is logged with its stack
// the first time it happens at a site; further panics at a logged site
// make one line with counts at most every panics.Interval; a panic at
// another site gets its own stack at once.
func TestPanicLogged(t *testing.T) {
	var logs bytes.Buffer
	site := 0
	h := testHandler(t, HandlerConfig{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		// The clock is read for cookies: two panics at two sites.
		Now: func() time.Time {
			if site == 0 {
				panic("clock broke")
			}
			panic(errors.New("clock broke elsewhere"))
		},
	})
	clock := time.Unix(1_000_000, 0)
	h.panicLog.Now = func() time.Time { return clock }
	req := pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}))

	type line struct {
		Msg         string `json:"msg"`
		Site        string `json:"site"`
		Panic       string `json:"panic"`
		Stack       string `json:"stack"`
		Proto       string `json:"proto"`
		AtSite      uint64 `json:"at_site"`
		SinceLast   uint64 `json:"since_last_line"`
		PanicsTotal uint64 `json:"panics_total"`
	}
	steps := []struct {
		name    string
		site    int
		advance time.Duration
		queries int
		want    []line // logged by the step; Stack "": none, else in it
	}{
		{"first panic at a site: its stack", 0, 0, 1, []line{{Msg: "dns handler panicked; answered SERVFAIL", Site: "TestPanicLogged.func1",
			Panic: "clock broke", Stack: "TestPanicLogged.func1", Proto: "udp", PanicsTotal: 1}}},
		{"repeats within the interval: nothing", 0, time.Second, 3, nil},
		{"a repeat after the interval: one line with counts", 0, panics.Interval, 2, []line{{Msg: "dns handler panics go on; answered SERVFAIL",
			Site: "TestPanicLogged.func1", Panic: "clock broke", Proto: "udp", AtSite: 5, SinceLast: 4, PanicsTotal: 5}}},
		{"another site: its stack at once", 1, 0, 1, []line{{Msg: "dns handler panicked; answered SERVFAIL", Site: "TestPanicLogged.func1",
			Panic: "clock broke elsewhere", Stack: "panics_test.go", Proto: "udp", PanicsTotal: 7}}},
		{"both sites repeat within the interval: nothing", 0, time.Second, 2, nil},
	}
	sites := map[string]bool{}
	for _, st := range steps {
		site = st.site
		clock = clock.Add(st.advance)
		logs.Reset()
		for range st.queries {
			if m := serveRaw(t, h, req, ProtoUDP, 512); m == nil || m.Rcode != dns.RcodeServerFailure {
				t.Fatalf("%s: reply %v, want SERVFAIL", st.name, m)
			}
		}
		var got []line
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l == "" {
				continue
			}
			var ln line
			if err := json.Unmarshal([]byte(l), &ln); err != nil {
				t.Fatalf("%s: log line %q: %v", st.name, l, err)
			}
			got = append(got, ln)
		}
		if len(got) != len(st.want) {
			t.Fatalf("%s: %d lines logged, want %d:\n%s", st.name, len(got), len(st.want), logs.String())
		}
		for i, w := range st.want {
			g := got[i]
			if g.Msg != w.Msg || !strings.Contains(g.Site, w.Site) || g.Panic != w.Panic || g.Proto != w.Proto ||
				g.AtSite != w.AtSite || g.SinceLast != w.SinceLast || g.PanicsTotal != w.PanicsTotal {
				t.Errorf("%s: logged %+v, want %+v", st.name, g, w)
			}
			if (w.Stack == "") != (g.Stack == "") || !strings.Contains(g.Stack, w.Stack) {
				t.Errorf("%s: stack %q, want one with %q in it (none when empty)", st.name, g.Stack, w.Stack)
			}
			if g.Stack != "" {
				sites[g.Site] = true
			}
		}
	}
	// The two panics are two sites: the same function, another line.
	if len(sites) != 2 {
		t.Errorf("stacks logged for sites %v, want two", sites)
	}
}
