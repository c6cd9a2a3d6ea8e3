// Package e2e is Meridian's end-to-end suite: real processes on loopback,
// run the way a deployment runs them. A 3-member etcd cluster (Debian's
// etcd) with TLS and client certificates made by deploy/certs.sh, two
// `meridian server` processes on 127.0.0.1 and 127.0.0.2 watching it, a
// `meridian prober` per example region checking the regions' load
// balancers (HTTP stand-ins in the test process), and two real recursive
// resolvers (unbound with ECS, BIND) reaching the zone through both name
// servers. The scenarios fail regions' health endpoints, cut a prober off,
// kill and restart etcd members, name servers and probers, change weights
// with meridian ctl, and print what they measure. A timing with a goal or
// a bound in docs/deploy.md, docs/health.md or docs/controller.md fails
// the run when it is over twice it (slack): a loaded machine stretches
// timings, a regression more.
// A server with `make run`'s configuration is flooded from one loopback
// address to check response rate limiting (docs/rrl.md). TestHAProxy runs
// a deployment of its own with a real load balancer: Debian's haproxy
// before Go backends per region, probers reading its CSV stats, clients
// that follow the answers; 5xx responses and sessions piling up towards
// maxconn steer them away, and slow start brings them back.
//
// The tests are behind the e2e build tag, so `go test ./...` leaves them
// out; `make e2e` (part of `make test`) runs them:
//
//	go test -tags e2e -count=1 -v ./e2e
//
// MERIDIAN_BIN names the meridian binary to test (make e2e passes
// bin/meridian); without it the suite builds one. MERIDIAN_E2E_KEEP=1
// keeps the run directory (certificates, configs, data, logs), which is
// always kept, and its path printed, when a test fails.
package e2e
