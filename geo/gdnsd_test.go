package geo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestGeoIPGdnsdAcceptsBuild loads a built database into gdnsd's
// plugin_geoip (checkconf loads maps fully but binds no socket): the
// database_type we write must be taken as country data without warnings,
// since the benchmark serves the same file from gdnsd and from Meridian.
func TestGeoIPGdnsdAcceptsBuild(t *testing.T) {
	gdnsd := testtool.Need(t, "gdnsd")
	v4, v6 := writeTorInput(t)
	var db bytes.Buffer
	if _, err := BuildTorCountryDB(context.Background(), &db, BuildOptions{V4Path: v4, V6Path: v6}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mmdb := filepath.Join(dir, "country.mmdb")
	for _, d := range []string{"etc/zones", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := `options => {
  listen => { 127.0.0.1:5399 => { udp_threads => 1, tcp_threads => 1 } }
  run_dir => ` + filepath.Join(dir, "run") + `
  state_dir => ` + filepath.Join(dir, "state") + `
}
plugins => { geoip => {
  maps => { regions => {
    geoip2_db => ` + mmdb + `
    datacenters => [na, eu, as]
    map => { EU => [eu, na, as], NA => [na, eu, as], AS => [as, na, eu], default => [na, eu, as] }
  } }
  resources => { www => { map => regions, dcmap => { na => 192.0.2.20, eu => 192.0.2.10, as => 192.0.2.30 } } }
} }
`
	zone := "@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.53\nwww 60 DYNA geoip!www\n"
	for path, content := range map[string][]byte{
		mmdb:                                    db.Bytes(),
		filepath.Join(dir, "etc/config"):        []byte(config),
		filepath.Join(dir, "etc/zones/example"): []byte(zone),
	} {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(gdnsd, "-c", filepath.Join(dir, "etc"), "checkconf").CombinedOutput()
	if err != nil {
		t.Fatalf("gdnsd checkconf: %v\n%s", err, out)
	}
	log := string(out)
	if !strings.Contains(log, "Type: "+BuiltDatabaseType) || !regexp.MustCompile(`map 'regions' runtime db updated\. nets: [1-9]`).MatchString(log) {
		t.Errorf("gdnsd did not load the database:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "plugin_geoip") && (strings.Contains(line, "warning") || strings.Contains(line, "error")) {
			t.Errorf("gdnsd complains: %s", line)
		}
	}
}
