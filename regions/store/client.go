package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/meridian-gslb/meridian/internal/tlsfiles"
	"github.com/meridian-gslb/meridian/internal/zapslog"
	"github.com/meridian-gslb/meridian/regions"
)

// EtcdConfig says how to reach an etcd cluster and where Meridian's keys
// are in it. It is the `etcd:` section of the server's and the prober's
// configuration files.
type EtcdConfig struct {
	// Endpoints: "host:port" or "https://host:port".
	Endpoints []string `yaml:"endpoints"`
	// Prefix is where Meridian's keys live; "" means DefaultPrefix.
	Prefix string `yaml:"prefix"`
	// CAFile verifies the servers; CertFile and KeyFile (both or neither)
	// authenticate this client. Any of them turns TLS on.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DialTimeout bounds connecting; 0 means 5s.
	DialTimeout regions.Duration `yaml:"dial_timeout"`
	// Logger receives the client's own warnings; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Validate checks the configuration without touching the network.
func (c *EtcdConfig) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("etcd: no endpoints"))
	}
	for i, ep := range c.Endpoints {
		if ep == "" {
			errs = append(errs, fmt.Errorf("etcd: endpoints[%d] is empty", i))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("etcd: cert_file and key_file go together"))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("etcd: username and password go together"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("etcd: dial timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// PlainEndpoints are the endpoints the client reaches without TLS:
// http:// and unix:// ones, and host:port ones when no TLS file is set
// (with one, those speak TLS; https:// ones always do).
func (c *EtcdConfig) PlainEndpoints() []string {
	var out []string
	for _, ep := range c.Endpoints {
		scheme, _, ok := strings.Cut(ep, "://")
		switch {
		case !ok && c.CAFile == "" && c.CertFile == "":
		case ok && (scheme == "http" || scheme == "unix"):
		default:
			continue
		}
		out = append(out, ep)
	}
	return out
}

// PasswordInClear says, when a username and password are set and some
// endpoint is reached without TLS, that anyone on the path can read the
// password (etcd's authentication sends it as it is); "" otherwise.
func (c *EtcdConfig) PasswordInClear() string {
	plain := c.PlainEndpoints()
	if c.Username == "" || len(plain) == 0 {
		return ""
	}
	return fmt.Sprintf("the etcd password goes in clear to %s, without TLS: anyone on the path can read it; use https:// endpoints with ca_file (and a client certificate: cert_file, key_file)",
		strings.Join(plain, ", "))
}

// Connect builds a client for cfg. It does not wait for etcd to answer
// (a server must start and serve its last snapshot while etcd is away),
// except that with a username it fetches an auth token, bounded by the
// dial timeout and ctx.
func Connect(ctx context.Context, cfg EtcdConfig) (*clientv3.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf := clientv3.Config{
		Endpoints:   slices.Clone(cfg.Endpoints),
		DialTimeout: time.Duration(cfg.DialTimeout),
		// Notice dead connections so the balancer moves to a live member.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// The client warns on every retry while etcd is away; the watcher
		// and the callers report those failures themselves.
		Logger: zapslog.New(cfg.Logger, "etcd-client", zapcore.ErrorLevel, nil),
		// gRPC's default reconnect backoff grows to two minutes; after an
		// etcd outage the watchers should be back within seconds.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})},
	}
	if conf.DialTimeout == 0 {
		conf.DialTimeout = 5 * time.Second
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		t, err := clientTLS(cfg)
		if err != nil {
			return nil, err
		}
		conf.TLS = t
	}
	type result struct {
		c   *clientv3.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := clientv3.New(conf)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("etcd %v: %w", cfg.Endpoints, r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func clientTLS(cfg EtcdConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd ca_file: %w", err)
		}
		pool, _, err := tlsfiles.ParseCABundle(pem)
		if err != nil {
			return nil, fmt.Errorf("etcd ca_file %s: %w", cfg.CAFile, err)
		}
		t.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
