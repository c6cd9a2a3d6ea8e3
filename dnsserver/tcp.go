package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// DNS over TCP per RFC 7766: each message is preceded by its length as two
// bytes. Queries pipelined on one connection are answered in order.

// tcpSmallBuf holds the incoming bytes of a connection: several pipelined
// queries of usual size. A message that does not fit moves to a
// tcpMaxFrame buffer for as long as it needs one.
const (
	tcpSmallBuf = 4096
	tcpMaxFrame = 2 + maxMsgSize
)

var (
	tcpSmallPool = sync.Pool{New: func() any { return new([tcpSmallBuf]byte) }}
	// tcpFramePool holds full-size frames: large incoming messages and,
	// per query, the reply (so reply space is held only while a query is
	// being answered, not by every idle connection).
	tcpFramePool = sync.Pool{New: func() any { return new([tcpMaxFrame]byte) }}
)

// acceptTCP accepts connections until the listener is closed.
func (t *Transport) acceptTCP(ln *net.TCPListener) error {
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if t.stopping.Load() {
				return nil
			}
			if isTemporaryAcceptError(err) {
				// Out of descriptors or memory: wait, as net/http does,
				// rather than spin or give up.
				if backoff == 0 {
					backoff = 5 * time.Millisecond
					t.log.Warn("dns tcp accept failing; backing off", slog.String("addr", ln.Addr().String()), slog.Any("err", err))
				} else {
					backoff = min(2*backoff, time.Second)
				}
				select {
				case <-time.After(backoff):
				case <-t.stopc:
				}
				continue
			}
			return fmt.Errorf("tcp accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		if !t.admitTCP(c) {
			c.Close()
			continue
		}
		go t.serveTCPConn(c)
	}
}

func isTemporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admitTCP registers c unless TCPMaxConns connections are open or the
// transport is stopping.
func (t *Transport) admitTCP(c *net.TCPConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping.Load() {
		return false
	}
	if len(t.conns) >= t.cfg.TCPMaxConns {
		t.tcpCounter.rejected.Add(1)
		return false
	}
	t.conns[c] = struct{}{}
	t.connsWG.Add(1)
	t.tcpCounter.accepted.Add(1)
	t.tcpCounter.active.Add(1)
	return true
}

func (t *Transport) releaseTCP(c *net.TCPConn) {
	c.Close()
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.tcpCounter.active.Add(^uint64(0))
	t.connsWG.Done()
}

// serveTCPConn reads and answers the messages of one connection until the
// peer closes it, a timeout expires, the framing is broken or the
// transport stops.
func (t *Transport) serveTCPConn(c *net.TCPConn) {
	defer t.releaseTCP(c)
	var src netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		src = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}

	small := tcpSmallPool.Get().(*[tcpSmallBuf]byte)
	defer tcpSmallPool.Put(small)
	var big *[tcpMaxFrame]byte
	defer func() {
		if big != nil {
			tcpFramePool.Put(big)
		}
	}()

	buf := small[:]
	start, end := 0, 0
	partial := false // a message has begun arriving and its read deadline is set
	for {
		// Answer every complete message already buffered.
		for end-start >= 2 {
			n := int(binary.BigEndian.Uint16(buf[start:]))
			if n == 0 {
				return // RFC 7766 gives a zero length no meaning: close.
			}
			if end-start < 2+n {
				if 2+n > len(buf) {
					big = tcpFramePool.Get().(*[tcpMaxFrame]byte)
					end = copy(big[:], buf[start:end])
					start, buf = 0, big[:]
				}
				break
			}
			msg := buf[start+2 : start+2+n]
			start += 2 + n
			partial = false
			if !t.answerTCP(c, msg, src) {
				return
			}
		}
		if start == end {
			start, end = 0, 0
			if big != nil {
				tcpFramePool.Put(big)
				big, buf = nil, small[:]
			}
		} else if start > 0 {
			// Move the partial message to the front so it has room to complete.
			end = copy(buf, buf[start:end])
			start = 0
		}

		// Set the deadline, then look at stopping: shutdown sets stopping
		// before it moves the deadline into the past, so one of the two
		// always ends the wait below.
		switch {
		case end == 0:
			if err := c.SetReadDeadline(time.Now().Add(t.cfg.TCPIdleTimeout)); err != nil {
				return
			}
		case !partial:
			if err := c.SetReadDeadline(time.Now().Add(t.cfg.TCPReadTimeout)); err != nil {
				return
			}
			partial = true
		}
		if t.stopping.Load() {
			return
		}
		n, err := c.Read(buf[end:])
		end += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !t.stopping.Load() {
				if end == 0 {
					t.tcpCounter.idleClosed.Add(1)
				} else {
					t.tcpCounter.readTimeouts.Add(1)
				}
			}
			return
		}
	}
}

// answerTCP answers one message and writes the reply. It returns false when
// the connection must close.
func (t *Transport) answerTCP(c *net.TCPConn, msg []byte, src netip.AddrPort) bool {
	t.tcpCounter.queries.Add(1)
	if sh, ok := t.h.(StreamHandler); ok && sh.WantsStream(msg, src) {
		return t.streamTCP(c, sh, msg, src)
	}
	start := time.Now()
	frame := tcpFramePool.Get().(*[tcpMaxFrame]byte)
	defer tcpFramePool.Put(frame)
	reply, ok := t.serve(frame[2:2:tcpMaxFrame], msg, src, ProtoTCP, 0)
	if !ok {
		// The handler panicked: the client would wait for a reply that
		// never comes, so close and let it retry.
		return false
	}
	if len(reply) == 0 {
		return true
	}
	if len(reply) > maxMsgSize {
		t.tcpCounter.errors.Add(1)
		return false
	}
	if unsafe.SliceData(reply) != &frame[2] {
		copy(frame[2:], reply)
	}
	binary.BigEndian.PutUint16(frame[:2], uint16(len(reply)))
	if err := c.SetWriteDeadline(time.Now().Add(t.cfg.TCPWriteTimeout)); err != nil {
		return false
	}
	if _, err := c.Write(frame[:2+len(reply)]); err != nil {
		t.tcpCounter.errors.Add(1)
		return false
	}
	t.tcpCounter.answerTime.Observe(time.Since(start))
	return true
}

// streamTCP lets a StreamHandler write several replies to one request.
func (t *Transport) streamTCP(c *net.TCPConn, sh StreamHandler, msg []byte, src netip.AddrPort) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			t.handlerPanicked(r, ProtoTCP)
			ok = false
		}
	}()
	frame := tcpFramePool.Get().(*[tcpMaxFrame]byte)
	defer tcpFramePool.Put(frame)
	send := func(reply []byte) error {
		if len(reply) > maxMsgSize {
			return errors.New("stream message too large")
		}
		binary.BigEndian.PutUint16(frame[:2], uint16(len(reply)))
		n := copy(frame[2:], reply)
		if err := c.SetWriteDeadline(time.Now().Add(t.cfg.TCPWriteTimeout)); err != nil {
			return err
		}
		_, err := c.Write(frame[:2+n])
		return err
	}
	if err := sh.ServeStream(msg, src, send); err != nil {
		t.tcpCounter.errors.Add(1)
		return false
	}
	return true
}
