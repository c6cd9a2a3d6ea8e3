package regions

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestECSClient(t *testing.T) {
	resolver := netip.MustParseAddr("198.51.100.53")
	p := netip.MustParsePrefix
	cases := []struct {
		name     string
		cfg      ECSConfig
		resolver netip.Addr
		ecs      netip.Prefix // invalid: no option
		addr     string
		bits     int
		use      ECSUse
		decision int // a decision's scope
		scope    int // the reply's
	}{
		{name: "no ECS: the resolver", addr: "198.51.100.53", bits: 32, use: ECSAbsent, decision: 24, scope: 0},
		{name: "no ECS, v4-mapped resolver", resolver: netip.MustParseAddr("::ffff:8.8.8.8"), addr: "8.8.8.8", bits: 32, use: ECSAbsent},
		{name: "global /24", ecs: p("193.0.0.0/24"), addr: "193.0.0.0", bits: 24, use: ECSUsed, decision: 16, scope: 16},
		{name: "decision scope capped at the source", ecs: p("193.0.0.0/20"), addr: "193.0.0.0", bits: 20, use: ECSUsed, decision: 20, scope: 20},
		{name: "longer source truncated", ecs: p("193.0.2.130/32"), addr: "193.0.2.0", bits: 24, use: ECSUsed, decision: 24, scope: 24},
		{name: "truncated to a configured maximum", cfg: ECSConfig{MaxV4: 16}, ecs: p("193.0.2.0/24"), addr: "193.0.0.0", bits: 16, use: ECSUsed, decision: 16, scope: 16},
		{name: "IPv6 truncated to /56", ecs: p("2001:67c:2e8:1234:5678::/80"), addr: "2001:67c:2e8:1200::", bits: 56, use: ECSUsed, decision: 32, scope: 32},
		{name: "IPv4-mapped", ecs: p("::ffff:193.0.0.0/120"), addr: "193.0.0.0", bits: 24, use: ECSUsed, decision: 16, scope: 112},
		{name: "IPv4-mapped, weighted answer", ecs: p("::ffff:193.0.0.0/120"), addr: "193.0.0.0", bits: 24, use: ECSUsed, decision: 0, scope: 0},
		{name: "source /0: not tailored", ecs: p("0.0.0.0/0"), addr: "198.51.100.53", bits: 0, use: ECSNotTailored, decision: 0, scope: 0},
		{name: "private: the resolver, scope the source", ecs: p("10.1.2.0/24"), addr: "198.51.100.53", bits: 32, use: ECSUnusable, decision: 24, scope: 24},
		{name: "loopback", ecs: p("127.0.0.0/24"), addr: "198.51.100.53", bits: 32, use: ECSUnusable, decision: 0, scope: 24},
		{name: "documentation v6", ecs: p("2001:db8:1::/48"), addr: "198.51.100.53", bits: 32, use: ECSUnusable, decision: 16, scope: 48},
		{name: "private, mapped", ecs: p("::ffff:192.168.1.0/120"), addr: "198.51.100.53", bits: 32, use: ECSUnusable, decision: 16, scope: 120},
		{name: "private, /32 source", ecs: p("192.168.1.7/32"), addr: "198.51.100.53", bits: 32, use: ECSUnusable, scope: 32},
		{name: "private trusted", cfg: ECSConfig{TrustPrivate: true}, ecs: p("10.1.2.0/24"), addr: "10.1.2.0", bits: 24, use: ECSUsed, decision: 8, scope: 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.resolver
			if !res.IsValid() {
				res = resolver
			}
			c, use := tc.cfg.Client(res, tc.ecs, nil)
			if c.Addr != netip.MustParseAddr(tc.addr) || c.Bits != tc.bits || use != tc.use {
				t.Fatalf("client %v/%d %s, want %s/%d %s", c.Addr, c.Bits, use, tc.addr, tc.bits, tc.use)
			}
			if got := use.ReplyScope(tc.ecs, tc.decision); got != tc.scope {
				t.Fatalf("reply scope %d, want %d", got, tc.scope)
			}
		})
	}
}

