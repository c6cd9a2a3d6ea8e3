package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// maxUploadTime bounds how long a latency upload may take to arrive.
const maxUploadTime = 10 * time.Minute

// putLatency answers PUT /v1/latency: the body is the CSV of the latency
// table ("cidr,region,rtt_ms" lines), at most MaxLatencyBytes, parsed as
// it arrives. The wait for etcd is bounded by the write timeout from the
// end of the upload.
func (a *apiServer) putLatency(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > a.opts.MaxLatencyBytes {
		writeProblem(w, Problem{Status: http.StatusRequestEntityTooLarge,
			Detail: "the latency table is larger than " + strconv.FormatInt(a.opts.MaxLatencyBytes, 10) + " bytes"})
		return
	}
	cond, mustExist, p := precondition(r)
	switch {
	case p != nil:
		writeProblem(w, *p)
		return
	case cond != store.Always || mustExist:
		writeProblem(w, badField("If-Match", "the latency table takes no precondition: an import replaces it whole"))
		return
	}
	var ch store.Change
	opts, _, p := writeOptions(r, &ch)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	if a.opts.Store == nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "this server has no etcd store", RetryAfter: retryAfter})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), maxUploadTime)
	defer cancel()
	body := &eofDeadline{r: http.MaxBytesReader(w, r.Body, a.opts.MaxLatencyBytes), after: a.opts.WriteTimeout, cancel: cancel}
	defer body.stop()
	n, err := a.opts.Store.ImportLatency(ctx, body, opts...)
	if err != nil && body.expired.Load() && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w after the upload: %w", context.DeadlineExceeded, err)
	}
	if err != nil {
		p := a.storeProblem(r, err)
		if p.Status == http.StatusBadRequest {
			// The table's own errors name their lines.
			p = badField("body", "%s", strings.TrimPrefix(err.Error(), regions.ErrInvalid.Error()+": "))
		}
		writeProblem(w, p)
		return
	}
	respond(w, apitypes.ChangeResponse{Change: ch, Entries: n})
}

// eofDeadline reads a request body and, once it is read to the end,
// cancels the request's context after a delay: what follows the upload
// (the writes to etcd) gets the write timeout, however long the upload
// took.
type eofDeadline struct {
	r      io.Reader
	after  time.Duration
	cancel context.CancelFunc
	once   sync.Once
	timer  *time.Timer
	mu     sync.Mutex
	// expired: the write timeout passed and the context was cancelled.
	expired atomic.Bool
}

func (e *eofDeadline) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.once.Do(func() {
			e.mu.Lock()
			e.timer = time.AfterFunc(e.after, func() {
				e.expired.Store(true)
				e.cancel()
			})
			e.mu.Unlock()
		})
	}
	return n, err
}

func (e *eofDeadline) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
}
