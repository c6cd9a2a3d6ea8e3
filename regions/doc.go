// Package regions is Meridian's model of where traffic goes: regions,
// services and health reports with their validation, the desired-state
// file, the immutable Snapshot compiled from a State, and the steering
// policies that decide each answer and explain it (docs/architecture.md).
//
// regions imports geo and regions/latency only: it knows nothing of etcd,
// DNS or HTTP, so the query path that reads snapshots links none of them.
package regions
