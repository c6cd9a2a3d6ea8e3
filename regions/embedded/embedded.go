package embedded

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

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"

	"github.com/meridian-gslb/meridian/internal/zapslog"
)

// Loopback addresses of the embedded etcd unless configured.
const (
	DefaultClientURL = "127.0.0.1:2479"
	DefaultPeerURL   = "127.0.0.1:2480"
)

// startTimeout bounds the wait for a single member to be ready
// when ctx has no earlier deadline.
const startTimeout = 60 * time.Second

// Config configures the single-member etcd a server runs when no
// etcd endpoints are configured.
type Config struct {
	Dir string // data directory (created 0700)
	// ClientURL and PeerURL are "IP:port" or "http://IP:port" on a
	// loopback address: the embedded etcd is never reachable from outside.
	ClientURL, PeerURL string
	Name               string // member name; default "meridian"
	Logger             *slog.Logger

	// InitialCluster lists the members ("name=http://IP:port,...") of a
	// multi-member cluster on one host; empty for the single member of
	// the default set-up. Tests use it to build clusters.
	InitialCluster string
	// ElectionTimeout shortens etcd's leader election (default 1s; the
	// heartbeat is a tenth of it), for tests that lose and regain quorum.
	ElectionTimeout time.Duration
	// TLS, when set, makes the member serve clients and peers over TLS
	// and accept only those with a certificate of TLS.CAFile (EnsurePKI
	// makes them); nil serves plain HTTP (tests' members).
	TLS *MemberTLS
}

// MemberTLS names a member's TLS files: its certificate and key, for
// clients and peers, and the CA whose client and peer certificates it
// accepts.
type MemberTLS struct {
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// scheme is the URLs' scheme of the member of cfg.
func (cfg Config) scheme() string {
	if cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// Embedded is a running embedded etcd member.
type Etcd struct {
	etcd      *embed.Etcd
	endpoints []string
	closing   *atomic.Bool
	closeOnce sync.Once
}

// Start starts an etcd member in cfg.Dir (a single-member cluster unless
// cfg.InitialCluster names others) and waits until it serves, bounded by
// ctx and a minute; the members of a cluster must be started together, as
// each waits for a quorum. An existing data directory is
// reopened with its data. etcd's own logging goes to cfg.Logger at warn
// level and above.
func Start(ctx context.Context, cfg Config) (*Etcd, error) {
	ec, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	return startEmbed(ctx, ec, cfg.Logger)
}

// ClientEndpoint checks cfg as Start would and returns the URL clients
// reach the member at, known before it starts: a client built on it
// connects once the member runs, also after a restart. It therefore
// refuses port 0.
func (cfg Config) ClientEndpoint() (string, error) {
	ec, err := embedConfig(cfg)
	if err != nil {
		return "", err
	}
	u := ec.ListenClientUrls[0]
	if u.Port() == "0" {
		return "", fmt.Errorf("embedded etcd client URL %s: port 0: the client needs a fixed port", u.Host)
	}
	return u.String(), nil
}

// embedConfig turns our configuration into etcd's (logging is set up by
// startEmbed).
func embedConfig(cfg Config) (*embed.Config, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded etcd: no data directory")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultPeerURL
	}
	if cfg.Name == "" {
		cfg.Name = "meridian"
	}
	curl, err := loopbackURL(cfg.ClientURL, cfg.scheme())
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL: %w", err)
	}
	purl, err := loopbackURL(cfg.PeerURL, cfg.scheme())
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
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if ms := uint(cfg.ElectionTimeout / time.Millisecond); ms > 0 {
		ec.ElectionMs = ms
		ec.TickMs = max(ms/10, 1)
	}
	ec.InitialClusterToken = "meridian"
	if t := cfg.TLS; t != nil {
		// Clients and peers alike must show a certificate of the
		// member's own CA: no other process on the host gets in.
		info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ClientCertAuth: true}
		ec.ClientTLSInfo, ec.PeerTLSInfo = info, info
	}
	// Keep the revision history an hour, so a watcher that lost its
	// stream for less than that resumes without relisting.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	ec.EnableGRPCGateway = false
	ec.LogLevel = "warn"
	return ec, nil
}

func startEmbed(ctx context.Context, ec *embed.Config, logger *slog.Logger) (*Etcd, error) {
	closing := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(logger, "etcd", zapcore.WarnLevel, closing))
	if err := os.MkdirAll(ec.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", ec.Dir, err)
	}
	wait, cancel := context.WithTimeout(ctx, startTimeout)
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
	scheme := "http"
	if !ec.ClientTLSInfo.Empty() {
		scheme = "https"
	}
	eps := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		eps = append(eps, scheme+"://"+l.Addr().String())
	}
	return &Etcd{etcd: e, endpoints: eps, closing: closing}, nil
}

// Endpoints are the client URLs to give Connect.
func (e *Etcd) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err reports a fatal error of the running member.
func (e *Etcd) Err() <-chan error { return e.etcd.Err() }

// Close stops the member and waits until it has; it may be called again.
func (e *Etcd) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
	return nil
}

// loopbackURL reads "IP:port" or "http://IP:port" ("https://" too), and
// refuses anything that is not a loopback IP address; the URL gets
// scheme, the member's.
func loopbackURL(s, scheme string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
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
	u.Path, u.Scheme = "", scheme
	return u, nil
}
