package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/panics"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// Store is what the API reads and writes: *store.Store.
type Store interface {
	GetRegion(ctx context.Context, name string) (*regions.Region, int64, error)
	ListRegions(ctx context.Context) ([]*regions.Region, int64, error)
	PutRegion(ctx context.Context, r *regions.Region, cond store.Cond, opts ...store.WriteOption) (int64, error)
	DeleteRegion(ctx context.Context, name string, cond store.Cond, opts ...store.WriteOption) error
	SetDrained(ctx context.Context, name string, drained bool, cond store.Cond, opts ...store.WriteOption) (int64, error)
	GetService(ctx context.Context, name string) (*regions.Service, int64, error)
	ListServices(ctx context.Context) ([]*regions.Service, int64, error)
	PutService(ctx context.Context, svc *regions.Service, cond store.Cond, opts ...store.WriteOption) (int64, error)
	PutServices(ctx context.Context, svcs []*regions.Service, opts ...store.WriteOption) ([]store.Change, error)
	DeleteService(ctx context.Context, name string, cond store.Cond, opts ...store.WriteOption) error
	SetWeights(ctx context.Context, service string, weights map[string]uint32, cond store.Cond, opts ...store.WriteOption) (int64, error)
	ReplaceWeights(ctx context.Context, service string, weights map[string]uint32, cond store.Cond, opts ...store.WriteOption) (int64, error)
	ImportLatency(ctx context.Context, r io.Reader, opts ...store.WriteOption) (int, error)
	GetLatency(ctx context.Context) (*store.LatencyInfo, error)
	LoadLatency(ctx context.Context, info *store.LatencyInfo) (*regions.LatencyData, error)
	ListAudit(ctx context.Context, after string, limit int) ([]store.AuditRecord, string, error)
	GetShift(ctx context.Context, id string) (*regions.Shift, int64, error)
	ListShifts(ctx context.Context) ([]*regions.Shift, int64, error)
	CreateShift(ctx context.Context, sh *regions.Shift, opts ...store.WriteOption) (int64, error)
	ExtendShift(ctx context.Context, id string, expires time.Time, reason *string, cond store.Cond, opts ...store.WriteOption) (int64, error)
	CancelShift(ctx context.Context, id string, cond store.Cond, opts ...store.WriteOption) (int64, error)
}

var _ Store = (*store.Store)(nil)

// Defaults of the Options limits.
const (
	DefaultWriteTimeout    = 5 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
	DefaultUploadTimeout   = 10 * time.Minute
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxLatencyBytes = 64 << 20
)

// Options wire the router to the rest of the server.
type Options struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Ready reports why the server cannot serve yet (nil: ready).
	Ready func() error
	// Details returns what /health/details shows besides readiness and
	// the status; nil shows only those.
	Details func() Details
	// Status returns what /v1/status shows besides the snapshot; nil
	// shows only the snapshot.
	Status func() ServerStatus
	// Snapshot returns the regions snapshot being served (nil before one).
	Snapshot func() *regions.Snapshot
	// Locator places clients for /v1/explain; nil: no GeoIP.
	Locator regions.Locator
	// ECS must be the DNS handler's: /v1/explain derives the client from
	// the resolver and the ECS subnet with it, as DNS does.
	ECS regions.ECSConfig
	// Follow finds the service a DNS query for a name (presentation form)
	// is answered with: the name itself, or the end of its CNAME chain. It
	// returns the snapshot it used (nil before the first), the service (nil:
	// none answers the name), the CNAME records passed on the way
	// (presentation form), and an error for a name that cannot be
	// followed. nil: only service names are explained, from Snapshot.
	Follow func(name string) (*regions.Snapshot, *regions.ServiceView, []string, error)
	// Store holds the regions, services, latency table and audit log;
	// nil: those routes answer 503.
	Store Store
	// Auth says who may read and write; nil: reads are open and writes
	// refused.
	Auth *Auth
	// WriteTimeout bounds a request's wait for etcd, after which it gets
	// 503 with Retry-After; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// RequestTimeout bounds a request's handler (every route but the
	// latency upload); 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// UploadTimeout bounds the arrival of a latency table upload, which
	// then has WriteTimeout for etcd; 0 means DefaultUploadTimeout.
	UploadTimeout time.Duration
	// MaxBodyBytes bounds a JSON request body; 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxLatencyBytes bounds the latency table upload; 0 means
	// DefaultMaxLatencyBytes.
	MaxLatencyBytes int64
	// AcceptEmpty serves the empty state from etcd that this server
	// refuses (store.Live.AcceptEmpty); nil: the route answers 503.
	AcceptEmpty func() error
	// Traffic is the server's view of where answers go, streamed to the
	// dashboard by GET /v1/events; nil: the stream carries the status only.
	Traffic *Traffic
	// MaxEventStreams bounds the event streams open at once; 0 means
	// DefaultMaxEventStreams.
	MaxEventStreams int
	// Closing ends every event stream when it is closed: a graceful
	// shutdown waits for the requests being served, and a stream would
	// never end by itself (register its closing with
	// http.Server.RegisterOnShutdown). nil: streams end with their
	// clients only.
	Closing <-chan struct{}
	// Metrics counts the requests (register it with the registry
	// Gatherer reads); nil: counted in a Metrics of its own, shown
	// nowhere.
	Metrics *Metrics
}

