package geo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// The real build from /usr/share/tor takes seconds, so the tests and
// benchmarks of one run share a single build, written under a directory
// that TestMain removes.
var (
	sharedDir string

	torOnce  sync.Once
	torPath  string
	torStats BuildStats
	torTook  time.Duration
	torErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meridian-geo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// torBuild returns the path of a database built from Debian's tor-geoipdb
// files, failing the test when they are not installed.
func torBuild(tb testing.TB) (string, BuildStats) {
	tb.Helper()
	testtool.NeedFile(tb, DefaultTorGeoIPv4)
	testtool.NeedFile(tb, DefaultTorGeoIPv6)
	torOnce.Do(func() {
		var out bytes.Buffer
		start := time.Now()
		torStats, torErr = BuildTorCountryDB(context.Background(), &out, BuildOptions{V4Path: DefaultTorGeoIPv4, V6Path: DefaultTorGeoIPv6})
		torTook = time.Since(start)
		if torErr == nil {
			torPath = filepath.Join(sharedDir, "tor-country.mmdb")
			torErr = os.WriteFile(torPath, out.Bytes(), 0o644)
		}
	})
	if torErr != nil {
		tb.Fatalf("building from tor-geoipdb: %v", torErr)
	}
	return torPath, torStats
}

// wellKnown are addresses whose country has been stable for decades, each
// the infrastructure of an organisation tied to its country, so a data
// refresh will not move them:
//   - RIPE NCC, the European RIR, in Amsterdam: 193.0.0.0/21, 2001:67c:2e8::/48
//   - WIDE Project's M root server, Tokyo: 202.12.27.33, 2001:dc3::35
//   - Google Public DNS, registered to Google in the US: 8.8.8.8, 2001:4860:4860::8888
//   - NIC.br, the Brazilian registry, São Paulo: 200.160.0.0/20, 2001:12ff::/32
//
// The 6to4 address embeds 193.0.0.1 and checks the IPv4 alias.
var wellKnown = []struct{ addr, country, continent string }{
	{"193.0.0.1", "NL", "EU"},
	{"2001:67c:2e8::1", "NL", "EU"},
	{"202.12.27.33", "JP", "AS"},
	{"2001:dc3::35", "JP", "AS"},
	{"8.8.8.8", "US", "NA"},
	{"2001:4860:4860::8888", "US", "NA"},
	{"200.160.0.8", "BR", "SA"},
	{"2001:12ff::1", "BR", "SA"},
	{"2002:c100:1::", "NL", "EU"},
	{"::ffff:202.12.27.33", "JP", "AS"},
}

func TestGeoIPTorBuild(t *testing.T) {
	path, stats := torBuild(t)
	t.Logf("built in %v: %+v", torTook, stats)

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	info := db.Info()
	t.Logf("info: %+v", info)
	if info.DatabaseType != BuiltDatabaseType || info.Schema != SchemaCountry || info.Countries < 240 ||
		stats.Countries != info.Countries || stats.BuildTimeSource != "input header" || !info.BuildTime.Equal(stats.BuildTime) {
		t.Errorf("info %+v does not match stats %+v", info, stats)
	}
	if stats.Prefixes < stats.Ranges()/2 || stats.SkippedJunk == 0 || stats.ContinentOnly == 0 {
		t.Errorf("implausible stats %+v", stats)
	}

	mmdblookup := testtool.Need(t, "mmdblookup")
	for _, tt := range wellKnown {
		t.Run(tt.addr, func(t *testing.T) {
			loc := db.Locate(netip.MustParseAddr(tt.addr))
			if loc.Country != tt.country || loc.Continent != tt.continent || !loc.HasCoords || !loc.Network.IsValid() {
				t.Errorf("Locate(%s) = %+v, want %s in %s", tt.addr, loc, tt.country, tt.continent)
			}
			for _, q := range []struct{ path, want string }{{"country iso_code", tt.country}, {"continent code", tt.continent}} {
				out, err := exec.Command(mmdblookup, append([]string{"--file", path, "--ip", tt.addr}, strings.Fields(q.path)...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("mmdblookup %s %s: %v: %s", tt.addr, q.path, err, out)
				}
				if got := strings.TrimSpace(string(out)); got != fmt.Sprintf("%q <utf8_string>", q.want) {
					t.Errorf("mmdblookup %s %s = %s, want %q", tt.addr, q.path, got, q.want)
				}
			}
		})
	}
}

// TestGeoIPTorBuildMatchesInput samples the input ranges and checks that
// the database gives each the country (or continent) the file says, at both
// ends of the range.
func TestGeoIPTorBuildMatchesInput(t *testing.T) {
	path, stats := torBuild(t)
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	checked, missing := 0, 0
	for _, in := range []struct {
		path string
		v6   bool
	}{{DefaultTorGeoIPv4, false}, {DefaultTorGeoIPv6, true}} {
		ranges, _, err := readTorFile(context.Background(), in.path, in.v6)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(ranges); i += 211 {
			r := ranges[i]
			tc := classifyCode(r.code)
			if tc.kind == codeJunk || tc.kind == codeWithdrawn {
				continue
			}
			wantCont := tc.continent
			if tc.country != "" {
				wantCont, _ = CountryContinent(tc.country)
			}
			for _, a := range []netip.Addr{r.start, r.end} {
				loc := db.Locate(a)
				if !loc.Network.IsValid() {
					missing++ // refused by the writer
					continue
				}
				checked++
				if loc.Country != tc.country || loc.Continent != wantCont || !loc.Network.Contains(a) {
					t.Errorf("%s (from %s) = %+v, want %q %q", a, r, loc, tc.country, wantCont)
				}
			}
		}
	}
	if checked < 1000 || missing > 2*(stats.RefusedReserved+stats.RefusedAliased) {
		t.Errorf("checked %d addresses, %d missing; stats %+v", checked, missing, stats)
	}
}

// TestGeoIPTorBuildReproducible builds a second time and compares bytes.
// Under the race detector a real build takes several times longer, so
// there it skips itself and `make test` runs it without -race (Makefile,
// unit-norace).
func TestGeoIPTorBuildReproducible(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("second real build skipped with -short or -race; make test runs it without -race")
	}
	path, _ := torBuild(t)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := BuildTorCountryDB(context.Background(), &again, BuildOptions{V4Path: DefaultTorGeoIPv4, V6Path: DefaultTorGeoIPv6}); err != nil {
		t.Fatal(err)
	}
	if a, b := sha256.Sum256(first), sha256.Sum256(again.Bytes()); a != b {
		t.Errorf("two builds differ: %x vs %x", a, b)
	}
}
