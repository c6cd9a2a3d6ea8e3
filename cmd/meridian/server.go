package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/api"
	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/dnssec/sigstore"
	"github.com/meridian-gslb/meridian/dnsserver"
	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
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
	fs := newFlagSet("server", "meridian server [--config FILE] [--dns-listen IP:PORT]... [--http-listen IP:PORT] [--log-level LEVEL] [--check]\n\n"+
		"Serves the zones of the configuration, steering service names by the\nshared state in etcd, until SIGINT or SIGTERM.")
	configPath := fs.String("config", "/etc/meridian/meridian.yaml", "configuration file (YAML)")
	var dnsListen stringList
	fs.Var(&dnsListen, "dns-listen", "DNS address IP:port (UDP and TCP), repeatable; replaces listen.dns")
	httpListen := fs.String("http-listen", "", "HTTP address IP:port for metrics and health; replaces listen.http (\"off\" disables)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error; replaces log.level")
	checkOnly := fs.Bool("check", false, "validate the configuration and zones, then exit")
	acceptEmpty := fs.Bool("accept-empty-state", false, "serve the state of etcd's first listing even if it has no regions and no services while the persisted state has some")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
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
		applyHTTPListen(&cfg.Listen.HTTP, *httpListen)
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

	src := &followerSource{}
	sec, err := loadSigner(cfg, src)
	if err != nil {
		fmt.Fprintf(stderr, "meridian server: dnssec error:\n%s\n", indent(err.Error()))
		return 1
	}
	for _, k := range sec.made {
		log.Warn("created a DNSSEC key; publish its DS at the parent zone (meridian dnssec ds)", "zone", k.DNSKEY.Hdr.Name, "key", k.Describe(), "file", k.File)
	}
	set, err := zones.LoadSet(cfg.zoneSpecs(sec.signer), cfg.ZoneDir, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meridian server: zone error:\n%s\n", indent(err.Error()))
		return 1
	}
	if *checkOnly {
		// The bootstrap file too: a server refuses to start on a bad one.
		var desired *regions.Desired
		if cfg.Bootstrap != "" {
			if desired, err = loadBootstrap(cfg.Bootstrap, set); err != nil {
				fmt.Fprintf(stderr, "meridian server: bootstrap error:\n%s\n", indent(err.Error()))
				return 1
			}
		}
		f := cfg.checkHost(desired, time.Now())
		printWarnings(stderr, "meridian server", f.warns)
		if len(f.errs) > 0 {
			fmt.Fprintf(stderr, "meridian server: configuration error:\n%s\n", indent(errors.Join(f.errs...).Error()))
			return 1
		}
		fmt.Fprintf(stdout, "configuration %s and %d zone(s) are valid\n", *configPath, len(set.Zones()))
		return 0
	}

	// GOMAXPROCS is set here, as a step of its own, not as a side effect
	// of building the server.
	procs := planUDPProcs(cfg, runtimeProcs, os.Getenv("GOMAXPROCS") != "", runtime.GOOS)
	procs.apply(log)
	s, err := newServer(cfg, set, sec, src, log, procs.sockets)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if *acceptEmpty {
		s.live.AcceptEmptyAtStart()
	}
	if s.createdToken {
		fmt.Fprintf(stdout, "meridian: created an admin API token in %s (mode 0600); `meridian ctl` reads it from there, e.g.\n"+
			"  bin/meridian ctl --token-file %s weights set SERVICE REGION=WEIGHT...\n"+
			"  curl -H \"Authorization: Bearer $(cat %s)\" ...\n", cfg.API.AdminTokenFile, cfg.API.AdminTokenFile, cfg.API.AdminTokenFile)
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

// dnssecCheckInterval is how often the server looks for signatures due
// for refresh; each falls due at its own time (dnssec.Policy).
const dnssecCheckInterval = time.Minute

// server is the running process's parts, wired together.
type server struct {
	cfg       *Config
	log       *slog.Logger
	handler   *dnsserver.Handler
	rrl       *dnsserver.RRL // nil when dns.rrl.enabled is false
	transport *dnsserver.Transport
	http      *http.Server
	httpLn    *api.Listener
	fds       fdBudget
	registry  *prometheus.Registry
	builds    *buildMetrics
	apiMetric *api.Metrics
	// traffic keeps the answers per second for the dashboard (with the
	// HTTP listener only).
	traffic *api.Traffic
	started atomic.Bool

	// sec is what the server signs (sec.signer nil: nothing); keyless
	// zones find their signatures through src, in follower.
	sec       *signedZones
	src       *followerSource
	follower  *sigstore.Follower // nil without keyless zones
	retrySign chan struct{}
	// zset is the newest zone set (served once signed); zmu serializes
	// its changes (reloads, keys from etcd).
	zmu     sync.Mutex
	zset    *zones.Set
	geo     *geo.Reloader // nil without a GeoIP database
	tables  *regions.GeoTables
	live    *store.Live
	desired *regions.Desired // nil without a bootstrap file

	auth *api.Auth // nil without api.tokens_file
	tls  *api.TLS  // nil without api.tls
	// etcdCerts and embeddedCerts describe the etcd client's and the
	// embedded member's certificates, read at start (they are held until
	// a restart).
	etcdCerts, embeddedCerts []apitypes.CertificateInfo
	// createdToken: this start created the admin token of a fresh install.
	createdToken bool

	// Set by run before it listens; etcd need not answer yet.
	embedded *embeddedEtcd // nil with etcd endpoints configured
	etcd     *clientv3.Client
	store    *store.Store
	watcher  *store.Watcher
}

// newServer builds the server; udpSockets is the UDP sockets per address
// (planUDPProcs).
func newServer(cfg *Config, set *zones.Set, sec *signedZones, src *followerSource, log *slog.Logger, udpSockets int) (*server, error) {
	s := &server{cfg: cfg, log: log, registry: prometheus.NewRegistry(), sec: sec, src: src, zset: set, retrySign: make(chan struct{}, 1), builds: newBuildMetrics(), apiMetric: api.NewMetrics()}
	hcfg := dnsserver.HandlerConfig{
		DNSSEC:     sec.signer,
		MaxUDPSize: cfg.DNS.MaxUDPSize,
		ECS:        cfg.ecsConfig(),
		// Services come with the first snapshot; until then nobody knows
		// which names they hold, in any zone.
		WaitForSnapshot: true,
		Logger:          log.With("component", "dns"),
	}
	if len(sec.keyless) > 0 {
		hcfg.SignerBehind = src.signerBehind
		for _, z := range cfg.Zones {
			if z.DNSSEC != nil && z.DNSSEC.keyless() {
				hcfg.SignerWait = max(hcfg.SignerWait, time.Duration(z.DNSSEC.SignerWait))
			}
		}
	}
	for _, p := range cfg.DNS.TransferACL {
		prefix, _ := parsePrefix(p) // validated
		hcfg.TransferACL = append(hcfg.TransferACL, prefix)
	}
	for _, sec := range cfg.DNS.CookieSecrets {
		k, _ := dnsserver.ParseCookieSecret(sec) // validated
		hcfg.CookieSecrets = append(hcfg.CookieSecrets, k)
	}
	if *cfg.DNS.RRL.Enabled {
		rc, _ := cfg.rrlConfig() // validated
		rc.Logger = log.With("component", "rrl")
		r, err := dnsserver.NewRRL(rc)
		if err != nil {
			return nil, fmt.Errorf("dns.rrl: %w", err)
		}
		s.rrl = r
		hcfg.RRL = r
	}
	if cfg.GeoIP.Database != "" {
		r, err := geo.NewReloader(cfg.GeoIP.Database, log.With("component", "geoip"))
		if err != nil {
			return nil, fmt.Errorf("geoip.database: %w", err)
		}
		s.geo = r
		hcfg.Locator = r
	}
	s.handler = dnsserver.NewHandler(hcfg, set, nil)

	if cfg.Bootstrap != "" {
		d, err := loadBootstrap(cfg.Bootstrap, set)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		s.desired = d
	}

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if cfg.API.TokensFile != "" {
		if cfg.API.AdminTokenFile != "" {
			created, err := api.CreateAdminToken(cfg.API.TokensFile, cfg.API.AdminTokenFile)
			if err != nil {
				return nil, fmt.Errorf("api.admin_token_file: %w", err)
			}
			if created {
				s.createdToken = true
				log.Info("created an admin API token", "secret", cfg.API.AdminTokenFile, "tokens", cfg.API.TokensFile)
			}
		}
		tokens, err := api.LoadTokens(cfg.API.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("api.tokens_file: %w", err)
		}
		s.auth = api.NewAuth(tokens, cfg.API.OpenReads)
	}
	if cfg.apiTLS() && cfg.Listen.HTTP != "" {
		t, err := api.NewTLS(cfg.tlsFiles(), log.With("component", "http"))
		if err != nil {
			return nil, err // names the field and the file
		}
		s.tls = t
	}
	s.etcdCerts = api.CertificateInfos(map[string]string{"etcd_ca": cfg.Etcd.CAFile, "etcd_client": cfg.Etcd.CertFile})
	opts := regions.SnapshotOptions{
		Quorum:       cfg.Steering.Quorum,
		StickyBitsV4: cfg.Steering.StickyBitsV4,
		StickyBitsV6: cfg.Steering.StickyBitsV6,
	}
	if s.geo != nil {
		// Geo maps are read through the tables of the database served,
		// built in the background (run starts them): every snapshot
		// built once a table is ready takes it.
		opts.GeoIP = s.geo
		s.tables = regions.NewGeoTables(regions.GeoTablesOptions{
			MergeBudget: cfg.GeoIP.MergeBudgetBytes,
			OnReady:     func() { s.live.Rebuild() },
			OnBuild:     s.builds.geoTableBuilt,
			Logger:      log.With("component", "geo-tables"),
		})
		opts.Tables = s.tables
	}
	s.live = store.NewLive(filepath.Join(cfg.DataDir, "state.json"), opts, log.With("component", "snapshot"), func(snap *regions.Snapshot) {
		s.handler.SetSnapshot(snap)
		s.builds.snapshotBuilt(snap)
	})
	if s.geo != nil {
		// A new database makes new geo tables; until they are swapped in,
		// geo decisions look clients up in the new database.
		s.geo.OnReload(func(*geo.DB) { s.live.Rebuild() })
	}

	s.fds = budgetFDs(cfg, log)
	t, err := dnsserver.NewTransport(dnsserver.TransportConfig{
		Addrs:           cfg.Listen.DNS,
		UDPSockets:      udpSockets,
		UDPBatch:        cfg.DNS.UDPBatch,
		MaxUDPReply:     cfg.DNS.MaxUDPSize,
		TCPIdleTimeout:  time.Duration(cfg.DNS.TCPIdleTimeout),
		TCPMaxConns:     s.fds.DNSTCP,
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
		stateCollector{s},
		dnsserver.DNSSECCollector(s.handler),
		api.CertificateCollector(s.certificates, s.tls),
		s.builds,
		s.apiMetric,
		newBuildInfoCollector(),
	)
	if s.rrl != nil {
		s.registry.MustRegister(s.rrl)
	}
	return s, nil
}

// loadBootstrap reads the desired-state file and checks that the zones in
// set can answer every service it names.
func loadBootstrap(path string, set *zones.Set) (*regions.Desired, error) {
	d, err := regions.LoadDesired(path)
	if err != nil {
		return nil, err
	}
	var errs []error
	var doc Config // its line finder works on any YAML document
	for i, svc := range d.Services {
		if err := serviceNameCheck(set, svc.Name); err != nil {
			if doc.root.Kind == 0 {
				if b, rerr := os.ReadFile(path); rerr == nil {
					_ = yaml.Unmarshal(b, &doc.root) // LoadDesired parsed it
				}
			}
			field := fmt.Sprintf("services[%d].name", i)
			errs = append(errs, &regions.FileError{File: path, Line: doc.line(field), Field: field, Msg: err.Error(), Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// nameCheck says why a service name cannot be answered here.
func (s *server) nameCheck(fqdn string) error { return serviceNameCheck(s.handler.Zones(), fqdn) }

// serviceNameCheck says why the zones in set cannot answer fqdn as a
// service.
func serviceNameCheck(set *zones.Set, fqdn string) error {
	w, err := zones.WireName(fqdn)
	if err != nil {
		return err
	}
	z := set.Find([]byte(w))
	if z == nil {
		var names []string
		for _, z := range set.Zones() {
			names = append(names, z.Origin())
		}
		return fmt.Errorf("%s is not inside a zone served here (%s)", fqdn, strings.Join(names, ", "))
	}
	return z.CheckDynamicName([]byte(w))
}

// connectEtcd builds the client, store and watcher; with no endpoints
// configured, on the address of the embedded etcd, which run starts in
// the background. It does not wait for etcd to answer.
func (s *server) connectEtcd(ctx context.Context) error {
	ec := s.cfg.etcdClientConfig()
	ec.Logger = s.log.With("component", "etcd-client")
	if len(ec.Endpoints) == 0 {
		ecfg := s.cfg.embeddedConfig()
		ecfg.Logger = s.log.With("component", "etcd")
		// Only the holders of the member's CA's certificates get in: the
		// server, and the probers beside it (regions/embedded, PKI).
		pki, err := embedded.EnsurePKI(s.cfg.embeddedPKIDir(), ecfg, time.Now(), s.log.With("component", "etcd"))
		if err != nil {
			return err
		}
		ecfg.TLS = pki.MemberTLS()
		ep, err := ecfg.ClientEndpoint()
		if err != nil {
			return err
		}
		s.embedded = newEmbeddedEtcd(ecfg, s.log.With("component", "etcd"))
		s.embeddedCerts = api.CertificateInfos(pki.Certificates())
		client := pki.Server()
		ec.Endpoints = []string{ep}
		ec.CAFile, ec.CertFile, ec.KeyFile = client.CAFile, client.CertFile, client.KeyFile
	}
	if msg := ec.PasswordInClear(); msg != "" {
		s.log.Warn("etcd: " + msg)
	}
	c, err := store.Connect(ctx, ec)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	s.etcd = c
	s.store = store.NewStore(c, s.cfg.Etcd.Prefix, s.log.With("component", "store"))
	s.store.SetNameCheck(s.nameCheck)
	s.store.SetAuditLimit(s.cfg.API.AuditHistory)
	s.watcher = store.NewWatcher(c, s.cfg.Etcd.Prefix, s.log.With("component", "watch"))
	if err := s.store.Follow(s.watcher); err != nil {
		return err
	}
	s.followKeyless()
	return nil
}

func (s *server) closeEtcd() {
	if s.etcd != nil {
		s.etcd.Close()
	}
	if s.embedded != nil {
		s.embedded.close()
	}
}

// bootstrap creates what the desired-state file holds and etcd lacks,
// retrying while etcd is away.
func (s *server) bootstrap(ctx context.Context) error {
	if s.desired == nil {
		return nil
	}
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		created, err := store.Bootstrap(ctx, s.store, s.desired)
		if err == nil {
			if len(created) > 0 {
				s.log.Info("bootstrap created entries", "file", s.cfg.Bootstrap, "created", created)
			}
			return nil
		}
		if errors.Is(err, regions.ErrInvalid) {
			s.log.Error("bootstrap refused", "file", s.cfg.Bootstrap, "err", err)
			return nil // the server goes on with what etcd holds
		}
		s.log.Warn("bootstrap: etcd not ready, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// run binds every listener (failing before anything is served), serves
// until ctx ends or SIGINT/SIGTERM arrives, then shuts down gracefully.
// SIGHUP reloads the zones, the GeoIP database, the API tokens and the
// API's TLS files.
func (s *server) run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := s.connectEtcd(ctx); err != nil {
		s.closeEtcd()
		return err
	}
	defer s.closeEtcd()
	if err := s.transport.Listen(); err != nil {
		return fmt.Errorf("dns listeners: %w", err)
	}
	if s.cfg.Listen.HTTP != "" {
		ln, err := net.Listen("tcp", s.cfg.Listen.HTTP)
		if err != nil {
			s.transport.Close()
			return fmt.Errorf("http listener: %w", err)
		}
		s.httpLn = api.NewListener(ln, s.fds.HTTP)
		s.registry.MustRegister(api.ListenerCollector(s.httpLn))
		s.traffic = api.NewTraffic(s.answerReading, s.live.Current)
		closing := make(chan struct{})
		opts := api.Options{
			Logger:          s.log.With("component", "http"),
			ECS:             s.cfg.ecsConfig(),
			Follow:          s.followService,
			Gatherer:        s.registry,
			Ready:           s.ready,
			Details:         s.details,
			Status:          s.status,
			Snapshot:        s.live.Current,
			Store:           s.store,
			WriteTimeout:    time.Duration(s.cfg.API.WriteTimeout),
			RequestTimeout:  time.Duration(s.cfg.HTTP.RequestTimeout),
			UploadTimeout:   time.Duration(s.cfg.API.UploadTimeout),
			MaxBodyBytes:    s.cfg.API.MaxBodyBytes,
			MaxLatencyBytes: s.cfg.API.MaxLatencyBytes,
			Auth:            s.auth,
			AcceptEmpty:     s.live.AcceptEmpty,
			Metrics:         s.apiMetric,
			Traffic:         s.traffic,
			Closing:         closing,
		}
		if s.geo != nil {
			opts.Locator = s.geo
		}
		s.http = &http.Server{
			Handler:           api.NewRouter(opts),
			ReadHeaderTimeout: time.Duration(s.cfg.HTTP.ReadHeaderTimeout),
			ReadTimeout:       time.Duration(s.cfg.HTTP.ReadTimeout),
			WriteTimeout:      time.Duration(s.cfg.HTTP.WriteTimeout),
			IdleTimeout:       time.Duration(s.cfg.HTTP.IdleTimeout),
			ConnState:         s.httpLn.ConnState,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		if s.tls != nil {
			s.http.TLSConfig = s.tls.Config()
			// HTTP/1.1 only: the connection limit counts connections.
			s.http.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
		// The dashboard's event streams end when the server shuts down;
		// the pages reconnect to the next one.
		s.http.RegisterOnShutdown(func() { close(closing) })
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
	s.log.Info("meridian server listening", "dns", addrList(udp), "http", httpAddr, "http_tls", s.tls != nil,
		"zones", len(s.handler.Zones().Zones()), "etcd_embedded", s.embedded != nil)
	if f, ok := ctx.Value(startedKey{}).(func(Started)); ok {
		f(Started{DNSUDP: udp, DNSTCP: tcp, HTTP: httpAddr})
	}
	s.started.Store(true)

	// A state file is read below, with the listeners up: until it is,
	// queries it may answer are not failed (see SetLoading).
	if _, err := os.Stat(s.live.Path()); err == nil {
		s.handler.SetLoading(true)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.transport.Run(gctx) })
	if s.traffic != nil {
		g.Go(func() error { return s.traffic.Run(gctx) })
	}
	if s.tables != nil {
		g.Go(func() error { return s.tables.Run(gctx) })
	}
	// The zones answer from now on; the services once the state file is
	// read, before etcd's state (see loadPersisted).
	s.loadPersisted()
	g.Go(func() error { return s.watcher.RunLive(gctx, s.live) })
	// Run also rebuilds the snapshot at its NextChange, so shifts stop
	// applying at their expiry here whether etcd answers or not; one
	// server records each end (the keeper).
	g.Go(func() error { return s.live.Run(gctx) })
	g.Go(func() error {
		return store.NewShiftKeeper(s.store, s.live, s.actor(httpAddr), s.log.With("component", "shifts")).Run(gctx)
	})
	g.Go(func() error { return s.bootstrap(gctx) })
	if s.geo != nil {
		g.Go(func() error { return s.geo.Run(gctx, time.Duration(s.cfg.GeoIP.ReloadInterval)) })
	}
	if s.rrl != nil {
		g.Go(func() error { return s.rrl.Run(gctx) })
	}
	if s.embedded != nil {
		g.Go(func() error { return s.embedded.run(gctx) })
	}
	if s.http != nil {
		g.Go(func() error {
			serve := func() error { return s.http.Serve(s.httpLn) }
			if s.tls != nil {
				serve = func() error { return s.http.ServeTLS(s.httpLn, "", "") }
			}
			if err := serve(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		if s.tls != nil {
			g.Go(func() error { return s.tls.Run(gctx, time.Duration(s.cfg.API.TLS.ReloadInterval)) })
		}
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return s.http.Shutdown(sctx)
		})
	}
	g.Go(func() error { return s.reloadOnHUP(gctx, hup) })
	g.Go(func() error { return s.handler.RunDNSSEC(gctx, dnssecCheckInterval) })
	if s.follower != nil {
		g.Go(func() error { return s.follower.Run(gctx) })
		g.Go(func() error { return s.runRetrySign(gctx) })
	}
	err := g.Wait()
	s.log.Info("meridian server stopped")
	return err
}

// actor names this server in the audit records it makes by itself (the
// end of a shift): its host name, and its HTTP address when it has one.
func (s *server) actor(httpAddr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	if httpAddr != nil {
		return fmt.Sprintf("server %s (%s)", host, httpAddr)
	}
	return "server " + host
}

// loadPersisted serves the state file of an earlier run, if there is
// one: it is read after the listeners are up, so that the zones answer
// at once, and before the watcher starts, so that etcd's state follows
// it. Its geo services answer from database lookups until their tables
// are built in the background.
func (s *server) loadPersisted() {
	defer s.handler.SetLoading(false)
	start := time.Now()
	if err := s.live.LoadPersisted(); err != nil {
		// Not fatal: etcd will provide the state; but say so loudly.
		s.log.Error("cannot read the persisted state; waiting for etcd", "err", err)
		return
	}
	if snap := s.live.Current(); snap != nil {
		s.log.Info("persisted state served", "services", snap.NumServices(), "took", time.Since(start).Round(time.Millisecond))
	}
}

// reloadOnHUP reloads zone files on SIGHUP; a zone whose file fails keeps
// serving its previous version.
func (s *server) reloadOnHUP(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			s.reloadKeys()
			s.reloadZones()
			s.reloadTokens()
			if s.tls != nil {
				_ = s.tls.Reload() // logged; a failure keeps the previous certificate
			}
			if s.geo != nil {
				if err := s.geo.Reload(); err != nil {
					s.log.Error("geoip reload failed; the previous database keeps serving", "err", err)
				}
			}
		}
	}
}

// reloadTokens reads the API tokens again; a file that no longer loads
// leaves the previous tokens in force.
func (s *server) reloadTokens() {
	if s.auth == nil {
		return
	}
	tokens, err := api.LoadTokens(s.cfg.API.TokensFile)
	if err != nil {
		s.log.Error("api tokens reload failed; the previous tokens stay in force", "err", err)
		return
	}
	s.auth.SetTokens(tokens)
	s.log.Info("api tokens reloaded", "tokens", len(tokens))
}

// reloadZones loads the zone files again. A zone whose file does not
// load, or whose new version would hide a service (records at its name, a
// delegation at or above it), keeps serving its previous version.
func (s *server) reloadZones() {
	s.zmu.Lock()
	defer s.zmu.Unlock()
	prev := s.zset
	set, err := zones.LoadSet(s.cfg.zoneSpecs(s.sec.signer), s.cfg.ZoneDir, prev)
	if set == nil {
		s.log.Error("zone reload failed; the previous zones keep serving", "err", err)
		return
	}
	set, refused := s.refuseShadowing(prev, set)
	s.zset = set
	s.handler.SetZones(set)
	if err != nil || refused {
		if err != nil {
			s.log.Error("zone reload: some zones kept their previous version", "err", err)
		}
		return
	}
	s.log.Info("zones reloaded", "zones", len(set.Zones()))
}

// refuseShadowing puts back the previous version of every zone in next
// whose new version shadows a service of the snapshot or of the bootstrap
// file, logging why. refused says whether it did.
func (s *server) refuseShadowing(prev, next *zones.Set) (*zones.Set, bool) {
	var names []string
	if snap := s.live.Current(); snap != nil {
		for _, v := range snap.Services() {
			names = append(names, v.Name())
		}
	}
	if s.desired != nil {
		for _, svc := range s.desired.Services {
			names = append(names, regions.CanonicalName(svc.Name))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var keep []*zones.Zone
	refused := false
	for _, z := range next.Zones() {
		old := prev.Zone(z.Origin())
		if old == z {
			keep = append(keep, z) // unchanged (or already kept)
			continue
		}
		var problems []string
		for _, name := range names {
			w, err := zones.WireName(name)
			if err != nil || next.Find([]byte(w)) != z {
				continue
			}
			if err := z.CheckDynamicName([]byte(w)); err != nil {
				problems = append(problems, fmt.Sprintf("service %s: %v", name, err))
			}
		}
		if len(problems) == 0 {
			keep = append(keep, z)
			continue
		}
		refused = true
		s.log.Error("zone reload refused: the new version would hide services; the previous version keeps serving",
			"zone", z.Origin(), "serial", z.SOA().Serial, "services", strings.Join(problems, "; "))
		if old != nil {
			keep = append(keep, old)
		}
	}
	if !refused {
		return next, false
	}
	set, err := zones.NewSet(keep...)
	if err != nil { // the same apexes as next: cannot happen
		s.log.Error("zone reload failed; the previous zones keep serving", "err", err)
		return prev, true
	}
	return set, true
}

// followService is /v1/explain's view of the DNS handler's CNAME following.
func (s *server) followService(name string) (*regions.Snapshot, *regions.ServiceView, []string, error) {
	snap, v, rrs, err := s.handler.FollowService(name)
	cnames := make([]string, len(rrs))
	for i, rr := range rrs {
		cnames[i] = rr.String()
	}
	return snap, v, cnames, err
}

// ready: zones, GeoIP (when configured) and a regions snapshot (from etcd
// or the data directory) are loaded and the listeners are up.
func (s *server) ready() error {
	switch {
	case !s.started.Load():
		return errors.New("starting")
	case s.handler.Zones() == nil:
		return errors.New("no zones loaded")
	case s.cfg.GeoIP.Database != "" && (s.geo == nil || s.geo.Current() == nil):
		return errors.New("no GeoIP database loaded")
	case s.live.Current() == nil:
		return errors.New("no regions snapshot yet: etcd has not answered and no state was persisted")
	}
	return nil
}

// details is what /health/details shows besides readiness and status.
func (s *server) details() api.Details {
	var d api.Details
	for _, z := range s.handler.Zones().Zones() {
		d.Zones = append(d.Zones, apitypes.ZoneInfo{Origin: z.Origin(), Serial: z.SOA().Serial, Records: len(z.Records())})
	}
	ts := apitypes.TransportStats(s.transport.Stats())
	d.Transport = &ts
	if s.httpLn != nil {
		st := s.httpLn.Stats()
		d.HTTP = &st
	}
	return d
}

// status is what /v1/status shows besides the snapshot: where it came
// from, how old its data is, the state of etcd, the GeoIP database and
// the answers per region.
func (s *server) status() api.ServerStatus {
	source, built, _ := s.live.Info()
	ls := s.live.Status()
	st := api.ServerStatus{Source: source, Built: built, Staleness: s.staleness(), RegionAnswers: s.handler.Metrics().RegionAnswers(),
		Confirmed: ls.Confirmed, EmptyRefused: ls.EmptyRefused, Reports: ls.Reports, DNSSEC: s.dnssecStatus()}
	es := s.etcdStatus().EtcdStatus
	st.Etcd = &es
	st.Certificates = s.certificates()
	if s.tls != nil {
		ts := s.tls.Status()
		st.TLS = &ts
	}
	if s.geo != nil {
		if db := s.geo.Current(); db != nil {
			info := db.Info()
			st.GeoIP = &info
		}
	}
	return st
}

// certificates lists every certificate the server uses: the API's as
// served now, etcd's as read at start.
func (s *server) certificates() []apitypes.CertificateInfo {
	var out []apitypes.CertificateInfo
	if s.tls != nil {
		out = append(out, s.tls.Certificates()...)
	}
	out = append(out, s.etcdCerts...)
	return append(out, s.embeddedCerts...)
}

// answerReading reads the DNS handler's answer counters for the
// dashboard's traffic view.
func (s *server) answerReading() api.AnswerReading {
	c := s.handler.Metrics().Answers()
	r := api.AnswerReading{Regions: make(map[string][regions.NumContinents + 1]uint64, len(c.Regions)), Services: make(map[string]uint64, len(c.Services))}
	for name, rc := range c.Regions {
		r.Regions[name] = rc.ByContinent
	}
	for name, sc := range c.Services {
		r.Services[name] = sc.Answers
		if sc.ByRegion != nil {
			if r.Pairs == nil {
				r.Pairs = map[string]map[string]uint64{}
			}
			r.Pairs[name] = sc.ByRegion
		}
	}
	return r
}

// staleness is the age of the served data: how long ago etcd last
// confirmed it current, also when it was read from the state file.
func (s *server) staleness() time.Duration {
	return s.live.Status().Age
}

func addrList(as []net.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return strings.Join(out, ",")
}

// ecsConfig is the ECS part of the configuration, as DNS and /v1/explain
// both use it.
func (c *Config) ecsConfig() regions.ECSConfig {
	return regions.ECSConfig{MaxV4: c.ECS.MaxPrefixV4, MaxV6: c.ECS.MaxPrefixV6, TrustPrivate: c.ECS.TrustPrivate}.Normalized()
}

// runtimeProcs is GOMAXPROCS as the Go runtime chose it when the process
// started: the GOMAXPROCS variable when it is set, else the CPUs the
// process may run on, lowered to its cgroup CPU limit (rounded up, at
// least 2). It is read at package initialization, before anything in the
// process changes it: a raise starts from it, never from runtime.NumCPU
// (which ignores the cgroup limit) nor from an earlier raise (tests start
// several servers in one process).
var runtimeProcs = runtime.GOMAXPROCS(0)

// udpProcs is how the server gives its UDP loops Ps: the sockets per
// address, and the GOMAXPROCS to set (0: leave it), with the reason.
type udpProcs struct {
	sockets int // UDP sockets per address
	loops   int // sockets × addresses
	base    int // GOMAXPROCS as the runtime chose it
	procs   int // GOMAXPROCS to set; 0: leave it
	reason  string
}

// planUDPProcs decides, changing nothing: dns.udp_sockets per address (0:
// one per P of base) and, on Linux unless the GOMAXPROCS variable is set,
// a P of its own for every UDP loop on top of base. A loop with a P of its
// own waits for datagrams inside recvmmsg, as a C server's thread does,
// instead of in the Go netpoller: less CPU per query (docs/architecture.md,
// "How the UDP loops wait"). The Ps of blocked loops use no CPU; the
// others run everything else as before.
func planUDPProcs(cfg *Config, base int, envSet bool, goos string) udpProcs {
	p := udpProcs{sockets: cfg.DNS.UDPSockets, base: base}
	if p.sockets == 0 {
		p.sockets = base
	}
	p.loops = p.sockets * len(cfg.Listen.DNS)
	switch {
	case goos != "linux":
		p.reason = "UDP loops wait in recvmmsg on Linux only"
	case envSet:
		p.reason = "set by the GOMAXPROCS environment variable"
	case p.loops > 8*base:
		// A P each would buy nothing but threads.
		p.reason = "more than 8 UDP loops per P: they share the Ps and wait in the netpoller"
	default:
		p.procs = base + p.loops
		p.reason = "a P per UDP loop besides one per CPU, so that every loop waits in recvmmsg"
	}
	return p
}

// apply is the step of the server's start that sets GOMAXPROCS for the
// UDP loops, before the listeners choose how their loops wait; it logs
// what it did and why. A GOMAXPROCS set here stays for the life of the
// process: the runtime then no longer follows changes of the CPU limit,
// and neither does the number of sockets, chosen at start too, so a
// changed CPU limit takes a restart.
func (p udpProcs) apply(log *slog.Logger) {
	if p.procs == 0 {
		log.Info("GOMAXPROCS left as it is", "gomaxprocs", runtime.GOMAXPROCS(0), "udp_loops", p.loops, "reason", p.reason)
		return
	}
	was := runtime.GOMAXPROCS(p.procs)
	log.Info("GOMAXPROCS raised for the UDP loops", "gomaxprocs", p.procs, "runtime_chose", p.base, "was", was, "udp_loops", p.loops, "reason", p.reason)
}

// applyHTTPListen puts the --http-listen flag of the server or a prober
// in place of listen.http: empty keeps the file's address, "off" turns
// the listener off.
func applyHTTPListen(addr *string, flag string) {
	switch flag {
	case "":
	case "off":
		*addr = ""
	default:
		*addr = flag
	}
}
