// Package sigstore keeps DNSSEC key records and signatures in etcd, so
// that name servers hold no private key (docs/dnssec.md, "Signers and
// name servers"; docs/architecture.md, "etcd key layout"): the key
// layout under dnssec/<zone>/, the Runner a signer (`meridian signer`)
// signs, rolls keys and publishes with, and the Follower a name server
// reads the key records and signatures with, a dnssec.Source.
//
// sigstore may import dnssec, zones, regions, regions/store (its key
// layout) and the etcd client. The DNS handler never imports it.
package sigstore
