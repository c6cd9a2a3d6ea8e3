package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// saveFormat1 writes st as the state file format 1 did: the latency table
// inline, base64 in the JSON, and only the save time.
func saveFormat1(t testing.TB, path string, st *regions.State, saved time.Time) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"format": 1, "saved": saved, "state": st})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists the files in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveLoadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	confirmed := time.Date(2026, 1, 2, 3, 6, 0, 0, time.UTC)
	t.Run("round trip", func(t *testing.T) {
		want := fullState()
		if err := SaveState(path, want, confirmed); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.State, want) {
			t.Fatalf("got  %s\nwant %s", describe(got.State), describe(want))
		}
		if !got.Confirmed.Equal(confirmed) || got.Format != 2 || time.Since(got.Saved) > time.Hour {
			t.Fatalf("confirmed %v, saved %v, format %d", got.Confirmed, got.Saved, got.Format)
		}
		// The table is in a file of its own, raw; the state file does
		// not carry it.
		lat := filepath.Join(dir, latencyFileName("t1"))
		if b, err := os.ReadFile(lat); err != nil || string(b) != string(want.Latency.CSV) {
			t.Fatalf("latency file: %q, %v", b, err)
		}
		if b, _ := os.ReadFile(path); strings.Contains(string(b), `"csv"`) {
			t.Fatalf("the state file holds the latency table: %s", b)
		}
	})
	t.Run("a new table replaces the old file", func(t *testing.T) {
		st := fullState()
		st.Latency = &regions.LatencyData{ID: "t2", Entries: 1, CSV: []byte("198.51.100.0/24,us-east,20\n")}
		if err := SaveState(path, st, confirmed); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil || got.State.Latency == nil || got.State.Latency.ID != "t2" || string(got.State.Latency.CSV) != string(st.Latency.CSV) {
			t.Fatalf("got %s, %v", describe(got.State), err)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{latencyFileName("t2"), "state.json"}) {
			t.Fatalf("files %v", names)
		}
	})
	t.Run("replace without a table", func(t *testing.T) {
		st := regions.NewState()
		st.Revision = 43
		if err := SaveState(path, st, confirmed); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil || got.State.Revision != 43 || len(got.State.Regions) != 0 || got.State.Latency != nil {
			t.Fatalf("got %s, %v", describe(got.State), err)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"state.json"}) {
			t.Fatalf("files left beside the state: %v", names)
		}
	})
	t.Run("invalid objects become problems", func(t *testing.T) {
		st := fullState()
		st.Regions["broken"] = &regions.Region{Name: "broken"}
		st.Services["x.example."] = &regions.Service{Name: "y.example."}
		if err := SaveState(path, st, confirmed); err != nil {
			t.Fatal(err)
		}
		got, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.State.Regions["broken"] != nil || got.State.Services["x.example."] != nil || len(got.State.Regions) != 2 || len(got.State.Problems) != 3 {
			t.Fatalf("got %s", describe(got.State))
		}
		if !strings.HasPrefix(got.State.Problems[1], "regions/broken: ") || !strings.HasPrefix(got.State.Problems[2], "services/x.example.: ") {
			t.Fatalf("problems %q", got.State.Problems)
		}
	})
	t.Run("format 1", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "state.json")
		want := fullState()
		saved := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
		saveFormat1(t, p, want, saved)
		got, err := LoadState(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.State, want) {
			t.Fatalf("got  %s\nwant %s", describe(got.State), describe(want))
		}
		if got.Format != 1 || !got.Confirmed.Equal(saved) {
			t.Fatalf("format %d, confirmed %v: want 1 and the save time %v", got.Format, got.Confirmed, saved)
		}
	})

	latencyCases := []struct {
		name   string
		break_ func(t *testing.T, lat string)
		want   string
	}{
		{"latency file missing", func(t *testing.T, lat string) { os.Remove(lat) }, "is missing"},
		{"latency file changed", func(t *testing.T, lat string) {
			if err := os.WriteFile(lat, []byte("192.0.2.0/24,eu-west,99\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not hold the table"},
	}
	for _, tc := range latencyCases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.json")
			if err := SaveState(p, fullState(), confirmed); err != nil {
				t.Fatal(err)
			}
			tc.break_(t, filepath.Join(filepath.Dir(p), latencyFileName("t1")))
			got, err := LoadState(p)
			if err != nil {
				t.Fatal(err)
			}
			if got.State.Latency != nil || len(got.State.Regions) != 2 || !slices.ContainsFunc(got.State.Problems, func(s string) bool {
				return strings.HasPrefix(s, "latency t1: ") && strings.Contains(s, tc.want)
			}) {
				t.Fatalf("latency %v, problems %q", got.State.Latency, got.State.Problems)
			}
		})
	}

	errCases := []struct {
		name, content string
		notExist      bool
		want          string
	}{
		{"missing file", "", true, "no such file"},
		{"not JSON", "{", false, "unexpected end"},
		{"unknown format", `{"format":3,"state":{}}`, false, "format 3, want 2 (or 1)"},
		{"no state", `{"format":2}`, false, "no state"},
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
		if err := SaveState(filepath.Join(dir, "missing", "state.json"), regions.NewState(), confirmed); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestServiceJSON: the state file's services, encoded from the cache,
// are what encoding/json writes for the map, after services came, went
// and changed; a service the cache holds is not encoded again.
func TestServiceJSON(t *testing.T) {
	st := fullState()
	odd := testService("<odd>&.gslb.example.", "eu-west")
	st.Services["<odd>&.gslb.example."] = odd // escaped as encoding/json escapes
	var c serviceJSON
	check := func(label string) {
		t.Helper()
		got, err := c.encode(st.Services)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(st.Services)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %s\nwant %s", label, got, want)
		}
		if len(c.m) != len(st.Services) {
			t.Fatalf("%s: %d services cached, want %d", label, len(c.m), len(st.Services))
		}
	}
	check("first")
	// A cached encoding is what is written: a service seen before is not
	// encoded again (the stale bytes planted here show through).
	c.m[odd] = []byte(`"cached"`)
	if got, _ := c.encode(st.Services); !bytes.Contains(got, []byte(`:"cached"`)) {
		t.Fatalf("the cached encoding was not used: %s", got)
	}
	delete(c.m, odd)
	st.Services["api.gslb.example."] = testService("api.gslb.example.", "us-east")
	check("added")
	st.Services["www.gslb.example."] = testService("www.gslb.example.", "us-east")
	check("replaced")
	delete(st.Services, "<odd>&.gslb.example.")
	check("deleted")
	if got, _ := (*serviceJSON)(nil).encode(nil); string(got) != "null" {
		t.Fatalf("nil map: %s", got)
	}
}

