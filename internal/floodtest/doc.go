// Package floodtest floods a DNS server over UDP from loopback addresses
// of the tests' choosing (a /24 a spoofing attacker would pick, say
// 127.0.0.77 and its neighbours) and counts what comes back: full
// answers, truncated ones, BADCOOKIE, and the bytes each way. Response
// rate limiting is tested with it in dnsserver, cmd/meridian and the
// end-to-end suite.
//
// floodtest is for tests only; it imports miekg/dns to read replies.
package floodtest
