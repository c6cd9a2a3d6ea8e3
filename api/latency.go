package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/latency"
	"github.com/meridian-gslb/meridian/regions/store"
)

// putLatency answers PUT /v1/latency: the body is the CSV of the latency
// table ("cidr,region,rtt_ms" lines), at most MaxLatencyBytes.
//
// The body is received whole before it is parsed: parsing costs several
// times the size of the text, so a body over the limit (with chunked
// encoding its size is known only at the end) is refused having cost at
// most MaxLatencyBytes of memory, given back once refused. The upload has
// UploadTimeout to arrive, instead of the request timeout of the other
// routes; the wait for etcd that follows has the write timeout.
func (a *apiServer) putLatency(w http.ResponseWriter, r *http.Request) {
	limit := a.opts.MaxLatencyBytes
	if r.ContentLength > limit {
		writeProblem(w, Problem{Status: http.StatusRequestEntityTooLarge,
			Detail: "the latency table is larger than " + strconv.FormatInt(limit, 10) + " bytes"})
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
	// The server's read and write deadlines (http.read_timeout,
	// http.write_timeout) suit small requests; this one gets its own. A
	// writer that cannot set them (a test's recorder) has none to lift.
	rc := http.NewResponseController(w)
	arrival := time.Now().Add(a.opts.UploadTimeout)
	_ = rc.SetReadDeadline(arrival)
	_ = rc.SetWriteDeadline(arrival.Add(a.opts.UploadTimeout))
	body, got, err := receive(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeProblem(w, a.uploadProblem(r, err))
		if got >= returnAfterRefusal {
			// What was received is garbage now; without this the runtime
			// keeps the memory for minutes (an upload is an admin's rare
			// act: the full collection it costs is affordable). The
			// answer goes out first.
			_ = rc.Flush()
			debug.FreeOSMemory()
		}
		return
	}
	// Parsing and etcd follow; the response must still be read in time.
	_ = rc.SetWriteDeadline(time.Now().Add(a.opts.UploadTimeout))
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	eof := &eofDeadline{r: body, after: a.opts.WriteTimeout, cancel: cancel}
	defer eof.stop()
	n, err := a.opts.Store.ImportLatency(ctx, eof, opts...)
	if err != nil && eof.expired.Load() && errors.Is(err, context.Canceled) {
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
	var before struct {
		Entries int `json:"entries"`
	}
	_ = json.Unmarshal(ch.Before, &before) // null or a manifest
	respond(w, apitypes.ChangeResponse{Change: ch, Entries: n, EntriesBefore: before.Entries})
}

// latencyCache keeps the counts of the last table GET /v1/latency read,
// by its id: a table of 64 MiB is counted once.
type latencyCache struct {
	mu   sync.Mutex
	id   string
	last latencyCounts
}

type latencyCounts struct {
	prefixes int
	regions  map[string]int
}

// getLatency answers GET /v1/latency: the stored table's manifest, what
// it holds (networks, entries per region and whether each region exists)
// and whether this server serves it. The counts come from the table this
// server serves when it is the stored one, read from etcd otherwise.
func (a *apiServer) getLatency(w http.ResponseWriter, r *http.Request) {
	st, ctx, cancel, ok := a.storeFor(w, r)
	if !ok {
		return
	}
	defer cancel()
	info, err := st.GetLatency(ctx)
	if err != nil {
		p := a.storeProblem(r, err)
		if p.Status == http.StatusNotFound {
			p.Detail = "no latency table has been imported (PUT /v1/latency)"
		}
		writeProblem(w, p)
		return
	}
	var snap *regions.Snapshot
	if a.opts.Snapshot != nil {
		snap = a.opts.Snapshot()
	}
	out := apitypes.Latency{ID: info.ID, Revision: info.Revision, Created: info.Created, AgeSeconds: time.Since(info.Created).Seconds(),
		Entries: info.Entries, Bytes: info.Bytes, SHA256: info.SHA256}
	var served *regions.LatencyData
	if snap != nil {
		served = snap.State().Latency
	}
	if served != nil {
		out.ServedID = served.ID
		out.Served = served.ID == info.ID
	}
	counts, err := a.latency.counts(info.ID, func() (*regions.LatencyData, *latency.Table, error) {
		if out.Served {
			return served, snap.Latency(), nil
		}
		ld, err := st.LoadLatency(ctx, info)
		return ld, nil, err
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out.Prefixes = counts.prefixes
	for _, name := range slices.Sorted(maps.Keys(counts.regions)) {
		known := false
		if snap != nil {
			_, known = snap.State().Regions[name]
		}
		out.Regions = append(out.Regions, apitypes.LatencyRegion{Name: name, Entries: counts.regions[name], Known: known})
	}
	writeJSON(w, http.StatusOK, out)
}

// counts returns the counts of table id, from load when not cached.
// load returns the table's data and, when it has one, its compiled
// table (nil: compiled here).
func (c *latencyCache) counts(id string, load func() (*regions.LatencyData, *latency.Table, error)) (latencyCounts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == id {
		return c.last, nil
	}
	ld, t, err := load()
	if err != nil {
		return latencyCounts{}, err
	}
	if t == nil || t.ID() != ld.ID {
		if t, err = latency.Compile(ld.ID, ld.CSV); err != nil {
			return latencyCounts{}, fmt.Errorf("latency table %s: %w", ld.ID, err)
		}
	}
	c.id, c.last = id, latencyCounts{prefixes: t.Len(), regions: latency.CountRegions(ld.CSV)}
	return c.last, nil
}

// uploadProblem says why an upload could not be received.
func (a *apiServer) uploadProblem(r *http.Request, err error) Problem {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the latency table is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Problem{Status: http.StatusRequestTimeout, Title: "upload too slow",
			Detail: "the latency table did not arrive within " + a.opts.UploadTimeout.String() + " (api.upload_timeout)"}
	case r.Context().Err() != nil:
		return Problem{Status: 499, Title: "client closed request", Detail: err.Error()}
	}
	return Problem{Status: http.StatusBadRequest, Title: "invalid request body", Detail: "cannot read the body: " + err.Error()}
}

// uploadBlock bounds the blocks a body is received in: blocks, not one
// growing buffer, so that receiving never copies what it holds and
// parsing can let go of each block once read.
const (
	firstUploadBlock = 32 << 10
	maxUploadBlock   = 1 << 20
)

// returnAfterRefusal: a refused upload that had received this much gives
// the memory back to the system at once.
const returnAfterRefusal = 8 << 20

// upload is a body received whole, read back once.
type upload struct{ blocks [][]byte }

// receive reads r to its end; got is how much it read. On an error
// nothing is kept.
func receive(r io.Reader) (u *upload, got int64, err error) {
	u = &upload{}
	size := firstUploadBlock
	for {
		b := make([]byte, size)
		n, err := io.ReadFull(r, b)
		got += int64(n)
		if n > 0 {
			u.blocks = append(u.blocks, b[:n])
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return u, got, nil
		case err != nil:
			return nil, got, err
		}
		size = min(2*size, maxUploadBlock)
	}
}

// Read hands out the blocks in order, dropping each once read.
func (u *upload) Read(p []byte) (int, error) {
	for len(u.blocks) > 0 && len(u.blocks[0]) == 0 {
		u.blocks[0] = nil
		u.blocks = u.blocks[1:]
	}
	if len(u.blocks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, u.blocks[0])
	u.blocks[0] = u.blocks[0][n:]
	return n, nil
}

// eofDeadline reads a request body and, once it is read to the end,
// cancels the request's context after a delay: what follows the parse
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
