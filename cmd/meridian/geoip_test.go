package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/geo"
)

// A small tor-geoipdb input: IPv4 as integers (1.0.0.0/24 AU, 2.0.0.0/24
// EU, 2.0.2.0/24 UK, 2.0.5.0/24 ??, 192.168.0.0/24 reserved) and IPv6.
const (
	cmdTorV4 = `# Generated: Mon, 02 Jan 2023 03:04:05 GMT
16777216,16777471,AU
33554432,33554687,EU
33554944,33555199,UK
33555712,33555967,??
3232235520,3232235775,US
`
	cmdTorV6 = `2a00:1450::,2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff,IE
2002::,2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff,JP
`
)

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runGeoIPArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runGeoIP(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGeoIPCommandBuildAndLookup(t *testing.T) {
	dir := t.TempDir()
	v4 := writeFile(t, filepath.Join(dir, "geoip"), cmdTorV4)
	v6 := writeFile(t, filepath.Join(dir, "geoip6"), cmdTorV6)
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(outDir, "country.mmdb")
	writeFile(t, dbPath, "an older file that the build replaces")

	code, stdout, stderr := runGeoIPArgs("build", "--v4", v4, "--v6", v6, "--out", dbPath)
	if code != 0 {
		t.Fatalf("build exit %d, stderr: %s", code, stderr)
	}
	for _, want := range []string{
		"wrote " + dbPath + ": ",
		"type GeoLite2-Country, build time 2023-01-02T03:04:05Z (from input header)",
		"ranges read:        7 (IPv4 5, IPv6 2)\n",
		"prefixes inserted:  4\n",
		"countries:          3\n",
		"renamed codes:      1 ranges",
		"continent only:     1 ranges",
		"skipped, junk:      1 ranges\n",
		"skipped by code:    ??=1\n",
		"refused by writer:  1 reserved and 1 IPv4-alias prefixes (2 ranges entirely, 0 in part)\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("build output lacks %q:\n%s", want, stdout)
		}
	}
	entries, err := os.ReadDir(outDir)
	if err != nil || len(entries) != 1 {
		t.Errorf("output directory holds %v (%v), want only the database", entries, err)
	}
	db, err := geo.Open(dbPath)
	if err != nil {
		t.Fatalf("built file does not open: %v", err)
	}
	if n := db.Info().Countries; n != 3 {
		t.Errorf("built database has %d countries, want 3", n)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{
			name:    "found",
			args:    []string{"lookup", "--db", dbPath, "1.0.0.1", "::ffff:2.0.2.9", "2a00:1450::1"},
			wantOut: "1.0.0.1 network=1.0.0.0/24 country=AU (Australia) continent=OC lat=-35.2810 lon=149.1300\n" + "::ffff:2.0.2.9 network=2.0.2.0/24 country=GB (United Kingdom) continent=EU lat=51.5070 lon=-0.1280\n" + "2a00:1450::1 network=2a00:1450::/32 country=IE (Ireland) continent=EU lat=53.3500 lon=-6.2600\n",
		},
		{
			name:    "continent only and not found",
			args:    []string{"lookup", "-db", dbPath, "2.0.0.1", "2.0.5.1", "192.168.0.1"},
			wantOut: "2.0.0.1 network=2.0.0.0/24 continent=EU lat=50.0000 lon=10.0000\n2.0.5.1 not-found\n192.168.0.1 not-found\n",
		},
		{
			name:     "bad address",
			args:     []string{"lookup", "--db", dbPath, "not-an-ip", "1.0.0.1"},
			wantCode: 1,
			wantOut:  "1.0.0.1 network=1.0.0.0/24 country=AU (Australia) continent=OC lat=-35.2810 lon=149.1300\n",
			wantErr:  `ParseAddr("not-an-ip")`,
		},
		{name: "no address", args: []string{"lookup", "--db", dbPath}, wantCode: 2, wantErr: "at least one address"},
		{name: "no db", args: []string{"lookup", "1.0.0.1"}, wantCode: 2, wantErr: "--db"},
		{name: "unsupported db", args: []string{"lookup", "--db", v4, "1.0.0.1"}, wantCode: 1, wantErr: v4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runGeoIPArgs(tt.args...)
			if code != tt.wantCode || stdout != tt.wantOut || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stdout:\n%s\nstderr: %s\nwant exit %d, stdout:\n%s\nstderr containing %q", code, stdout, stderr, tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestGeoIPCommandErrors(t *testing.T) {
	dir := t.TempDir()
	v4 := writeFile(t, filepath.Join(dir, "geoip"), cmdTorV4)
	bad := writeFile(t, filepath.Join(dir, "bad"), "1,2\n")
	existing := writeFile(t, filepath.Join(dir, "existing.mmdb"), "keep me")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, 2, "usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"build without out", []string{"build", "--v4", v4}, 2, "--out is required"},
		{"build with extra argument", []string{"build", "--out", filepath.Join(dir, "x.mmdb"), "extra"}, 2, "no arguments"},
		{"build unknown flag", []string{"build", "--nope"}, 2, "flag provided but not defined"},
		{"build from bad input", []string{"build", "--v4", bad, "--v6", "", "--out", existing}, 1, "bad:1: want start,end,CC"},
		{"build into missing directory", []string{"build", "--v4", v4, "--v6", "", "--out", filepath.Join(dir, "no", "such.mmdb")}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runGeoIPArgs(tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr containing %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
	// A failed build leaves the existing file alone and no temporary file.
	if b, err := os.ReadFile(existing); err != nil || string(b) != "keep me" {
		t.Errorf("existing file now %q (%v)", b, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if code, stdout, _ := runGeoIPArgs("help"); code != 0 || !strings.Contains(stdout, "meridian geoip build") {
		t.Errorf("help: exit %d, %q", code, stdout)
	}
}
