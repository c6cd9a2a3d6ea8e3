package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBlockingSupported: Linux loops can wait in recvmmsg.
const udpBlockingSupported = true

// newUDPServers gives every socket of an address its own batched loop.
// With t.udpBlocking the loop waits in recvmmsg and takes the socket out
// of the netpoller (see blockingUDPSocket); otherwise it parks in the
// netpoller.
func (t *Transport) newUDPServers(b *boundAddr) ([]udpServer, error) {
	loops := make([]udpServer, 0, len(b.udp))
	for i, c := range b.udp {
		conn := c.(*net.UDPConn)
		switch {
		case t.useStdUDP:
			loops = append(loops, newUDPStdLoop(t, conn))
		case t.udpBlocking:
			s, err := newBlockingUDPSocket(conn)
			if err != nil {
				b.udp = append(b.udp[:i], b.udp[i+1:]...) // conn is closed
				return nil, fmt.Errorf("udp socket %d: %w", i+1, err)
			}
			b.udp[i] = s
			l := newUDPBatchLoop(t, b.cfg.Addr().Is6(), b.wildcard)
			l.sock = s
			loops = append(loops, l)
		default:
			l := newUDPBatchLoop(t, b.cfg.Addr().Is6(), b.wildcard)
			l.conn = conn
			loops = append(loops, l)
		}
	}
	return loops, nil
}

// udpSocketBuffer is the receive and send buffer asked for per socket
// (udpControl).
const udpSocketBuffer = 4 << 20

// ctlStride is the control-message space per datagram: one in6_pktinfo or
// in_pktinfo with its header fits in 40 bytes on 64-bit systems.
const ctlStride = 64

// udpBatchLoop reads and answers datagrams in batches with recvmmsg and
// sendmmsg. Everything a batch needs is allocated here once. It waits for
// datagrams in one of two ways:
//
//   - sock set: in recvmmsg itself (see blockingUDPSocket);
//   - conn set: in the Go netpoller. The system calls run inside RawConn
//     callbacks; after a batch the loop tries recvmmsg again at once and
//     parks only when it finds nothing (EAGAIN).
//
// The calls that cannot block are raw system calls (RawSyscall6), without
// the runtime's entersyscall and exitsyscall: recvmmsg and sendmmsg on the
// netpoller's non-blocking socket, sendmmsg with MSG_DONTWAIT on the
// blocking one. Announced system calls cost more than the bookkeeping: a
// call that sysmon sees running across two of its ticks (a sendmmsg of a
// few dozen replies on loopback takes tens of microseconds, most of it
// delivering them) has its P taken away and handed to another thread, so
// under load the loop hopped between threads with futex wake-ups and
// context switches at every hop, and sysmon itself woke every 20 µs.
// Raw calls keep the loop on one thread with its P.
type udpBatchLoop struct {
	udpCounters
	t       *Transport
	sock    *blockingUDPSocket
	conn    *net.UDPConn
	rc      syscall.RawConn
	bufSize int
	v6      bool
	pktinfo bool // socket on an unspecified address: reply from the query's destination

	// Receive side, one entry per datagram of a batch.
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // big enough for both families
	ctls  []byte
	inBuf []byte

	// Send side, one entry per reply of a batch.
	outMsgs []unix.Mmsghdr
	outIovs []unix.Iovec
	outCtls []byte
	outBuf  []byte

	// The RawConn callbacks, made once, and the state they share with the loop.
	recvFn, sendFn   func(fd uintptr) bool
	nRecv            int
	recvErr          syscall.Errno
	sendOff, sendEnd int
	sent, sendFailed uint64
}

