package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-gslb/meridian/api"
	"github.com/meridian-gslb/meridian/dnsserver"
	"github.com/meridian-gslb/meridian/zones"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// startedKey carries a func(Started) in the context; the server calls it
// once it listens (tests and embedding use it to learn the bound ports).
type startedKey struct{}

// Started tells where a server listens.
type Started struct {
	DNSUDP, DNSTCP []net.Addr
	HTTP           net.Addr // nil when disabled
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meridian server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/meridian/meridian.yaml", "configuration file (YAML)")
	var dnsListen stringList
	fs.Var(&dnsListen, "dns-listen", "DNS address IP:port (UDP and TCP), repeatable; replaces listen.dns")
	httpListen := fs.String("http-listen", "", "HTTP address IP:port for metrics and health; replaces listen.http (\"off\" disables)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error; replaces log.level")
	checkOnly := fs.Bool("check", false, "validate the configuration and zones, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meridian server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg, err := readConfig(*configPath)
	if err == nil {
		// Flags override the file; the result is validated again.
		if len(dnsListen) > 0 {
			cfg.Listen.DNS = dnsListen
		}
		switch *httpListen {
		case "":
		case "off":
			cfg.Listen.HTTP = ""
		default:
			cfg.Listen.HTTP = *httpListen
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "meridian server: configuration error:\n%s\n", indent(err.Error()))
		return 1
	}
	log := newLogger(cfg.Log, stderr)

	set, err := zones.LoadSet(cfg.zoneSpecs(), cfg.ZoneDir, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meridian server: zone error:\n%s\n", indent(err.Error()))
		return 1
	}
	if *checkOnly {
		fmt.Fprintf(stdout, "configuration %s and %d zone(s) are valid\n", *configPath, len(set.Zones()))
		return 0
	}

	s, err := newServer(cfg, set, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := s.run(ctx); err != nil {
		log.Error("stopped on error", "err", err)
		return 1
	}
	return 0
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// server is the running process's parts, wired together.
type server struct {
	cfg       *Config
	log       *slog.Logger
	handler   *dnsserver.Handler
	transport *dnsserver.Transport
	http      *http.Server
	httpLn    net.Listener
	registry  *prometheus.Registry
	started   atomic.Bool
}

func newServer(cfg *Config, set *zones.Set, log *slog.Logger) (*server, error) {
	hcfg := dnsserver.HandlerConfig{MaxUDPSize: cfg.DNS.MaxUDPSize}
	for _, p := range cfg.DNS.TransferACL {
		prefix, _ := parsePrefix(p) // validated
		hcfg.TransferACL = append(hcfg.TransferACL, prefix)
	}
	for _, sec := range cfg.DNS.CookieSecrets {
		k, _ := dnsserver.ParseCookieSecret(sec) // validated
		hcfg.CookieSecrets = append(hcfg.CookieSecrets, k)
	}
	s := &server{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	s.handler = dnsserver.NewHandler(hcfg, set, nil)

	t, err := dnsserver.NewTransport(dnsserver.TransportConfig{
		Addrs:           cfg.Listen.DNS,
		UDPSockets:      cfg.DNS.UDPSockets,
		UDPBatch:        cfg.DNS.UDPBatch,
		TCPIdleTimeout:  time.Duration(cfg.DNS.TCPIdleTimeout),
		TCPMaxConns:     cfg.DNS.TCPMaxConnections,
		ShutdownTimeout: time.Duration(cfg.DNS.ShutdownTimeout),
	}, s.handler, log.With("component", "dns"))
	if err != nil {
		return nil, err
	}
	s.transport = t

	s.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.handler.Metrics(),
		dnsserver.TransportCollector(t),
	)
	return s, nil
}

// run binds every listener (failing before anything is served), serves
// until ctx ends or SIGINT/SIGTERM arrives, then shuts down gracefully.
// SIGHUP reloads the zones.
func (s *server) run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := s.transport.Listen(); err != nil {
		return fmt.Errorf("dns listeners: %w", err)
	}
	if s.cfg.Listen.HTTP != "" {
		ln, err := net.Listen("tcp", s.cfg.Listen.HTTP)
		if err != nil {
			s.transport.Close()
			return fmt.Errorf("http listener: %w", err)
		}
		s.httpLn = ln
		s.http = &http.Server{
			Handler: api.NewRouter(api.Options{
				Logger:   s.log.With("component", "http"),
				Gatherer: s.registry,
				Ready:    s.ready,
				Details:  s.details,
			}),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	// Ask for SIGHUP before announcing the start: from then on a HUP must
	// reload, not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	udp, tcp := s.transport.Addrs()
	var httpAddr net.Addr
	if s.httpLn != nil {
		httpAddr = s.httpLn.Addr()
	}
	s.log.Info("meridian server listening", "dns", addrList(udp), "http", httpAddr, "zones", len(s.handler.Zones().Zones()))
	if f, ok := ctx.Value(startedKey{}).(func(Started)); ok {
		f(Started{DNSUDP: udp, DNSTCP: tcp, HTTP: httpAddr})
	}
	s.started.Store(true)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.transport.Run(gctx) })
	if s.http != nil {
		g.Go(func() error {
			if err := s.http.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return s.http.Shutdown(sctx)
		})
	}
	g.Go(func() error { return s.reloadOnHUP(gctx, hup) })
	err := g.Wait()
	s.log.Info("meridian server stopped")
	return err
}

// reloadOnHUP reloads zone files on SIGHUP; a zone whose file fails keeps
// serving its previous version.
func (s *server) reloadOnHUP(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			s.reloadZones()
		}
	}
}

func (s *server) reloadZones() {
	set, err := zones.LoadSet(s.cfg.zoneSpecs(), s.cfg.ZoneDir, s.handler.Zones())
	if set != nil {
		s.handler.SetZones(set)
	}
	if err != nil {
		s.log.Error("zone reload: some zones kept their previous version", "err", err)
		return
	}
	s.log.Info("zones reloaded", "zones", len(set.Zones()))
}

func (s *server) ready() error {
	if !s.started.Load() {
		return errors.New("starting")
	}
	if s.handler.Zones() == nil {
		return errors.New("no zones loaded")
	}
	return nil
}

func (s *server) details() any {
	type zoneInfo struct {
		Origin string `json:"origin"`
		Serial uint32 `json:"serial"`
		Size   int    `json:"records"`
	}
	var zs []zoneInfo
	for _, z := range s.handler.Zones().Zones() {
		zs = append(zs, zoneInfo{z.Origin(), z.SOA().Serial, len(z.Records())})
	}
	st := s.transport.Stats()
	return map[string]any{
		"ready":     s.ready() == nil,
		"zones":     zs,
		"transport": st,
	}
}

func addrList(as []net.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return strings.Join(out, ",")
}
