package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestScale1000 is `make scale` at 1,000 services against bounds twice
// its goals at 10,000, so that a control path that grows with the
// number of services again fails the build: a real server process with
// its embedded etcd, the country database from tor-geoipdb, ctl apply,
// DNS queries. The race detector makes the timings meaningless, so under
// it the test skips itself and `make test` runs it without (Makefile,
// unit-norace).
func TestScale1000(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a timed run of a real server: skipped with -short or -race; make test runs it without -race")
	}
	testtool.NeedFile(t, geo.DefaultTorGeoIPv4)
	testtool.NeedFile(t, geo.DefaultTorGeoIPv6)
	dir := t.TempDir()
	bin := filepath.Join(dir, "meridian")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/meridian").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mmdb := filepath.Join(dir, "country.mmdb")
	if out, err := exec.Command(bin, "geoip", "build", "--out", mmdb).CombinedOutput(); err != nil {
		t.Fatalf("geoip build: %v\n%s", err, out)
	}
	r := run{n: 1000, bin: bin, mmdb: mmdb, zones: abs("../zones"), reps: 20}
	res, err := r.measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	for _, c := range []struct {
		name       string
		got, bound time.Duration
	}{
		{"all answering after the apply", res.AllAnswering - res.Apply, 20 * time.Second},
		{"drain p99", res.DrainP99, 200 * time.Millisecond},
		{"health p99", res.HealthP99, 200 * time.Millisecond},
		{"weight p99", res.WeightP99, 200 * time.Millisecond},
		{"restart", res.Restart, 4 * time.Second},
		{"rebuild after one change", res.RebuildOneP99, 10 * time.Millisecond},
		{"geo tables built after the apply", res.Tables - res.Apply, 30 * time.Second},
	} {
		if c.got > c.bound {
			t.Errorf("%s: %v, bound %v", c.name, c.got, c.bound)
		}
	}
	if res.RSSMB > 1000 {
		t.Errorf("peak RSS %d MB, bound 1000 MB", res.RSSMB)
	}
	// The watcher folds the events of the apply into a few builds (one
	// per service before), a drain refreshes views and compiles nothing,
	// and a compiled service stays small.
	if res.ApplyBuilds > res.N/5 {
		t.Errorf("%d snapshot builds from the apply to the geo tables built, bound %d", res.ApplyBuilds, res.N/5)
	}
	if res.DrainCompiled > 1 {
		t.Errorf("%.1f services compiled per drain or undrain, bound 1", res.DrainCompiled)
	}
	if b := res.ServiceBytes / res.N; b > 8<<10 {
		t.Errorf("%d bytes per compiled service, bound %d", b, 8<<10)
	}
	if res.Unmerged > 0 {
		t.Errorf("%d geo services without a merge once the tables are built: the budget should hold 1,000 services' partitions", res.Unmerged)
	}
}
