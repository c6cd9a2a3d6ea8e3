package store

// Helpers for the store's tests, which run against a real embedded etcd
// (see internal/etcdtest).

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// recorder keeps every State a watcher delivers, with its JSON at the
// time, to check later that none was modified after delivery.
type recorder struct {
	mu     sync.Mutex
	states []*regions.State
	frozen [][]byte
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) onState(st *regions.State) {
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

func (r *recorder) latest() *regions.State {
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
func (r *recorder) waitFor(t testing.TB, what string, ok func(*regions.State) bool) *regions.State {
	t.Helper()
	deadline := time.NewTimer(etcdtest.WaitLimit)
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

func describe(st *regions.State) string {
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
	runParts(t, func(ctx context.Context) error { return w.Run(ctx, r.onState) })
}

// runParts runs each of runs until the test ends, and checks that each
// returns nil soon after its context ends.
func runParts(t testing.TB, runs ...func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(runs))
	for _, run := range runs {
		go func() { done <- run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range runs {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(etcdtest.WaitLimit):
				t.Errorf("a run did not return after its context ended")
			}
		}
	})
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
func testRegion(name string, octet int) *regions.Region {
	return &regions.Region{
		Name:     name,
		VIPs:     []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(octet)})},
		Location: regions.Location{Lat: 50, Lon: 8, Country: "DE", Continent: "EU"},
		Check:    regions.HealthCheck{Type: "tcp", Port: 443},
	}
}

// testService is a valid weighted service over regions, weight 10 each.
func testService(name string, names ...string) *regions.Service {
	s := &regions.Service{Name: name, TTL: 30, Policy: regions.PolicyWeighted}
	for _, r := range names {
		s.Regions = append(s.Regions, regions.ServiceRegion{Region: r, Weight: 10})
	}
	return s
}

// seedRegions creates the regions named (testRegion, with the addresses
// 192.0.2.1, .2, … in order) and then the services given.
func seedRegions(t testing.TB, s *Store, names []string, services ...*regions.Service) {
	t.Helper()
	ctx := etcdtest.Ctx(t)
	for i, name := range names {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range services {
		if _, err := s.PutService(ctx, svc, IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
}

// seedOne writes one of each kind of state: region eu-west, the service
// www.gslb.example. in it, and a one-line latency table.
func seedOne(t *testing.T, s *Store) {
	t.Helper()
	ctx := etcdtest.Ctx(t)
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west"), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,10\n")); err != nil {
		t.Fatal(err)
	}
}

// upReport is a trusted report saying every VIP listed is up.
func upReport(region, prober string, vips ...string) *regions.HealthReport {
	h := &regions.HealthReport{Region: region, Prober: prober, Trusted: true, Observed: time.Unix(1700000000, 0).UTC()}
	for _, v := range vips {
		h.VIPs = append(h.VIPs, regions.VIPHealth{Addr: netip.MustParseAddr(v), Up: true, Successes: 2, Since: time.Unix(1699999990, 0).UTC()})
	}
	return h
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

// all is every record logged so far.
func (h *captureHandler) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

// testLoggerTo logs to h, for tests that check what was logged.
func testLoggerTo(h *captureHandler) *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		h.next = etcdtest.Logger().Handler()
	}
	return slog.New(h)
}
