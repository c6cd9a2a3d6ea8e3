//go:build !linux

package dnsserver

import "net"

// udpBlockingSupported: the loops wait in the netpoller everywhere but on
// Linux.
const udpBlockingSupported = false

// newUDPServers shares the one socket of an address among UDPSockets
// portable reader loops.
func (t *Transport) newUDPServers(b *boundAddr) ([]udpServer, error) {
	var loops []udpServer
	for _, c := range b.udp {
		for range t.cfg.UDPSockets {
			loops = append(loops, newUDPStdLoop(t, c.(*net.UDPConn)))
		}
	}
	return loops, nil
}
