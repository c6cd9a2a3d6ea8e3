// Package etcdtest gives tests a real etcd on loopback: one embedded
// member shared by the tests of a binary (each test under a key prefix of
// its own), and dedicated members or clusters for tests that stop and
// restart etcd.
//
// etcdtest is for tests only; it imports the embedded etcd server.
package etcdtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions/embedded"
)

// WaitLimit bounds every wait for something to happen in etcd tests: a
// liveness limit for a stuck test on a loaded machine, not a speed check.
const WaitLimit = 30 * time.Second

var shared struct {
	once   sync.Once
	dir    string
	etcd   *embedded.Etcd
	client *clientv3.Client
	err    error
}

// Main runs the tests of a package and then stops the shared etcd, if one
// was started. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared.client != nil {
		shared.client.Close()
	}
	if shared.etcd != nil {
		shared.etcd.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// Shared returns a client of the etcd shared by this test binary,
// starting it on first use. Tests keep to their own Prefix in it.
func Shared(t testing.TB) *clientv3.Client {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "meridian-etcd-")
		if shared.err != nil {
			return
		}
		var ports []int
		if ports, shared.err = testport.Ports(2); shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		shared.etcd, shared.err = embedded.Start(ctx, embedded.Config{
			Dir:       filepath.Join(shared.dir, "etcd"),
			ClientURL: fmt.Sprintf("127.0.0.1:%d", ports[0]),
			PeerURL:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
			Logger:    Logger(),
		})
		if shared.err != nil {
			return
		}
		shared.client, shared.err = connect(shared.etcd.Endpoints())
	})
	if shared.err != nil {
		t.Fatalf("shared etcd: %v", shared.err)
	}
	return shared.client
}

// SharedEndpoints are the client URLs of the shared etcd, for tests that
// start processes or servers of their own against it.
func SharedEndpoints(t testing.TB) []string {
	t.Helper()
	Shared(t)
	return shared.etcd.Endpoints()
}

var prefixSeq atomic.Int64

// Prefix is a key prefix of the test's own in the shared etcd.
func Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/test/%s-%d/", name, prefixSeq.Add(1))
}

// Logger discards unless MERIDIAN_TEST_LOG is set, so etcd's warnings
// (expected when tests stop members) stay out of the output.
func Logger() *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// FreePorts finds n loopback ports free right now, out of the kernel's
// ephemeral range (see testport), released for the caller to bind.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	return testport.Free(t, n)
}

// Member is an embedded etcd a test can stop and start again on the same
// directory and ports.
type Member struct {
	t          testing.TB
	Name, Dir  string
	ClientPort int
	PeerPort   int
	// Cluster is the initial cluster of a multi-member test; "" for one.
	Cluster string
	// ElectionTimeout: 0 for etcd's default.
	ElectionTimeout time.Duration

	e *embedded.Etcd
}

// NewMember prepares a member (not started) in a directory of the test's.
func NewMember(t testing.TB, name string) *Member {
	p := FreePorts(t, 2)
	return &Member{t: t, Name: name, Dir: filepath.Join(t.TempDir(), name), ClientPort: p[0], PeerPort: p[1]}
}

// ClientURL is where clients reach the member.
func (m *Member) ClientURL() string { return fmt.Sprintf("http://127.0.0.1:%d", m.ClientPort) }

// PeerURL is where the other members reach it.
func (m *Member) PeerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", m.PeerPort) }

// Config is the member's embedded configuration.
func (m *Member) Config() embedded.Config {
	return embedded.Config{Dir: m.Dir, ClientURL: m.ClientURL(), PeerURL: m.PeerURL(), Name: m.Name,
		Logger: Logger(), InitialCluster: m.Cluster, ElectionTimeout: m.ElectionTimeout}
}

// Start starts the member and waits until it serves; the members of a
// cluster must be started concurrently (StartAll), as each needs a quorum.
func (m *Member) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	e, err := embedded.Start(ctx, m.Config())
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.e = e
	return nil
}

// Running is the running etcd, nil while stopped.
func (m *Member) Running() *embedded.Etcd { return m.e }

// Stop stops the member; it may be started again.
func (m *Member) Stop() {
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

// Backup stops the member, copies its data directory to a directory of
// the test's (a backup of a stopped member, as an operator takes one),
// starts it again and returns the copy's path.
func (m *Member) Backup() string {
	m.t.Helper()
	m.Stop()
	backup := filepath.Join(m.t.TempDir(), m.Name+"-backup")
	if err := os.CopyFS(backup, os.DirFS(m.Dir)); err != nil {
		m.t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		m.t.Fatal(err)
	}
	return backup
}

// Restore stops the member, replaces its data with a Backup and starts it
// again on the same addresses: every change since the backup is lost.
func (m *Member) Restore(backup string) {
	m.t.Helper()
	m.Stop()
	if err := os.RemoveAll(m.Dir); err != nil {
		m.t.Fatal(err)
	}
	if err := os.CopyFS(m.Dir, os.DirFS(backup)); err != nil {
		m.t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		m.t.Fatal(err)
	}
}

// StartAll starts members concurrently and fails the test if one fails.
func StartAll(t testing.TB, ms ...*Member) {
	t.Helper()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// StartCluster starts n members that form one cluster and stops them when
// the test ends.
func StartCluster(t testing.TB, n int) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	var peers []string
	for i := range ms {
		ms[i] = NewMember(t, fmt.Sprintf("m%d", i))
		peers = append(peers, ms[i].Name+"="+ms[i].PeerURL())
	}
	for _, m := range ms {
		m.Cluster = strings.Join(peers, ",")
		// A member cancels watches after three election timeouts without
		// a leader; shorter ones keep quorum tests short.
		m.ElectionTimeout = 500 * time.Millisecond
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.Stop()
		}
	})
	StartAll(t, ms...)
	return ms
}

// Connect returns a client of endpoints, closed when the test ends.
func Connect(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := connect(endpoints)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connect builds a plain client: the store's own Connect is what its tests
// test, and the store's tests cannot import it through this package.
func connect(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
}

// Ctx is a context that ends with the test, or after WaitLimit.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	t.Cleanup(cancel)
	return ctx
}

// WaitUntil polls cond until it holds, failing the test after WaitLimit.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
