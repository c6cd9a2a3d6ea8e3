// Package apitypes holds the bodies of Meridian's HTTP API: every request
// and response as Go types with their JSON names. The api package's
// handlers encode these types and api/client decodes them, so the server
// and its Go clients cannot drift apart; regions/store uses the ones it
// produces (Change, AuditRecord, WatchStatus, …) as its own.
//
// apitypes imports regions and geo (the objects and the GeoIP database
// information the API shows) and the standard library; nothing that
// talks to etcd.
package apitypes
