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

// TestPasswordInClear: a username and password sent to an endpoint
// reached without TLS draw a warning; https:// endpoints, or host:port
// ones with TLS files, do not.
func TestPasswordInClear(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   EtcdConfig
		plain []string
	}{
		{"no password", EtcdConfig{Endpoints: []string{"http://10.0.0.1:2379"}}, nil},
		{"http", EtcdConfig{Endpoints: []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}, Username: "u", Password: "p"}, []string{"http://10.0.0.1:2379"}},
		{"host:port without TLS files", EtcdConfig{Endpoints: []string{"10.0.0.1:2379"}, Username: "u", Password: "p"}, []string{"10.0.0.1:2379"}},
		{"host:port with a CA", EtcdConfig{Endpoints: []string{"10.0.0.1:2379"}, CAFile: "ca.pem", Username: "u", Password: "p"}, nil},
		{"http with a CA is still plain", EtcdConfig{Endpoints: []string{"http://10.0.0.1:2379"}, CAFile: "ca.pem", Username: "u", Password: "p"}, []string{"http://10.0.0.1:2379"}},
		{"https", EtcdConfig{Endpoints: []string{"https://etcd-1.example.net:2379"}, Username: "u", Password: "p"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.cfg.PasswordInClear()
			if (msg != "") != (tc.plain != nil) {
				t.Fatalf("%q, want a warning %v", msg, tc.plain != nil)
			}
			for _, ep := range tc.plain {
				if !strings.Contains(msg, ep) {
					t.Errorf("%q does not name %s", msg, ep)
				}
			}
		})
	}
}
