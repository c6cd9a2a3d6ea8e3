package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-gslb/meridian/api"
	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/health"
	"github.com/meridian-gslb/meridian/regions/store"
)

// The prober's HTTP listener (listen.http): /metrics, /health/live and
// /health/ready, each answering GET and HEAD. Off unless configured:
// several probers may share a host (make run starts one per region,
// each with its own port), so no port is a safe default, and a
// listener nobody asked for is a port open to the host's network.

// Time limits of the prober's HTTP server: its pages are small and its
// clients (Prometheus, a health check) are quick.
const (
	proberHTTPReadHeaderTimeout = 5 * time.Second
	proberHTTPWriteTimeout      = 30 * time.Second
	proberHTTPIdleTimeout       = 60 * time.Second
)

// proberHTTP serves a prober's metrics and health on ln until ctx ends.
type proberHTTP struct {
	srv *http.Server
	ln  net.Listener
}

// newProberHTTP builds the prober's HTTP server on ln; reg holds the
// prober's metrics.
func newProberHTTP(ln net.Listener, p *health.Prober, reg *prometheus.Registry, log *slog.Logger) *proberHTTP {
	mux := http.NewServeMux()
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	// A GET pattern answers HEAD too.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errLog}))
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, apitypes.Health{Status: "live"})
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := p.Ready(); err != nil {
			writeHealth(w, http.StatusServiceUnavailable, apitypes.Health{Status: "not ready", Reason: err.Error()})
			return
		}
		writeHealth(w, http.StatusOK, apitypes.Health{Status: "ready"})
	})
	return &proberHTTP{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: proberHTTPReadHeaderTimeout,
		WriteTimeout:      proberHTTPWriteTimeout,
		IdleTimeout:       proberHTTPIdleTimeout,
		ErrorLog:          errLog,
	}}
}

// writeHealth answers as the server's /health routes do.
func writeHealth(w http.ResponseWriter, code int, h apitypes.Health) {
	b, _ := json.Marshal(h) // a struct of strings
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// run serves until ctx ends, then shuts down within a few seconds.
func (h *proberHTTP) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(h.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// proberRegistry holds the prober's metrics: its own, the certificate
// expiries of its etcd TLS configuration, the build, Go and process.
func proberRegistry(p *health.Prober, etcd store.EtcdConfig) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfoCollector(),
		// Read at every scrape: a renewed file shows at once (the
		// prober uses it from its next connection).
		api.CertificateCollector(func() []apitypes.CertificateInfo {
			return api.CertificateInfos(map[string]string{"etcd_ca": etcd.CAFile, "etcd_client": etcd.CertFile})
		}, nil),
		proberCollector{p},
	)
	return reg
}

// proberCollector exposes a prober's state from health.Prober.Status.
type proberCollector struct{ p *health.Prober }

