package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

func TestEtcdConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  EtcdConfig
		want string // "" = valid
	}{
		{"minimal", EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}}, ""},
		{"full", EtcdConfig{Endpoints: []string{"https://a:2379"}, CAFile: "ca", CertFile: "c", KeyFile: "k", Username: "u", Password: "p", DialTimeout: regions.Duration(time.Second)}, ""},
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
		port := etcdtest.FreePorts(t, 1)[0]
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
