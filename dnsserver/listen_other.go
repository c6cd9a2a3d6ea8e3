//go:build !linux

package dnsserver

import (
	"net"
	"syscall"
)

// reusePortSupported: elsewhere SO_REUSEPORT either does not balance load
// (macOS) or differs by system, so one socket per address is shared by
// several reader goroutines instead.
const reusePortSupported = false

// udpControl: the portable build binds plainly. Go already makes IPv6
// sockets on an unspecified address IPV6_V6ONLY for "udp6". Replies from a
// wildcard socket leave from the address the kernel picks.
func udpControl(_, _, _ bool) func(network, address string, c syscall.RawConn) error {
	return nil
}

// tcpControl: Go makes "tcp6" listeners IPV6_V6ONLY already.
func tcpControl(string, string, syscall.RawConn) error { return nil }

// setReusePort is never needed: one socket per address (reusePortSupported).
func setReusePort(*net.UDPConn) error { return nil }
