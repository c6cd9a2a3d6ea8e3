package embedded

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

func TestLoopbackURL(t *testing.T) {
	cases := []struct{ in, scheme, want, err string }{
		{"127.0.0.1:2479", "http", "http://127.0.0.1:2479", ""},
		{"127.0.0.1:2479", "https", "https://127.0.0.1:2479", ""},
		{"https://127.0.0.1:2479", "https", "https://127.0.0.1:2479", ""},
		{"http://127.0.0.2:2479", "http", "http://127.0.0.2:2479", ""},
		{"[::1]:2479", "http", "http://[::1]:2479", ""},
		{"http://127.0.0.1:2479/", "http", "http://127.0.0.1:2479", ""},
		{"0.0.0.0:2479", "http", "", "loopback addresses only"},
		{"192.0.2.1:2479", "http", "", "loopback addresses only"},
		{"localhost:2479", "http", "", "loopback addresses only"},
		{"127.0.0.1", "http", "", "missing port"},
		{"127.0.0.1:", "http", "", "no port"},
		{"ftp://127.0.0.1:2479", "http", "", "want IP:port"},
		{"http://127.0.0.1:2479/x", "http", "", "want IP:port"},
	}
	for _, tc := range cases {
		t.Run(tc.in+" "+tc.scheme, func(t *testing.T) {
			u, err := loopbackURL(tc.in, tc.scheme)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", u, err, tc.want)
			}
		})
	}
}

func TestEmbedConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		ec, err := embedConfig(Config{Dir: "/x"})
		if err != nil {
			t.Fatal(err)
		}
		if ec.Name != "meridian" || ec.ListenClientUrls[0].Host != DefaultClientURL ||
			ec.ListenPeerUrls[0].Host != DefaultPeerURL || ec.InitialCluster != "meridian=http://"+DefaultPeerURL ||
			ec.LogLevel != "warn" || ec.AutoCompactionRetention == "0" {
			t.Fatalf("config %+v", ec)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		tls := &MemberTLS{CAFile: "/x/ca.pem", CertFile: "/x/member.pem", KeyFile: "/x/member-key.pem"}
		ec, err := embedConfig(Config{Dir: "/x", TLS: tls})
		if err != nil {
			t.Fatal(err)
		}
		if ec.ListenClientUrls[0].Scheme != "https" || ec.ListenPeerUrls[0].Scheme != "https" || ec.InitialCluster != "meridian=https://"+DefaultPeerURL {
			t.Fatalf("URLs %v %v %s", ec.ListenClientUrls, ec.ListenPeerUrls, ec.InitialCluster)
		}
		for name, info := range map[string]transport.TLSInfo{"client": ec.ClientTLSInfo, "peer": ec.PeerTLSInfo} {
			if !info.ClientCertAuth || info.TrustedCAFile != tls.CAFile || info.CertFile != tls.CertFile || info.KeyFile != tls.KeyFile {
				t.Errorf("%s TLS %+v: want certificates of the CA required", name, info)
			}
		}
	})
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no directory", Config{}, "no data directory"},
		{"client not on loopback", Config{Dir: "/x", ClientURL: "192.0.2.1:2479"}, "client URL"},
		{"peer not on loopback", Config{Dir: "/x", PeerURL: "0.0.0.0:2480"}, "peer URL"},
		{"same address twice", Config{Dir: "/x", ClientURL: "127.0.0.1:2479", PeerURL: "127.0.0.1:2479"}, "both"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := embedConfig(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClientEndpoint(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
		err  string
	}{
		{"default", Config{Dir: "/x"}, "http://" + DefaultClientURL, ""},
		{"configured", Config{Dir: "/x", ClientURL: "127.0.0.2:3000", PeerURL: "127.0.0.2:3001"}, "http://127.0.0.2:3000", ""},
		{"TLS", Config{Dir: "/x", TLS: &MemberTLS{}}, "https://" + DefaultClientURL, ""},
		{"port 0", Config{Dir: "/x", ClientURL: "127.0.0.1:0"}, "", "port 0"},
		{"not loopback", Config{Dir: "/x", ClientURL: "192.0.2.1:2479"}, "", "loopback addresses only"},
		{"no directory", Config{}, "", "no data directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.ClientEndpoint()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}
