package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-gslb/meridian/regions"
)

// Options wire the router to the rest of the server.
type Options struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; nil disables it.
	Gatherer prometheus.Gatherer
	// Ready reports why the server cannot serve yet (nil: ready).
	Ready func() error
	// Details returns what /health/details shows: a JSON-encodable value.
	Details func() any
	// Status returns what /v1/status shows: a JSON-encodable value.
	Status func() any
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
}

type apiServer struct{ opts Options }

// NewRouter builds the HTTP handler.
func NewRouter(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(middleware.Timeout(30 * time.Second))

	r.Get("/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
	})
	r.Get("/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if o.Details != nil {
		r.Get("/health/details", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, o.Details())
		})
	}
	a := &apiServer{opts: o}
	if o.Status != nil {
		r.Get("/v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, o.Status()) })
	}
	if o.Snapshot != nil {
		r.Get("/v1/explain", a.explain)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Status: http.StatusNotFound, Detail: "no such endpoint: " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed on " + r.URL.Path})
	})
	if o.Gatherer != nil {
		r.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}))
	}
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
