// Package api is Meridian's HTTP interface: the chi router, health and
// readiness endpoints, Prometheus metrics, and (as the REST API grows) the
// handlers that read and change regions and services, with validation and
// RFC 9457 problem details for errors.
//
// api may import regions and geo; never dnsserver.
package api
