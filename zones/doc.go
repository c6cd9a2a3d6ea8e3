// Package zones loads RFC 1035 zone files into immutable in-memory zones and
// answers lookups with authoritative semantics: exact matches, CNAME chains
// inside the zone, RFC 4592 wildcards, empty non-terminals, delegations with
// glue, and negative answers carrying the SOA with the RFC 2308 TTL.
//
// Where a CNAME chain reaches a name the zone file does not settle (a
// missing name, an empty non-terminal, a wildcard), the answer says so
// (Answer.Aliases), so that a server can continue the chain with data from
// elsewhere, such as a steered service.
//
// Lookups take the query name in lower-case wire format and return shared,
// precomputed answers, so the query path does not allocate. Answers can be
// packed into DNS messages behind a question copied from the query, which
// keeps the client's spelling of the name.
//
// zones may import github.com/miekg/dns and the standard library only.
package zones
