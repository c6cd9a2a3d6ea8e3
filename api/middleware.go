package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// responseState passes a response through and remembers whether its
// status line has gone out, which decides what the recovery of a panic
// and the request timeout can still answer.
type responseState struct {
	http.ResponseWriter
	wrote bool
	code  int // the status sent; 0 before
}

func (w *responseState) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		if !w.wrote {
			w.code = code
		}
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseState) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code = http.StatusOK
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the latency
// upload sets its own deadlines).
func (w *responseState) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic of a handler into an error in the server's
// log (the stack once per site, then counts: panics.Log), and a problem
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
			outcome := "answered 500"
			if rs.wrote {
				outcome = "the connection cut"
			}
			a.panics.Record(v, "panic in an HTTP handler; "+outcome, "panics in HTTP handlers go on; "+outcome,
				slog.String("method", r.Method), slog.String("path", r.URL.Path))
			if rs.wrote {
				panic(http.ErrAbortHandler)
			}
			writeProblem(rs, Problem{Status: http.StatusInternalServerError,
				Detail: internalDetail})
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
