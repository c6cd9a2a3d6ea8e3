package dnsserver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockingUDPSocket is a UDP socket served by a loop that waits for
// datagrams inside recvmmsg, as a C server's thread does, instead of in the
// Go netpoller. The socket is a duplicate of a *net.UDPConn's descriptor,
// taken out of the netpoller and put in blocking mode.
//
// Waiting in the kernel saves what the netpoller costs at every wait: a
// recvmmsg that finds nothing, the scheduler's search for other work,
// epoll_pwait twice. And while the loop is busy, nothing waits on the
// socket, so a datagram that arrives or a reply that leaves wakes nobody;
// in the netpoller's epoll set, every one of them runs epoll's callback.
// The waiting recvmmsg is an announced system call: the runtime knows the
// goroutine is blocked, and the loop is used only when the process has a P
// to spare for everything else (see Transport.udpBlocking).
//
// fd is used only with mu held for reading, and Close takes mu to close it,
// so no call ever uses a descriptor number that was closed and reused.
// Close first shuts the socket down, which wakes a recvmmsg or sendmmsg
// blocked on it, so it waits at most for a call to return; and a call
// returns at least every blockingUDPTimeout whatever happens.
type blockingUDPSocket struct {
	laddr net.Addr
	mu    sync.RWMutex
	fd    int // -1 once closed
}

// blockingUDPTimeout bounds every blocking call on a blockingUDPSocket
// (SO_RCVTIMEO, SO_SNDTIMEO): an idle loop wakes this often.
const blockingUDPTimeout = time.Second

// errUDPClosed is returned by a closed blockingUDPSocket.
var errUDPClosed = fmt.Errorf("udp socket: %w", net.ErrClosed)

// newBlockingUDPSocket takes c's socket: it keeps a duplicate of its
// descriptor and closes c, which removes c's descriptor from the
// netpoller's epoll set while the socket stays bound through the
// duplicate. c is closed whatever the result.
func newBlockingUDPSocket(c *net.UDPConn) (*blockingUDPSocket, error) {
	laddr := c.LocalAddr()
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(f uintptr) {
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		c.Close()
		return nil, err
	}
	if dupErr != nil {
		c.Close()
		return nil, fmt.Errorf("dup: %w", dupErr)
	}
	if err := c.Close(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("blocking mode: %w", err)
	}
	tv := unix.NsecToTimeval(blockingUDPTimeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("socket timeout: %w", err)
		}
	}
	return &blockingUDPSocket{laddr: laddr, fd: fd}, nil
}

// LocalAddr is the address the socket is bound to.
func (s *blockingUDPSocket) LocalAddr() net.Addr { return s.laddr }

// SetReadDeadline with a time that has passed stops the loop's waiting: it
// shuts the socket down for reading, so a recvmmsg waiting on it returns
// and later ones do not wait. Datagrams already queued can still be read,
// and replies still be sent. Deadlines in the future are not supported.
func (s *blockingUDPSocket) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(time.Now()) {
		return errors.New("udp socket: only a deadline in the past is supported")
	}
	return s.shutdown(unix.SHUT_RD)
}

// shutdown shuts the socket down. On an unconnected UDP socket Linux
// reports ENOTCONN but shuts it down all the same and wakes its waiters.
func (s *blockingUDPSocket) shutdown(how int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return errUDPClosed
	}
	if err := unix.Shutdown(s.fd, how); err != nil && !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Close wakes the calls blocked on the socket and closes it; every later
// call returns errUDPClosed.
func (s *blockingUDPSocket) Close() error {
	if err := s.shutdown(unix.SHUT_RDWR); err != nil {
		return err
	}
	s.mu.Lock()
	fd := s.fd
	s.fd = -1
	s.mu.Unlock()
	if fd < 0 {
		return errUDPClosed
	}
	return unix.Close(fd)
}

// recvmmsg waits for datagrams and receives up to len(msgs) of them: the
// first one it waits for, the others it takes if they are queued
// (MSG_WAITFORONE).
func (s *blockingUDPSocket) recvmmsg(msgs []unix.Mmsghdr) (int, syscall.Errno, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return 0, 0, errUDPClosed
	}
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd),
		uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_WAITFORONE, 0, 0)
	return int(r), e, nil
}

// sendmmsg sends msgs. Without wait it never blocks (MSG_DONTWAIT), and it
// runs as a raw system call, which leaves the P to the loop; with wait it
// waits for buffer space as an announced system call.
func (s *blockingUDPSocket) sendmmsg(msgs []unix.Mmsghdr, wait bool) (int, syscall.Errno, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return 0, 0, errUDPClosed
	}
	var r uintptr
	var e syscall.Errno
	if wait {
		r, _, e = unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	} else {
		r, _, e = unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	}
	return int(r), e, nil
}