func newUDPBatchLoop(t *Transport, v6, wildcard bool) *udpBatchLoop {
	n, bs := t.cfg.UDPBatch, t.cfg.UDPBufSize
	l := &udpBatchLoop{
		udpCounters: newUDPCounters(),
		t:           t,
		bufSize:     bs,
		v6:          v6,
		pktinfo:     wildcard,
		msgs:        make([]unix.Mmsghdr, n),
		iovs:        make([]unix.Iovec, n),
		names:       make([]unix.RawSockaddrInet6, n),
		inBuf:       make([]byte, n*bs),
		outMsgs:     make([]unix.Mmsghdr, n),
		outIovs:     make([]unix.Iovec, n),
		outBuf:      make([]byte, n*bs),
	}
	if wildcard {
		l.ctls = make([]byte, n*ctlStride)
		l.outCtls = make([]byte, n*ctlStride)
	}
	for i := range n {
		l.iovs[i].Base = &l.inBuf[i*bs]
		l.iovs[i].SetLen(bs)
		h := &l.msgs[i].Hdr
		h.Iov = &l.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		l.outMsgs[i].Hdr.Iov = &l.outIovs[i]
		l.outMsgs[i].Hdr.SetIovlen(1)
		l.resetRecv(i)
	}
	l.recvFn = l.recvmmsg
	l.sendFn = l.sendmmsg
	return l
}

// resetRecv restores the fields of receive entry i that the kernel writes.
func (l *udpBatchLoop) resetRecv(i int) {
	h := &l.msgs[i].Hdr
	h.Namelen = unix.SizeofSockaddrInet6
	h.Flags = 0
	if l.pktinfo {
		h.Control = &l.ctls[i*ctlStride]
		h.SetControllen(ctlStride)
	}
	l.msgs[i].Len = 0
}

func (l *udpBatchLoop) serve() error {
	if l.sock != nil {
		return l.serveBlocking()
	}
	return l.servePolled()
}

// yieldEvery is how often a blocking loop passes through the scheduler.
// sysmon preempts a goroutine that has run 10 ms without doing so; for one
// that is in a system call, as the loop mostly is, that means taking its P
// away, after which sysmon, having found work, polls every 20 µs for a
// while. Under load that made thousands of wake-ups a second on the loop's
// CPU. A yield is cheaper but not free: it wakes a thread for the idle P
// (two futex calls), so it comes as late as is safe. sysmon starts its
// 10 ms when it first sees the loop's new scheduling tick, never before
// the yield, so any interval below 10 ms keeps it away.
const yieldEvery = 9 * time.Millisecond

// serveBlocking answers batches until shutdown (nil) or until the socket
// fails. Shutdown sets t.stopping, then shuts the socket down for reading:
// a busy loop sees the flag after its batch is sent, a waiting one
// returns from recvmmsg.
func (l *udpBatchLoop) serveBlocking() error {
	yielded := time.Now()
	for !l.t.stopping.Load() {
		// time.Since reads only the monotonic clock; time.Now reads the
		// wall clock too.
		if time.Since(yielded) >= yieldEvery {
			runtime.Gosched()
			yielded = time.Now()
		}
		n, errno, err := l.sock.recvmmsg(l.msgs)
		if err != nil {
			if l.t.stopping.Load() {
				return nil
			}
			return fmt.Errorf("udp read on %s: %w", l.sock.LocalAddr(), err)
		}
		switch {
		case errno == 0:
			l.answer(n)
		case errno == unix.EINTR || errno == unix.EAGAIN:
		case isTransientUDPError(errno):
			l.recvErrs.Add(1)
		case l.t.stopping.Load():
			return nil
		default:
			return fmt.Errorf("recvmmsg on %s: %w", l.sock.LocalAddr(), errno)
		}
	}
	return nil
}

// servePolled is the loop of a socket in the netpoller.
func (l *udpBatchLoop) servePolled() error {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp %s: %w", l.conn.LocalAddr(), err)
	}
	l.rc = rc
	for {
		if err := l.rc.Read(l.recvFn); err != nil {
			// A deadline in the past (shutdown) or a closed socket.
			if l.t.stopping.Load() {
				return nil
			}
			return fmt.Errorf("udp read on %s: %w", l.conn.LocalAddr(), err)
		}
		if l.recvErr != 0 {
			if isTransientUDPError(l.recvErr) {
				l.recvErrs.Add(1)
				continue
			}
			if l.t.stopping.Load() {
				return nil
			}
			return fmt.Errorf("recvmmsg on %s: %w", l.conn.LocalAddr(), l.recvErr)
		}
		l.answer(l.nRecv)
	}
}

