package api

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
)

// listenerServer serves h on a Listener of max connections, with
// timeouts long enough that only the Listener closes connections.
func listenerServer(t *testing.T, max int, h http.Handler) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, max)
	srv := &http.Server{Handler: h, ConnState: l.ConnState, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l, ln.Addr().String()
}

// closedByServer says whether the server closed c (reading ends) before
// the test's wait limit.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(etcdtest.WaitLimit))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func getOn(t *testing.T, c net.Conn, path string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: meridian\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestListener: at its limit the Listener closes the connection that has
// waited longest for a request (idle keep-alive, or silent, or sending
// its header slowly) so that a new request is served; it never cuts a
// request being served, and waits when every connection serves one.
func TestListener(t *testing.T) {
	const max = 4
	release := make(chan struct{})
	l, addr := listenerServer(t, max, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// settled waits until the server has seen the connections so far:
	// the order in which they wait for a request is then known.
	settled := func(open, idle int) {
		t.Helper()
		etcdtest.WaitUntil(t, fmt.Sprintf("%d open connections, %d of them idle", open, idle), func() bool {
			st := l.Stats()
			return st.Open == open && st.Idle == idle
		})
	}

	// The first four: a keep-alive connection after one request, a
	// silent one, one sending its header slowly, one more silent.
	idle := dial()
	if resp := getOn(t, idle, "/"); resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	settled(1, 1)
	silent := dial()
	settled(2, 2)
	slow := dial()
	if _, err := io.WriteString(slow, "GET / HTTP/1.1\r\nHost: mer"); err != nil {
		t.Fatal(err)
	}
	settled(3, 3)
	dial()
	settled(max, max)

	// Three new requests get in, each in the place of the connection
	// that waited longest.
	for i, victim := range []net.Conn{idle, silent, slow} {
		if resp := getOn(t, dial(), "/"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if !closedByServer(victim) {
			t.Fatalf("request %d: the longest waiting connection was not closed", i)
		}
		settled(max, max) // the new one waits for its next request
		if st := l.Stats(); st.Evicted != uint64(i+1) {
			t.Fatalf("request %d: %+v", i, st)
		}
	}

	// Requests being served are never cut: with every place serving one,
	// the next connection waits until one ends.
	busy := make([]net.Conn, max)
	sent := make(chan *http.Response, max)
	for i := range busy {
		busy[i] = dial()
		go func(c net.Conn) {
			if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: meridian\r\n\r\n"); err != nil {
				sent <- nil
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				resp = nil
			}
			sent <- resp
		}(busy[i])
		settled(max, max-i-1)
	}
	next := dial()
	if _, err := io.WriteString(next, "GET / HTTP/1.1\r\nHost: meridian\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitUntil(t, "the next connection waits", func() bool { return l.Stats().Waits > 0 })
	if st := l.Stats(); st.Open != max || st.Evicted != 3+max {
		t.Fatalf("%+v", st)
	}
	close(release)
	for range max {
		if resp := <-sent; resp == nil || resp.StatusCode != 200 {
			t.Fatalf("a request being served was cut: %v", resp)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(next), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the waiting connection: %v %v", resp, err)
	}
	if st := l.Stats(); st.Open > max {
		t.Fatalf("%+v", st)
	}
}

// TestListenerTLS: over TLS the Listener still knows which connections
// serve a request: at the limit, a new connection does not cut a TLS
// request being served, it waits for its place.
func TestListenerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key := ca.issue("api", 24*time.Hour, x509.ExtKeyUsageServerAuth)
	tl, err := NewTLS(TLSFiles{CertFile: cert, KeyFile: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, 1)
	started, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}), ConnState: l.ConnState, TLSConfig: tl.Config(), ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { _ = srv.ServeTLS(l, "", ""); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
	defer client.CloseIdleConnections()

	slow := make(chan error, 1)
	go func() {
		resp, err := client.Get("https://" + ln.Addr().String() + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	<-started
	second := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.pool()})
		if err == nil {
			c.Close()
		}
		second <- err
	}()
	etcdtest.WaitUntil(t, "the second connection waits for a place", func() bool { return l.Stats().Waits == 1 })
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("the request being served was cut: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting connection: %v", err)
	}
}