func TestECSClientAllocs(t *testing.T) {
	cfg := ECSConfig{}.Normalized()
	src := netip.MustParseAddr("198.51.100.53")
	for _, ecs := range []netip.Prefix{{}, netip.MustParsePrefix("193.0.0.0/24"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::ffff:193.0.0.0/120")} {
		if n := testing.AllocsPerRun(100, func() {
			c, use := cfg.Client(src, ecs, nil)
			_ = use.ReplyScope(ecs, c.Bits)
		}); n != 0 {
			t.Errorf("%v: %v allocations", ecs, n)
		}
	}
}

func TestIsGlobal(t *testing.T) {
	for addr, want := range map[string]bool{
		"193.0.0.1": true, "8.8.8.8": true, "2001:67c:2e8::1": true, "2a00:1450::1": true,
		"10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "127.0.0.1": false, "169.254.1.1": false,
		"100.64.0.1": false, "100.128.0.1": true, "192.0.0.9": false, "192.0.2.1": false, "192.0.3.1": true,
		"198.18.0.1": false, "198.19.255.1": false, "198.20.0.1": true, "198.51.100.7": false, "203.0.113.9": false,
		"240.0.0.1": false, "255.255.255.255": false, "224.0.0.1": false, "0.0.0.0": false,
		"2001:db8::1": false, "2001:1::1": false, "2001:200::1": true, "64:ff9b:1::1": false, "64:ff9b::1": true,
		"fec0::1": false, "fc00::1": false, "fe80::1": false, "::1": false, "ff02::1": false,
	} {
		if got := isGlobal(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isGlobal(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestAllRegionAddrs(t *testing.T) {
	svc := steerService("svc.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("eu-central", 0), svcRegion("us-east", 1), svcRegion("v4-only", 1))
	st := steerState(svc)
	st.Regions["v4-only"].VIPs = append(st.Regions["v4-only"].VIPs, netip.MustParseAddr("192.0.2.1")) // eu-west's too
	setReports(st, "us-east", false, false)                                                           // down still counts
	s := buildSnap(t, st, SnapshotOptions{})
	v4, v6 := mustView(t, s, "svc.example.").AllRegionAddrs()
	want4 := []netip.Addr{}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "198.51.100.1", "192.0.2.21"} {
		want4 = append(want4, netip.MustParseAddr(a))
	}
	want6 := []netip.Addr{netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:3::1")}
	if !slices.Equal(v4, want4) || !slices.Equal(v6, want6) {
		t.Fatalf("addresses %v %v, want %v %v", v4, v6, want4, want6)
	}
	if got := mustView(t, s, "svc.example.").TTL(); got != 60 {
		t.Fatalf("TTL %d", got)
	}
}

// TestIsGlobal4 compares the 32-bit test with one written in netip's
// terms, on the edges of every range it excludes and on random addresses.
func TestIsGlobal4(t *testing.T) {
	special := []netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
	want := func(a netip.Addr) bool {
		if !a.IsGlobalUnicast() || a.IsPrivate() {
			return false
		}
		for _, p := range special {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	check := func(u uint32) {
		a := netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
		if got := isGlobal4(u); got != want(a) {
			t.Fatalf("isGlobal4(%v) = %v, want %v", a, got, want(a))
		}
	}
	edges := append([]netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("255.255.255.255/32"),
	}, special...)
	for _, p := range edges {
		b := p.Addr().As4()
		lo := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		hi := lo | ^uint32(0)>>p.Bits()
		for _, u := range []uint32{lo - 1, lo, lo + 1, hi - 1, hi, hi + 1} {
			check(u)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		check(r.Uint32())
	}
}

// TestTextRoundTrip: the names the API writes for ECS uses and decision
// kinds read back as the same values, and others are refused.
func TestTextRoundTrip(t *testing.T) {
	for _, u := range []ECSUse{ECSAbsent, ECSUsed, ECSNotTailored, ECSUnusable} {
		b, _ := u.MarshalText()
		var got ECSUse
		if err := got.UnmarshalText(b); err != nil || got != u {
			t.Errorf("ECS use %s: read back %v, %v", b, got, err)
		}
	}
	for _, k := range []DecisionKind{KindNoData, KindAnswer} {
		b, _ := k.MarshalText()
		var got DecisionKind
		if err := got.UnmarshalText(b); err != nil || got != k {
			t.Errorf("decision kind %s: read back %v, %v", b, got, err)
		}
	}
	var u ECSUse
	var k DecisionKind
	if u.UnmarshalText([]byte("sometimes")) == nil || k.UnmarshalText([]byte("maybe")) == nil {
		t.Error("an unknown name was accepted")
	}
}