type apiServer struct {
	opts Options
	// latency caches what GET /v1/latency counts in the last table.
	latency latencyCache
	panics  panics.Log
	// streams holds a place for each event stream open.
	streams chan struct{}
}

// route is one endpoint: the router and the OpenAPI document are both
// made from the table of routes, so that neither can lack one.
type route struct {
	method, pattern string
	access          access
	handler         http.HandlerFunc
	doc             opDoc
}

// ownDeadline lists the routes that bound their own time instead of
// taking the request timeout: an upload may take far longer to arrive
// than any other request (putLatency).
var ownDeadline = map[string]bool{"PUT /v1/latency": true, "GET /v1/events": true, "HEAD /v1/events": true}

// NewRouter builds the HTTP handler.
func NewRouter(o Options) http.Handler {
	a := newAPIServer(o)
	r := chi.NewRouter()
	r.Use(a.observe, a.recoverPanics)
	for _, rt := range a.routes() {
		var h http.Handler = a.guard(rt.access, rt.handler)
		if !ownDeadline[rt.method+" "+rt.pattern] {
			h = a.withTimeout(h)
		}
		r.Method(rt.method, rt.pattern, h)
	}
	a.mountUI(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Status: http.StatusNotFound, Detail: "no such endpoint: " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed on " + r.URL.Path})
	})
	return r
}

// newAPIServer fills in the defaults of o.
func newAPIServer(o Options) *apiServer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = DefaultUploadTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxLatencyBytes <= 0 {
		o.MaxLatencyBytes = DefaultMaxLatencyBytes
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.MaxEventStreams <= 0 {
		o.MaxEventStreams = DefaultMaxEventStreams
	}
	return &apiServer{opts: o, panics: panics.Log{Logger: o.Logger}, streams: make(chan struct{}, o.MaxEventStreams)}
}

// routes is the route table: every GET route is also a HEAD route,
// answered by the same handler without the body (net/http drops it).
func (a *apiServer) routes() []route {
	rts := a.getAndOthers()
	for _, rt := range rts {
		if rt.method == http.MethodGet {
			head := rt
			head.method = http.MethodHead
			head.doc.head = true
			rts = append(rts, head)
		}
	}
	return rts
}

func (a *apiServer) getAndOthers() []route {
	metrics := promhttp.HandlerFor(a.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.opts.Logger.Handler(), slog.LevelWarn)})
	return []route{
		{"GET", "/health/live", accessOpen, a.live, docLive},
		{"GET", "/health/ready", accessOpen, a.ready, docReady},
		{"GET", "/health/details", accessRead, a.details, docDetails},
		{"GET", "/metrics", accessOpen, metrics.ServeHTTP, docMetrics},
		{"GET", "/v1/openapi.json", accessOpen, a.openAPI, docOpenAPI},
		{"GET", "/v1/status", accessRead, a.status, docStatus},
		{"GET", "/v1/explain", accessRead, a.explain, docExplain},
		{"GET", "/v1/regions", accessRead, a.listRegions, docListRegions},
		{"GET", "/v1/regions/{name}", accessRead, a.getRegion, docGetRegion},
		{"PUT", "/v1/regions/{name}", accessWrite, a.putRegion, docPutRegion},
		{"DELETE", "/v1/regions/{name}", accessWrite, a.deleteRegion, docDeleteRegion},
		{"POST", "/v1/regions/{name}/drain", accessWrite, a.drain(true), docDrain},
		{"POST", "/v1/regions/{name}/undrain", accessWrite, a.drain(false), docUndrain},
		{"GET", "/v1/services", accessRead, a.listServices, docListServices},
		{"POST", "/v1/services", accessWrite, a.putServices, docPutServices},
		{"GET", "/v1/services/{name}", accessRead, a.getService, docGetService},
		{"PUT", "/v1/services/{name}", accessWrite, a.putService, docPutService},
		{"DELETE", "/v1/services/{name}", accessWrite, a.deleteService, docDeleteService},
		{"GET", "/v1/services/{name}/weights", accessRead, a.getWeights, docGetWeights},
		{"PUT", "/v1/services/{name}/weights", accessWrite, a.setWeights(true), docPutWeights},
		{"PATCH", "/v1/services/{name}/weights", accessWrite, a.setWeights(false), docPatchWeights},
		{"GET", "/v1/latency", accessRead, a.getLatency, docGetLatency},
		{"PUT", "/v1/latency", accessWrite, a.putLatency, docPutLatency},
		{"GET", "/v1/shifts", accessRead, a.listShifts, docListShifts},
		{"POST", "/v1/shifts", accessWrite, a.createShift, docCreateShift},
		{"GET", "/v1/shifts/{id}", accessRead, a.getShift, docGetShift},
		{"PATCH", "/v1/shifts/{id}", accessWrite, a.extendShift, docExtendShift},
		{"DELETE", "/v1/shifts/{id}", accessWrite, a.cancelShift, docCancelShift},
		{"GET", "/v1/audit", accessRead, a.audit, docAudit},
		{"GET", "/v1/events", accessRead, a.events, docEvents},
		{"POST", "/v1/state/accept-empty", accessWrite, a.acceptEmpty, docAcceptEmpty},
	}
}

