// Package regions holds Meridian's shared state: the model (regions,
// services, health reports), its etcd store and key layout, the immutable
// snapshot built from it, and the steering policies that decide each answer.
//
// regions may import geo and the etcd client; never dnsserver or api.
package regions
