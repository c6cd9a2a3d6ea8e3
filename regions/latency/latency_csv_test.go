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
