// Package store keeps Meridian's state in etcd: the key layout, validated
// writes with compare-and-swap, the watcher that lists and then follows
// the prefix, bootstrap from a desired-state file, the latency table
// import, and Live, which turns every State into the snapshot a server
// answers from and persists it to the data directory.
//
// store imports regions, regions/latency and the etcd client; never the
// etcd server (see regions/embedded), dnsserver or api.
package store