func (a *apiServer) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, apitypes.Health{Status: "live"})
}

func (a *apiServer) ready(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apitypes.Health{Status: "not ready", Reason: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, apitypes.Health{Status: "ready"})
}

// acceptEmpty is the operator's confirmation that etcd is meant to hold no
// regions and no services: this server then serves the empty state it
// refuses (docs/architecture.md, The state file). With ?dry_run=true it
// only says whether there is one to accept.
func (a *apiServer) acceptEmpty(w http.ResponseWriter, r *http.Request) {
	var ch store.Change
	_, dry, p := writeOptions(r, &ch)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	if a.opts.AcceptEmpty == nil || a.opts.Status == nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "this server does not follow etcd", RetryAfter: retryAfter})
		return
	}
	refused := a.opts.Status().EmptyRefused
	ch = store.Change{Kind: "state", Name: "empty", Action: "accept-empty", Before: json.RawMessage("null"), After: json.RawMessage("null"),
		DryRun: dry, Changed: refused != nil}
	if refused != nil {
		ch.Revision = refused.Revision
	}
	if refused == nil {
		writeProblem(w, Problem{Status: http.StatusConflict, Title: "nothing to accept", Detail: store.ErrNothingRefused.Error()})
		return
	}
	if !dry {
		if err := a.opts.AcceptEmpty(); err != nil {
			if errors.Is(err, store.ErrNothingRefused) {
				writeProblem(w, Problem{Status: http.StatusConflict, Title: "nothing to accept", Detail: err.Error()})
				return
			}
			writeProblem(w, a.internalProblem(r, err))
			return
		}
	}
	writeJSON(w, http.StatusOK, apitypes.ChangeResponse{Change: ch})
}

// storeFor returns the store and a context bounded by the write timeout,
// or answers 503 when the server has no store.
func (a *apiServer) storeFor(w http.ResponseWriter, r *http.Request) (Store, context.Context, context.CancelFunc, bool) {
	if a.opts.Store == nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "this server has no etcd store", RetryAfter: retryAfter})
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.WriteTimeout)
	return a.opts.Store, ctx, cancel, true
}

// etag is an entity tag: the mod revision, quoted.
func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// precondition reads If-Match and If-None-Match into the store's
// condition. If-Match takes one entity tag (a mod revision) or "*"
// (exists: mustExist); If-None-Match only "*" (create only).
func precondition(r *http.Request) (cond store.Cond, mustExist bool, p *Problem) {
	im, inm := strings.TrimSpace(r.Header.Get("If-Match")), strings.TrimSpace(r.Header.Get("If-None-Match"))
	bad := func(field, format string, args ...any) (store.Cond, bool, *Problem) {
		pr := badField(field, format, args...)
		return store.Cond{}, false, &pr
	}
	switch {
	case im != "" && inm != "":
		return bad("If-Match", "give If-Match or If-None-Match, not both")
	case inm == "*":
		return store.IfAbsent(), false, nil
	case inm != "":
		return bad("If-None-Match", "%q: only * (create only) is supported on writes", inm)
	case im == "":
		return store.Always, false, nil
	case im == "*":
		return store.Always, true, nil
	case strings.HasPrefix(im, "W/"):
		// If-Match compares strongly: a weak tag never matches.
		pr := Problem{Status: http.StatusPreconditionFailed, Detail: "If-Match: a weak entity tag never matches"}
		return store.Cond{}, false, &pr
	}
	rev, err := strconv.ParseInt(strings.Trim(im, `"`), 10, 64)
	if err != nil || rev <= 0 || strings.Contains(im, ",") {
		return bad("If-Match", "%q: want one entity tag as sent in ETag, like \"42\"", im)
	}
	return store.IfRevision(rev), false, nil
}

// writeOptions reads ?dry_run and ?force and names the caller for the
// audit log.
func writeOptions(r *http.Request, report *store.Change) ([]store.WriteOption, bool, *Problem) {
	opts := []store.WriteOption{store.By(caller(r.Context())), store.Report(report)}
	dry, p := boolParam(r, "dry_run")
	if p != nil {
		return nil, false, p
	}
	force, p := boolParam(r, "force")
	if p != nil {
		return nil, false, p
	}
	if dry {
		opts = append(opts, store.DryRun())
	}
	if force {
		opts = append(opts, store.Force())
	}
	return opts, dry, nil
}

// boolParam reads a true/false query parameter; absent is false.
func boolParam(r *http.Request, name string) (bool, *Problem) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p := badField(name, "%q: want true or false", v)
		return false, &p
	}
	return b, nil
}
