package regions

// Helpers for the tests that need etcd: a real embedded etcd on loopback,
// shared by the tests of one binary (each test under its own key prefix),
// and dedicated members for the tests that stop and restart etcd.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// waitLimit bounds every wait for something to happen in etcd tests: a
// liveness limit for a stuck test on a loaded machine, not a speed check.
const waitLimit = 30 * time.Second

var shared struct {
	once   sync.Once
	dir    string
	etcd   *Embedded
	client *clientv3.Client
	err    error
}

func TestMain(m *testing.M) {
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
	os.Exit(code)
}

// sharedClient returns a client of the etcd shared by this test binary,
// starting it on first use.
func sharedClient(t testing.TB) *clientv3.Client {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "meridian-etcd-")
		if shared.err != nil {
			return
		}
		var ports []int
		if ports, shared.err = findFreePorts(2); shared.err != nil {
			return
		}
		shared.etcd, shared.err = StartEmbedded(context.Background(), EmbeddedConfig{
			Dir:       filepath.Join(shared.dir, "etcd"),
			ClientURL: fmt.Sprintf("127.0.0.1:%d", ports[0]),
			PeerURL:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
			Logger:    testLogger(),
		})
		if shared.err != nil {
			return
		}
		shared.client, shared.err = Connect(context.Background(), EtcdConfig{Endpoints: shared.etcd.Endpoints(), Logger: testLogger()})
	})
	if shared.err != nil {
		t.Fatalf("shared etcd: %v", shared.err)
	}
	return shared.client
}

var prefixSeq atomic.Int64

// testPrefix is a key prefix of the test's own in the shared etcd.
func testPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/test/%s-%d/", name, prefixSeq.Add(1))
}

// testLogger discards unless MERIDIAN_TEST_LOG is set, so etcd's warnings
// (expected when tests stop members) stay out of the output.
func testLogger() *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freePorts finds n loopback ports free right now: all are held open
// together so they differ, then released for etcd to bind.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	p, err := findFreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func findFreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// member is an embedded etcd a test can stop and start again on the same
// directory and ports.
type member struct {
	t          testing.TB
	name, dir  string
	clientPort int
	peerPort   int
	cluster    string // initial cluster of a multi-member test; "" for one
	electionMs uint   // 0: etcd's default
	e          *Embedded
}

func newMember(t testing.TB, name string) *member {
	p := freePorts(t, 2)
	return &member{t: t, name: name, dir: filepath.Join(t.TempDir(), name), clientPort: p[0], peerPort: p[1]}
}

func (m *member) clientURL() string { return fmt.Sprintf("http://127.0.0.1:%d", m.clientPort) }
func (m *member) peerURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", m.peerPort) }

func (m *member) config() EmbeddedConfig {
	return EmbeddedConfig{Dir: m.dir, ClientURL: m.clientURL(), PeerURL: m.peerURL(), Name: m.name, Logger: testLogger()}
}

// start starts the member and waits until it serves; the members of a
// cluster must be started concurrently, as each needs a quorum.
func (m *member) start() error {
	ec, err := embedConfig(m.config())
	if err != nil {
		return err
	}
	if m.cluster != "" {
		ec.InitialCluster = m.cluster
	}
	if m.electionMs > 0 {
		ec.ElectionMs = m.electionMs
		ec.TickMs = m.electionMs / 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	e, err := startEmbed(ctx, ec, testLogger())
	if err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.e = e
	return nil
}

// startAll starts members concurrently and fails the test if one fails.
func startAll(t testing.TB, ms ...*member) {
	t.Helper()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (m *member) stop() {
	if m.e != nil {
		m.e.Close()
		m.e = nil
	}
}

// startCluster starts n members that form one cluster, concurrently since
// each waits for a quorum.
func startCluster(t testing.TB, n int) []*member {
	t.Helper()
	ms := make([]*member, n)
	var peers []string
	for i := range ms {
		ms[i] = newMember(t, fmt.Sprintf("m%d", i))
		peers = append(peers, ms[i].name+"="+ms[i].peerURL())
	}
	for _, m := range ms {
		m.cluster = strings.Join(peers, ",")
		// A member cancels watches after three election timeouts without
		// a leader; shorter ones keep the quorum test short.
		m.electionMs = 500
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.stop()
		}
	})
	startAll(t, ms...)
	return ms
}

