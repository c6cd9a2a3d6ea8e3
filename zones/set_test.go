package zones

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// reloadZone is a zone file with absolute names, so that it loads with or
// without an origin configured: apex, serial and the address of www.
func reloadZone(apex string, serial int, www string) string {
	return fmt.Sprintf(`$TTL 300
%[1]s SOA ns1.%[1]s hostmaster.%[1]s %[2]d 7200 3600 1209600 300
%[1]s NS  ns1.%[1]s
ns1.%[1]s A 192.0.2.53
www.%[1]s A %[3]s
`, apex, serial, www)
}

// TestLoadSetReloadKeepsPrevious: on a reload, a zone whose new version
// fails (a bad record, a missing file, and for a zone configured without
// origin a changed SOA owner) keeps its previous version serving, named in
// the error; the other zones take their new versions. Every case runs with
// the zone configured with and without origin.
func TestLoadSetReloadKeepsPrevious(t *testing.T) {
	cases := []struct {
		name string
		// change rewrites (or removes) example.org.'s file after the
		// first load.
		change func(path string) error
		// want is in the error, for the zone configured without origin
		// and with it; "" for none.
		want, wantOrigin string
		// kept: the previous version keeps serving; else the new one.
		kept bool
	}{
		{"good new version", func(p string) error {
			return os.WriteFile(p, []byte(reloadZone("example.org.", 2, "192.0.2.2")), 0o644)
		}, "", "", false},
		{"bad record", func(p string) error {
			return os.WriteFile(p, []byte(reloadZone("example.org.", 2, "192.0.2.2")+"bad.example.org. A 192.0.2.999\n"), 0o644)
		}, "org.zone:6:", "org.zone:6:", true},
		{"missing file", os.Remove, "org.zone: open", "org.zone: open", true},
		{"no SOA", func(p string) error {
			return os.WriteFile(p, []byte("www.example.org. 300 A 192.0.2.2\n"), 0o644)
		}, "no SOA record, and no origin given", "no SOA record at the zone apex", true},
		// Without origin the new file loads, but a reload does not move
		// the apex; with origin the SOA owner must be the apex.
		{"SOA owner changed", func(p string) error {
			return os.WriteFile(p, []byte(reloadZone("example.com.", 2, "192.0.2.2")), 0o644)
		}, "the SOA owner changed from example.org. to example.com.", "example.com. is outside the zone example.org.", true},
	}
	for _, tc := range cases {
		for _, origin := range []string{"", "example.org."} {
			name, want := tc.name+"/without origin", tc.want
			if origin != "" {
				name, want = tc.name+"/with origin", tc.wantOrigin
			}
			kept := tc.kept
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				org := filepath.Join(dir, "org.zone")
				for path, text := range map[string]string{org: reloadZone("example.org.", 1, "192.0.2.1"),
					filepath.Join(dir, "net.zone"): reloadZone("example.net.", 1, "192.0.2.1")} {
					if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				specs := []FileSpec{{Origin: origin, File: "org.zone"}, {File: "net.zone"}}
				prev, err := LoadSet(specs, dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := tc.change(org); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "net.zone"), []byte(reloadZone("example.net.", 2, "192.0.2.2")), 0o644); err != nil {
					t.Fatal(err)
				}

				set, err := LoadSet(specs, dir, prev)
				switch {
				case want == "" && err != nil:
					t.Fatalf("reload: %v", err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Fatalf("reload error %v, want %q in it", err, want)
				case want != "" && !strings.Contains(err.Error(), "zone example.org. keeps serving serial 1"):
					t.Errorf("reload error %v does not say which version keeps serving", err)
				}
				if set == nil {
					t.Fatal("no set after a reload")
				}
				wantWWW, wantSerial := "192.0.2.2", uint32(2)
				if kept {
					wantWWW, wantSerial = "192.0.2.1", 1
				}
				r := set.Resolve("www.example.org.", dns.TypeA)
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != wantWWW {
					t.Fatalf("www.example.org. after the reload: rcode %s, answer %v; want %s", dns.RcodeToString[r.Rcode], r.Answer, wantWWW)
				}
				if z := set.Zone("example.org."); z == nil || z.SOA().Serial != wantSerial {
					t.Fatalf("example.org. after the reload: %v, want serial %d", z, wantSerial)
				}
				if z := set.Zone("example.com."); z != nil {
					t.Errorf("example.com. served after the reload")
				}
				// The other zone took its new version.
				if z := set.Zone("example.net."); z == nil || z.SOA().Serial != 2 {
					t.Errorf("example.net. after the reload: %v, want serial 2", z)
				}
				// A second reload still finds the zone it kept: the kept
				// version is the previous one of the next reload too.
				set2, err2 := LoadSet(specs, dir, set)
				if (err2 != nil) != (want != "") || set2 == nil || set2.Zone("example.org.") == nil || set2.Zone("example.org.").SOA().Serial != wantSerial {
					t.Errorf("second reload: %v; example.org. %v", err2, set2.Zone("example.org."))
				}
			})
		}
	}
}
