package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTransportUDPRepliesUnderAbuse has many clients, each on its own
// socket, query the real handler through every UDP loop while other
// sockets send garbage: random bytes, header-only messages, cut-off
// queries and responses (QR set). Every datagram any socket receives must
// be a reply (QR set) to a packet that socket sent: the ID of one of its
// outstanding queries with the question it asked, byte for byte, so no
// socket ever sees bytes of another's packet or a query sent back. Small
// batches make many batch boundaries; two sockets per address make the
// kernel spread the clients over two loops, and each must get some.
func TestTransportUDPRepliesUnderAbuse(t *testing.T) {
	for _, kind := range udpLoopKinds {
		t.Run(kind.name, func(t *testing.T) {
			r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2, UDPBatch: 8},
				testHandler(t, HandlerConfig{}), kind.opt)
			addr := net.UDPAddrFromAddrPort(r.udpAddr(t, 0))
			const clients, perClient, window = 24, 60, 4
			const abusers, perAbuser = 4, 600
			var wg sync.WaitGroup
			errs := make(chan error, clients+abusers)
			for c := range clients {
				wg.Go(func() {
					if err := abuseClient(addr, c, perClient, window); err != nil {
						errs <- fmt.Errorf("client %d: %w", c, err)
					}
				})
			}
			for a := range abusers {
				wg.Go(func() {
					if err := abuser(addr, a, perAbuser); err != nil {
						errs <- fmt.Errorf("abuser %d: %w", a, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for i, u := range r.udpServers() {
				var st TransportStats
				u.addStats(&st)
				if st.UDPPacketsIn == 0 {
					t.Errorf("UDP loop %d of %d received nothing: the sockets do not share the port", i+1, len(r.udpServers()))
				}
			}
		})
	}
}

// abuseClient asks perClient questions, window at a time, for names only
// client c asks (in a case of its own, which replies must keep), and
// checks every datagram it receives. A query lost on a loaded loopback is
// sent again, as a resolver would, so a late reply may come twice: it is
// checked all the same.
func abuseClient(addr *net.UDPAddr, c, perClient, window int) error {
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(uint64(c), 7))
	asked := map[uint16][]byte{} // ID: the packed query, for every query so far
	buf := make([]byte, 4096)
	for next := 0; next < perClient; {
		pending := map[uint16]bool{}
		for ; next < perClient && len(pending) < window; next++ {
			name := []byte(fmt.Sprintf("c%02d-q%03d.wild.example.org.", c, next))
			for i, b := range name {
				if 'a' <= b && b <= 'z' && rng.IntN(2) == 0 {
					name[i] = b - 'a' + 'A'
				}
			}
			m := new(dns.Msg)
			m.SetQuestion(string(name), dns.TypeA)
			for m.Id = uint16(rng.Uint32()); asked[m.Id] != nil; m.Id++ {
			}
			b, err := m.Pack()
			if err != nil {
				return err
			}
			asked[m.Id] = b
			pending[m.Id] = true
		}
		for attempt := 0; len(pending) > 0; attempt++ {
			if attempt == 5 {
				return fmt.Errorf("%d queries unanswered after %d attempts", len(pending), attempt)
			}
			for id := range pending {
				if _, err := conn.Write(asked[id]); err != nil {
					return err
				}
			}
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			for len(pending) > 0 {
				n, err := conn.Read(buf)
				if isTimeout(err) {
					break
				}
				if err != nil {
					return err
				}
				id, err := checkAbuseReply(buf[:n], asked)
				if err != nil {
					return err
				}
				delete(pending, id)
			}
		}
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkAbuseReply checks that reply answers one of the queries asked (by
// ID) with its question, byte for byte, and the wildcard's address.
func checkAbuseReply(reply []byte, asked map[uint16][]byte) (uint16, error) {
	if len(reply) < headerLen {
		return 0, fmt.Errorf("a %d-byte datagram: % x", len(reply), reply)
	}
	if reply[2]&0x80 == 0 {
		return 0, fmt.Errorf("a datagram without QR: % x", reply)
	}
	id := binary.BigEndian.Uint16(reply)
	q, ok := asked[id]
	if !ok {
		return 0, fmt.Errorf("a reply with ID %d, not one of ours: % x", id, reply)
	}
	m := new(dns.Msg)
	if err := m.Unpack(reply); err != nil {
		return 0, fmt.Errorf("reply does not parse: %v: % x", err, reply)
	}
	// The question section follows the header in both.
	question := q[headerLen:]
	if len(reply) < headerLen+len(question) || string(reply[headerLen:headerLen+len(question)]) != string(question) {
		return 0, fmt.Errorf("reply to ID %d has question %v, we asked % x", id, m.Question, question)
	}
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		return 0, fmt.Errorf("reply to %v: %v", m.Question, m)
	}
	if a, ok := m.Answer[0].(*dns.A); !ok || a.A.String() != "192.0.2.100" {
		return 0, fmt.Errorf("reply to %v: answer %v", m.Question, m.Answer[0])
	}
	return id, nil
}

// abuser sends perAbuser packets that are no good query, then checks what
// came back: only replies (QR set) carrying the ID of a packet it sent.
func abuser(addr *net.UDPAddr, a, perAbuser int) error {
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(uint64(a), 11))
	good, err := newQuery(fmt.Sprintf("abuser%d.wild.example.org.", a)).Pack()
	if err != nil {
		return err
	}
	sent := map[uint16]bool{}
	pkt := make([]byte, 600)
	for i := range perAbuser {
		var p []byte
		switch i % 4 {
		case 0: // random bytes, from shorter than a header to a few hundred
			p = pkt[:rng.IntN(len(pkt))]
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
		case 1: // a header alone, random flags and counts
			p = pkt[:headerLen]
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
		case 2: // a query cut short
			p = append(pkt[:0], good[:headerLen+rng.IntN(len(good)-headerLen)]...)
			binary.BigEndian.PutUint16(p, uint16(rng.Uint32()))
		case 3: // a response: answering it would make us a reflector
			p = append(pkt[:0], good...)
			binary.BigEndian.PutUint16(p, uint16(rng.Uint32()))
			p[2] |= 0x80
		}
		if len(p) >= 2 {
			sent[binary.BigEndian.Uint16(p)] = true
		}
		if _, err := conn.Write(p); err != nil {
			return err
		}
	}
	// What the socket buffer holds, until the replies stop coming.
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if isTimeout(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < headerLen || buf[2]&0x80 == 0 || !sent[binary.BigEndian.Uint16(buf)] {
			return fmt.Errorf("received % x: not a reply to a packet of ours", buf[:n])
		}
	}
}
