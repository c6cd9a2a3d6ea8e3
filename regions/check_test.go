package regions

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestHealthCheckValidate(t *testing.T) {
	vip4, vip6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	base := func(c HealthCheck) *Region {
		return &Region{Name: "r", VIPs: []netip.Addr{vip4, vip6}, Check: c}
	}
	cases := []struct {
		name  string
		check HealthCheck
		want  []string // field: message fragments; none means valid
	}{
		{"tcp", HealthCheck{Type: "tcp", Port: 443}, nil},
		{"https with every field", HealthCheck{Type: "https", Port: 443, Path: "/healthz?full=1", Host: "lb.example", Expect: StatusRanges{{200, 299}, {301, 301}},
			Body: "ok", TLSSkipVerify: true, Address: map[netip.Addr]string{vip4: "127.0.0.1", vip6: "[::1]:8443"},
			Interval: Duration(time.Second), Timeout: Duration(500 * time.Millisecond), Rise: 1, Fall: 5}, nil},
		{"address host name", HealthCheck{Type: "http", Port: 80, Address: map[netip.Addr]string{vip4: "health.lb.example:8080"}}, nil},
		{"unknown type", HealthCheck{Type: "icmp", Port: 1}, []string{"check.type"}},
		{"port", HealthCheck{Type: "tcp", Port: 0}, []string{"check.port: 0: want 1 to 65535"}},
		{"relative path", HealthCheck{Type: "http", Port: 80, Path: "healthz"}, []string{"check.path"}},
		{"tcp with http fields", HealthCheck{Type: "tcp", Port: 80, Path: "/", Host: "a.example", Body: "x", Expect: DefaultExpect, TLSSkipVerify: true},
			[]string{"check.path: a tcp check has no path", "check.host", "check.expect", "check.body", "check.tls_skip_verify"}},
		{"http with tls_skip_verify", HealthCheck{Type: "http", Port: 80, TLSSkipVerify: true}, []string{"check.tls_skip_verify: only an https check"}},
		{"host with port", HealthCheck{Type: "http", Port: 80, Host: "a.example:80"}, []string{"check.host"}},
		{"expect out of range", HealthCheck{Type: "http", Port: 80, Expect: StatusRanges{{200, 700}}}, []string{"check.expect"}},
		{"expect reversed", HealthCheck{Type: "http", Port: 80, Expect: StatusRanges{{399, 200}}}, []string{"check.expect"}},
		{"long body", HealthCheck{Type: "http", Port: 80, Body: strings.Repeat("x", MaxCheckBodyMatch+1)}, []string{"check.body"}},
		{"address of another VIP", HealthCheck{Type: "tcp", Port: 80, Address: map[netip.Addr]string{netip.MustParseAddr("192.0.2.99"): "127.0.0.1"}},
			[]string{"check.address.192.0.2.99: 192.0.2.99 is not one of the region's VIPs"}},
		{"bad address", HealthCheck{Type: "tcp", Port: 80, Address: map[netip.Addr]string{vip4: "127.0.0.1:99999", vip6: "not a host"}},
			[]string{"check.address.192.0.2.1", "check.address.2001:db8::1"}},
		{"interval too short", HealthCheck{Type: "tcp", Port: 80, Interval: Duration(time.Millisecond)}, []string{"check.interval"}},
		{"timeout above the interval", HealthCheck{Type: "tcp", Port: 80, Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)}, []string{"check.timeout"}},
		{"timeout above the default interval", HealthCheck{Type: "tcp", Port: 80, Timeout: Duration(6 * time.Second)}, []string{"check.timeout"}},
		{"rise and fall", HealthCheck{Type: "tcp", Port: 80, Rise: -1, Fall: 101}, []string{"check.rise", "check.fall"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblems(t, base(tc.check).Validate(), tc.want) })
	}
}

// wantProblems fails unless err is nil for no want, or a validation error
// holding every fragment of want ("field: message").
func wantProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a validation error", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v: lacks %q", err, w)
		}
	}
}

