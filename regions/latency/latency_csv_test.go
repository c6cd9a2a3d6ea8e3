package latency

import (
	"strings"
	"testing"
)

func TestParseLatencyCSV(t *testing.T) {
	good := "cidr,region,rtt_ms\n# comment\n192.0.2.0/24,eu-west,12.5\n\n2001:db8::/32,us-east,80\n192.0.2.0/24,us-east,90\n"
	entries, err := ParseCSV(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Region != "eu-west" || entries[0].RTTms != 12.5 || entries[1].Prefix.Bits() != 32 {
		t.Fatalf("entries %+v", entries)
	}
	again, err := ParseCSV(strings.NewReader(string(FormatCSV(entries))))
	if err != nil || len(again) != 3 || again[2] != entries[2] {
		t.Fatalf("round trip: %v %+v", err, again)
	}

	bad := []struct{ name, csv, want string }{
		{"columns", "192.0.2.0/24,eu\n", "line 1"},
		{"prefix", "192.0.2.0/33,eu,1\n", "not a network prefix"},
		{"host bits", "# x\n192.0.2.1/24,eu,1\n", "line 2: 192.0.2.1/24 has host bits set"},
		{"region", "192.0.2.0/24,EU West,1\n", "not a region name"},
		{"rtt zero", "192.0.2.0/24,eu,0\n", "rtt"},
		{"rtt huge", "192.0.2.0/24,eu,100000\n", "rtt"},
		{"rtt word", "192.0.2.0/24,eu,fast\n", "rtt"},
		{"mapped", "::ffff:192.0.2.0/120,eu,1\n", "dotted"},
		{"duplicate", "192.0.2.0/24,eu,1\n192.0.2.0/24,eu,2\n", "line 2: 192.0.2.0/24 for region eu already given on line 1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.csv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestParseCSVForRegions: regions the caller does not know are refused,
// each once at its first line with its count and the caller's hint, in
// the order of the input among the other errors; known ones pass.
func TestParseCSVForRegions(t *testing.T) {
	known := map[string]bool{"eu-west": true, "us-east": true}
	asked := map[string]int{}
	unknown := func(r string) (bool, string) {
		asked[r]++
		if known[r] {
			return false, ""
		}
		return true, `did you mean "eu-west"?`
	}
	cases := []struct {
		name, csv string
		want      []string // the error's lines; nil: valid
	}{
		{"known", "192.0.2.0/24,eu-west,1\n192.0.2.0/24,us-east,2\n", nil},
		{"one unknown", "192.0.2.0/24,eu-west,1\n192.0.2.0/24,eu-wset,2\n198.51.100.0/24,eu-wset,3\n",
			[]string{`latency table: line 2: region "eu-wset" does not exist (named on 2 lines); did you mean "eu-west"?`}},
		{"with other errors, in line order", "192.0.2.0/24,nowhere,1\nbad line\n",
			[]string{`latency table: line 1: region "nowhere" does not exist; did you mean "eu-west"?`, `line 2: "bad line": want cidr,region,rtt_ms`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clear(asked)
			entries, err := ParseCSVFor(strings.NewReader(tc.csv), unknown)
			if tc.want == nil {
				if err != nil || len(entries) == 0 {
					t.Fatalf("%v %v", entries, err)
				}
			} else if err == nil || err.Error() != strings.Join(tc.want, "\n") {
				t.Fatalf("err = %v, want\n%s", err, strings.Join(tc.want, "\n"))
			}
			for r, n := range asked {
				if n != 1 {
					t.Errorf("asked about %s %d times", r, n)
				}
			}
		})
	}
}

func TestCountRegions(t *testing.T) {
	entries, err := ParseCSV(strings.NewReader("192.0.2.0/24,eu-west,1\n2001:db8::/32,eu-west,2\n192.0.2.0/24,us-east,3\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := CountRegions(FormatCSV(entries))
	if len(got) != 2 || got["eu-west"] != 2 || got["us-east"] != 1 {
		t.Fatalf("%v", got)
	}
}
