package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the API's requests by method, route and status code,
// and times them by method and route. The labels are bounded by the
// route table: a route is its pattern (/v1/regions/{name}, never the
// name asked for), a path no route matches is "unmatched", a method no
// route has is "OTHER", and the codes are the few the API answers with.
// It is a prometheus.Collector.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// RequestDurationBounds are the buckets, in seconds, of the request
// durations: from status reads (well under a millisecond) to writes
// waiting for etcd up to the write timeout and latency uploads.
var RequestDurationBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// NewMetrics returns zeroed request metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern (unmatched: no route) and status code."}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meridian_http_request_duration_seconds",
			Help: "Time from a request's header read to its answer written, by method and route pattern.", Buckets: RequestDurationBounds},
			[]string{"method", "route"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}

// knownMethods are the methods the API has routes for; others are
// counted as OTHER.
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "PUT": true, "POST": true, "PATCH": true, "DELETE": true}

// observe counts every request once it is answered, with its route
// pattern as the router matched it and the status code it got, also a
// 500 from a panic, a 504 from the request timeout and a 401 or 403 from
// the guard. It is the router's outermost middleware.
func (a *apiServer) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rs := &responseState{ResponseWriter: w}
		defer func() {
			// Also while a panic passes through (an aborted answer): the
			// request happened.
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			method := r.Method
			if !knownMethods[method] {
				method = "OTHER"
			}
			code := rs.code
			if code == 0 {
				code = http.StatusOK // nothing written: net/http answers 200
			}
			m := a.opts.Metrics
			m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rs, r)
	})
}
