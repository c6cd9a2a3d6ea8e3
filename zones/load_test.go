package zones

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const goodHead = `$ORIGIN example.org.
$TTL 300
@   SOA ns1 hostmaster 1 7200 3600 1209600 300
@   NS  ns1
ns1 A   192.0.2.53
`

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		zone string
		line int
		msg  string
	}{
		{"no SOA", "$ORIGIN example.org.\n$TTL 60\n@ NS ns1\nns1 A 192.0.2.1\n", 0, "no SOA record"},
		{"SOA below the apex", goodHead + "sub SOA ns1 hostmaster 1 2 3 4 5\n", 6, "not at the zone apex"},
		{"second SOA", goodHead + "@ SOA ns2 hostmaster 2 7200 3600 1209600 300\n", 6, "second SOA"},
		{"no NS at apex", "$ORIGIN example.org.\n@ 300 SOA ns1 hostmaster 1 7200 3600 1209600 300\nwww 300 A 192.0.2.1\n", 2, "no NS records"},
		{"outside the zone", goodHead + "www.example.com. A 192.0.2.1\n", 6, "outside the zone"},
		{"CNAME beside data", goodHead + "www A 192.0.2.1\nwww CNAME ns1\n", 7, "beside other data"},
		{"two CNAMEs", goodHead + "www CNAME ns1\nwww CNAME ns2.example.net.\n", 7, "more than one CNAME"},
		{"CNAME at apex", goodHead + "@ CNAME www.example.net.\n", 6, "CNAME at the zone apex"},
		{"CNAME loop", goodHead + "a CNAME b\nb CNAME a\n", 0, "CNAME loop"},
		{"missing glue", goodHead + "sub NS ns.sub\n", 6, "no A or AAAA record"},
		{"missing address for apex NS", goodHead + "@ NS ns2\n", 6, "ns2.example.org. of example.org."},
		{"data below a cut", goodHead + "sub NS ns.example.net.\nwww.sub TXT \"occluded\"\n", 7, "below the delegation"},
		{"DS off a cut", goodHead + "www DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n", 6, "not a delegation"},
		{"bad address", goodHead + "www A 192.0.2.300\n", 6, "bad A"},
		{"unknown type", goodHead + "www BOGUS 1\n", 6, ""},
		{"class CH", goodHead + "www CH TXT \"x\"\n", 6, "class CH"},
		{"wildcard NS", goodHead + "*.w NS ns1\n", 6, "wildcard"},
		{"DNAME", goodHead + "d DNAME example.net.\n", 6, "DNAME"},
		{"star inside a name", goodHead + "a.*.b A 192.0.2.1\n", 6, "leftmost"},
		{"include refused without directory", goodHead + "$INCLUDE other.zone\n", 6, "$INCLUDE"},
		{"error after multi-line SOA", "$ORIGIN example.org.\n$TTL 1\n@ SOA ns1 hostmaster (\n 1 ; serial\n 2 3 4 5 )\n@ NS ns1\nns1 A 192.0.2.1\nbad.example.com. A 192.0.2.2\n", 8, "outside the zone"},
		{"multi-line record reported at its start", goodHead + "; comment\n\nsub SOA ns1 hostmaster (\n 1 2 3 4 5 )\n", 8, "not at the zone apex"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z, err := Parse(strings.NewReader(tc.zone), "test.zone", LoadOptions{Origin: "example.org."})
			if err == nil {
				t.Fatalf("zone accepted (%d records)", len(z.Records()))
			}
			var ze *Error
			if !errors.As(err, &ze) {
				t.Fatalf("error %v is not a *zones.Error", err)
			}
			if ze.File != "test.zone" || ze.Line != tc.line {
				t.Errorf("error at %s:%d, want test.zone:%d (%v)", ze.File, ze.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestLoadIncludeConfined(t *testing.T) {
	dir := t.TempDir()
	zdir := filepath.Join(dir, "zones")
	if err := os.Mkdir(zdir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "secret.inc"), "leak TXT \"outside\"\n")
	write(filepath.Join(zdir, "inside.inc"), "ok TXT \"inside\"\n")
	if err := os.Symlink(filepath.Join(dir, "secret.inc"), filepath.Join(zdir, "link.inc")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, include string
		ok            bool
	}{
		{"inside", "inside.inc", true},
		{"parent directory", "../secret.inc", false},
		{"absolute path", filepath.Join(dir, "secret.inc"), false},
		{"symlink leading out", "link.inc", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			zf := filepath.Join(zdir, "example.org.zone")
			write(zf, goodHead+"$INCLUDE "+tc.include+"\n")
			z, err := LoadFile(zf, LoadOptions{Origin: "example.org.", Dir: zdir})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(z.Records()) != 4 {
					t.Errorf("%d records, want 4", len(z.Records()))
				}
				return
			}
			if err == nil {
				t.Fatal("include outside the zone directory was read")
			}
			var ze *Error
			if !errors.As(err, &ze) || ze.Line != 6 {
				t.Errorf("error %v, want one at line 6", err)
			}
		})
	}
	t.Run("zone file outside the directory", func(t *testing.T) {
		_, err := LoadFile(filepath.Join(dir, "secret.inc"), LoadOptions{Origin: "example.org.", Dir: zdir})
		if err == nil || !strings.Contains(err.Error(), "outside the zone directory") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLoadOriginFromSOA(t *testing.T) {
	z, err := Parse(strings.NewReader("example.net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 4 5\nexample.net. 60 IN NS ns.example.net.\nns.example.net. 60 IN A 192.0.2.1\n"), "x", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if z.Origin() != "example.net." || z.NegativeTTL() != 5 {
		t.Errorf("origin %s, negative TTL %d", z.Origin(), z.NegativeTTL())
	}
}

func TestSetDuplicate(t *testing.T) {
	z, err := Parse(strings.NewReader(goodHead), "a", LoadOptions{Origin: "example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSet(z, z); err == nil {
		t.Fatal("same zone twice accepted")
	}
}

// TestNamesBeyondASCII: owner names keep their bytes beyond ASCII, UTF-8
// or not (RFC 4343 folds ASCII only), so the wire name a query carries
// finds them.
func TestNamesBeyondASCII(t *testing.T) {
	for _, tc := range []struct{ name, owner string }{
		{"UTF-8", "Été"},
		{"not UTF-8", "\x9c\x9c\x88"},
		{"escaped", `\195\137t\195\169`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z, err := Parse(strings.NewReader(goodHead+tc.owner+" A 192.0.2.7\n"), "t", LoadOptions{Origin: "example.org."})
			if err != nil {
				t.Fatal(err)
			}
			w, err := WireName(tc.owner + ".example.org.")
			if err != nil {
				t.Fatal(err)
			}
			a := z.Lookup([]byte(w), dns.TypeA)
			if a == nil || a.Negative() || len(a.Answer) != 1 {
				t.Fatalf("%q not found", w)
			}
		})
	}
}

// FuzzParseZone: no input makes the loader panic, and every zone it
// accepts answers lookups for its own names.
func FuzzParseZone(f *testing.F) {
	for _, s := range []string{goodHead, goodHead + "www CNAME ns1\n*.w A 192.0.2.9\nsub NS ns.sub\nns.sub A 192.0.2.1\n", "$ORIGIN .\n@ SOA a b 1 2 3 4 5\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, zone string) {
		watchdog := time.AfterFunc(5*time.Second, func() { panic("zone took more than 5s: " + strconv.Quote(zone)) })
		defer watchdog.Stop()
		z, err := Parse(strings.NewReader(zone), "fuzz", LoadOptions{Origin: "example.org.", MaxRecords: 1000})
		if err != nil {
			return
		}
		for _, rr := range z.Records() {
			w, err := WireName(rr.Header().Name)
			if err != nil {
				t.Fatalf("accepted unpackable name %q", rr.Header().Name)
			}
			a := z.Lookup([]byte(w), rr.Header().Rrtype)
			if a == nil {
				t.Fatalf("no answer for %s", rr.Header().Name)
			}
			a.Packed(len(w))
		}
	})
}
