package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
)

// TestPanicRecovery: a handler's panic is answered with a problem
// document (500) and logged with its stack, once for repeats within
// panics.Interval (internal/panics has the rest of the rule); a
// panic after the response began aborts the connection; the server's own
// abort passes through.
func TestPanicRecovery(t *testing.T) {
	var logs testlog.Buffer
	opts := Options{
		Logger: logs.Logger(),
		Status: func() ServerStatus {
			fields := strings.Fields("")
			return ServerStatus{Source: fields[0]} // a bug in the server's status
		},
	}
	srv := httptest.NewServer(NewRouter(opts))
	defer srv.Close()
	for i := range 3 {
		resp, err := http.Get(srv.URL + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p Problem
		if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" ||
			json.Unmarshal(body, &p) != nil || p.Status != 500 || !strings.Contains(p.Detail, "log") {
			t.Errorf("request %d: %d %s %s", i, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "panic in an HTTP handler"); n != 1 {
		t.Errorf("%d log records for three panics at one site at once, want 1:\n%s", n, out)
	}
	for _, want := range []string{"level=ERROR", `msg="panic in an HTTP handler; answered 500"`, "path=/v1/status", "index out of range [0] with length 0",
		`site="github.com/meridian-gslb/meridian/api.TestPanicRecovery.func1 (`, "robust_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}

	a := newAPIServer(opts)
	h := a.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/after-header" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("half"))
			panic("half way")
		}
		panic(http.ErrAbortHandler)
	}))
	for _, tc := range []struct{ path, log string }{
		{"/after-header", "half way"},
		{"/abort", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			before := strings.Count(logs.String(), "panic in an HTTP handler")
			func() {
				defer func() {
					if v := recover(); v != http.ErrAbortHandler {
						t.Errorf("recovered %v, want http.ErrAbortHandler (the server then drops the connection)", v)
					}
				}()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
			}()
			logged := strings.Count(logs.String(), "panic in an HTTP handler") > before
			if logged != (tc.log != "") || !strings.Contains(logs.String(), tc.log) {
				t.Errorf("logged %v, want %q:\n%s", logged, tc.log, logs.String())
			}
		})
	}
}

// TestRequestTimeout: at the request timeout a handler's context ends; a
// handler that then returns without answering gets a 504 problem, one
// that answered keeps its answer alone (no second status after it).
func TestRequestTimeout(t *testing.T) {
	a := newAPIServer(Options{RequestTimeout: 20 * time.Millisecond})
	cases := []struct {
		name   string
		h      http.HandlerFunc
		status int
		title  string
	}{
		{"a handler that does not answer", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, 504, "request timeout"},
		{"a handler's own answer", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			writeProblem(w, Problem{Status: 503, Title: "etcd unavailable"})
		}, 503, "etcd unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			a.recoverPanics(a.withTimeout(tc.h)).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			dec := json.NewDecoder(rec.Body)
			var p Problem
			if err := dec.Decode(&p); err != nil || rec.Code != tc.status || p.Status != tc.status || p.Title != tc.title {
				t.Fatalf("%d %+v (%v), want %d %q", rec.Code, p, err, tc.status, tc.title)
			}
			if dec.More() {
				t.Errorf("more after the problem document: %s", rec.Body)
			}
		})
	}
}

// slowBody sends lines of a latency table with a pause after each, then
// waits for stop before it ends (or never sends its end, when stall).
type slowBody struct {
	lines []string
	pause time.Duration
	stall <-chan struct{}
}

func (b *slowBody) reader() io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for _, l := range b.lines {
			if _, err := io.WriteString(pw, l); err != nil {
				return
			}
			time.Sleep(b.pause)
		}
		if b.stall != nil {
			<-b.stall
		}
		pw.Close()
	}()
	return pr
}

// TestLatencyUploadDeadline: an upload that takes longer than the request
// timeout and the server's read and write timeouts is accepted (it has
// the upload timeout), and one that stalls past the upload timeout gets
// 408, not a false "etcd unavailable".
func TestLatencyUploadDeadline(t *testing.T) {
	const short = 200 * time.Millisecond
	f := newFixture(t, fixtureOpts{requestTimeout: short, uploadTimeout: 3 * time.Second})
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = short, short
	srv.Start()
	defer srv.Close()
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("198.51.100.%d/32,eu-west,%d\n", i, 10+i))
	}
	put := func(body io.Reader) (*http.Response, Problem, time.Duration) {
		t.Helper()
		r, err := http.NewRequest("PUT", srv.URL+"/v1/latency", body)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+adminSecret)
		start := time.Now()
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var p Problem
		_ = json.Unmarshal(b, &p)
		if resp.StatusCode >= 300 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%d %s: not a problem document", resp.StatusCode, b)
		}
		return resp, p, time.Since(start)
	}

	t.Run("slower than the request timeout", func(t *testing.T) {
		resp, p, took := put((&slowBody{lines: lines, pause: 100 * time.Millisecond}).reader())
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %+v after %s", resp.StatusCode, p, took)
		}
		if took < 5*short {
			t.Fatalf("the upload took %s, not longer than the timeouts it must outlast", took)
		}
		if n := f.live.Current(); n == nil {
			t.Fatal("no snapshot")
		}
		etcdtest.WaitUntil(t, "the table is served", func() bool {
			lat := f.live.Current().Latency()
			return lat != nil && lat.Entries() == len(lines)
		})
	})
	t.Run("stalled past the upload timeout", func(t *testing.T) {
		stop := make(chan struct{})
		defer close(stop)
		f.unchanged(t, func() {
			resp, p, took := put((&slowBody{lines: lines[:1], stall: stop}).reader())
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(p.Detail, "api.upload_timeout") {
				t.Fatalf("%d %+v after %s, want 408", resp.StatusCode, p, took)
			}
		})
	})
}

