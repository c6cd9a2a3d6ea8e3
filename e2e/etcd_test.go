//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions/store"
)

// makeCerts runs deploy/certs.sh, as docs/deploy.md tells operators to:
// the CA, one certificate per etcd member, and the client certificates
// of the name servers, the probers and the operator (the suite's own
// writes and etcdctl). A member's certificate names the address it is
// reached at and the address it connects to its peers from, which etcd
// checks against it (--peer-client-cert-auth): on one machine, every
// connection to a loopback address leaves from 127.0.0.1 (`ip route get
// 127.0.0.11` says "src 127.0.0.1"), as the guide's section on member
// certificates says.
func makeCerts(t testing.TB, dir string, members []*etcdMember) {
	t.Helper()
	testtool.Need(t, "openssl")
	script := filepath.Join(repoRoot, "deploy", "certs.sh")
	run := func(args ...string) {
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("deploy/certs.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ca", dir)
	for _, m := range members {
		run("member", dir, m.name, m.host, "127.0.0.1")
	}
	run("client", dir, "meridian-server")
	run("client", dir, "meridian-prober")
	run("client", dir, "meridian-admin")
}

// etcdMember is one member of the cluster: Debian's etcd on a loopback
// address of its own (as if on a host of its own), TLS for clients and
// peers, client certificates required.
type etcdMember struct {
	name       string
	host       string
	clientPort int
	peerPort   int
	dir        string // data directory
	args       []string
	p          *proc
}

func (m *etcdMember) clientURL() string { return fmt.Sprintf("https://%s:%d", m.host, m.clientPort) }
func (m *etcdMember) peerURL() string   { return fmt.Sprintf("https://%s:%d", m.host, m.peerPort) }

// etcdCluster is the three members and the TLS material.
type etcdCluster struct {
	members []*etcdMember
	pki     string
	initial string // --initial-cluster
}

// newEtcdCluster lays out three members on 127.0.0.11-13 with ports free
// on all three, and makes the certificates.
func newEtcdCluster(t testing.TB, pp *testport.Picker) *etcdCluster {
	t.Helper()
	hosts := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	c := &etcdCluster{pki: filepath.Join(runDir, "pki")}
	clientPort, peerPort := pp.Pick(hosts...), pp.Pick(hosts...)
	for i, h := range hosts {
		c.members = append(c.members, &etcdMember{
			name: fmt.Sprintf("etcd-%d", i+1), host: h, clientPort: clientPort, peerPort: peerPort,
			dir: filepath.Join(runDir, fmt.Sprintf("etcd-%d", i+1)),
		})
	}
	var initial []string
	for _, m := range c.members {
		initial = append(initial, m.name+"="+m.peerURL())
	}
	c.initial = strings.Join(initial, ",")
	etcd := testtool.Need(t, "etcd")
	for _, m := range c.members {
		m.args = c.memberArgs(m, etcd)
	}
	makeCerts(t, c.pki, c.members)
	return c
}

// memberArgs is the command line of member m: the one docs/deploy.md
// shows, with this run's paths.
func (c *etcdCluster) memberArgs(m *etcdMember, etcd string) []string {
	return []string{etcd,
		"--name", m.name,
		"--data-dir", m.dir,
		"--listen-client-urls", m.clientURL(),
		"--advertise-client-urls", m.clientURL(),
		"--listen-peer-urls", m.peerURL(),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", c.initial,
		"--initial-cluster-token", "meridian-etcd",
		"--initial-cluster-state", "new",
		"--client-cert-auth",
		"--trusted-ca-file", filepath.Join(c.pki, "ca.pem"),
		"--cert-file", filepath.Join(c.pki, m.name+".pem"),
		"--key-file", filepath.Join(c.pki, m.name+"-key.pem"),
		"--peer-client-cert-auth",
		"--peer-trusted-ca-file", filepath.Join(c.pki, "ca.pem"),
		"--peer-cert-file", filepath.Join(c.pki, m.name+".pem"),
		"--peer-key-file", filepath.Join(c.pki, m.name+"-key.pem"),
		"--auto-compaction-mode", "periodic",
		"--auto-compaction-retention", "1h",
		"--logger", "zap",
	}
}

// restoreArgs are the etcdctl arguments that restore member m from a
// snapshot into its data directory, as docs/deploy.md shows.
func (c *etcdCluster) restoreArgs(m *etcdMember, snapshot string) []string {
	return []string{"snapshot", "restore", snapshot,
		"--name", m.name,
		"--initial-cluster", c.initial,
		"--initial-cluster-token", "meridian-etcd-restored",
		"--initial-advertise-peer-urls", m.peerURL(),
		"--data-dir", m.dir,
	}
}

func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL())
	}
	return eps
}

// clientConfig is the store's etcd settings for a client certificate.
func (c *etcdCluster) clientConfig(cert string) store.EtcdConfig {
	return store.EtcdConfig{
		Endpoints: c.endpoints(),
		CAFile:    filepath.Join(c.pki, "ca.pem"),
		CertFile:  filepath.Join(c.pki, cert+".pem"),
		KeyFile:   filepath.Join(c.pki, cert+"-key.pem"),
	}
}

// connect is a client with the operator's certificate.
func (c *etcdCluster) connect(t testing.TB) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cli, err := store.Connect(ctx, c.clientConfig("meridian-admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// start starts the members given (all when none), concurrently: each
// waits for the others to form a quorum.
func (c *etcdCluster) start(t testing.TB, ms ...*etcdMember) {
	t.Helper()
	if len(ms) == 0 {
		ms = c.members
	}
	for _, m := range ms {
		if m.p != nil && !m.p.exited() {
			t.Fatalf("%s is already running", m.name)
		}
		m.p = startProc(t, m.name, m.args...)
	}
}

// waitHealthy waits until every running member answers a linearizable
// read through its own endpoint.
func (c *etcdCluster) waitHealthy(t testing.TB, cli *clientv3.Client) time.Duration {
	t.Helper()
	return waitFor(t, "etcd members healthy", waitLimit, func() error {
		for _, m := range c.members {
			if m.p == nil || m.p.exited() {
				if m.p != nil {
					return exitedErr(m.p)
				}
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.clientURL())
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if st.Leader == 0 {
				return fmt.Errorf("%s: no leader", m.name)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err
	})
}

// leader is the member that leads now.
func (c *etcdCluster) leader(t testing.TB, cli *clientv3.Client) *etcdMember {
	t.Helper()
	var lead *etcdMember
	waitFor(t, "etcd leader known", waitLimit, func() error {
		for _, m := range c.members {
			if m.p == nil || m.p.exited() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.clientURL())
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				lead = m
				return nil
			}
		}
		return errors.New("no member says it leads")
	})
	return lead
}

// stopAll stops the running members together. The last one standing
// waits for its peers for seconds before it exits: the run is over, so
// it gets two seconds, then SIGKILL.
func (c *etcdCluster) stopAll() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m.p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = m.p.stop(2 * time.Second)
		}()
	}
	wg.Wait()
}
