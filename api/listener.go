package api

import (
	"container/list"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/api/apitypes"
)

// Listener bounds the connections of the HTTP server to a number well
// below the process's file descriptors, so that no flood of connections
// can take the descriptors that etcd, the state file and DNS need.
//
// At the limit it makes room by closing the connection that has waited
// longest for a request: an idle keep-alive connection, or one that has
// not sent a whole request header yet (a slow or silent client). A
// request being served is never cut. When every connection is serving a
// request, Accept waits for one to end: new connections then queue in
// the kernel's accept backlog, which costs no descriptor. So a flood of
// idle or slow connections holds at most the limit (and one more, held
// in Accept), and a real request still gets in.
//
// The server must report connection states with ConnState.
type Listener struct {
	net.Listener
	max int

	mu      sync.Mutex
	open    int
	waiting list.List     // *conn waiting for a request, the longest waiting first
	change  chan struct{} // a place was freed, or a connection began to wait
	done    chan struct{}
	close   sync.Once

	accepted, evicted, waits atomic.Uint64
}

// NewListener bounds ln to n connections (at least 1).
func NewListener(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, max: max(n, 1), change: make(chan struct{}, 1), done: make(chan struct{})}
}

// Accept waits until there is a free place, or a connection waiting for
// a request that can give up its place, then accepts. If the new
// connection finds no place after all (the waiting one began a request
// meanwhile), Accept holds it until one frees. So the connections number
// at most the limit, and one more held in Accept.
func (l *Listener) Accept() (net.Conn, error) {
	waited := false
	wait := func() bool {
		if !waited {
			waited = true
			l.waits.Add(1)
		}
		select {
		case <-l.change:
			return true
		case <-l.done:
			return false
		}
	}
	for {
		l.mu.Lock()
		room := l.open < l.max || l.waiting.Len() > 0
		l.mu.Unlock()
		if room {
			break
		}
		if !wait() {
			return nil, net.ErrClosed
		}
	}
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	c := &conn{Conn: nc, l: l}
	for {
		var victim *conn
		l.mu.Lock()
		room := l.open < l.max
		if e := l.waiting.Front(); !room && e != nil {
			victim = e.Value.(*conn)
			l.unwait(victim)
			room = true
		}
		if room {
			l.open++
			l.wait(c) // waiting for its first request
		}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			victim.Close()
		}
		if room {
			return c, nil
		}
		if !wait() {
			nc.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and ends an Accept waiting for a place.
func (l *Listener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// ConnState follows the server's connections: set it as the server's
// ConnState (chaining any other hook).
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok { // the server's TLS runs over our conn
		nc = tc.NetConn()
	}
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	switch state {
	case http.StateIdle:
		l.wait(c)
	case http.StateActive, http.StateHijacked, http.StateClosed:
		l.unwait(c)
	}
}

// Stats returns the counts.
func (l *Listener) Stats() apitypes.HTTPStats {
	l.mu.Lock()
	open, idle := l.open, l.waiting.Len()
	l.mu.Unlock()
	return apitypes.HTTPStats{Open: open, Idle: idle, Max: l.max, Accepted: l.accepted.Load(), Evicted: l.evicted.Load(), Waits: l.waits.Load()}
}

// wait puts c at the end of the waiting list; l.mu is held.
func (l *Listener) wait(c *conn) {
	l.unwait(c)
	c.elem = l.waiting.PushBack(c)
	l.signal()
}

// unwait takes c off the waiting list; l.mu is held.
func (l *Listener) unwait(c *conn) {
	if c.elem != nil {
		l.waiting.Remove(c.elem)
		c.elem = nil
	}
}

// release frees a place.
func (l *Listener) release() {
	l.mu.Lock()
	l.open--
	l.signal()
	l.mu.Unlock()
}

// signal wakes an Accept waiting for room.
func (l *Listener) signal() {
	select {
	case l.change <- struct{}{}:
	default:
	}
}

// conn is an accepted connection; it frees its place when closed.
type conn struct {
	net.Conn
	l *Listener
	// Under l.mu:
	elem   *list.Element // on l.waiting, or nil
	closed bool
}

// CloseWrite lets the server half-close a connection before closing it,
// so that a client still sending (an upload refused early) reads the
// answer instead of a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	if c.closed {
		c.l.mu.Unlock()
		return nil
	}
	c.closed = true
	c.l.unwait(c)
	c.l.mu.Unlock()
	err := c.Conn.Close()
	c.l.release()
	return err
}

var (
	descHTTPOpen     = prometheus.NewDesc("meridian_http_connections", "Open connections of the HTTP server.", nil, nil)
	descHTTPIdle     = prometheus.NewDesc("meridian_http_connections_idle", "Open HTTP connections waiting for a request (idle keep-alive, or no whole request header yet).", nil, nil)
	descHTTPMax      = prometheus.NewDesc("meridian_http_connections_max", "The most connections the HTTP server holds (http.max_connections, lowered to fit the descriptor limit).", nil, nil)
	descHTTPAccepted = prometheus.NewDesc("meridian_http_connections_accepted_total", "Connections the HTTP server accepted.", nil, nil)
	descHTTPEvicted  = prometheus.NewDesc("meridian_http_connections_evicted_total", "Idle or slow HTTP connections closed at the limit to make room for a new one.", nil, nil)
	descHTTPWaits    = prometheus.NewDesc("meridian_http_accept_waits_total", "Times the HTTP server stopped accepting because every connection was serving a request.", nil, nil)
)

// ListenerCollector exposes a Listener's counts as metrics.
func ListenerCollector(l *Listener) prometheus.Collector { return listenerCollector{l} }

type listenerCollector struct{ l *Listener }

func (c listenerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHTTPOpen, descHTTPIdle, descHTTPMax, descHTTPAccepted, descHTTPEvicted, descHTTPWaits} {
		ch <- d
	}
}

func (c listenerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(descHTTPOpen, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(descHTTPIdle, prometheus.GaugeValue, float64(st.Idle))
	ch <- prometheus.MustNewConstMetric(descHTTPMax, prometheus.GaugeValue, float64(st.Max))
	ch <- prometheus.MustNewConstMetric(descHTTPAccepted, prometheus.CounterValue, float64(st.Accepted))
	ch <- prometheus.MustNewConstMetric(descHTTPEvicted, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(descHTTPWaits, prometheus.CounterValue, float64(st.Waits))
}
