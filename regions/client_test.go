package regions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestEtcdConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  EtcdConfig
		want string // "" = valid
	}{
		{"minimal", EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}}, ""},
		{"full", EtcdConfig{Endpoints: []string{"https://a:2379"}, CAFile: "ca", CertFile: "c", KeyFile: "k", Username: "u", Password: "p", DialTimeout: time.Second}, ""},
		{"no endpoints", EtcdConfig{}, "no endpoints"},
		{"empty endpoint", EtcdConfig{Endpoints: []string{""}}, "endpoints[0] is empty"},
		{"cert without key", EtcdConfig{Endpoints: []string{"a:1"}, CertFile: "c"}, "go together"},
		{"user without password", EtcdConfig{Endpoints: []string{"a:1"}, Username: "u"}, "go together"},
		{"negative timeout", EtcdConfig{Endpoints: []string{"a:1"}, DialTimeout: -1}, "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConnect(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		cfg  EtcdConfig
		want string
	}{
		{"invalid", EtcdConfig{}, "no endpoints"},
		{"missing CA file", EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, CAFile: filepath.Join(dir, "none.pem")}, "ca_file"},
		{"CA file without a certificate", EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, CAFile: junk}, "no PEM certificate"},
		{"bad key pair", EtcdConfig{Endpoints: []string{"127.0.0.1:1"}, CertFile: junk, KeyFile: junk}, "cert_file/key_file"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := Connect(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("does not wait for etcd", func(t *testing.T) {
		// Nothing listens there: the client is built anyway, so a server
		// can start and serve its last state; requests fail until etcd is up.
		port := freePorts(t, 1)[0]
		c, err := Connect(context.Background(), EtcdConfig{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", port)}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := c.Get(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("get without etcd: %v", err)
		}
	})
}

func TestZapToSlog(t *testing.T) {
	h := &captureHandler{}
	lg := zapLogger(testLoggerTo(h), "etcd").With(zap.String("member", "m1"))
	lg.Info("chatty", zap.Int("n", 1))
	lg.Warn("slow apply", zap.Duration("took", time.Second), zap.Error(errors.New("boom")))
	lg.Error("failed")
	if h.find("chatty") != "" {
		t.Error("info passed through")
	}
	if got := h.find("WARN slow apply"); !strings.Contains(got, "logger=etcd") || !strings.Contains(got, "member=m1") ||
		!strings.Contains(got, "took=1s") || !strings.Contains(got, "error=boom") {
		t.Errorf("warning logged as %q", got)
	}
	if h.find("ERROR failed") == "" {
		t.Error("error not logged")
	}
	zapLogger(nil, "etcd").Error("dropped") // must not panic
}
