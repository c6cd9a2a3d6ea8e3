package regions

import (
	"hash/fnv"
	"net/netip"
	"testing"
)

// TestStickyHashStable pins the sticky hash. Every server of every
// version must send a client to the same region, so these values may
// never change: if this test fails, servers running the old and the new
// code would disagree and resolvers asking both would flap.
func TestStickyHashStable(t *testing.T) {
	t.Run("mix64 is SplitMix64", func(t *testing.T) {
		// The first outputs of the reference SplitMix64 generator seeded
		// with 0 (Steele, Lea, Flood 2014; Vigna's splitmix64.c).
		want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
		var x uint64
		for i, w := range want {
			x += 0x9e3779b97f4a7c15
			if got := mix64(x); got != w {
				t.Fatalf("output %d: %#x, want %#x", i, got, w)
			}
		}
	})
	t.Run("region hash is FNV-1a then mix64", func(t *testing.T) {
		for _, name := range []string{"", "eu-west", "us-east-1", "a"} {
			h := fnv.New64a()
			h.Write([]byte(name))
			if got, want := regionHash(name), mix64(h.Sum64()); got != want {
				t.Fatalf("%q: %#x, want %#x", name, got, want)
			}
		}
	})
	t.Run("network hash", func(t *testing.T) {
		cases := []struct {
			addr  string
			bits  int
			bytes []byte // family, masked address, length
		}{
			{"192.0.2.77", 24, []byte{4, 192, 0, 2, 0, 24}},
			{"192.0.2.77", 32, []byte{4, 192, 0, 2, 77, 32}},
			{"192.0.2.77", 0, []byte{4, 0, 0, 0, 0, 0}},
			{"2001:db8:1:2::5", 56, []byte{6, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 56}},
		}
		for _, tc := range cases {
			h := fnv.New64a()
			h.Write(tc.bytes)
			if got, want := networkHash(netip.MustParseAddr(tc.addr), tc.bits), mix64(h.Sum64()); got != want {
				t.Fatalf("%s/%d: %#x, want %#x", tc.addr, tc.bits, got, want)
			}
		}
	})
	t.Run("choices", func(t *testing.T) {
		svc := fourRegions(PolicyWeighted)
		svc.Sticky = true
		s := buildSnap(t, steerState(svc), SnapshotOptions{})
		v := mustView(t, s, svc.Name)
		for _, tc := range []struct{ addr, region string }{
			{"192.0.2.1", "us-east"},
			{"198.51.100.1", "us-east"},
			{"203.0.113.1", "us-east"},
			{"198.18.0.1", "eu-central"},
			{"198.18.1.1", "eu-central"},
			{"100.64.0.1", "eu-west"},
			{"2001:db8::1", "eu-west"},
			{"2001:db8:0:100::1", "ap-ne"},
			{"2001:db8:1::1", "us-east"},
			{"2001:db8:2::1", "us-east"},
		} {
			a := netip.MustParseAddr(tc.addr)
			if d := s.Decide(v, &Client{Addr: a, Bits: a.BitLen()}, QTypeA, 12345); d.Region != tc.region {
				t.Errorf("%s: %s, want %s", tc.addr, d.Region, tc.region)
			}
		}
	})
}
