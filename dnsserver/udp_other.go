//go:build !linux

package dnsserver

// newUDPServers shares the one socket of an address among UDPSockets
// portable reader loops.
func (t *Transport) newUDPServers(b *boundAddr) []udpServer {
	var loops []udpServer
	for _, c := range b.udp {
		for range t.cfg.UDPSockets {
			loops = append(loops, newUDPStdLoop(t, c))
		}
	}
	return loops
}
