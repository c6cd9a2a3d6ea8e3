package regions

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// EtcdConfig says how to reach an etcd cluster.
type EtcdConfig struct {
	Endpoints []string // "host:port" or "https://host:port"
	// CAFile verifies the servers; CertFile and KeyFile (both or neither)
	// authenticate this client. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	Username, Password        string
	DialTimeout               time.Duration // 0: 5s
	// Logger receives the client's own warnings; nil discards them.
	Logger *slog.Logger
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
		DialTimeout: cfg.DialTimeout,
		// Notice dead connections so the balancer moves to a live member.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// The client warns on every retry while etcd is away; the watcher
		// and the callers report those failures themselves.
		Logger: zapLoggerAt(cfg.Logger, "etcd-client", zapcore.ErrorLevel, nil),
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
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd ca_file %s: no PEM certificate in it", cfg.CAFile)
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

// zapLogger passes etcd's warnings and errors to logger, or drops them
// when logger is nil. etcd logs a lot at info level that an operator of
// Meridian does not need.
func zapLogger(logger *slog.Logger, name string) *zap.Logger {
	return zapLoggerAt(logger, name, zapcore.WarnLevel, nil)
}

// zapLoggerAt passes etcd's logs from level lowest up to logger. While quiet
// is set everything is logged at debug level: an embedded etcd that is
// being closed reports its closed listeners as errors.
func zapLoggerAt(logger *slog.Logger, name string, lowest zapcore.Level, quiet *atomic.Bool) *zap.Logger {
	if logger == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{h: logger.Handler(), min: lowest, quiet: quiet}).Named(name)
}

// slogCore is a zapcore.Core writing to a slog.Handler.
type slogCore struct {
	h      slog.Handler
	min    zapcore.Level
	quiet  *atomic.Bool
	fields []zapcore.Field
}

func (c *slogCore) level(l zapcore.Level) slog.Level {
	if c.quiet != nil && c.quiet.Load() {
		return slog.LevelDebug
	}
	return slogLevel(l)
}

var _ zapcore.Core = (*slogCore)(nil)

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return l >= c.min && c.h.Enabled(context.Background(), c.level(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, min: c.min, quiet: c.quiet, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	r := slog.NewRecord(e.Time, c.level(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.AddAttrs(slog.Any(k, enc.Fields[k]))
	}
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
