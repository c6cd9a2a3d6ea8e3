package store

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

func fullState() *regions.State {
	st := regions.NewState()
	st.Revision = 42
	st.Regions["eu-west"] = testRegion("eu-west", 1)
	st.Regions["us-east"] = testRegion("us-east", 2)
	st.Regions["us-east"].Check = regions.HealthCheck{Type: "https", Port: 443, Path: "/health", Interval: regions.Duration(5 * time.Second), Timeout: regions.Duration(time.Second)}
	svc := testService("www.gslb.example.", "eu-west", "us-east")
	svc.Policy = regions.PolicyGeo
	svc.Geo = &regions.GeoMap{Continents: map[string][]string{"EU": {"eu-west"}}, Default: []string{"us-east"}}
	st.Services[svc.Name] = svc
	st.Health["eu-west"] = map[string]*regions.HealthReport{"p1": {Region: "eu-west", Prober: "p1", Trusted: true, Lease: 7,
		Observed: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
		VIPs:     []regions.VIPHealth{{Addr: netip.MustParseAddr("192.0.2.1"), Up: true, Successes: 3, RTT: regions.Duration(3 * time.Millisecond), Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}}}
	st.Probers["p1"] = &regions.ProberInfo{ID: "p1", Region: "us-east", Version: "1.0", Started: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), Lease: 7}
	st.Latency = &regions.LatencyData{ID: "t1", Entries: 1, CSV: []byte("192.0.2.0/24,eu-west,10\n")}
	st.Problems = []string{"/meridian/regions/bad: unexpected end of JSON input"}
	return st
}

func TestSaveLoadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	t.Run("round trip", func(t *testing.T) {
		want := fullState()
		if err := SaveState(path, want); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %s\nwant %s", describe(got), describe(want))
		}
	})
	t.Run("replace", func(t *testing.T) {
		st := regions.NewState()
		st.Revision = 43
		if err := SaveState(path, st); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil || got.Revision != 43 || len(got.Regions) != 0 || got.Latency != nil {
			t.Fatalf("got %s, %v", describe(got), err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("files left beside the state: %v", entries)
		}
	})
	t.Run("invalid objects become problems", func(t *testing.T) {
		st := fullState()
		st.Regions["broken"] = &regions.Region{Name: "broken"}
		st.Services["x.example."] = &regions.Service{Name: "y.example."}
		if err := SaveState(path, st); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Regions["broken"] != nil || got.Services["x.example."] != nil || len(got.Regions) != 2 || len(got.Problems) != 3 {
			t.Fatalf("got %s", describe(got))
		}
		if !strings.HasPrefix(got.Problems[1], "regions/broken: ") || !strings.HasPrefix(got.Problems[2], "services/x.example.: ") {
			t.Fatalf("problems %q", got.Problems)
		}
	})

	errCases := []struct {
		name, content string
		notExist      bool
		want          string
	}{
		{"missing file", "", true, "no such file"},
		{"not JSON", "{", false, "unexpected end"},
		{"unknown format", `{"format":2,"state":{}}`, false, "format 2"},
		{"no state", `{"format":1}`, false, "no state"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.json")
			if !tc.notExist {
				if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadState(p)
			if err == nil || errors.Is(err, fs.ErrNotExist) != tc.notExist || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v (not exist: %v), want %q", err, errors.Is(err, fs.ErrNotExist), tc.want)
			}
		})
	}
	t.Run("unwritable directory", func(t *testing.T) {
		if err := SaveState(filepath.Join(dir, "missing", "state.json"), regions.NewState()); err == nil {
			t.Fatal("no error")
		}
	})
}
