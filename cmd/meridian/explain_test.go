package main

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/geo/geotest"
)

// explainState: services whose decision depends only on the client (no
// random draw), so that DNS and /v1/explain must agree exactly.
const explainState = steeringState + `  - name: country.example.org.
    ttl: 60
    policy: geo
    regions: [{region: na, weight: 1}, {region: eu, weight: 1}, {region: as, weight: 1}]
    geo:
      countries: {DE: [as, eu], JP: [eu], AU: [as]}
      continents: {EU: [eu], AS: [as]}
      default: [na]
  - name: sticky.example.org.
    ttl: 60
    policy: weighted
    sticky: true
    regions: [{region: eu, weight: 3}, {region: na, weight: 2}, {region: as, weight: 1}]
`

// explainNets are the database's networks: global ones for ECS subnets,
// loopback ones for the resolvers the test sends from.
var explainNets = []geotest.Net{
	{CIDR: "193.0.0.0/16", Country: "NL"},
	{CIDR: "193.0.1.0/24", Country: "DE"},
	{CIDR: "8.8.8.0/24", Country: "US"},
	{CIDR: "202.12.27.0/24", Country: "JP"},
	{CIDR: "1.0.0.0/8", Country: "AU"},
	{CIDR: "41.0.0.0/8", Country: "ZA"},
	{CIDR: "2001:67c::/32", Country: "NL"},
	{CIDR: "2001:67c:2e8::/48", Country: "DE"},
	{CIDR: "2400:cb00::/32", Country: "JP"},
	{CIDR: "127.1.0.0/16", Country: "NL"},
	{CIDR: "127.2.0.0/16", Country: "US"},
	{CIDR: "127.3.0.0/17", Country: "JP"},
	{CIDR: "127.4.4.0/24", Country: "DE"},
}