func TestHealthCheckDefaultsAndTarget(t *testing.T) {
	vip4, vip6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	c := HealthCheck{Type: "http", Port: 8080, Interval: Duration(time.Second),
		Address: map[netip.Addr]string{vip4: "127.0.0.10", vip6: "[::1]:9000"}}
	d := c.WithDefaults()
	if d.Timeout != Duration(time.Second) || d.Rise != 2 || d.Fall != 3 || d.Path != "/" || d.Expect.String() != "200-399" {
		t.Errorf("defaults: %+v", d)
	}
	if d := (HealthCheck{Type: "tcp", Port: 1}).WithDefaults(); d.Interval != Duration(5*time.Second) || d.Timeout != Duration(2*time.Second) || d.Expect != nil {
		t.Errorf("tcp defaults: %+v", d)
	}
	for vip, want := range map[netip.Addr]string{
		vip4:                               "127.0.0.10:8080",
		vip6:                               "[::1]:9000",
		netip.MustParseAddr("192.0.2.7"):   "192.0.2.7:8080",
		netip.MustParseAddr("2001:db8::7"): "[2001:db8::7]:8080",
	} {
		if got := c.Target(vip); got != want {
			t.Errorf("Target(%s) = %s, want %s", vip, got, want)
		}
	}
}

func TestStatusRangesEncoding(t *testing.T) {
	cases := []struct {
		name, yaml, json string
		want             string // "" means an error
	}{
		{"one range", "200-399", `"200-399"`, "200-399"},
		{"ranges and a code", `"200-299,301"`, `"200-299, 301"`, "200-299,301"},
		{"a number", "204", "204", "204"},
		{"a list", "[200-299, 302]", `["200-299", 302]`, "200-299,302"},
		{"garbage", "ok", `"ok"`, ""},
		{"out of range", "600", "600", ""},
		{"reversed", "399-200", `"399-200"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var y struct {
				Expect StatusRanges `yaml:"expect"`
			}
			errY := yaml.Unmarshal([]byte("expect: "+tc.yaml), &y)
			var j StatusRanges
			errJ := json.Unmarshal([]byte(tc.json), &j)
			if tc.want == "" {
				if errY == nil || errJ == nil {
					t.Fatalf("accepted: yaml %v (%v), json %v (%v)", y.Expect, errY, j, errJ)
				}
				return
			}
			if errY != nil || errJ != nil {
				t.Fatalf("yaml: %v; json: %v", errY, errJ)
			}
			if y.Expect.String() != tc.want || j.String() != tc.want {
				t.Errorf("yaml %s, json %s, want %s", y.Expect, j, tc.want)
			}
			out, _ := json.Marshal(j)
			if string(out) != `"`+tc.want+`"` {
				t.Errorf("marshalled as %s", out)
			}
		})
	}
	if !DefaultExpect.Contains(302) || DefaultExpect.Contains(404) || DefaultExpect.Contains(199) {
		t.Error("DefaultExpect.Contains")
	}
}

// TestRegionCheckJSON: a region's check survives JSON (etcd, the state
// file, the API) with the address map keyed by VIP.
func TestRegionCheckJSON(t *testing.T) {
	vip := netip.MustParseAddr("2001:db8::1")
	r := &Region{Name: "r", VIPs: []netip.Addr{vip}, Check: HealthCheck{Type: "https", Port: 443, Expect: StatusRanges{{200, 204}},
		Body: "ok", TLSSkipVerify: true, Address: map[netip.Addr]string{vip: "[::1]:8443"}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"address":{"2001:db8::1":"[::1]:8443"}`) || !strings.Contains(string(b), `"expect":"200-204"`) {
		t.Errorf("JSON: %s", b)
	}
	var back Region
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Check.Address[vip] != "[::1]:8443" || back.Check.Expect.String() != "200-204" || !back.Check.TLSSkipVerify || back.Check.Body != "ok" {
		t.Errorf("back: %+v", back.Check)
	}
}
