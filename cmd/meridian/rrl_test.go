package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/dnsserver"
	"github.com/meridian-gslb/meridian/internal/floodtest"
)

// rrlSeries is the RRL responses counter of one action.
func rrlSeries(action string) string {
	return `meridian_dns_rrl_responses_total{action="` + action + `"}`
}

// TestServerRRL: the server limits UDP answers with the defaults and
// 127.0.0.1 exempt, as `make run` does. A flood from 127.0.0.77-80 gets
// the rate, the burst and slips; 127.0.0.1 and a client of another /24
// get every answer; /metrics accounts for every answer and the network
// is logged once.
func TestServerRRL(t *testing.T) {
	const floodN, exemptN, legitN = 2000, 300, 10
	ts := startServerWith(t, serverSetup{rrl: "    exempt: [\"127.0.0.1\"]\n"})
	server := netip.MustParseAddrPort(ts.addr())
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.SetEdns0(1232, false)
	req, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	query := func(int) []byte { return append([]byte(nil), req...) }

	flood, err := floodtest.Open(server, floodtest.Sources(netip.MustParseAddr("127.0.0.77"), 4))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	exempt, err := floodtest.Open(server, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer exempt.Close()

	start := time.Now()
	if err := flood.Send(context.Background(), floodN, 2000, query); err != nil {
		t.Fatal(err)
	}
	for i := range legitN {
		q := append([]byte(nil), req...)
		q[0], q[1] = 0, byte(i) // the ID
		r, err := floodtest.Ask(server, netip.MustParseAddr("127.0.1.1"), q, 2*time.Second)
		if err != nil || r.Truncated || len(r.Answer) != 1 {
			t.Fatalf("127.0.1.1, query %d: %v %v", i, r, err)
		}
	}
	if err := exempt.Send(context.Background(), exemptN, 10000, query); err != nil {
		t.Fatal(err)
	}
	if err := exempt.WaitReplies(exemptN, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Every answer the handler made shows in the counters, once.
	actions := []string{"answered", "slipped", "dropped", "exempt_network", "exempt_cookie", "would_slip", "would_drop"}
	count := map[string]int{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		total := 0
		for _, a := range actions {
			count[a] = int(metric(t, ts, rrlSeries(a)))
			total += count[a]
		}
		if total == floodN+exemptN+legitN {
			break
		}
		if total > floodN+exemptN+legitN || time.Now().After(deadline) {
			t.Fatalf("RRL counted %d answers (%v), want %d", total, count, floodN+exemptN+legitN)
		}
	}
	elapsed := time.Since(start)
	answered := count["answered"] - legitN
	if err := flood.WaitReplies(answered+count["slipped"], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	res := flood.Result()
	t.Logf("flood: %v", res)
	rate := dnsserver.DefaultRRLRate
	if most := rate + int(elapsed.Seconds()*float64(rate)) + 1; answered > most {
		t.Errorf("the flood got %d answers in %v, more than %d", answered, elapsed, most)
	}
	if count["exempt_network"] != exemptN || res.Answered != answered || res.Truncated != count["slipped"] ||
		count["slipped"] != (floodN-answered+1)/2 || count["dropped"] != floodN-answered-count["slipped"] {
		t.Errorf("counters %v; the flood received %v", count, res)
	}
	if res.Amplification() >= 1 {
		t.Errorf("amplification %.3f", res.Amplification())
	}
	if got := metric(t, ts, `meridian_dns_rrl_accounts{state="capacity"}`); got != dnsserver.DefaultRRLTableSize {
		t.Errorf("capacity %v", got)
	}

	// One line for the network, within the logger's second.
	const line = `msg="rrl: limiting answers to a network" component=rrl network=127.0.0.0/24 answers=positive rate=50 name=www.example.org. type=A`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(ts.stderr.String(), line); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s:\n%s", line, ts.stderr)
		}
	}
	if n := strings.Count(ts.stderr.String(), "rrl: limiting"); n != 1 {
		t.Errorf("%d log lines about limiting, want 1:\n%s", n, ts.stderr)
	}
}