// TestStateOutFields: stateOut encodes every field of regions.State
// but the latency table, under the same names.
func TestStateOutFields(t *testing.T) {
	names := func(typ reflect.Type) []string {
		var out []string
		for f := range typ.Fields() {
			if tag := f.Tag.Get("json"); f.IsExported() && tag != "-" {
				out = append(out, strings.Split(tag, ",")[0])
			}
		}
		return out
	}
	want := slices.DeleteFunc(names(reflect.TypeFor[regions.State]()), func(n string) bool { return n == "latency" })
	if got := names(reflect.TypeFor[stateOut]()); !slices.Equal(got, want) {
		t.Fatalf("stateOut has %v, regions.State %v (latency aside)", got, want)
	}
	st := fullState()
	st.Latency = nil
	services, _ := (*serviceJSON)(nil).encode(st.Services)
	got, _ := json.Marshal(&stateOut{Revision: st.Revision, Regions: st.Regions, Services: services, Health: st.Health, Probers: st.Probers, Problems: st.Problems})
	if want, _ := json.Marshal(st); !bytes.Equal(got, want) {
		t.Fatalf("%s\nwant %s", got, want)
	}
}

// TestSaveStateStreamed: the state file, written with the services
// streamed in place of their mark, is byte for byte what json.Marshal
// made of the whole file, with no service, one with characters
// encoding/json escapes, the mark spelled in strings of the state, and
// with shifts, problems and a latency table.
func TestSaveStateStreamed(t *testing.T) {
	odd := fullState()
	odd.Services["<odd>&.gslb.example."] = testService("<odd>&.gslb.example.", "eu-west")
	// The mark, spelled inside strings around the services.
	mark := "\x00\"services\":\"\\u0000\" \"services\":\"\x00\""
	odd.Shifts = map[string]*regions.Shift{"s1": {ID: "s1", Drain: "eu-west", Reason: mark, Expires: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)}}
	odd.Problems = append(odd.Problems, mark)
	empty := fullState()
	empty.Services = map[string]*regions.Service{}
	none := fullState()
	none.Services = nil
	none.Latency = nil
	for _, tc := range []struct {
		name string
		st   *regions.State
	}{
		{"full", fullState()},
		{"odd characters and shifts", odd},
		{"no services", empty},
		{"nil services, no latency table", none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			confirmed := time.Date(2026, 1, 2, 3, 6, 0, 0, time.UTC)
			var c serviceJSON
			_, n, err := saveState(path, tc.st, confirmed, nil, &c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n < int64(len(got)) {
				t.Errorf("%d bytes written counted, the file has %d", n, len(got))
			}
			var head struct {
				Saved   time.Time   `json:"saved"`
				Latency *latencyRef `json:"latency"`
			}
			if err := json.Unmarshal(got, &head); err != nil {
				t.Fatalf("the file is not JSON: %v\n%s", err, got)
			}
			services, err := (*serviceJSON)(nil).encode(tc.st.Services)
			if err != nil {
				t.Fatal(err)
			}
			st := tc.st
			want, err := json.Marshal(stateFileOut{Format: stateFileFormat, Saved: head.Saved, Confirmed: confirmed, Latency: head.Latency, State: &stateOut{
				Revision: st.Revision, Regions: st.Regions, Services: services, Health: st.Health, Probers: st.Probers, Shifts: st.Shifts, Problems: st.Problems}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the file\n%s\nwant\n%s", got, want)
			}
			loaded, err := LoadState(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, saved := st.Services["www.gslb.example."]; saved && loaded.State.Services["www.gslb.example."] == nil {
				t.Errorf("www.gslb.example. was not loaded back: %v", loaded.State.Problems)
			}
			if len(c.m) != len(st.Services) {
				t.Errorf("%d services cached, want %d", len(c.m), len(st.Services))
			}
		})
	}
}

// encode is what writeTo writes, in memory.
func (c *serviceJSON) encode(services map[string]*regions.Service) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := c.writeTo(&b, services); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
