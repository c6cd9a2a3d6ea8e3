package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestSipHash24(t *testing.T) {
	var k CookieSecret
	for i := range k {
		k[i] = byte(i)
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	// Vectors from the SipHash paper (key 00..0f, message 00..n-1).
	cases := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{15, 0xa129ca6149be45e5},
	}
	for _, tc := range cases {
		if got := siphash24(&k, msg[:tc.n]); got != tc.want {
			t.Errorf("siphash24(%d bytes) = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

// RFC 9018 Appendix A.
func TestServerCookieVectors(t *testing.T) {
	cases := []struct {
		name, secret, client, ip string
		at                       uint32
		want                     string
	}{
		{"A.1", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559731985, "010000005cf79f111f8130c3eee29480"},
		{"A.2", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559734385, "010000005cf7a871d4a564a1442aca77"},
		{"A.3", "e5e973e5a6b2a43f48e7dc849e37bfcf", "fc93fc62807ddb86", "203.0.113.203", 1559734700, "010000005cf7a9acf73a7810aca2381e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secret, err := ParseCookieSecret(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			cc, _ := hex.DecodeString(tc.client)
			ip := netip.MustParseAddr(tc.ip)
			got := hex.EncodeToString(appendServerCookie(nil, &secret, cc, ip, tc.at))
			if got != tc.want {
				t.Fatalf("server cookie %s, want %s", got, tc.want)
			}
			opt, _ := hex.DecodeString(tc.client + tc.want)
			if s := checkCookie(opt, []CookieSecret{secret}, ip, tc.at+10); s != cookieValid {
				t.Errorf("own cookie checked as %d", s)
			}
		})
	}
}

func TestCheckCookie(t *testing.T) {
	secret := RandomCookieSecret()
	other := RandomCookieSecret()
	ip := netip.MustParseAddr("192.0.2.7")
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	const now = 1_700_000_000
	issued := func(at uint32) []byte { return appendServerCookie(append([]byte(nil), cc...), &secret, cc, ip, at) }
	flip := issued(now)
	flip[20] ^= 1
	cases := []struct {
		name    string
		opt     []byte
		secrets []CookieSecret
		client  netip.Addr
		want    cookieState
	}{
		{"client only", cc, []CookieSecret{secret}, ip, cookieClient},
		{"too short", cc[:7], []CookieSecret{secret}, ip, cookieMalformed},
		{"server part too short", append(append([]byte(nil), cc...), 1, 2, 3), []CookieSecret{secret}, ip, cookieMalformed},
		{"server part too long", make([]byte, 8+33), []CookieSecret{secret}, ip, cookieMalformed},
		{"fresh", issued(now - 10), []CookieSecret{secret}, ip, cookieValid},
		{"due for renewal", issued(now - 2000), []CookieSecret{secret}, ip, cookieValidOld},
		{"expired", issued(now - 4000), []CookieSecret{secret}, ip, cookieBad},
		{"from the future", issued(now + 400), []CookieSecret{secret}, ip, cookieBad},
		{"slightly ahead", issued(now + 100), []CookieSecret{secret}, ip, cookieValid},
		{"other address", issued(now), []CookieSecret{secret}, netip.MustParseAddr("192.0.2.8"), cookieBad},
		{"tampered", flip, []CookieSecret{secret}, ip, cookieBad},
		{"rotated secret", issued(now), []CookieSecret{other, secret}, ip, cookieValid},
		{"unknown secret", issued(now), []CookieSecret{other}, ip, cookieBad},
		{"foreign format", append(append([]byte(nil), cc...), make([]byte, 20)...), []CookieSecret{secret}, ip, cookieBad},
		{"mapped address", issued(now), []CookieSecret{secret}, netip.AddrFrom16(ip.As16()), cookieValid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkCookie(tc.opt, tc.secrets, tc.client, now); got != tc.want {
				t.Errorf("state %d, want %d", got, tc.want)
			}
		})
	}
}
