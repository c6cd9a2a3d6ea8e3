package regions

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleState = "../examples/state.yaml"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDesired(t *testing.T) {
	d, err := LoadDesired(exampleState)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if len(d.Regions) != 3 || len(d.Services) != 3 || d.Services[0].Geo == nil || d.Regions[0].VIPs[1].String() != "2001:db8:10::10" {
		t.Fatalf("example read as %+v", d)
	}

	const region = "regions:\n  - name: a\n    vips: [192.0.2.1]\n    location: {lat: 1, lon: 2}\n    check: {type: tcp, port: 80}\n"
	cases := []struct {
		name, content string
		want          []string // substrings of the error; ":line: field: message" follows the file name
		invalid       bool     // errors.Is(err, ErrInvalid)
	}{
		{"unknown top-level key", region + "zones: []\n", []string{":6: zones: unknown key"}, true},
		{"unknown nested key", strings.Replace(region, "port: 80}", "port: 80, intervall: 5s}", 1),
			[]string{":5: regions[0].check.intervall: unknown key"}, true},
		{"bad address", strings.Replace(region, "[192.0.2.1]", "[192.0.2.1, 192.0.2.300]", 1),
			[]string{":3: regions[0].vips[1]: ", "192.0.2.300"}, false},
		{"bad duration", strings.Replace(region, "port: 80}", "port: 80, interval: 5x}", 1),
			[]string{":5: regions[0].check.interval: ", "5x"}, false},
		{"wrong type", strings.Replace(region, "port: 80", "port: http", 1),
			[]string{":5: regions[0].check.port: ", "cannot unmarshal"}, true},
		{"check address of another VIP", strings.Replace(region, "port: 80}", "port: 80, address: {192.0.2.9: 127.0.0.1}}", 1),
			[]string{":5: regions[0].check.address.192.0.2.9: 192.0.2.9 is not one of the region's VIPs"}, true},
		{"bad status range", strings.Replace(region, "{type: tcp, port: 80}", "{type: http, port: 80, expect: 200-700}", 1),
			[]string{":5: regions[0].check.expect: ", "200-700"}, false},
		{"stats and passive health", strings.Replace(region, "{type: tcp, port: 80}",
			"\n      type: tcp\n      port: 80\n      stats: {type: haproxy, url: \"http://{host}:8404/stats;csv\"}\n      passive: {error_ratio: 1.5}", 1),
			[]string{":8: regions[0].check.stats.proxy: haproxy stats need", ":9: regions[0].check.passive.error_ratio: 1.5: want a ratio"}, true},
		{"syntax", "regions:\n\t- name: a\n", []string{":2: found character that cannot start any token"}, false},
		{"invalid region", strings.Replace(region, "lat: 1", "lat: 100", 1),
			[]string{":4: regions[0].location.lat: 100: want -90 to 90"}, true},
		{"duplicate region", region + strings.TrimPrefix(region, "regions:\n"),
			[]string{":6: regions[1].name: region \"a\" is defined twice"}, true},
		{"service with an unknown region", region + "services:\n  - name: www.example.\n    ttl: 60\n    policy: weighted\n    regions:\n      - {region: b, weight: 1}\n",
			[]string{":11: services[0].regions[0].region: unknown region \"b\""}, true},
		{"every problem reported", region + "services:\n  - name: www.example.\n    ttl: 0\n    policy: geo\n    regions:\n      - {region: a, weight: 1}\n",
			[]string{":8: services[0].ttl: 0: want 1", ":7: services[0].geo: the geo policy needs a geo map"}, true},
		{"watermarks the wrong way round", region + "services:\n  - name: www.example.\n    ttl: 60\n    policy: weighted\n    regions:\n      - {region: a, weight: 1}\n    load: {low_watermark: 0.9, high_watermark: 0.7}\n",
			[]string{":12: services[0].load.low_watermark: 0.9 is above high_watermark 0.7"}, true},
		{"bad slow start", region + "services:\n  - name: www.example.\n    ttl: 60\n    policy: weighted\n    regions:\n      - {region: a, weight: 1}\n    slow_start: {window: -5s}\n",
			[]string{":12: services[0].slow_start.window: ", "-5s"}, false},
		{"geo map entry", region + "services:\n  - name: www.example.\n    ttl: 60\n    policy: geo\n    regions:\n      - {region: a, weight: 1}\n    geo:\n      countries:\n        DE: [a, c]\n",
			[]string{":14: services[0].geo.countries.DE[1]: \"c\" is not one of the service's regions"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.content)
			_, err := LoadDesired(p)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if strings.HasPrefix(w, ":") { // a line number: right after the file name
					w = p + w
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.invalid && !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != p {
				t.Errorf("not a FileError naming the file: %#v", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadDesired(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}
