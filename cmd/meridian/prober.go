package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-gslb/meridian/health"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// defaultProberEtcd is the embedded etcd of `make run`.
const defaultProberEtcd = "127.0.0.1:2479"

// ProberConfig is the prober's configuration file (YAML); every field is
// optional. Relative paths are relative to the file's directory.
type ProberConfig struct {
	Etcd store.EtcdConfig `yaml:"etcd"`
	Log  LogConfig        `yaml:"log"`
	// Concurrency caps the checks in flight (0: 256).
	Concurrency int `yaml:"concurrency"`
	// Refresh is how often a report whose states did not change is
	// rewritten for a moved RTT, load or failure reason (0: 1m).
	Refresh regions.Duration `yaml:"refresh"`
	// LeaseTTL overrides the lease's lifetime (0: 3 × the shortest check
	// interval, at least 2s).
	LeaseTTL regions.Duration `yaml:"lease_ttl"`
	Canary   CanaryConfig     `yaml:"canary"`
	// SourceAddress is the local address the checks and the canary
	// connect from ("": the system's choice).
	SourceAddress string             `yaml:"source_address"`
	Listen        ProberListenConfig `yaml:"listen"`

	path string
	root yaml.Node
	// httpFlag: listen.http came from --http-listen.
	httpFlag bool
}

// ProberListenConfig says where the prober listens.
type ProberListenConfig struct {
	// HTTP is the IP:port of its /metrics, /health/live and
	// /health/ready; "" (the default) serves none (see prober_http.go).
	HTTP string `yaml:"http"`
}

// CanaryConfig is the prober's self-check target: a URL or a host:port.
type CanaryConfig struct {
	URL      string           `yaml:"url"`
	Address  string           `yaml:"address"`
	Interval regions.Duration `yaml:"interval"` // 0: 1s
	Timeout  regions.Duration `yaml:"timeout"`  // 0: 1s
}

const proberUsage = `usage: meridian prober --region NAME [--etcd URL[,URL...]] [--id ID] [--config FILE] [--http-listen IP:PORT] [--check-config]

Checks every VIP of every region stored in etcd and publishes what it sees
there (docs/health.md). Stops on SIGINT or SIGTERM, withdrawing its reports.

flags:
`

func runProber(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meridian prober", flag.ContinueOnError)
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), proberUsage)
		fs.PrintDefaults()
	}
	region := fs.String("region", "", "the region this prober runs in (required)")
	etcdFlag := fs.String("etcd", "", "etcd endpoints, comma-separated; replaces etcd.endpoints (default "+defaultProberEtcd+", the embedded etcd of make run, which takes the certificate examples/prober.yaml names)")
	id := fs.String("id", "", "prober id (default HOSTNAME@REGION)")
	configPath := fs.String("config", "", "configuration file (YAML): etcd TLS and auth, concurrency, canary, refresh")
	checkOnly := fs.Bool("check-config", false, "validate the configuration and flags, then exit")
	logLevel := fs.String("log-level", "", "debug, info, warn or error; replaces log.level")
	httpListen := fs.String("http-listen", "", "HTTP address IP:port for /metrics and /health; replaces listen.http (\"off\" disables)")
	// -h prints the usage on stdout and exits 0; a bad flag is reported
	// on stderr with exit 2.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		_, _ = stderr.Write(msg.Bytes())
		return 2
	}
	fs.SetOutput(stderr)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meridian prober: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *region == "" && !*checkOnly {
		fmt.Fprintln(stderr, "meridian prober: --region is required")
		fs.Usage()
		return 2
	}

	cfg, err := readProberConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "meridian prober: configuration error:\n%s\n", indent(err.Error()))
		return 1
	}
	if *etcdFlag != "" {
		cfg.Etcd.Endpoints = nil
		for ep := range strings.SplitSeq(*etcdFlag, ",") {
			cfg.Etcd.Endpoints = append(cfg.Etcd.Endpoints, strings.TrimSpace(ep))
		}
	}
	if len(cfg.Etcd.Endpoints) == 0 {
		cfg.Etcd.Endpoints = []string{defaultProberEtcd}
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	applyHTTPListen(&cfg.Listen.HTTP, *httpListen)
	cfg.httpFlag = *httpListen != ""
	hcfg := cfg.healthConfig(*region, *id)
	if err := cfg.validate(hcfg); err != nil {
		fmt.Fprintf(stderr, "meridian prober: configuration error:\n%s\n", indent(err.Error()))
		return 1
	}
	if *checkOnly {
		f := cfg.checkHost(*etcdFlag != "", time.Now())
		printWarnings(stderr, "meridian prober", f.warns)
		if len(f.errs) > 0 {
			fmt.Fprintf(stderr, "meridian prober: configuration error:\n%s\n", indent(errors.Join(f.errs...).Error()))
			return 1
		}
		what := "the prober's flags"
		if cfg.path != "" {
			what = "configuration " + cfg.path
		}
		fmt.Fprintf(stdout, "%s: valid\n", what)
		return 0
	}

	log := newLogger(cfg.Log, stderr)
	hcfg.Logger = log
	if err := cfg.checkSource(); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ec := cfg.Etcd
	ec.Logger = log.With("component", "etcd-client")
	if msg := ec.PasswordInClear(); msg != "" {
		log.Warn("etcd: " + msg)
	}
	cli, err := store.Connect(ctx, ec)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer cli.Close()
	p, err := health.New(hcfg, cli)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	if cfg.Listen.HTTP != "" {
		// Bound before the checks start: a taken port fails the start.
		ln, err := net.Listen("tcp", cfg.Listen.HTTP)
		if err != nil {
			log.Error("cannot start", "err", fmt.Errorf("http listener: %w", err))
			return 1
		}
		h := newProberHTTP(ln, p, proberRegistry(p, cfg.Etcd), log.With("component", "http"))
		log.Info("prober HTTP listening", "http", ln.Addr().String())
		if f, ok := ctx.Value(startedKey{}).(func(Started)); ok {
			f(Started{HTTP: ln.Addr()})
		}
		g.Go(func() error { return h.run(gctx) })
	}
	g.Go(func() error { return p.Run(gctx) })
	if err := g.Wait(); err != nil {
		log.Error("stopped on error", "err", err)
		return 1
	}
	return 0
}

