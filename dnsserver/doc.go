// Package dnsserver is Meridian's authoritative DNS front end: UDP listeners
// (one socket per core with SO_REUSEPORT, batched receive and send), TCP per
// RFC 7766, the raw-packet query handler with EDNS0 (RFC 6891), server
// cookies (RFC 7873, RFC 9018) and EDNS Client Subnet (RFC 7871), response
// size limits, response rate limiting of UDP answers (RRL) and metrics.
//
// The query path does no I/O besides the socket, takes no lock, logs
// nothing per query and does not allocate in steady state.
//
// dnsserver may import zones, regions, geo, dnssec, internal/panics,
// internal/histogram, internal/labelshare and github.com/miekg/dns.
package dnsserver
