package floodtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Result counts a flood's queries and the replies that came back.
type Result struct {
	Queries    int // sent
	QueryBytes int
	Replies    int // received
	ReplyBytes int
	Answered   int // replies without TC (answers, denials, errors)
	Truncated  int // TC set and no records: slipped, or too large
	BadCookie  int // BADCOOKIE (a slip to a client that sent a cookie)
	// Sending is the time from the first query sent to the last.
	Sending time.Duration
}

// Amplification is the reply bytes per query byte.
func (r Result) Amplification() float64 {
	if r.QueryBytes == 0 {
		return 0
	}
	return float64(r.ReplyBytes) / float64(r.QueryBytes)
}

func (r Result) String() string {
	return fmt.Sprintf("%d queries (%d bytes) in %v: %d replies (%d bytes): %d answered, %d truncated, %d BADCOOKIE; amplification %.3f",
		r.Queries, r.QueryBytes, r.Sending.Round(time.Millisecond), r.Replies, r.ReplyBytes, r.Answered, r.Truncated, r.BadCookie, r.Amplification())
}

// Flood sends queries to one server from sockets bound to its sources
// and counts the replies in the background.
type Flood struct {
	server netip.AddrPort
	conns  []*net.UDPConn
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed *sync.Cond
	res     Result
	errs    []error
}

// Sources returns n consecutive addresses from first: 127.0.0.77,
// 127.0.0.78, ...
func Sources(first netip.Addr, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = first
		first = first.Next()
	}
	return out
}

// Open binds a UDP socket to each source (loopback addresses need no
// set-up on Linux: all of 127.0.0.0/8 is local) and starts counting the
// replies they receive.
func Open(server netip.AddrPort, sources []netip.Addr) (*Flood, error) {
	f := &Flood{server: server}
	f.changed = sync.NewCond(&f.mu)
	for _, src := range sources {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("floodtest: bind %s: %w", src, err)
		}
		// Replies may come faster than the reader takes them.
		if err := c.SetReadBuffer(4 << 20); err != nil {
			c.Close()
			f.Close()
			return nil, err
		}
		f.conns = append(f.conns, c)
		f.wg.Go(func() { f.read(c) })
	}
	return f, nil
}

func (f *Flood) read(c *net.UDPConn) {
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.fail(err)
			}
			return
		}
		m := new(dns.Msg)
		err = m.Unpack(buf[:n])
		f.mu.Lock()
		f.res.Replies++
		f.res.ReplyBytes += n
		switch {
		case err != nil || !m.Response:
			f.errs = append(f.errs, fmt.Errorf("floodtest: a reply that is not a DNS response (%v): % x", err, buf[:n]))
		case m.Rcode == dns.RcodeBadCookie:
			f.res.BadCookie++
		case m.Truncated:
			f.res.Truncated++
		default:
			f.res.Answered++
		}
		f.changed.Broadcast()
		f.mu.Unlock()
	}
}

func (f *Flood) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.changed.Broadcast()
	f.mu.Unlock()
}

// Send sends n queries, query(i) for the i-th, from the sources in turn,
// at most perSecond a second, each with the ID i mod 65536. It returns
// when all are sent or ctx ends.
func (f *Flood) Send(ctx context.Context, n, perSecond int, query func(i int) []byte) error {
	start := time.Now()
	bytes := 0
	for i := range n {
		if i%32 == 0 {
			// Keep to the pace: sleep until query i is due.
			due := start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		q := query(i)
		binary.BigEndian.PutUint16(q, uint16(i))
		if _, err := f.conns[i%len(f.conns)].WriteToUDPAddrPort(q, f.server); err != nil {
			return fmt.Errorf("floodtest: query %d: %w", i, err)
		}
		bytes += len(q)
	}
	f.mu.Lock()
	f.res.Queries += n
	f.res.QueryBytes += bytes
	f.res.Sending += time.Since(start)
	f.mu.Unlock()
	return nil
}

// WaitReplies waits until want replies have arrived in all, and fails
// when more arrive or none comes for timeout.
func (f *Flood) WaitReplies(want int, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if len(f.errs) > 0 {
			return errors.Join(f.errs...)
		}
		if f.res.Replies >= want {
			if f.res.Replies > want {
				return fmt.Errorf("floodtest: %d replies, want %d", f.res.Replies, want)
			}
			return nil
		}
		got := f.res.Replies
		t := time.AfterFunc(timeout, func() {
			f.mu.Lock()
			f.changed.Broadcast()
			f.mu.Unlock()
		})
		f.changed.Wait()
		if !t.Stop() && f.res.Replies == got && len(f.errs) == 0 {
			return fmt.Errorf("floodtest: %d replies, want %d; none more within %v", got, want, timeout)
		}
	}
}

// Result is what the flood has counted so far.
func (f *Flood) Result() Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res
}

// Close closes the sockets and waits for the readers.
func (f *Flood) Close() {
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// Ask sends req from a socket bound to src and returns the reply with
// req's ID, or an error after timeout.
func Ask(server netip.AddrPort, src netip.Addr, req []byte, timeout time.Duration) (*dns.Msg, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		return nil, fmt.Errorf("floodtest: bind %s: %w", src, err)
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			return nil, err
		}
		if m.Id == binary.BigEndian.Uint16(req) {
			return m, nil
		}
	}
}
