package main

import "testing"

func TestShareFDs(t *testing.T) {
	cases := []struct {
		name              string
		limit             uint64
		http, dns         int
		wantHTTP, wantDNS int
		wantReserve       int
		wantLowered       bool
	}{
		{"systemd's default hard limit", 524288, 1024, 1024, 1024, 1024, 522240, false},
		{"20000", 20000, 1024, 1024, 1024, 1024, 17952, false},
		{"just enough", 2048 + 683, 1024, 1024, 1024, 1024, 683, false},
		{"the common soft limit 1024", 1024, 1024, 1024, 384, 384, 256, true},
		{"in proportion", 4096, 6000, 2000, 2304, 768, 1024, true},
		{"HTTP off", 1024, 0, 1024, 0, 768, 256, true},
		{"far too low", 100, 1024, 1024, 16, 16, 68, true},
		{"unlimited", 1 << 63, 1024, 1024, 1024, 1024, 1<<31 - 1 - 2048, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := shareFDs(tc.limit, tc.http, tc.dns)
			if b.HTTP != tc.wantHTTP || b.DNSTCP != tc.wantDNS || b.Reserve != tc.wantReserve || b.Lowered != tc.wantLowered {
				t.Fatalf("%+v, want http %d, dns %d, reserve %d, lowered %v", b, tc.wantHTTP, tc.wantDNS, tc.wantReserve, tc.wantLowered)
			}
			if b.HTTP+b.DNSTCP+b.Reserve != b.Limit || b.Limit >= 2*16+minFDReserve && b.Reserve < max(minFDReserve, b.Limit/4) {
				t.Fatalf("%+v: the reserve is not what the connections leave, or too small", b)
			}
		})
	}
}
