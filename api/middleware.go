package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// responseState passes a response through and remembers whether its
// status line has gone out, which decides what the recovery of a panic
// and the request timeout can still answer.
type responseState struct {
	http.ResponseWriter
	wrote bool
}

func (w *responseState) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseState) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the latency
// upload sets its own deadlines).
func (w *responseState) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic of a handler into an error in the server's
// log, with the stack (see panicLog for how often), and a problem
// document with status 500. When the response had already begun, the
// connection is aborted instead, so that the client does not take a cut
// response for a whole one.
func (a *apiServer) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := &responseState{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // the server's own way to abort: pass it on
				panic(v)
			}
			a.panics.log(a.opts.Logger, r, v)
			if rs.wrote {
				panic(http.ErrAbortHandler)
			}
			writeProblem(rs, Problem{Status: http.StatusInternalServerError,
				Detail: "the server failed on this request; its log has the details"})
		}()
		next.ServeHTTP(rs, r)
	})
}

// withTimeout bounds a request's handler by the request timeout: its
// context ends then. A handler that returns without answering after that
// gets a 504 problem document; one that answered (a 503 from the wait for
// etcd, say) keeps its answer.
func (a *apiServer) withTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.RequestTimeout)
		defer cancel()
		rs, ok := w.(*responseState)
		if !ok {
			rs = &responseState{ResponseWriter: w}
		}
		next.ServeHTTP(rs, r.WithContext(ctx))
		if !rs.wrote && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			writeProblem(rs, Problem{Status: http.StatusGatewayTimeout, Title: "request timeout",
				Detail: "the request took longer than " + a.opts.RequestTimeout.String()})
		}
	})
}

// panicLog logs recovered panics: the first at a site (the function and
// line that panicked) with its stack, then at most one per site and
// panicEvery, saying how many were not logged meanwhile. A handler that
// panics on every request of a flood fills the log with one stack a
// minute, not one per request.
type panicLog struct {
	mu    sync.Mutex
	sites map[string]*panicSite
}

type panicSite struct {
	logged     time.Time
	suppressed int
}

const (
	panicEvery    = time.Minute
	maxPanicSites = 1024 // beyond, the table starts again: a bound, not a policy
)

func (p *panicLog) log(logger *slog.Logger, r *http.Request, v any) {
	site := panicSiteOf()
	now := time.Now()
	p.mu.Lock()
	if p.sites == nil || len(p.sites) >= maxPanicSites {
		p.sites = map[string]*panicSite{}
	}
	s := p.sites[site]
	if s == nil {
		s = &panicSite{}
		p.sites[site] = s
	}
	if !s.logged.IsZero() && now.Sub(s.logged) < panicEvery {
		s.suppressed++
		p.mu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.logged, s.suppressed = now, 0
	p.mu.Unlock()
	logger.Error("panic in an HTTP handler; answered 500", "method", r.Method, "path", r.URL.Path,
		"panic", v, "site", site, "not_logged_before", suppressed, "stack", string(debug.Stack()))
}

// panicSiteOf names the frame that panicked, seen from a deferred
// function during the panic: the first frame after the runtime's own
// (runtime.gopanic, and runtime.sigpanic for a fault).
func panicSiteOf() string {
	var pcs [32]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	inRuntime := false
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "runtime."):
			inRuntime = true
		case inRuntime:
			return f.Function + ":" + strconv.Itoa(f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}
