// Package dnssec signs Meridian's zones and steered answers before they
// are asked for (docs/dnssec.md): the keys and their files, the signing
// of RRsets with a cache that keeps every signature until its refresh is
// due, the NSEC chain over the names a zone and a regions snapshot hold,
// and State, the signatures one zone set and one snapshot answer with.
//
// A State is built off the query path, from the previous one: only the
// RRsets that changed are signed. The query path reads it (DNS handler)
// without locks or allocations.
//
// dnssec may import zones, regions and github.com/miekg/dns.
package dnssec
