package dnsserver

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: Linux spreads the datagrams of one port over all the
// sockets bound to it with SO_REUSEPORT.
const reusePortSupported = true

// udpControl returns the socket setup run before bind. IPv6 sockets are
// IPV6_V6ONLY so "[::]:53" and "0.0.0.0:53" can both be bound. A socket on
// an unspecified address asks for the destination of each datagram
// (IP_PKTINFO, IPV6_RECVPKTINFO) so that replies leave from it.
func udpControl(wildcard, reusePort bool) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		v6 := network == "udp6"
		var opErr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if reusePort {
				if opErr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); opErr != nil {
					opErr = fmt.Errorf("SO_REUSEPORT: %w", opErr)
					return
				}
			}
			if v6 {
				if opErr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); opErr != nil {
					opErr = fmt.Errorf("IPV6_V6ONLY: %w", opErr)
					return
				}
			}
			if !wildcard {
				return
			}
			if v6 {
				if opErr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); opErr != nil {
					opErr = fmt.Errorf("IPV6_RECVPKTINFO: %w", opErr)
				}
				return
			}
			if opErr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); opErr != nil {
				opErr = fmt.Errorf("IP_PKTINFO: %w", opErr)
			}
		})
		if err != nil {
			return err
		}
		return opErr
	}
}

// tcpControl makes IPv6 listeners IPV6_V6ONLY, as for UDP.
func tcpControl(network, _ string, c syscall.RawConn) error {
	if network != "tcp6" {
		return nil
	}
	var opErr error
	err := c.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	})
	if err != nil {
		return err
	}
	if opErr != nil {
		return fmt.Errorf("IPV6_V6ONLY: %w", opErr)
	}
	return nil
}
