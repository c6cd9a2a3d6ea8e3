package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/dnssec/sigstore"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
	"github.com/meridian-gslb/meridian/zones"
)

// runSigner is `meridian signer`: it holds the keys of the signed zones
// of its configuration, signs what the deployment's snapshots answer
// with (and what a health change may bring), rolls the keys and
// publishes signatures and key records in etcd for name servers that
// hold no key (docs/dnssec.md, "Signers and name servers").
func runSigner(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("signer", "meridian signer [--config FILE] [--zone ZONE]... [--interval DURATION] [--log-level LEVEL]\n\n"+
		"Signs the zones of the configuration whose keys it holds (their dnssec\n"+
		"sections, signer: local) for the name servers that read the signatures\n"+
		"from etcd (signer: etcd), and rolls their keys, until SIGINT or SIGTERM.\n"+
		"SIGHUP reloads the zone files. Several signers stand by one another:\n"+
		"one signs a zone at a time.")
	configPath := fs.String("config", "/etc/meridian/signer.yaml", "configuration file (YAML): etcd, steering, zones with their dnssec sections")
	var only stringList
	fs.Var(&only, "zone", "sign only this zone, repeatable (default: every zone with keys)")
	interval := fs.Duration("interval", time.Minute, "how often signatures due are made again and rollovers step")
	logLevel := fs.String("log-level", "", "debug, info, warn or error; replaces log.level")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meridian signer: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := readConfig(*configPath)
	if err == nil {
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "meridian signer: configuration error:\n%s\n", indent(err.Error()))
		return 1
	}
	if *interval < 100*time.Millisecond {
		fmt.Fprintln(stderr, "meridian signer: --interval must be at least 100ms")
		return 2
	}
	if len(cfg.Etcd.Endpoints) == 0 {
		fmt.Fprintln(stderr, "meridian signer: etcd.endpoints is empty: the signer publishes to the deployment's etcd, not an embedded one")
		return 1
	}
	// The zones signed here: those with keys (not keyless), as asked.
	want := map[string]bool{}
	for _, z := range only {
		want[dns.CanonicalName(z)] = true
	}
	var kept []ZoneConfig
	for _, z := range cfg.Zones {
		o := dns.CanonicalName(z.Origin)
		if z.DNSSEC == nil || z.DNSSEC.keyless() || len(want) > 0 && !want[o] {
			continue
		}
		kept = append(kept, z)
		delete(want, o)
	}
	for z := range want {
		fmt.Fprintf(stderr, "meridian signer: --zone %s: not a zone of %s signed with keys\n", z, *configPath)
		return 1
	}
	if len(kept) == 0 {
		fmt.Fprintf(stderr, "meridian signer: %s has no zone with a dnssec section holding keys\n", *configPath)
		return 1
	}
	cfg.Zones = kept
	log := newLogger(cfg.Log, stderr).With("component", "signer")

	sec, err := loadSigner(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meridian signer: dnssec error:\n%s\n", indent(err.Error()))
		return 1
	}
	for _, k := range sec.made {
		log.Warn("created a DNSSEC key; publish its DS at the parent zone (meridian dnssec ds)", "zone", k.DNSKEY.Hdr.Name, "key", k.Describe(), "file", k.File)
	}
	set, err := zones.LoadSet(cfg.zoneSpecs(sec.signer), cfg.ZoneDir, nil)
	if err != nil {
		fmt.Fprintf(stderr, "meridian signer: zone error:\n%s\n", indent(err.Error()))
		return 1
	}
	ec := cfg.etcdClientConfig()
	ec.Logger = log.With("component", "etcd-client")
	c, err := store.Connect(ctx, ec)
	if err != nil {
		fmt.Fprintf(stderr, "meridian signer: etcd: %v\n", err)
		return 1
	}
	defer c.Close()

	host, _ := os.Hostname()
	rollovers := map[string]*dnssec.Rollover{}
	for _, z := range cfg.Zones {
		if ro := z.DNSSEC.rollover(z.DNSSEC.KeyDir); ro != nil {
			rollovers[dns.CanonicalName(z.Origin)] = ro
		}
	}
	runner := sigstore.NewRunner(sigstore.RunnerConfig{
		Client:   c,
		Prefix:   cfg.Etcd.Prefix,
		ID:       fmt.Sprintf("%s/%d", host, os.Getpid()),
		Signer:   sec.signer,
		Zones:    set,
		Files:    sec.files,
		Rollover: rollovers,
		Interval: *interval,
		Log:      log,
	})
	// The same snapshots as the name servers build, without GeoIP: the
	// answer sets depend on health, weights and drains, not on where
	// clients are.
	opts := regions.SnapshotOptions{Quorum: cfg.Steering.Quorum, StickyBitsV4: cfg.Steering.StickyBitsV4, StickyBitsV6: cfg.Steering.StickyBitsV6}
	live := store.NewLive("", opts, log.With("component", "snapshot"), runner.SetSnapshot)
	watcher := store.NewWatcher(c, cfg.Etcd.Prefix, log.With("component", "watch"))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("meridian signer started", "zones", runner.Zones(), "id", fmt.Sprintf("%s/%d", host, os.Getpid()))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return watcher.RunLive(gctx, live) })
	g.Go(func() error { return live.Run(gctx) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				next, err := zones.LoadSet(cfg.zoneSpecs(sec.signer), cfg.ZoneDir, set)
				if next == nil {
					log.Error("zone reload failed; the previous zones keep being signed", "err", err)
					continue
				}
				if err != nil {
					log.Error("zone reload: some zones kept their previous version", "err", err)
				}
				set = next
				runner.SetZones(next)
				log.Info("zones reloaded", "zones", len(next.Zones()))
			}
		}
	})
	if err := g.Wait(); err != nil {
		log.Error("stopped on error", "err", err)
		return 1
	}
	log.Info("meridian signer stopped")
	return 0
}