var (
	descPrbChecks     = prometheus.NewDesc("meridian_prober_checks_total", "Check results recorded, by target region, VIP and result (success, failure; passive health's failures included).", []string{"region", "vip", "result"}, nil)
	descPrbCheckTime  = prometheus.NewDesc("meridian_prober_check_duration_seconds", "Time a check took, from its connection's start to its verdict, by result (success, failure).", []string{"result"}, nil)
	descPrbState      = prometheus.NewDesc("meridian_prober_vip_state", "This prober's state of a VIP: 1 for the current one (up, down, unknown: not decided yet), 0 for the others.", []string{"region", "vip", "state"}, nil)
	descPrbRTT        = prometheus.NewDesc("meridian_prober_rtt_seconds", "Moving average of a VIP's check RTT (successful checks; absent before one).", []string{"region", "vip"}, nil)
	descPrbLoad       = prometheus.NewDesc("meridian_prober_load", "A VIP's load as last read (the check's JSON answer or the load balancer's statistics); absent without a reading.", []string{"region", "vip"}, nil)
	descPrbCapacity   = prometheus.NewDesc("meridian_prober_capacity", "A VIP's capacity as last read or configured; absent without one.", []string{"region", "vip"}, nil)
	descPrbLoadBad    = prometheus.NewDesc("meridian_prober_load_unreadable", "1 while a VIP's load source gives no reading (the reason is in the report's load_error), 0 while it does; for VIPs with a load source.", []string{"region", "vip"}, nil)
	descPrbTrusted    = prometheus.NewDesc("meridian_prober_self_trusted", "1 while the prober trusts its own checks (its self-check passes), 0 while its reports are marked untrusted.", nil, nil)
	descPrbCanary     = prometheus.NewDesc("meridian_prober_canary_up", "1 while the canary answers, 0 while it does not; absent without a canary.", nil, nil)
	descPrbLease      = prometheus.NewDesc("meridian_prober_lease_held", "1 while the prober holds its etcd lease and registration (its votes can count), 0 otherwise.", nil, nil)
	descPrbRegs       = prometheus.NewDesc("meridian_prober_registrations_total", "Leases granted and registered: 1 after the start, one more after each lease lost.", nil, nil)
	descPrbWrites     = prometheus.NewDesc("meridian_prober_report_writes_total", "Health reports written or deleted in etcd.", nil, nil)
	descPrbWriteErrs  = prometheus.NewDesc("meridian_prober_report_write_errors_total", "Failed writes of health reports (each retried).", nil, nil)
	descPrbEtcd       = prometheus.NewDesc("meridian_prober_etcd_connected", "1 while the prober's watcher of the regions is in sync with etcd.", nil, nil)
	descPrbRegions    = prometheus.NewDesc("meridian_prober_regions", "Regions the prober checks.", nil, nil)
	descPrbVIPs       = prometheus.NewDesc("meridian_prober_vips", "VIPs the prober checks.", nil, nil)
	proberVIPStates   = []string{"up", "down", "unknown"}
	proberCheckResult = [2]string{"failure", "success"}
)

func (c proberCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPrbChecks, descPrbCheckTime, descPrbState, descPrbRTT, descPrbLoad, descPrbCapacity, descPrbLoadBad,
		descPrbTrusted, descPrbCanary, descPrbLease, descPrbRegs, descPrbWrites, descPrbWriteErrs, descPrbEtcd, descPrbRegions, descPrbVIPs} {
		ch <- d
	}
}

func (c proberCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, t := range st.Targets {
		vip := vipLabel(t.VIP)
		counter(descPrbChecks, t.Checks-t.Failed, t.Region, vip, proberCheckResult[1])
		counter(descPrbChecks, t.Failed, t.Region, vip, proberCheckResult[0])
		state := "unknown"
		switch {
		case t.Known && t.Up:
			state = "up"
		case t.Known:
			state = "down"
		}
		for _, s := range proberVIPStates {
			gauge(descPrbState, bool01(s == state), t.Region, vip, s)
		}
		if t.RTT > 0 {
			gauge(descPrbRTT, t.RTT.Seconds(), t.Region, vip)
		}
		if t.Load != nil {
			gauge(descPrbLoad, *t.Load, t.Region, vip)
		}
		if t.Capacity != nil {
			gauge(descPrbCapacity, *t.Capacity, t.Region, vip)
		}
		if t.LoadSource != "" || t.LoadError != "" {
			gauge(descPrbLoadBad, bool01(t.LoadError != ""), t.Region, vip)
		}
	}
	ch <- st.CheckTimes.Failed.Metric(descPrbCheckTime, proberCheckResult[0])
	ch <- st.CheckTimes.Passed.Metric(descPrbCheckTime, proberCheckResult[1])
	gauge(descPrbTrusted, bool01(st.Trusted))
	if st.Canary {
		gauge(descPrbCanary, bool01(st.CanaryUp))
	}
	gauge(descPrbLease, bool01(st.Lease != 0))
	counter(descPrbRegs, st.Stats.Registrations)
	counter(descPrbWrites, st.Stats.Writes)
	counter(descPrbWriteErrs, st.Stats.WriteErrors)
	gauge(descPrbEtcd, bool01(st.Watch.Connected))
	gauge(descPrbRegions, float64(st.Regions))
	gauge(descPrbVIPs, float64(len(st.Targets)))
}