// recvmmsg is the read callback: it returns false only to wait for data.
func (l *udpBatchLoop) recvmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&l.msgs[0])), uintptr(len(l.msgs)), 0, 0, 0)
		switch e {
		case 0:
			l.nRecv, l.recvErr = int(r), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			l.nRecv, l.recvErr = 0, e
			return true
		}
	}
}

// answer hands the n datagrams just received to the handler and sends the
// replies in one batch.
func (l *udpBatchLoop) answer(n int) {
	start := time.Now()
	bs := l.bufSize
	cnt := 0
	in := uint64(n)
	now := monoNow() // for the handler's rate limiter: once per batch
	var dropped, truncated uint64
	for i := range n {
		m := &l.msgs[i]
		if m.Hdr.Namelen == 0 {
			// No source: what recvmmsg returns on a socket shut down for
			// reading (blockingUDPSocket), not a datagram.
			in--
			continue
		}
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			truncated++
			continue
		}
		src, ok := sockaddrAddrPort(&l.names[i])
		if !ok {
			dropped++
			continue
		}
		req := l.inBuf[i*bs : i*bs+int(m.Len)]
		resp := l.outBuf[cnt*bs : cnt*bs : (cnt+1)*bs]
		reply, ok := l.t.serve(resp, req, src, ProtoUDP, now)
		if !ok {
			continue
		}
		if len(reply) == 0 {
			dropped++
			continue
		}
		o := &l.outMsgs[cnt].Hdr
		o.Name = m.Hdr.Name
		o.Namelen = m.Hdr.Namelen
		l.outIovs[cnt].Base = &reply[0]
		l.outIovs[cnt].SetLen(len(reply))
		o.Control = nil
		o.SetControllen(0)
		if l.pktinfo {
			if k := l.replyPktinfo(i, cnt); k > 0 {
				o.Control = &l.outCtls[cnt*ctlStride]
				o.SetControllen(k)
			}
		}
		cnt++
	}
	if in > 0 {
		l.in.Add(in)
		l.batches.Add(1)
	}
	if dropped > 0 {
		l.dropped.Add(dropped)
	}
	if truncated > 0 {
		l.truncated.Add(truncated)
	}
	if cnt > 0 {
		l.send(cnt)
		l.answerTime.ObserveN(time.Since(start), uint64(cnt))
	}
	for i := range n {
		l.resetRecv(i)
	}
}

// send writes replies [0, cnt) with as few sendmmsg calls as the kernel allows.
func (l *udpBatchLoop) send(cnt int) {
	l.sendOff, l.sendEnd = 0, cnt
	l.sent, l.sendFailed = 0, 0
	if l.sock != nil {
		l.sendBlocking()
	} else if err := l.rc.Write(l.sendFn); err != nil {
		// Closed under a forced shutdown: what is left is lost.
		l.sendFailed += uint64(l.sendEnd - l.sendOff)
	}
	l.out.Add(l.sent)
	if l.sendFailed > 0 {
		l.sendErrs.Add(l.sendFailed)
	}
}

// sendmmsg is the write callback: it returns false only to wait for buffer
// space. A reply the kernel refuses is counted and skipped.
func (l *udpBatchLoop) sendmmsg(fd uintptr) bool {
	for l.sendOff < l.sendEnd {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&l.outMsgs[l.sendOff])), uintptr(l.sendEnd-l.sendOff), 0, 0, 0)
		switch {
		case e == 0 && r > 0:
			l.sendOff += int(r)
			l.sent += uint64(r)
		case e == unix.EINTR:
		case e == unix.EAGAIN:
			return false
		default:
			// sendmmsg reports the error of the first message it could not
			// send; the ones before it were counted by the previous call.
			l.sendOff++
			l.sendFailed++
		}
	}
	return true
}

