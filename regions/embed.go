package regions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// Loopback addresses of the embedded etcd unless configured.
const (
	DefaultEmbeddedClientURL = "127.0.0.1:2479"
	DefaultEmbeddedPeerURL   = "127.0.0.1:2480"
)

// embeddedStartTimeout bounds the wait for a single member to be ready
// when ctx has no earlier deadline.
const embeddedStartTimeout = 60 * time.Second

// EmbeddedConfig configures the single-member etcd a server runs when no
// etcd endpoints are configured.
type EmbeddedConfig struct {
	Dir string // data directory (created 0700)
	// ClientURL and PeerURL are "IP:port" or "http://IP:port" on a
	// loopback address: the embedded etcd is never reachable from outside.
	ClientURL, PeerURL string
	Name               string // member name; default "meridian"
	Logger             *slog.Logger
}

// Embedded is a running embedded etcd member.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closing   *atomic.Bool
	closeOnce sync.Once
}

// StartEmbedded starts a single etcd member in cfg.Dir and waits until it
// serves (bounded by ctx and a minute). An existing data directory is
// reopened with its data. etcd's own logging goes to cfg.Logger at warn
// level and above.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	ec, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	return startEmbed(ctx, ec, cfg.Logger)
}

// embedConfig turns our configuration into etcd's, for a single member
// (logging is set up by startEmbed). Tests change the result to build
// clusters.
func embedConfig(cfg EmbeddedConfig) (*embed.Config, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded etcd: no data directory")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultEmbeddedClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultEmbeddedPeerURL
	}
	if cfg.Name == "" {
		cfg.Name = "meridian"
	}
	curl, err := loopbackURL(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL: %w", err)
	}
	purl, err := loopbackURL(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer URL: %w", err)
	}
	if curl.Host == purl.Host {
		return nil, fmt.Errorf("embedded etcd: client and peer URLs are both %s", curl.Host)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.InitialClusterToken = "meridian"
	// Keep the revision history an hour, so a watcher that lost its
	// stream for less than that resumes without relisting.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	ec.EnableGRPCGateway = false
	ec.LogLevel = "warn"
	return ec, nil
}

func startEmbed(ctx context.Context, ec *embed.Config, logger *slog.Logger) (*Embedded, error) {
	closing := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLoggerAt(logger, "etcd", zapcore.WarnLevel, closing))
	if err := os.MkdirAll(ec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", ec.Dir, err)
	}
	wait, cancel := context.WithTimeout(ctx, embeddedStartTimeout)
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", ec.Dir, err)
	case <-wait.Done():
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready: %w", ec.Dir, wait.Err())
	}
	eps := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		eps = append(eps, "http://"+l.Addr().String())
	}
	return &Embedded{etcd: e, endpoints: eps, closing: closing}, nil
}

// Endpoints are the client URLs to give Connect.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err reports a fatal error of the running member.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the member and waits until it has; it may be called again.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
	return nil
}

// loopbackURL reads "IP:port" or "http://IP:port" and refuses anything
// that is not a loopback IP address.
func loopbackURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("%q: want IP:port or http://IP:port", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("%q: the embedded etcd listens on loopback addresses only", s)
	}
	if port == "" {
		return nil, fmt.Errorf("%q: no port", s)
	}
	u.Path = ""
	return u, nil
}
