package dnsserver

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
)

// DNS Cookies (RFC 7873) with the interoperable server cookie of RFC 9018:
// version 1, three reserved bytes, a timestamp and SipHash-2-4 over the
// client cookie, those eight bytes and the client address. Every server of
// an anycast or multi-server deployment that shares the secret accepts the
// others' cookies.

const (
	clientCookieLen = 8
	serverCookieLen = 16 // what we issue; clients may hold 8..32 from others
	cookieVersion   = 1
	// RFC 9018 §4.3: accept cookies up to an hour old and five minutes
	// ahead (clock skew between servers); issue a fresh one after half an
	// hour.
	cookieMaxAge   = 3600
	cookieMaxAhead = 300
	cookieRenew    = 1800
)

// CookieSecret is a 128-bit SipHash key.
type CookieSecret [16]byte

// ParseCookieSecret reads a secret written as 32 hex digits.
func ParseCookieSecret(s string) (CookieSecret, error) {
	var k CookieSecret
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("cookie secret must be 32 hex digits (128 bits)")
	}
	copy(k[:], b)
	return k, nil
}

// RandomCookieSecret makes a secret for a server that was given none; its
// cookies then stop validating after a restart, which costs a client one
// round of learning a new cookie.
func RandomCookieSecret() CookieSecret {
	var k CookieSecret
	if _, err := rand.Read(k[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return k
}

// cookieState is what a query's COOKIE option says about the client.
type cookieState uint8

const (
	cookieNone      cookieState = iota // no COOKIE option
	cookieClient                       // a client cookie only
	cookieBad                          // a server cookie that does not verify (or is stale)
	cookieValid                        // a server cookie we (or a peer) issued, still fresh
	cookieValidOld                     // valid, but due for renewal
	cookieMalformed                    // wrong length: FORMERR
)

// checkCookie validates the server part of a COOKIE option. opt is the
// option's data (client cookie first).
func checkCookie(opt []byte, secrets []CookieSecret, client netip.Addr, now uint32) cookieState {
	switch {
	case len(opt) == clientCookieLen:
		return cookieClient
	case len(opt) < clientCookieLen+8 || len(opt) > clientCookieLen+32:
		return cookieMalformed
	case len(opt) != clientCookieLen+serverCookieLen || opt[8] != cookieVersion:
		return cookieBad // someone else's format
	}
	ts := binary.BigEndian.Uint32(opt[12:16])
	// Serial-number arithmetic (RFC 1982) so the check survives 2106.
	age := int32(now - ts)
	if age > cookieMaxAge || age < -cookieMaxAhead {
		return cookieBad
	}
	for i := range secrets {
		var want [8]byte
		serverHash(&want, &secrets[i], opt[:clientCookieLen], opt[8:16], client)
		if [8]byte(opt[16:24]) == want {
			if age > cookieRenew {
				return cookieValidOld
			}
			return cookieValid
		}
	}
	return cookieBad
}

// appendServerCookie appends a fresh 16-byte server cookie for client
// cookie cc to dst.
func appendServerCookie(dst []byte, secret *CookieSecret, cc []byte, client netip.Addr, now uint32) []byte {
	var head [8]byte
	head[0] = cookieVersion
	binary.BigEndian.PutUint32(head[4:], now)
	var h [8]byte
	serverHash(&h, secret, cc, head[:], client)
	dst = append(dst, head[:]...)
	return append(dst, h[:]...)
}

// serverHash computes SipHash-2-4(client cookie | version | reserved |
// timestamp | client address) into out, in the byte order of the
// reference implementation (little-endian), which RFC 9018 uses.
func serverHash(out *[8]byte, k *CookieSecret, cc, head []byte, client netip.Addr) {
	var msg [8 + 8 + 16]byte
	n := copy(msg[:], cc)
	n += copy(msg[n:], head)
	client = client.Unmap()
	if client.Is4() {
		a := client.As4()
		n += copy(msg[n:], a[:])
	} else {
		a := client.As16()
		n += copy(msg[n:], a[:])
	}
	binary.LittleEndian.PutUint64(out[:], siphash24(k, msg[:n]))
}

// siphash24 is SipHash-2-4 (Aumasson and Bernstein, 2012).
func siphash24(k *CookieSecret, m []byte) uint64 {
	k0 := binary.LittleEndian.Uint64(k[0:8])
	k1 := binary.LittleEndian.Uint64(k[8:16])
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573

	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}

	n := len(m)
	for len(m) >= 8 {
		mi := binary.LittleEndian.Uint64(m)
		v3 ^= mi
		round()
		round()
		v0 ^= mi
		m = m[8:]
	}
	last := uint64(n) << 56
	for i, b := range m {
		last |= uint64(b) << (8 * i)
	}
	v3 ^= last
	round()
	round()
	v0 ^= last
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
