package dnsserver

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: Linux spreads the datagrams of one port over all the
// sockets bound to it with SO_REUSEPORT.
const reusePortSupported = true

// udpControl returns the socket setup run before bind. IPv6 sockets are
// IPV6_V6ONLY so "[::]:53" and "0.0.0.0:53" can both be bound. A socket on
// an unspecified address asks for the destination of each datagram
// (IP_PKTINFO, IPV6_RECVPKTINFO) so that replies leave from it; a socket
// on one address does not, as its replies leave from that address anyway.
//
// Path MTU discovery is off: the kernel ignores the path MTU it has
// learned. UDP replies are sized to the client's EDNS buffer and to
// MaxUDPSize (1232 by default, below every path MTU), so discovery brings
// nothing, while a forged ICMP "fragmentation needed" could otherwise make
// the kernel fragment our replies to a victim resolver, the opening that
// fragment-based cache poisoning needs. It also spares the per-reply MTU
// checks. When df is set (the largest reply fits the 1280 bytes every
// path carries, see dfMaxReply), IPv4 replies carry the DF bit
// (IP_PMTUDISC_PROBE), as RFC 9715 recommends: no router fragments them
// either, and the kernel skips choosing an IP ID for each one, a hash and
// an atomic on a table all CPUs share. Otherwise (IP_PMTUDISC_OMIT, or
// DONT on kernels without it) a reply larger than a link may still be
// fragmented rather than lost. IPv6 has no DF bit: routers never
// fragment, and OMIT keeps the kernel from doing it on a forged ICMP.
//
// The receive and send buffers are enlarged (udpSocketBuffer). They ride
// out the moments a loop is not scheduled: the default (about 200 KB)
// holds only a few hundred small datagrams, and under load they were lost.
func udpControl(wildcard, reusePort, df bool) func(network, address string, c syscall.RawConn) error {
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
			if opErr = setNoPMTUDiscovery(s, v6, df); opErr != nil {
				return
			}
			// Best effort: the kernel caps them at rmem_max and wmem_max.
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, udpSocketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, udpSocketBuffer)
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

// setReusePort turns SO_REUSEPORT on for a socket already bound, so that
// the other sockets of its address can join it (see Transport.bind).
func setReusePort(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if opErr != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", opErr)
	}
	return nil
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

// setNoPMTUDiscovery turns path MTU discovery off, with DF on IPv4
// replies when df is set (see udpControl).
func setNoPMTUDiscovery(s int, v6, df bool) error {
	level, opt, omit, dont, name := unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_OMIT, unix.IP_PMTUDISC_DONT, "IP_MTU_DISCOVER"
	if v6 {
		level, opt, omit, dont, name = unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_OMIT, unix.IPV6_PMTUDISC_DONT, "IPV6_MTU_DISCOVER"
	} else if df {
		if err := unix.SetsockoptInt(s, level, opt, unix.IP_PMTUDISC_PROBE); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if unix.SetsockoptInt(s, level, opt, omit) == nil {
		return nil
	}
	if err := unix.SetsockoptInt(s, level, opt, dont); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
