// Package api is Meridian's HTTP interface (chi): the REST API that reads
// and changes regions, services, weights and the latency table through
// the store's validated, conditional writes; the status, the explanation
// of decisions and the audit log; bearer tokens with roles; RFC 9457
// problem documents; the OpenAPI document made from the route table;
// health, readiness and Prometheus metrics; and TLS with certificates
// reloaded when they change (docs/architecture.md, HTTP API).
//
// api may import api/apitypes, regions, geo, regions/store (used through
// the Store interface), internal/panics and internal/tlsfiles; never
// dnsserver, and no etcd server code.
package api
