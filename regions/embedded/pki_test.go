package embedded_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

// tlsMember is a member with the material EnsurePKI makes, its ports
// free ones.
func tlsMember(t *testing.T, name string) (*etcdtest.Member, embedded.Config, embedded.PKI) {
	t.Helper()
	m := etcdtest.NewMember(t, name)
	cfg := m.Config()
	pki, err := embedded.EnsurePKI(filepath.Join(filepath.Dir(m.Dir), "etcd-tls"), cfg, time.Now(), etcdtest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = pki.MemberTLS()
	return m, cfg, pki
}

func connectAs(t *testing.T, endpoint string, c embedded.Client) *clientv3.Client {
	t.Helper()
	cli, err := store.Connect(context.Background(), store.EtcdConfig{Endpoints: []string{endpoint}, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestTLSMemberRefusesStrangers: a member with EnsurePKI's material
// serves the server's and the probers' certificates, and no client
// without one of its CA: not etcd's client without TLS, nor with TLS and
// no certificate, nor etcdctl without --cert, nor an HTTP client (curl's
// way) on the client port or the peer port, plain or TLS.
func TestTLSMemberRefusesStrangers(t *testing.T) {
	m, cfg, pki := tlsMember(t, "tls")
	p, log := startChild(t, cfg, "member")
	waitReady(t, p, log)
	clientURL := fmt.Sprintf("https://127.0.0.1:%d", m.ClientPort)
	if eps := p.Endpoints(); len(eps) != 1 || eps[0] != clientURL {
		t.Fatalf("endpoints %v, want %s", eps, clientURL)
	}

	// Those with the CA's certificates get in.
	ctx := etcdtest.Ctx(t)
	if _, err := connectAs(t, clientURL, pki.Server()).Put(ctx, "/meridian/regions/x", "from the server"); err != nil {
		t.Fatalf("the server's certificate: %v", err)
	}
	if resp, err := connectAs(t, clientURL, pki.Prober()).Get(ctx, "/meridian/regions/x"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the probers' certificate: %v %v", resp, err)
	}

	// etcd's own client, without a certificate.
	other := otherClient(t)
	for name, ec := range map[string]store.EtcdConfig{
		"plain":               {Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", m.ClientPort)}},
		"TLS, no certificate": {Endpoints: []string{clientURL}, CAFile: pki.Server().CAFile},
		"another CA's":        {Endpoints: []string{clientURL}, CAFile: pki.Server().CAFile, CertFile: other.CertFile, KeyFile: other.KeyFile},
	} {
		t.Run("etcd client, "+name, func(t *testing.T) {
			cli, err := store.Connect(context.Background(), ec)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if resp, err := cli.Get(ctx, "/meridian/regions/x"); err == nil {
				t.Fatalf("read without the CA's client certificate: %v", resp.Kvs)
			}
			ctx, cancel = context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := cli.Put(ctx, "/meridian/regions/x", "rewritten"); err == nil {
				t.Fatal("wrote without the CA's client certificate")
			}
		})
	}

	// HTTP, as curl would: the client port serves /version and the
	// peer port /members to whoever completes the handshake.
	roots := x509.NewCertPool()
	b, err := os.ReadFile(pki.Server().CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(b)
	member, err := tls.LoadX509KeyPair(pki.MemberTLS().CertFile, pki.MemberTLS().KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string, cfg *tls.Config) (int, error) {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	for _, port := range []struct {
		name string
		port int
		path string
	}{{"client port", m.ClientPort, "/version"}, {"peer port", m.PeerPort, "/members"}} {
		t.Run("HTTP on the "+port.name, func(t *testing.T) {
			host := fmt.Sprintf("127.0.0.1:%d", port.port)
			if code, err := get("https://"+host+port.path, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{member}}); err != nil || code != http.StatusOK {
				t.Fatalf("with the member's certificate: %d %v", code, err)
			}
			if code, err := get("http://"+host+port.path, nil); err == nil && code == http.StatusOK {
				t.Error("plain HTTP answered 200")
			}
			if code, err := get("https://"+host+port.path, &tls.Config{InsecureSkipVerify: true}); err == nil {
				t.Errorf("TLS without a client certificate answered %d", code)
			}
		})
	}

	t.Run("etcdctl", func(t *testing.T) {
		etcdctl := testtool.Need(t, "etcdctl")
		run := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, etcdctl, append([]string{"--endpoints", clientURL, "--command-timeout", "1s", "--dial-timeout", "1s"}, args...)...)
			cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		for _, args := range [][]string{
			{"get", "/meridian/regions/x"},
			{"--cacert", pki.Server().CAFile, "get", "/meridian/regions/x"},
			{"--insecure-skip-tls-verify", "put", "/meridian/regions/x", "rewritten"},
		} {
			if out, err := run(args...); err == nil || strings.Contains(out, "from the server") {
				t.Errorf("etcdctl %v without a client certificate: %v\n%s", args, err, out)
			}
		}
		s := pki.Server()
		if out, err := run("--cacert", s.CAFile, "--cert", s.CertFile, "--key", s.KeyFile, "get", "/meridian/regions/x"); err != nil || !strings.Contains(out, "from the server") {
			t.Errorf("etcdctl with the server's certificate: %v\n%s", err, out)
		}
	})
}

// otherClient is a client certificate of a CA the member does not know.
func otherClient(t *testing.T) embedded.Client {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := tlsfiles.NewCA("stranger", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := embedded.Client{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "c-key.pem")}
	if err := ca.IssueFiles(c.CertFile, c.KeyFile, tlsfiles.Leaf{CommonName: "meridian-server", Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnsurePKI: the first start makes the CA and three certificates,
// keys mode 0600 in a directory of mode 0700; later starts keep them,
// closing a key or the directory found open; a certificate that does not
// name the member's addresses, ends within a year or is not the CA's is
// made anew, and a CA ending within a year is replaced with all of them.
func TestEnsurePKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-tls")
	cfg := embedded.Config{Dir: filepath.Join(filepath.Dir(dir), "etcd"), ClientURL: "127.0.0.1:2479", PeerURL: "127.0.0.1:2480"}
	now := time.Now()
	var logs testlog.Buffer
	ensure := func(cfg embedded.Config, now time.Time) embedded.PKI {
		t.Helper()
		p, err := embedded.EnsurePKI(dir, cfg, now, logs.Logger())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
		return out
	}
	modes := func() {
		t.Helper()
		for name, want := range map[string]os.FileMode{"": 0o700, "ca-key.pem": 0o600, "member-key.pem": 0o600, "server-key.pem": 0o600,
			"prober-key.pem": 0o600, "ca.pem": 0o644, "member.pem": 0o644} {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil || st.Mode().Perm() != want {
				t.Errorf("%s: %v (%v), want %04o", name, st.Mode().Perm(), err, want)
			}
		}
	}
	changed := func(before, after map[string]string) []string {
		var out []string
		for name, a := range after {
			if b, ok := before[name]; !ok || a != b {
				out = append(out, name)
			}
		}
		return out
	}

	p := ensure(cfg, now)
	first := read()
	if len(first) != 8 {
		t.Fatalf("files: %v", len(first))
	}
	modes()
	if want := map[string]string{"embedded_etcd_ca": filepath.Join(dir, "ca.pem"), "embedded_etcd_member": filepath.Join(dir, "member.pem"),
		"embedded_etcd_client": filepath.Join(dir, "server.pem")}; fmt.Sprint(p.Certificates()) != fmt.Sprint(want) {
		t.Errorf("certificates %v", p.Certificates())
	}

	// Opened up: closed again, nothing else changes.
	for _, f := range []string{dir, filepath.Join(dir, "server-key.pem")} {
		if err := os.Chmod(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ensure(cfg, now)
	if c := changed(first, read()); len(c) != 0 {
		t.Errorf("a second start changed %v", c)
	}
	modes()
	if !strings.Contains(logs.String(), "a key was open to others; made 0600 again") || !strings.Contains(logs.String(), "the directory was open to others") {
		t.Errorf("no warning of the open files:\n%s", logs.String())
	}

	for _, tc := range []struct {
		name string
		edit func() (embedded.Config, time.Time)
		want []string // the files made anew
	}{
		{"the peer moved", func() (embedded.Config, time.Time) {
			c := cfg
			c.PeerURL = "127.0.0.3:2480"
			return c, now
		}, []string{"member-key.pem", "member.pem"}},
		{"a certificate of another CA", func() (embedded.Config, time.Time) {
			other := otherClient(t)
			for from, to := range map[string]string{other.CertFile: "prober.pem", other.KeyFile: "prober-key.pem"} {
				b, err := os.ReadFile(from)
				if err != nil {
					t.Fatal(err)
				}
				if err := tlsfiles.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return cfg, now
		}, []string{"prober-key.pem", "prober.pem"}},
		{"a key lost", func() (embedded.Config, time.Time) {
			if err := os.Remove(filepath.Join(dir, "server-key.pem")); err != nil {
				t.Fatal(err)
			}
			return cfg, now
		}, []string{"server-key.pem", "server.pem"}},
		{"nine years later, the certificates end within a year", func() (embedded.Config, time.Time) {
			return cfg, now.Add(9*365*24*time.Hour + 24*time.Hour)
		}, []string{"ca-key.pem", "ca.pem", "member-key.pem", "member.pem", "prober-key.pem", "prober.pem", "server-key.pem", "server.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, when := tc.edit()
			edited := read()
			ensure(c, when)
			got := changed(edited, read())
			if slices.Sort(got); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("made anew %v, want %v", got, tc.want)
			}
			modes()
		})
	}
}

// TestTLSMemberKeepsPlainData: a data directory a member made without
// TLS (a server before the embedded etcd had it) opens with TLS, its
// data there.
func TestTLSMemberKeepsPlainData(t *testing.T) {
	m, cfg, pki := tlsMember(t, "upgrade")
	plain := m.Config()
	p, log := startChild(t, plain, "member")
	waitReady(t, p, log)
	cli := etcdtest.Connect(t, m.ClientURL())
	if _, err := cli.Put(etcdtest.Ctx(t), "/meridian/regions/x", "before"); err != nil {
		t.Fatal(err)
	}
	p.Stop(etcdtest.WaitLimit)

	p, log = startChild(t, cfg, "member")
	waitReady(t, p, log)
	resp, err := connectAs(t, p.Endpoints()[0], pki.Server()).Get(etcdtest.Ctx(t), "/meridian/regions/x")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("after the move to TLS: %v %v\n%s", resp, err, log)
	}
}
