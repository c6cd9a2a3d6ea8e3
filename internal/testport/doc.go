// Package testport picks loopback ports for tests that must name a port
// before something binds it: an etcd member's URLs, a resolver's
// configuration, a member stopped and started again on the same port, a
// port where nothing may listen.
//
// A port that binding port 0 gets comes from the kernel's ephemeral
// range, which every connect() and every bind to port 0 of every process
// draws from: between the pick and the bind, or while a member is down,
// another socket can take it, and a client reconnecting to a port in that
// range can even be connected to itself. The kernel hands out no port
// below the range, so the ports here are picked there, at random, each
// checked free for TCP and UDP on every host asked for. Test processes
// running at the same time pick from that range too: each port picked is
// reserved (an flock on a file named after it in the temporary directory)
// until the process ends, so no other process, and no later pick of the
// same one, gets it.
//
// testport may import only the standard library.
package testport