// readProberConfig reads the file at path ("" : no file, the defaults).
func readProberConfig(path string) (*ProberConfig, error) {
	c := &ProberConfig{path: path}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &regions.FileError{File: path, Msg: err.Error()}
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, yamlError(path, err)
		}
		_ = yaml.Unmarshal(data, &c.root) // already parsed once; only for line numbers
		base := filepath.Dir(path)
		for _, p := range []*string{&c.Etcd.CAFile, &c.Etcd.CertFile, &c.Etcd.KeyFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Etcd.Prefix == "" {
		c.Etcd.Prefix = store.DefaultPrefix
	}
	return c, nil
}

// healthConfig is the prober's configuration for the health package.
func (c *ProberConfig) healthConfig(region, id string) health.Config {
	if id == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "prober"
		}
		id = host + "@" + region
	}
	ver := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	var dial health.Dialer
	if src, err := netip.ParseAddr(c.SourceAddress); err == nil {
		dial = sourceDialer(src)
	}
	return health.Config{
		ID: id, Region: region, Version: ver, Dial: dial,
		Concurrency: c.Concurrency, Refresh: time.Duration(c.Refresh), LeaseTTL: time.Duration(c.LeaseTTL),
		Canary: health.Canary{URL: c.Canary.URL, Address: c.Canary.Address,
			Interval: time.Duration(c.Canary.Interval), Timeout: time.Duration(c.Canary.Timeout)},
		Prefix: c.Etcd.Prefix,
	}
}

// validate reports every problem, each with the file, line and field for
// what the file says and the flag for what the flags say. Without a
// region (--check-config alone) the region is not checked.
func (c *ProberConfig) validate(h health.Config) error {
	var errs []error
	fileErr := func(field, msg string) {
		fe := &regions.FileError{File: c.path, Field: field, Msg: msg, Line: yamlLine(&c.root, field)}
		if c.path == "" {
			fe.File = "defaults"
		}
		errs = append(errs, fe)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		fileErr("log.level", err.Error())
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		fileErr("log.format", fmt.Sprintf("%q: want text or json", c.Log.Format))
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") || !strings.HasSuffix(c.Etcd.Prefix, "/") {
		fileErr("etcd.prefix", fmt.Sprintf("%q: want a path that starts and ends with /", c.Etcd.Prefix))
	}
	if err := c.Etcd.Validate(); err != nil {
		fileErr("etcd", err.Error())
	}
	if c.SourceAddress != "" {
		if _, err := netip.ParseAddr(c.SourceAddress); err != nil {
			fileErr("source_address", fmt.Sprintf("%q: want an IP address of this host", c.SourceAddress))
		}
	}
	if c.Listen.HTTP != "" {
		if _, err := netip.ParseAddrPort(c.Listen.HTTP); err != nil {
			msg := fmt.Sprintf("%q is not an IP:port (like 127.0.0.1:9154 or [::1]:9154)", c.Listen.HTTP)
			if c.httpFlag {
				errs = append(errs, fmt.Errorf("--http-listen: %s", msg))
			} else {
				fileErr("listen.http", msg)
			}
		}
	}
	if h.Region == "" {
		h.Region = "unset"
	}
	var ve *regions.ValidationError
	if err := h.Validate(); errors.As(err, &ve) {
		for _, p := range ve.Problems {
			switch p.Field {
			case "id", "region":
				errs = append(errs, fmt.Errorf("--%s: %s", p.Field, p.Message))
			default:
				fileErr(p.Field, p.Message)
			}
		}
	}
	return errors.Join(errs...)
}

// sourceDialer connects from src, so that checks leave by the address
// the regions' firewalls expect. A destination of the other family is
// connected to from the system's choice; a host name, at its addresses
// of src's family.
func sourceDialer(src netip.Addr) health.Dialer {
	src = src.Unmap()
	bound := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	var other net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if a, err := netip.ParseAddr(host); err == nil && a.Unmap().Is4() != src.Is4() {
				return other.DialContext(ctx, network, addr)
			}
		}
		return bound.DialContext(ctx, network, addr)
	}
}

// checkSource fails when source_address is not an address of this host:
// every check would fail, and the prober would only distrust itself.
func (c *ProberConfig) checkSource() error {
	if c.SourceAddress == "" {
		return nil
	}
	src, err := netip.ParseAddr(c.SourceAddress)
	if err != nil {
		return fmt.Errorf("source_address: %w", err)
	}
	if err := onHost(src); err != nil {
		return fmt.Errorf("source_address: %w", err)
	}
	return nil
}
