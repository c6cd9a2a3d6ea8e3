// Package tlsfiles reads, checks and makes the PEM files of TLS: CA
// bundles, certificate chains and private keys, read as the running user
// with errors that say which file is wrong and why; and a small CA that
// issues certificates (the embedded etcd's, and tests').
//
// tlsfiles imports only the standard library.
package tlsfiles
