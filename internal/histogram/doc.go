// Package histogram counts durations into fixed buckets with atomic
// counters, for the paths that must not lock or allocate (the DNS
// query path, the prober's checks), and turns the counts into a
// Prometheus histogram when scraped.
//
// histogram imports the standard library and the Prometheus client
// library only.
package histogram