// tableLines writes a valid latency table of distinct /32 networks as a
// chunked body, n bytes or a little more, without allocating per line.
func tableLines(w io.Writer, n int) error {
	buf := make([]byte, 0, 64<<10)
	written := 0
	for i := 0; written < n; i++ {
		buf = append(buf, "10."...)
		buf = strconv.AppendInt(buf, int64(i>>16&255), 10)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, int64(i>>8&255), 10)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, int64(i&255), 10)
		buf = append(buf, "/32,eu-west,12\n"...)
		if len(buf) > cap(buf)-32 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			written += len(buf)
			buf = buf[:0]
		}
	}
	return nil
}

// TestLatencyOversizedChunked: a chunked upload over the limit (whose
// size no header announces) is refused with 413 having cost about the
// limit in memory, not the several times more that parsing it costs,
// and leaves nothing behind.
func TestLatencyOversizedChunked(t *testing.T) {
	const limit = 8 << 20
	f := newFixture(t, fixtureOpts{maxLatency: limit})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	f.unchanged(t, func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			bw := bufio.NewWriterSize(conn, 64<<10)
			fmt.Fprintf(bw, "PUT /v1/latency HTTP/1.1\r\nHost: meridian\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n", adminSecret)
			cw := httputil.NewChunkedWriter(bw)
			if tableLines(cw, 2*limit) == nil {
				cw.Close()
				_, _ = io.WriteString(bw, "\r\n")
				bw.Flush()
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		runtime.ReadMemStats(&after)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(strconv.Itoa(limit))) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*limit {
			t.Errorf("refusing the upload allocated %d MiB, want at most twice the limit (%d MiB)", alloc>>20, 2*limit>>20)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if kept := int64(after.HeapAlloc) - int64(before.HeapAlloc); kept > limit/4 {
			t.Errorf("%d MiB still held after the refusal", kept>>20)
		}
	})
}

// TestConcurrentWeightChanges: eight writers changing a service's
// weights at once without If-Match all succeed: an unconditional
// read-modify-write that loses a race reads again and retries, pausing
// at random so that the writers do not collide in step again.
func TestConcurrentWeightChanges(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	const writers, writes = 8, 15
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				body := fmt.Sprintf(`{"weights":{"eu-west":%d}}`, 1000*(w+1)+i)
				rec := f.do(req{method: "PATCH", path: "/v1/services/api.gslb.example/weights", body: body, token: adminSecret})
				if rec.Code != http.StatusOK {
					failed.Add(1)
					t.Errorf("writer %d, write %d: %d %s", w, i, rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d writes failed", n, writers*writes)
	}
	rec := f.do(req{method: "GET", path: "/v1/audit?limit=500", token: readSecret})
	if got := strings.Count(rec.Body.String(), `"action": "set-weights"`); got != writers*writes {
		t.Errorf("%d weight changes in the audit log, want %d", got, writers*writes)
	}
}

// TestRefusedFieldNamed: a value refused by its type's own decoder (an
// address, a duration, status ranges) is named in the problem document
// as validation errors name fields.
func TestRefusedFieldNamed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	region := func(vips, check string) string {
		return `{"name":"eu-west","vips":` + vips + `,"location":{"lat":52.37,"lon":4.9},"check":{"type":"http","port":443` + check + `}}`
	}
	service := func(allDown string) string {
		return `{"name":"www.gslb.example","ttl":120,"policy":"failover","regions":[{"region":"eu-west","weight":1}],"all_down":` + allDown + `}`
	}
	cases := []struct {
		name, path, body, field string
	}{
		{"IPv4 address out of range", "/v1/regions/eu-west", region(`["300.1.1.1"]`, ""), "vips[0]"},
		{"second address", "/v1/regions/eu-west", region(`["192.0.2.1","nope"]`, ""), "vips[1]"},
		{"duration", "/v1/regions/eu-west", region(`["192.0.2.1"]`, `,"interval":"soon"`), "check.interval"},
		{"status ranges", "/v1/regions/eu-west", region(`["192.0.2.1"]`, `,"expect":"2xx"`), "check.expect"},
		{"address map key", "/v1/regions/eu-west", region(`["192.0.2.1"]`, `,"address":{"192.0.2.300":"lb1"}`), "check.address.192.0.2.300"},
		{"fallback address", "/v1/services/www.gslb.example", service(`{"mode":"fallback","addresses":["192.0.2.1","192.0.2.256"]}`), "all_down.addresses[1]"},
		{"type error", "/v1/services/www.gslb.example", strings.Replace(service(`{}`), `"ttl":120`, `"ttl":"long"`, 1), "ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.unchanged(t, func() {
				p := problem(t, f.do(req{method: "PUT", path: tc.path, body: tc.body, token: adminSecret}), http.StatusBadRequest)
				if len(p.Errors) != 1 || p.Errors[0].Field != tc.field || !strings.HasPrefix(p.Detail, tc.field+": ") {
					t.Errorf("%+v, want the field %s", p, tc.field)
				}
			})
		})
	}
}
