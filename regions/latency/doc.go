// Package latency holds the latency table: measured round-trip times from
// client networks to regions ("cidr,region,rtt_ms" CSV), compiled into a
// longest-prefix-match structure that answers a lookup without allocating.
// The latency steering policy of package regions reads it.
//
// latency imports only the standard library.
package latency
