package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/internal/histogram"
	"github.com/meridian-gslb/meridian/internal/panics"
)

// Proto is the transport a query arrived on.
type Proto uint8

// The transports a query can arrive on.
const (
	ProtoUDP Proto = iota + 1
	ProtoTCP
)

// String returns "udp" or "tcp".
func (p Proto) String() string {
	switch p {
	case ProtoUDP:
		return "udp"
	case ProtoTCP:
		return "tcp"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// PacketHandler answers one raw DNS message.
type PacketHandler interface {
	// ServePacket writes the reply to req into resp[:0] and returns it, or returns nil to send
	// nothing. cap(resp) is the most the transport can send (65535 for TCP; the UDP buffer size
	// for UDP). It must not retain req or resp after returning. It is called concurrently from
	// several goroutines.
	ServePacket(resp, req []byte, src netip.AddrPort, proto Proto) []byte
}

// StreamHandler is implemented by handlers that answer some TCP requests
// with a stream of messages (zone transfers). The transport asks
// WantsStream for every TCP message first; it must be cheap.
type StreamHandler interface {
	WantsStream(req []byte, src netip.AddrPort) bool
	// ServeStream writes its replies with send, one DNS message per call,
	// and returns an error when the connection should close.
	ServeStream(req []byte, src netip.AddrPort, send func(msg []byte) error) error
}

// TransportConfig configures the UDP and TCP listeners. Zero values take the
// defaults noted on each field.
type TransportConfig struct {
	// Addrs are IP literals with a port: "127.0.0.1:5353", "[::1]:5353",
	// "0.0.0.0:53", "[::]:53". With port 0 UDP and TCP share the ephemeral
	// port picked for UDP.
	Addrs []string
	// UDPSockets is the number of UDP sockets per address, bound with
	// SO_REUSEPORT, each served by its own reader loop; 0 = runtime.GOMAXPROCS(0).
	// On Linux, when GOMAXPROCS is larger than the number of UDP sockets of
	// all addresses, each loop waits for datagrams inside recvmmsg, on a
	// thread of its own, and the Ps left run everything else; otherwise
	// the loops wait in the Go netpoller (docs/architecture.md has both).
	UDPSockets int
	// UDPBatch is the number of messages per recvmmsg/sendmmsg; 0 = 64.
	UDPBatch int
	// UDPBufSize is the receive buffer per message and the largest UDP reply;
	// 0 = 4096. Larger datagrams are dropped and counted as truncated.
	UDPBufSize int
	// MaxUDPReply is the largest UDP reply the handler sends (its
	// HandlerConfig.MaxUDPSize); 0 = DefaultMaxUDPSize. Up to dfMaxReply,
	// IPv4 replies carry the DF bit (see udpControl).
	MaxUDPReply int
	// TCPIdleTimeout closes a connection that sends no query for this long; 0 = 10s.
	TCPIdleTimeout time.Duration
	// TCPReadTimeout bounds the time to receive the rest of a message once
	// its first byte has arrived; 0 = 3s.
	TCPReadTimeout time.Duration
	// TCPMaxConns bounds concurrent TCP connections; 0 = 1024.
	TCPMaxConns int
	// TCPWriteTimeout bounds writing one reply; 0 = 5s.
	TCPWriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown; 0 = 5s.
	ShutdownTimeout time.Duration
}

// Defaults and limits of TransportConfig.
const (
	defaultUDPBatch        = 64
	defaultUDPBufSize      = 4096
	defaultTCPIdleTimeout  = 10 * time.Second
	defaultTCPReadTimeout  = 3 * time.Second
	DefaultTCPMaxConns     = 1024 // the server's descriptor budget counts on it (cmd/meridian)
	defaultTCPWriteTimeout = 5 * time.Second
	defaultShutdownTimeout = 5 * time.Second

	// dfMaxReply is the largest UDP payload sent with DF: with the IPv4
	// and UDP headers (28 bytes) it fits the 1280 bytes every path is
	// expected to carry, the premise of the 1232-byte default.
	dfMaxReply = 1280 - 28

	maxUDPSockets = 1024
	maxUDPBatch   = 1024 // UIO_MAXIOV, the kernel's bound on vlen
	minUDPBufSize = 512
	maxMsgSize    = 65535

	// portRetries bounds how often a port-0 address re-picks its port when
	// the ephemeral port chosen for UDP is already taken for TCP.
	portRetries = 10
)

// TransportStats are the transport's counters since NewTransport.
type TransportStats struct {
	UDPPacketsIn   uint64 `json:"udp_packets_in"`   // datagrams received, including truncated ones
	UDPPacketsOut  uint64 `json:"udp_packets_out"`  // replies sent
	UDPDropped     uint64 `json:"udp_dropped"`      // queries the handler chose not to answer
	UDPTruncated   uint64 `json:"udp_truncated"`    // datagrams larger than UDPBufSize, dropped unanswered
	UDPSendErrors  uint64 `json:"udp_send_errors"`  // replies the kernel refused
	UDPRecvErrors  uint64 `json:"udp_recv_errors"`  // transient receive errors
	UDPBatches     uint64 `json:"udp_batches"`      // receive calls that returned datagrams; UDPPacketsIn/UDPBatches is the batching achieved
	TCPAccepted    uint64 `json:"tcp_accepted"`     // connections accepted
	TCPRejected    uint64 `json:"tcp_rejected"`     // connections closed at once because TCPMaxConns were open
	TCPActive      uint64 `json:"tcp_active"`       // connections open now
	TCPQueries     uint64 `json:"tcp_queries"`      // messages received over TCP and handed to the handler
	TCPIdleClosed  uint64 `json:"tcp_idle_closed"`  // connections closed after TCPIdleTimeout without a query
	TCPReadTimeout uint64 `json:"tcp_read_timeout"` // connections closed with a partly received message
	TCPErrors      uint64 `json:"tcp_errors"`       // connections closed on a write error or an oversized reply
	HandlerPanics  uint64 `json:"handler_panics"`   // handler panics recovered by the transport
}

// Transport serves DNS over UDP and TCP on the configured addresses and
// hands every message to a PacketHandler.
type Transport struct {
	cfg   TransportConfig
	addrs []netip.AddrPort
	h     PacketHandler
	log   *slog.Logger
	// self is h when it answers its own panics (see selfRecovering), so
	// serve does not wrap it in a second recovery.
	self selfRecovering

	// useStdUDP selects the portable UDP loop on every platform, so
	// benchmarks can compare it with the batched one.
	useStdUDP bool
	// udpWait overrides how the batched loops wait, for tests and
	// benchmarks; udpBlocking is what Listen chose.
	udpWait     udpWaitMode
	udpBlocking bool

	mu      sync.Mutex // guards state, bound, conns
	state   transportState
	bound   []*boundAddr
	conns   map[*net.TCPConn]struct{}
	connsWG sync.WaitGroup

	stopping atomic.Bool
	stopc    chan struct{} // closed when shutdown begins

	udp        []udpServer // set by Listen, read-only afterwards
	tcpCounter tcpCounters
	panics     atomic.Uint64
	panicLog   panics.Log

	failOnce sync.Once
	failErr  error
	failed   chan struct{}
}

// udpWaitMode is how the batched UDP loops wait for datagrams.
type udpWaitMode int

const (
	udpWaitAuto     udpWaitMode = iota // blocking when a P is left for the rest (Listen)
	udpWaitPolled                      // in the Go netpoller
	udpWaitBlocking                    // in recvmmsg
)

type transportState int

const (
	stateNew transportState = iota
	stateListening
	stateRunning
	stateClosed
)

// boundAddr holds the sockets of one configured address.
type boundAddr struct {
	cfg      netip.AddrPort
	wildcard bool
	udp      []udpSocket
	tcp      *net.TCPListener
}

// udpSocket is a bound UDP socket as the transport sees it: a
// *net.UDPConn, or a socket its loop holds outside the Go netpoller (see
// newUDPServers). A read deadline in the past wakes a loop waiting for
// datagrams; Close makes its loop return an error wrapping net.ErrClosed.
type udpSocket interface {
	LocalAddr() net.Addr
	SetReadDeadline(time.Time) error
	Close() error
}

// udpServer is one UDP reader loop.
type udpServer interface {
	serve() error
	addStats(*TransportStats)
	addAnswerTimes(*histogram.Counts)
}

type udpCounters struct {
	in, out, dropped, truncated, sendErrs, recvErrs, batches atomic.Uint64
	// answerTime: how long replies took, one histogram per loop so that
	// loops share no cache line (see AnswerTimes).
	answerTime *histogram.Histogram
}

// AnswerTimeBounds are the buckets, in seconds, of the answer times
// (Transport.AnswerTimes).
var AnswerTimeBounds = []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1}

func newUDPCounters() udpCounters { return udpCounters{answerTime: histogram.New(AnswerTimeBounds)} }

func (c *udpCounters) addAnswerTimes(h *histogram.Counts) { h.Add(c.answerTime) }

func (c *udpCounters) addStats(s *TransportStats) {
	s.UDPPacketsIn += c.in.Load()
	s.UDPPacketsOut += c.out.Load()
	s.UDPDropped += c.dropped.Load()
	s.UDPTruncated += c.truncated.Load()
	s.UDPSendErrors += c.sendErrs.Load()
	s.UDPRecvErrors += c.recvErrs.Load()
	s.UDPBatches += c.batches.Load()
}

type tcpCounters struct {
	accepted, rejected, active, queries, idleClosed, readTimeouts, errors atomic.Uint64
	answerTime                                                            *histogram.Histogram
}

// NewTransport validates cfg and returns a Transport that serves h. A nil
// logger discards logs.
func NewTransport(cfg TransportConfig, h PacketHandler, logger *slog.Logger) (*Transport, error) {
	if h == nil {
		return nil, errors.New("dnsserver: transport: nil handler")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Addrs = append([]string(nil), cfg.Addrs...)
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("dnsserver: transport: no listen addresses")
	}
	addrs := make([]netip.AddrPort, 0, len(cfg.Addrs))
	seen := make(map[netip.AddrPort]bool, len(cfg.Addrs))
	for _, s := range cfg.Addrs {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("dnsserver: transport: address %q: want an IP literal with a port, like 127.0.0.1:53 or [::1]:53: %w", s, err)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if seen[ap] {
			return nil, fmt.Errorf("dnsserver: transport: address %q listed twice", s)
		}
		seen[ap] = true
		addrs = append(addrs, ap)
	}
	type intField struct {
		name     string
		v        *int
		def, max int
		min      int
	}
	for _, f := range []intField{
		{"UDPSockets", &cfg.UDPSockets, runtime.GOMAXPROCS(0), maxUDPSockets, 1},
		{"UDPBatch", &cfg.UDPBatch, defaultUDPBatch, maxUDPBatch, 1},
		{"UDPBufSize", &cfg.UDPBufSize, defaultUDPBufSize, maxMsgSize, minUDPBufSize},
		{"MaxUDPReply", &cfg.MaxUDPReply, DefaultMaxUDPSize, maxMsgSize, 512},
		{"TCPMaxConns", &cfg.TCPMaxConns, DefaultTCPMaxConns, 1 << 20, 1},
	} {
		if *f.v == 0 {
			*f.v = min(f.def, f.max)
		}
		if *f.v < f.min || *f.v > f.max {
			return nil, fmt.Errorf("dnsserver: transport: %s %d out of range [%d, %d]", f.name, *f.v, f.min, f.max)
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TCPIdleTimeout", &cfg.TCPIdleTimeout, defaultTCPIdleTimeout},
		{"TCPReadTimeout", &cfg.TCPReadTimeout, defaultTCPReadTimeout},
		{"TCPWriteTimeout", &cfg.TCPWriteTimeout, defaultTCPWriteTimeout},
		{"ShutdownTimeout", &cfg.ShutdownTimeout, defaultShutdownTimeout},
	} {
		if *f.v < 0 {
			return nil, fmt.Errorf("dnsserver: transport: %s %v is negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	self, _ := h.(selfRecovering)
	return &Transport{
		cfg:        cfg,
		addrs:      addrs,
		h:          h,
		self:       self,
		log:        logger,
		panicLog:   panics.Log{Logger: logger},
		conns:      make(map[*net.TCPConn]struct{}),
		stopc:      make(chan struct{}),
		failed:     make(chan struct{}),
		tcpCounter: tcpCounters{answerTime: histogram.New(AnswerTimeBounds)},
	}, nil
}

// Listen binds every UDP socket and TCP listener. If any bind fails it
// closes what it opened and returns the error, so nothing is served from a
// partial set of addresses. Listen is separate from Run so that callers can
// bind before dropping privileges and report the bound addresses.
func (t *Transport) Listen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateNew {
		return errors.New("dnsserver: transport: Listen called twice or after Close")
	}
	var bound []*boundAddr
	for _, ap := range t.addrs {
		b, err := t.bind(ap)
		if err != nil {
			for _, b := range bound {
				b.close()
			}
			return fmt.Errorf("dnsserver: transport: listen %s: %w", ap, err)
		}
		bound = append(bound, b)
	}
	// A loop blocked in recvmmsg keeps its P while it waits: sysmon leaves
	// it there while another P is idle (up to 10 ms), but when none is it
	// takes it back within microseconds and hands it to another thread,
	// and the loop needs a P again once recvmmsg returns. So blocking loops
	// need more Ps than loops.
	switch t.udpWait {
	case udpWaitAuto:
		t.udpBlocking = udpBlockingSupported && runtime.GOMAXPROCS(0) > len(bound)*t.udpSocketsPerAddr()
	case udpWaitBlocking:
		t.udpBlocking = udpBlockingSupported
	}
	var loops []udpServer
	for _, b := range bound {
		ls, err := t.newUDPServers(b)
		if err != nil {
			for _, b := range bound {
				b.close()
			}
			return fmt.Errorf("dnsserver: transport: listen %s: %w", b.cfg, err)
		}
		loops = append(loops, ls...)
	}
	t.bound, t.udp, t.state = bound, loops, stateListening
	return nil
}

// bind opens the UDP sockets and the TCP listener of one address.
func (t *Transport) bind(ap netip.AddrPort) (*boundAddr, error) {
	udpNet, tcpNet := "udp4", "tcp4"
	if ap.Addr().Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	b := &boundAddr{cfg: ap, wildcard: ap.Addr().IsUnspecified()}
	nsock := t.udpSocketsPerAddr()
	var lastErr error
	for range portRetries {
		port := ap.Port()
		for i := range nsock {
			// The first socket is bound without SO_REUSEPORT and gets it
			// once bound; the others join it. Linux lets a socket that
			// asks for SO_REUSEPORT before bind share a port with any
			// SO_REUSEPORT socket of the same user, and picks such a port
			// for port 0 as readily as a free one: a second server on our
			// address would silently take part of our queries, and port 0
			// could land on another server's port (or a dig's, whose UDP
			// sockets have SO_REUSEPORT too). A plain bind fails instead
			// when anything holds the port, and port 0 gets one nobody does.
			lc := net.ListenConfig{Control: udpControl(b.wildcard, i > 0, t.cfg.MaxUDPReply <= dfMaxReply)}
			pc, err := lc.ListenPacket(context.Background(), udpNet, netip.AddrPortFrom(ap.Addr(), port).String())
			if err != nil {
				b.close()
				return nil, fmt.Errorf("udp socket %d: %w", i+1, err)
			}
			c := pc.(*net.UDPConn)
			b.udp = append(b.udp, c)
			if i == 0 && nsock > 1 {
				if err := setReusePort(c); err != nil {
					b.close()
					return nil, fmt.Errorf("udp socket 1: %w", err)
				}
			}
			if port == 0 {
				port = c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
			}
		}
		lc := net.ListenConfig{Control: tcpControl, KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), tcpNet, netip.AddrPortFrom(ap.Addr(), port).String())
		if err == nil {
			b.tcp = ln.(*net.TCPListener)
			return b, nil
		}
		b.close()
		lastErr = fmt.Errorf("tcp: %w", err)
		if ap.Port() != 0 || !isAddrInUse(err) {
			break
		}
	}
	return nil, lastErr
}

func (b *boundAddr) close() {
	for _, c := range b.udp {
		c.Close()
	}
	b.udp = nil
	if b.tcp != nil {
		b.tcp.Close()
		b.tcp = nil
	}
}

// Addrs returns the bound UDP and TCP addresses, one of each per configured
// address in configuration order, or nil before Listen.
func (t *Transport) Addrs() (udp, tcp []net.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.bound {
		if len(b.udp) == 0 || b.tcp == nil {
			continue
		}
		udp = append(udp, b.udp[0].LocalAddr())
		tcp = append(tcp, b.tcp.Addr())
	}
	return udp, tcp
}

// Close releases the sockets of a Transport that was bound but is not
// running. Run closes them itself when it returns.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == stateRunning {
		return errors.New("dnsserver: transport: Close while running; cancel Run's context instead")
	}
	for _, b := range t.bound {
		b.close()
	}
	t.state = stateClosed
	return nil
}

// Run serves until ctx ends, then shuts down gracefully: it stops accepting,
// answers and sends the UDP batches already read, finishes the TCP queries
// being handled, writes their replies and closes the connections, all
// within ShutdownTimeout, and returns nil. It binds first if Listen was not
// called. It returns an error only for a failure that stops serving.
func (t *Transport) Run(ctx context.Context) error {
	t.mu.Lock()
	state := t.state
	t.mu.Unlock()
	if state == stateNew {
		if err := t.Listen(); err != nil {
			return err
		}
	}
	t.mu.Lock()
	if t.state != stateListening {
		t.mu.Unlock()
		return errors.New("dnsserver: transport: Run needs a fresh, listening transport")
	}
	t.state = stateRunning
	bound := t.bound
	t.mu.Unlock()

	var loops sync.WaitGroup
	for _, u := range t.udp {
		loops.Go(func() {
			if err := u.serve(); err != nil {
				t.fail(err)
			}
		})
	}
	for _, b := range bound {
		ln := b.tcp
		loops.Go(func() {
			if err := t.acceptTCP(ln); err != nil {
				t.fail(err)
			}
		})
	}
	udpAddrs, tcpAddrs := t.Addrs()
	t.log.Info("dns transport started",
		slog.Any("udp", udpAddrs), slog.Any("tcp", tcpAddrs),
		slog.Int("udp_sockets_per_addr", t.udpSocketsPerAddr()),
		slog.Int("udp_batch", t.cfg.UDPBatch),
		slog.String("udp_wait", t.udpWaitName()))

	select {
	case <-ctx.Done():
	case <-t.failed:
	}
	t.shutdown(bound, &loops)

	t.mu.Lock()
	for _, b := range bound {
		b.close()
	}
	t.state = stateClosed
	t.mu.Unlock()

	st := t.Stats()
	t.log.Info("dns transport stopped",
		slog.Uint64("udp_in", st.UDPPacketsIn), slog.Uint64("udp_out", st.UDPPacketsOut),
		slog.Uint64("tcp_queries", st.TCPQueries), slog.Uint64("handler_panics", st.HandlerPanics))
	select {
	case <-t.failed:
		return t.failErr
	default:
		return nil
	}
}

// fail records the first error that stops a listener and starts the shutdown.
func (t *Transport) fail(err error) {
	t.failOnce.Do(func() {
		t.log.Error("dns listener failed", slog.Any("err", err))
		t.failErr = fmt.Errorf("dnsserver: transport: %w", err)
		close(t.failed)
	})
}

// shutdown stops the listeners and waits, at most ShutdownTimeout, for the
// in-flight queries.
func (t *Transport) shutdown(bound []*boundAddr, loops *sync.WaitGroup) {
	// stopping is set under mu so no connection registers after the
	// snapshot below; loops check it after setting a deadline, so the past
	// deadline set here always wakes them.
	t.mu.Lock()
	t.stopping.Store(true)
	close(t.stopc)
	conns := make([]*net.TCPConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()

	past := time.Unix(1, 0)
	for _, b := range bound {
		for _, c := range b.udp {
			c.SetReadDeadline(past)
		}
		b.tcp.Close()
	}
	for _, c := range conns {
		c.SetReadDeadline(past)
	}

	done := make(chan struct{})
	go func() {
		loops.Wait()
		t.connsWG.Wait()
		close(done)
	}()
	timer := time.NewTimer(t.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	// A handler that blocks past the bound keeps its goroutine; closing the
	// sockets ends everything else, and Run returns without waiting for it.
	t.log.Warn("dns transport shutdown timed out; closing sockets",
		slog.Duration("timeout", t.cfg.ShutdownTimeout))
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	for _, b := range bound {
		for _, c := range b.udp {
			c.Close()
		}
	}
	t.mu.Unlock()
}

// Stats returns the transport's counters.
func (t *Transport) Stats() TransportStats {
	var s TransportStats
	for _, u := range t.udpServers() {
		u.addStats(&s)
	}
	c := &t.tcpCounter
	s.TCPAccepted = c.accepted.Load()
	s.TCPRejected = c.rejected.Load()
	s.TCPActive = c.active.Load()
	s.TCPQueries = c.queries.Load()
	s.TCPIdleClosed = c.idleClosed.Load()
	s.TCPReadTimeout = c.readTimeouts.Load()
	s.TCPErrors = c.errors.Load()
	s.HandlerPanics = t.panics.Load()
	return s
}

// AnswerTimes are the times replies took, by transport (buckets:
// AnswerTimeBounds). Over UDP, a batch of datagrams is answered and
// sent together: each of its replies counts the time from the batch's
// receipt (recvmmsg's return) to its sending (sendmmsg's return), the
// time the datagram spent in the server after the kernel handed it
// over. That is two clock reads per batch, not per query. Over TCP,
// from a whole message read to its reply written; zone transfers are
// left out.
func (t *Transport) AnswerTimes() (udp, tcp histogram.Counts) {
	udp = histogram.New(AnswerTimeBounds).Read()
	for _, u := range t.udpServers() {
		u.addAnswerTimes(&udp)
	}
	return udp, t.tcpCounter.answerTime.Read()
}

func (t *Transport) udpServers() []udpServer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.udp
}

// selfRecovering is implemented by handlers that recover their own
// panics and answer them (Handler: SERVFAIL). serveAt is ServePacket
// for a message received at now (monoNow, 0 when not known): the batched
// UDP loops read the clock once per batch for the handler's rate
// limiter rather than it once per query.
type selfRecovering interface {
	serveAt(resp, req []byte, src netip.AddrPort, proto Proto, now int64) []byte
}

// serve calls the handler and recovers a panic as a last resort: the
// message is dropped (ok false) and the listener keeps serving. A handler
// that recovers by itself is called directly: a second deferred recovery
// would cost every message a few nanoseconds for nothing. now is when
// the message was received (monoNow), or 0.
func (t *Transport) serve(resp, req []byte, src netip.AddrPort, proto Proto, now int64) (reply []byte, ok bool) {
	if t.self != nil {
		return t.self.serveAt(resp, req, src, proto, now), true
	}
	return t.serveRecovering(resp, req, src, proto)
}

func (t *Transport) serveRecovering(resp, req []byte, src netip.AddrPort, proto Proto) (reply []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			reply, ok = nil, false
			t.handlerPanicked(r, proto)
		}
	}()
	return t.h.ServePacket(resp, req, src, proto), true
}

// handlerPanicked counts and logs a panic the transport recovered; it is
// called from the recovering deferred function.
func (t *Transport) handlerPanicked(r any, proto Proto) {
	recordPanic(&t.panicLog, r, proto, "message dropped", t.panics.Add(1))
}

// udpSocketsPerAddr is the number of UDP sockets bound per address.
func (t *Transport) udpSocketsPerAddr() int {
	if !reusePortSupported {
		return 1
	}
	return t.cfg.UDPSockets
}

// udpWaitName says where the UDP loops wait for datagrams.
func (t *Transport) udpWaitName() string {
	switch {
	case t.useStdUDP:
		return "netpoller, one datagram per call"
	case t.udpBlocking:
		return "recvmmsg"
	}
	return "netpoller"
}
