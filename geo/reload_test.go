package geo

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testlog"
)

// Two versions of a database that answer differently for the same
// addresses, so a lookup shows which one served it.
func reloadFixtureA() fixture {
	return fixture{dbType: "GeoLite2-Country", ipVersion: 6, epoch: 1_700_000_000, nets: []fixtureNet{
		{"192.0.2.0/24", rec("US", "NA")},
		{"2001:db8::/32", rec("NL", "EU")},
	}}
}

func reloadFixtureB() fixture {
	return fixture{dbType: "GeoLite2-City", ipVersion: 6, epoch: 1_700_000_001, nets: []fixtureNet{
		{"192.0.2.0/25", rec("DE", "EU", 50.1, 8.7)},
		{"192.0.2.128/25", rec("FR", "EU")},
		{"2001:db8::/48", rec("BE", "EU")},
	}}
}

// replaceFile writes b next to path and renames it over path, the way a
// database update should be installed.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newReloader installs reloadFixtureA at a new path and opens a Reloader
// on it that logs to logs (nil: not at all); it returns the path and
// both fixtures' bytes.
func newReloader(t *testing.T, logs *testlog.Buffer) (r *Reloader, path string, aBytes, bBytes []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "geo.mmdb")
	aBytes, bBytes = reloadFixtureA().bytes(t), reloadFixtureB().bytes(t)
	replaceFile(t, path, aBytes)
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	r, err := NewReloader(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	return r, path, aBytes, bBytes
}

func TestGeoIPReloaderOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, wantErr string
	}{
		{"missing", filepath.Join(dir, "missing.mmdb"), "no such file"},
		{"unsupported", asnFixture().file(t, dir, "asn.mmdb"), `"GeoLite2-ASN"`},
		{"corrupt", func() string {
			p := filepath.Join(dir, "corrupt.mmdb")
			b := reloadFixtureA().bytes(t)
			if err := os.WriteFile(p, b[:len(b)-20], 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}(), "not a readable MaxMind DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReloader(tt.path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), filepath.Base(tt.path)) {
				t.Fatalf("NewReloader = %v, %v; want error naming the file and containing %q", r, err, tt.wantErr)
			}
		})
	}
}

// TestGeoIPReloadUnderLoad swaps the database back and forth while
// goroutines look addresses up: every answer must be exactly what one of
// the two versions gives, never a mix, and never empty. A corrupt or
// unsupported replacement must leave the last good version serving.
func TestGeoIPReloadUnderLoad(t *testing.T) {
	var logs testlog.Buffer
	r, path, aBytes, bBytes := newReloader(t, &logs)

	dbA, errA := OpenBytes(aBytes)
	dbB, errB := OpenBytes(bBytes)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("192.0.2.200"),
		netip.MustParseAddr("::ffff:192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"),
	}
	for _, a := range addrs {
		if !dbA.Locate(a).Network.IsValid() || !dbB.Locate(a).Network.IsValid() {
			t.Fatalf("fixture does not cover %s in both versions", a)
		}
	}

	const workers, maxLookups = 4, 50_000
	var (
		wg            sync.WaitGroup
		stop          = make(chan struct{})
		bad, fromB, n atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxLookups {
				select {
				case <-stop:
					return
				default:
				}
				a := addrs[(i+w)%len(addrs)]
				got := r.Locate(a)
				n.Add(1)
				switch got {
				case dbA.Locate(a):
				case dbB.Locate(a):
					fromB.Add(1)
				default:
					if bad.Add(1) <= 5 {
						t.Errorf("Locate(%s) = %+v: neither version's answer", a, got)
					}
				}
			}
		}()
	}

	for i := range 20 {
		next := aBytes
		if i%2 == 0 {
			next = bBytes
		}
		replaceFile(t, path, next)
		if err := r.Reload(); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
	}
	// The last good version is A. Now install broken ones.
	serving := r.Current()
	for _, broken := range []struct {
		name string
		b    []byte
	}{
		{"truncated", bBytes[:len(bBytes)/3]},
		{"garbage", []byte("this is not a database")},
		{"asn", asnFixture().bytes(t)},
	} {
		replaceFile(t, path, broken.b)
		if err := r.Reload(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Reload of %s file: err = %v, want an error naming %s", broken.name, err, path)
		}
		if r.Current() != serving {
			t.Errorf("Reload of %s file replaced the serving database", broken.name)
		}
	}
	close(stop)
	wg.Wait()

	if got := r.Locate(addrs[0]); got != dbA.Locate(addrs[0]) {
		t.Errorf("after failed reloads Locate = %+v, want version A's %+v", got, dbA.Locate(addrs[0]))
	}
	if got := r.Current().Info().BuildTime.Unix(); got != 1_700_000_000 {
		t.Errorf("serving build %d, want version A", got)
	}
	if got := strings.Count(logs.String(), `msg="geoip reload failed, keeping the previous database"`); got != 3 {
		t.Errorf("logged %d failed reloads, want 3:\n%s", got, logs.String())
	}
	t.Logf("%d lookups, %d served by version B, %d bad", n.Load(), fromB.Load(), bad.Load())
}

// TestGeoIPReloaderPoll drives the change detection one poll at a time.
func TestGeoIPReloaderPoll(t *testing.T) {
	var logs testlog.Buffer
	r, path, aBytes, bBytes := newReloader(t, &logs)
	build := func() int64 { return r.Current().Info().BuildTime.Unix() }

	steps := []struct {
		name      string
		change    func()
		wantBuild int64
		wantLogs  map[string]int // cumulative
	}{
		{"unchanged", func() {}, 1_700_000_000, map[string]int{"geoip database reloaded": 0}},
		{"replaced", func() { replaceFile(t, path, bBytes) }, 1_700_000_001, map[string]int{"geoip database reloaded": 1}},
		{"unchanged again", func() {}, 1_700_000_001, map[string]int{"geoip database reloaded": 1}},
		{"corrupt", func() { replaceFile(t, path, bBytes[:100]) }, 1_700_000_001, map[string]int{"geoip reload failed, keeping the previous database": 1}},
		{"corrupt, not retried", func() {}, 1_700_000_001, map[string]int{"geoip reload failed, keeping the previous database": 1}},
		{"removed", func() { os.Remove(path) }, 1_700_000_001, map[string]int{"geoip database file unavailable, keeping the loaded one": 1}},
		{"still removed", func() {}, 1_700_000_001, map[string]int{"geoip database file unavailable, keeping the loaded one": 1}},
		{"back", func() { replaceFile(t, path, aBytes) }, 1_700_000_000, map[string]int{"geoip database file available again": 1, "geoip database reloaded": 2}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change()
			r.poll()
			if got := build(); got != s.wantBuild {
				t.Errorf("serving build %d, want %d", got, s.wantBuild)
			}
			for msg, want := range s.wantLogs {
				if got := strings.Count(logs.String(), `msg="`+msg+`"`); got != want {
					t.Errorf("%q logged %d times, want %d", msg, got, want)
				}
			}
		})
	}
}

// TestGeoIPReloaderRun checks that Run notices a replaced file and returns
// nil when its context ends.
func TestGeoIPReloaderRun(t *testing.T) {
	r, path, _, bBytes := newReloader(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, 5*time.Millisecond) }()

	replaceFile(t, path, bBytes)
	// Wait for the poller, bounded; this measures nothing about speed.
	deadline := time.Now().Add(30 * time.Second)
	for r.Current().Info().BuildTime.Unix() != 1_700_000_001 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not load the replaced file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.Locate(netip.MustParseAddr("192.0.2.1")).Country; got != "DE" {
		t.Errorf("after reload Country = %q, want DE", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}