// randomSubnet is an ECS subnet as a resolver might send it: global,
// private, loopback or documentation space, IPv4, IPv6 or IPv4-mapped,
// any source prefix length; invalid for none.
func randomSubnet(rng *rand.Rand) netip.Prefix {
	v4 := []string{"193.0.0.0/16", "193.0.1.0/24", "8.8.8.0/24", "202.12.27.0/24", "1.0.0.0/8", "41.0.0.0/8", "9.0.0.0/8",
		"10.0.0.0/8", "127.0.0.0/8", "192.168.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "100.64.0.0/10"}
	v6 := []string{"2001:67c::/32", "2001:67c:2e8::/48", "2400:cb00::/32", "2a00::/16", "2001:db8::/32", "fd00::/8"}
	var base netip.Prefix
	switch k := rng.IntN(10); {
	case k < 2:
		return netip.Prefix{}
	case k < 7:
		base = netip.MustParsePrefix(v4[rng.IntN(len(v4))])
	default:
		base = netip.MustParsePrefix(v6[rng.IntN(len(v6))])
	}
	b := base.Addr().AsSlice()
	for i := base.Bits() / 8; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
	if base.Bits()%8 != 0 {
		i := base.Bits() / 8
		keep := byte(0xFF) << (8 - base.Bits()%8)
		b[i] = base.Addr().AsSlice()[i]&keep | b[i]&^keep
	}
	addr, _ := netip.AddrFromSlice(b)
	bits := rng.IntN(addr.BitLen() + 1)
	if addr.Is4() && rng.IntN(4) == 0 { // sent as IPv4-mapped IPv6
		addr = netip.AddrFrom16(addr.As16())
		bits += 96
	}
	return netip.PrefixFrom(addr, bits).Masked()
}

// TestExplainMatchesDNS: for thousands of random (resolver, ECS) pairs,
// /v1/explain picks the region a real DNS query from that resolver with
// that option is answered with, and the same ECS scope, at the same
// snapshot revision.
func TestExplainMatchesDNS(t *testing.T) {
	files := edgeFiles(t)
	files["state.yaml"] = []byte(explainState)
	files["country.mmdb"] = geotest.CountryDB(t, explainNets...)
	ts := startServerWith(t, serverSetup{
		extra: steeringConfig + "ecs:\n  max_prefix_v4: 22\n  max_prefix_v6: 40\n",
		files: files,
	})
	// From 127.0.0.1, in no network: the default list.
	waitAnswer(t, ts.addr(), "country.example.org.", "192.0.2.20")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := query(t, "udp", ts.addr(), "sticky.example.org.", dns.TypeA); len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bootstrap never created sticky.example.org")
		}
	}
	region := map[string]string{"192.0.2.10": "eu", "2001:db8::10": "eu", "192.0.2.20": "na", "2001:db8::20": "na", "192.0.2.30": "as"}
	revision := func() float64 {
		resp, err := http.Get("http://" + ts.HTTP.String() + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			Snapshot struct {
				Revision float64 `json:"revision"`
			} `json:"snapshot"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st.Snapshot.Revision
	}
	rev := revision()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	names := []string{"geo.example.org.", "docs.example.org.", "chain.example.org.", "country.example.org.", "sticky.example.org."}
	const pairs = 3000
	scoped := 0
	for i := range pairs {
		resolver := netip.AddrFrom4([4]byte{127, byte([]int{1, 2, 3, 4, 5}[rng.IntN(5)]), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
		if rng.IntN(3) == 0 {
			resolver = netip.AddrFrom4([4]byte{127, 4, 4, byte(1 + rng.IntN(254))})
		}
		ecs := randomSubnet(rng)
		name := names[rng.IntN(len(names))]
		qtype := uint16(dns.TypeA)
		if rng.IntN(4) == 0 {
			qtype = dns.TypeAAAA
		}

		// DNS, from the resolver's address.
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if ecs.IsValid() {
			m.SetEdns0(1232, false)
			family := uint16(1)
			if ecs.Addr().Is6() {
				family = 2
			}
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family,
				SourceNetmask: uint8(ecs.Bits()), Address: ecs.Addr().AsSlice()})
		}
		c := &dns.Client{Timeout: 5 * time.Second, Dialer: &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.UDPAddr{IP: resolver.AsSlice()}}}
		r, _, err := c.Exchange(m, ts.addr())
		if err != nil {
			t.Fatalf("pair %d (%s, %v): %v", i, resolver, ecs, err)
		}
		dnsRegion, dnsScope := "", -1
		for _, rr := range r.Answer {
			switch a := rr.(type) {
			case *dns.A:
				dnsRegion = region[a.A.String()]
			case *dns.AAAA:
				dnsRegion = region[a.AAAA.String()]
			}
		}
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
					dnsScope = int(e.SourceScope)
				}
			}
		}

		// /v1/explain for the same question.
		q := url.Values{"name": {name}, "resolver": {resolver.String()}, "type": {dns.TypeToString[qtype]}}
		if ecs.IsValid() {
			q.Set("client", ecs.String())
		}
		resp, err := http.Get("http://" + ts.HTTP.String() + "/v1/explain?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var ex struct {
			Revision float64 `json:"revision"`
			Client   string  `json:"client"`
			ECS      *struct {
				Use   string `json:"use"`
				Scope int    `json:"scope"`
			} `json:"ecs"`
			Decision struct {
				Region string `json:"region"`
			} `json:"decision"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ex)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("pair %d: explain %s: %d %v", i, q.Encode(), resp.StatusCode, err)
		}
		exScope := -1
		if ex.ECS != nil {
			exScope = ex.ECS.Scope
		}
		if ex.Decision.Region != dnsRegion || exScope != dnsScope || ex.Revision != rev {
			t.Fatalf("pair %d: %s %s from %s with ECS %v: DNS region %q scope %d, explain region %q scope %d (client %s, ECS %+v, revision %v of %v)\n%s",
				i, name, dns.TypeToString[qtype], resolver, ecs, dnsRegion, dnsScope, ex.Decision.Region, exScope, ex.Client, ex.ECS, ex.Revision, rev, r)
		}
		if dnsScope > 0 {
			scoped++
		}
	}
	if got := revision(); got != rev {
		t.Fatalf("the snapshot changed during the test (revision %v, then %v)", rev, got)
	}
	if scoped < pairs/4 {
		t.Fatalf("only %d of %d answers depended on the client: the pairs do not exercise steering", scoped, pairs)
	}
	t.Logf("%d pairs agree, %d with a non-zero ECS scope", pairs, scoped)
}
