// Command demo-lb stands in for the load balancers of the example regions
// so that `make run` has health endpoints on one machine: for every VIP
// whose check maps it to a loopback address (check.address in
// examples/state.yaml) it answers the region's health check there, until
// it is told to fail:
//
//	curl -X POST '127.0.0.1:8479/fail?region=eu-west'     # every VIP of the region
//	curl -X POST '127.0.0.1:8479/fail?vip=192.0.2.10'     # one VIP
//	curl -X POST '127.0.0.1:8479/restore?region=eu-west'
//	curl 127.0.0.1:8479/                                  # every endpoint and its state
//
// A failed http(s) endpoint answers 503; a failed tcp one stops listening.
// It is a demo, not part of Meridian: scripts/demo.sh starts it.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// endpoint is one VIP's stand-in.
type endpoint struct {
	Region string     `json:"region"`
	VIP    netip.Addr `json:"vip"`
	Addr   string     `json:"addr"`
	Type   string     `json:"type"`
	Failed bool       `json:"failed"`

	mu  sync.Mutex
	ln  net.Listener // tcp: nil while failed
	srv *http.Server
}

func main() {
	statePath := flag.String("state", "examples/state.yaml", "desired-state file whose regions' checks to answer")
	control := flag.String("control", "127.0.0.1:8479", "address of the control API (fail, restore)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *statePath, *control, log, nil); err != nil {
		log.Error("demo-lb", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready (may be nil) is called once every
// endpoint and the control API listen.
func run(ctx context.Context, statePath, control string, log *slog.Logger, ready func()) error {
	d, err := regions.LoadDesired(statePath)
	if err != nil {
		return err
	}
	var cert tls.Certificate
	var eps []*endpoint
	for _, r := range d.Regions {
		for _, vip := range r.VIPs {
			if _, ok := r.Check.Address[vip]; !ok {
				log.Warn("no loopback address for this VIP in check.address; not served", "region", r.Name, "vip", vip)
				continue
			}
			eps = append(eps, &endpoint{Region: r.Name, VIP: vip, Addr: r.Check.Target(vip), Type: r.Check.Type})
		}
		if r.Check.Type == "https" && cert.Certificate == nil {
			if cert, err = selfSigned(); err != nil {
				return err
			}
		}
	}
	if len(eps) == 0 {
		return fmt.Errorf("%s: no VIP has a check.address to answer at", statePath)
	}
	defer func() {
		for _, ep := range eps {
			ep.stop()
		}
	}()
	for _, ep := range eps {
		if err := ep.start(cert); err != nil {
			return fmt.Errorf("%s %s: %w", ep.Region, ep.VIP, err)
		}
		log.Info("answering health checks", "region", ep.Region, "vip", ep.VIP, "at", ep.Addr, "type", ep.Type)
	}
	ctl := &http.Server{Addr: control, Handler: controlHandler(eps, log), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", control)
	if err != nil {
		return err
	}
	log.Info("control API", "at", control)
	go func() {
		<-ctx.Done()
		ctl.Close()
	}()
	if ready != nil {
		ready()
	}
	if err := ctl.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (ep *endpoint) start(cert tls.Certificate) error {
	ln, err := net.Listen("tcp", ep.Addr)
	if err != nil {
		return err
	}
	if ep.Type == "tcp" {
		ep.ln = ln
		go acceptAndClose(ln)
		return nil
	}
	ep.srv = &http.Server{Handler: http.HandlerFunc(ep.health), ReadHeaderTimeout: 5 * time.Second}
	if ep.Type == "https" {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	go func() { _ = ep.srv.Serve(ln) }()
	return nil
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func (ep *endpoint) stop() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.srv != nil {
		ep.srv.Close()
	}
	if ep.ln != nil {
		ep.ln.Close()
	}
}

// health answers a check: 200 with the endpoint's load report (the format
// of docs/health.md), or 503 while failed.
func (ep *endpoint) health(w http.ResponseWriter, _ *http.Request) {
	ep.mu.Lock()
	failed := ep.Failed
	ep.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"down","region":%q}`+"\n", ep.Region)
		return
	}
	fmt.Fprintf(w, `{"status":"up","region":%q,"load":120,"capacity":1000}`+"\n", ep.Region)
}

// setFailed fails or restores the endpoint; a tcp endpoint stops or starts
// listening.
func (ep *endpoint) setFailed(failed bool) error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.Failed = failed
	if ep.Type != "tcp" {
		return nil
	}
	switch {
	case failed && ep.ln != nil:
		ep.ln.Close()
		ep.ln = nil
	case !failed && ep.ln == nil:
		ln, err := net.Listen("tcp", ep.Addr)
		if err != nil {
			return err
		}
		ep.ln = ln
		go acceptAndClose(ln)
	}
	return nil
}

func controlHandler(eps []*endpoint, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	list := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		out := make([]map[string]any, 0, len(eps))
		for _, ep := range eps {
			ep.mu.Lock()
			out = append(out, map[string]any{"region": ep.Region, "vip": ep.VIP, "addr": ep.Addr, "type": ep.Type, "failed": ep.Failed})
			ep.mu.Unlock()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { list(w) })
	set := func(failed bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			region, vip := r.URL.Query().Get("region"), r.URL.Query().Get("vip")
			if region == "" && vip == "" {
				http.Error(w, "name a region (?region=eu-west) or a VIP (?vip=192.0.2.10)\n", http.StatusBadRequest)
				return
			}
			matched := slices.DeleteFunc(slices.Clone(eps), func(ep *endpoint) bool {
				return (region != "" && ep.Region != region) || (vip != "" && ep.VIP.String() != vip)
			})
			if len(matched) == 0 {
				http.Error(w, "no such region or VIP\n", http.StatusNotFound)
				return
			}
			for _, ep := range matched {
				if err := ep.setFailed(failed); err != nil {
					http.Error(w, err.Error()+"\n", http.StatusInternalServerError)
					return
				}
				log.Info("endpoint changed", "region", ep.Region, "vip", ep.VIP, "failed", failed)
			}
			list(w)
		}
	}
	mux.HandleFunc("POST /fail", set(true))
	mux.HandleFunc("POST /restore", set(false))
	return mux
}

// selfSigned makes a certificate for https checks with tls_skip_verify.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "demo-lb"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		DNSNames:     []string{"*.lb.gslb.example", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