func connectTest(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := Connect(context.Background(), EtcdConfig{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// recorder keeps every State a watcher delivers, with its JSON at the
// time, to check later that none was modified after delivery.
type recorder struct {
	mu     sync.Mutex
	states []*State
	frozen [][]byte
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) onState(st *State) {
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.states = append(r.states, st)
	r.frozen = append(r.frozen, b)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) latest() *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return nil
	}
	return r.states[len(r.states)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}

// waitFor waits until the latest State satisfies ok, and returns it.
func (r *recorder) waitFor(t testing.TB, what string, ok func(*State) bool) *State {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		if st := r.latest(); st != nil && ok(st) {
			return st
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("no state with %s; latest: %s", what, describe(r.latest()))
		}
	}
}

// checkUnmodified fails if a delivered State changed afterwards.
func (r *recorder) checkUnmodified(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, st := range r.states {
		b, _ := json.Marshal(st)
		if string(b) != string(r.frozen[i]) {
			t.Errorf("state %d (revision %d) was modified after delivery", i, st.Revision)
		}
	}
}

func describe(st *State) string {
	if st == nil {
		return "none"
	}
	b, _ := json.Marshal(st)
	if len(b) > 2000 {
		b = append(b[:2000], "…"...)
	}
	return string(b)
}

// runWatcher runs w until the test ends and checks that Run returns nil.
func runWatcher(t testing.TB, w *Watcher, r *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, r.onState) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

// waitUntil polls cond until it holds.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fastWatcher has short probes and backoffs so outage tests finish soon.
func fastWatcher(c *clientv3.Client, prefix string, logger *slog.Logger) *Watcher {
	w := NewWatcher(c, prefix, logger)
	w.ListTimeout = time.Second
	w.ProbeInterval = 300 * time.Millisecond
	w.ProbeTimeout = 700 * time.Millisecond
	w.MinBackoff = 50 * time.Millisecond
	w.MaxBackoff = 500 * time.Millisecond
	return w
}

// testRegion is a valid region with one documentation address.
func testRegion(name string, octet int) *Region {
	return &Region{
		Name:     name,
		VIPs:     []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(octet)})},
		Location: Location{Lat: 50, Lon: 8, Country: "DE", Continent: "EU"},
		Check:    HealthCheck{Type: "tcp", Port: 443},
	}
}

// testService is a valid weighted service over regions, weight 10 each.
func testService(name string, regions ...string) *Service {
	s := &Service{Name: name, TTL: 30, Policy: PolicyWeighted}
	for _, r := range regions {
		s.Regions = append(s.Regions, ServiceRegion{Region: r, Weight: 10})
	}
	return s
}

// keyRevs lists every key under prefix with its mod revision, to check
// that a refused write changed nothing.
func keyRevs(t testing.TB, c *clientv3.Client, prefix string) map[string]int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.ModRevision
	}
	return out
}

// captureHandler keeps log records for tests that check what was logged.
type captureHandler struct {
	mu      sync.Mutex
	records []string
	next    slog.Handler // also logs here, if set
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *captureHandler) WithGroup(string) slog.Handler            { return h }
func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, b.String())
	h.mu.Unlock()
	if h.next != nil {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *captureHandler) find(substr ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
next:
	for _, r := range h.records {
		for _, s := range substr {
			if !strings.Contains(r, s) {
				continue next
			}
		}
		return r
	}
	return ""
}

// testLoggerTo logs to h, for tests that check what was logged.
func testLoggerTo(h *captureHandler) *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		h.next = testLogger().Handler()
	}
	return slog.New(h)
}
