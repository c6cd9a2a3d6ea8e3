// Package embedded runs the single-member etcd of Meridian's default
// set-up: when a server is given no etcd endpoints it starts one in its
// data directory, on loopback only, in a child process (StartProcess,
// RunChild) so that etcd ending its process on a failure does not end
// the server's. The member takes only clients and peers with a
// certificate of its own small CA, which EnsurePKI makes in the data
// directory. Tests use it in their own process to build clusters.
//
// embedded imports the etcd server and internal/tlsfiles; only
// cmd/meridian and tests import embedded, so the DNS server and the API
// never link etcd's server code.
package embedded
