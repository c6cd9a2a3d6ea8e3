package dnsserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// udpStdLoop is the portable UDP reader loop: one datagram per system call
// through the net package. It is the fallback where recvmmsg is missing and
// the baseline the batched loop is measured against.
type udpStdLoop struct {
	udpCounters
	t      *Transport
	conn   *net.UDPConn
	inBuf  []byte // UDPBufSize+1: a datagram that fills it was truncated
	outBuf []byte
}

func newUDPStdLoop(t *Transport, conn *net.UDPConn) *udpStdLoop {
	return &udpStdLoop{
		udpCounters: newUDPCounters(),
		t:           t,
		conn:        conn,
		inBuf:       make([]byte, t.cfg.UDPBufSize+1),
		outBuf:      make([]byte, t.cfg.UDPBufSize),
	}
}

func (l *udpStdLoop) serve() error {
	for {
		n, src, err := l.conn.ReadFromUDPAddrPort(l.inBuf)
		if err != nil {
			if l.t.stopping.Load() {
				return nil
			}
			if isTransientUDPError(err) {
				l.recvErrs.Add(1)
				continue
			}
			return fmt.Errorf("udp read on %s: %w", l.conn.LocalAddr(), err)
		}
		l.handle(n, src)
	}
}

// handle answers one datagram of n bytes from src.
func (l *udpStdLoop) handle(n int, src netip.AddrPort) {
	start := time.Now()
	l.in.Add(1)
	l.batches.Add(1)
	if n > l.t.cfg.UDPBufSize {
		l.truncated.Add(1)
		return
	}
	reply, ok := l.t.serve(l.outBuf[:0], l.inBuf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), ProtoUDP, 0)
	if !ok {
		return
	}
	if len(reply) == 0 {
		l.dropped.Add(1)
		return
	}
	if _, err := l.conn.WriteToUDPAddrPort(reply, src); err != nil {
		l.sendErrs.Add(1)
		return
	}
	l.out.Add(1)
	l.answerTime.Observe(time.Since(start))
}

// isTransientUDPError reports errors a UDP socket returns for one peer
// (an ICMP error queued on the socket, memory pressure) rather than for
// the socket itself.
func isTransientUDPError(err error) bool {
	for _, e := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