// sendBlocking is send on a blockingUDPSocket: sendmmsg that does not
// wait, and when the socket buffer is full, one that waits for space.
func (l *udpBatchLoop) sendBlocking() {
	wait := false
	for l.sendOff < l.sendEnd {
		r, e, err := l.sock.sendmmsg(l.outMsgs[l.sendOff:l.sendEnd], wait)
		if err != nil {
			// Closed under a forced shutdown: what is left is lost.
			l.sendFailed += uint64(l.sendEnd - l.sendOff)
			return
		}
		wait = false
		switch {
		case e == 0 && r > 0:
			l.sendOff += r
			l.sent += uint64(r)
		case e == unix.EINTR:
		case e == unix.EAGAIN:
			wait = true
		default:
			// As in sendmmsg: the first message not sent failed.
			l.sendOff++
			l.sendFailed++
		}
	}
}

// replyPktinfo writes into send control slot j the source address for the
// reply to datagram i: the destination the query was sent to. It returns
// the control length, or 0 to let the kernel pick.
func (l *udpBatchLoop) replyPktinfo(i, j int) int {
	ctl := l.ctls[i*ctlStride:]
	ctl = ctl[:min(len(ctl), int(l.msgs[i].Hdr.Controllen))]
	out := l.outCtls[j*ctlStride : (j+1)*ctlStride]
	hdrLen := unix.CmsgLen(0)
	for len(ctl) >= hdrLen {
		clen := cmsgLen(ctl)
		if clen < hdrLen || clen > len(ctl) {
			return 0
		}
		level := int32(binary.NativeEndian.Uint32(ctl[unix.SizeofCmsghdr-8:]))
		typ := int32(binary.NativeEndian.Uint32(ctl[unix.SizeofCmsghdr-4:]))
		data := ctl[hdrLen:clen]
		switch {
		case !l.v6 && level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// in_pktinfo: ifindex, spec_dst, addr. For a datagram to
			// one of our unicast addresses spec_dst is that address (the
			// header destination); for a broadcast or multicast one it is
			// our address on that network, a valid source either way.
			src := [4]byte(data[4:8])
			if src == [4]byte{} {
				src = [4]byte(data[8:12])
			}
			k := putCmsgHdr(out, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
			d := out[hdrLen:]
			clear(d[:unix.SizeofInet4Pktinfo])
			copy(d[4:8], src[:]) // ifindex 0: let routing pick the interface
			return k
		case l.v6 && level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// in6_pktinfo: addr, ifindex.
			a := netip.AddrFrom16([16]byte(data[:16]))
			if a.IsMulticast() {
				return 0
			}
			k := putCmsgHdr(out, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
			d := out[hdrLen:]
			copy(d[:16], data[:16])
			// Link-local addresses need their interface; others are
			// left to routing.
			ifindex := uint32(0)
			if a.IsLinkLocalUnicast() {
				ifindex = binary.NativeEndian.Uint32(data[16:20])
			}
			binary.NativeEndian.PutUint32(d[16:20], ifindex)
			return k
		}
		next := unix.CmsgSpace(clen - hdrLen)
		if next > len(ctl) {
			return 0
		}
		ctl = ctl[next:]
	}
	return 0
}

// cmsgLen reads cmsg_len, a size_t: the header is cmsg_len, cmsg_level and
// cmsg_type, so cmsg_len takes what the two int32s leave.
func cmsgLen(b []byte) int {
	if unix.SizeofCmsghdr-8 == 8 {
		return int(binary.NativeEndian.Uint64(b))
	}
	return int(binary.NativeEndian.Uint32(b))
}

// putCmsgHdr writes a control message header for dataLen bytes of data and
// returns the space the message takes.
func putCmsgHdr(b []byte, level, typ, dataLen int) int {
	hdrLen := unix.CmsgLen(0)
	n := unix.CmsgLen(dataLen)
	if unix.SizeofCmsghdr-8 == 8 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
	clear(b[unix.SizeofCmsghdr:hdrLen])
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr-4:], uint32(typ))
	return unix.CmsgSpace(dataLen)
}

// sockaddrAddrPort converts a sockaddr_in or sockaddr_in6 without allocating.
// IPv6 scope ids are not carried: zones would allocate, and the handler
// needs the address only.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
