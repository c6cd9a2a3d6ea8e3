package store

import (
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	k := NewKeys("")
	builders := []struct{ got, want string }{
		{k.Prefix(), "/meridian/"},
		{NewKeys("/x").Prefix(), "/x/"},
		{k.Region("eu-west"), "/meridian/regions/eu-west"},
		{k.Service("WWW.Gslb.Example"), "/meridian/services/www.gslb.example."},
		{k.Health("eu-west", "p1"), "/meridian/health/eu-west/p1"},
		{k.Prober("p1"), "/meridian/probers/p1"},
		{k.LatencyManifest(), "/meridian/latency/manifest"},
		{k.LatencyChunk("t1", 7), "/meridian/latency/chunks/t1/000007"},
		{k.Shift("3fa2c81e"), "/meridian/shifts/3fa2c81e"},
		{k.ServicesMark(), "/meridian/marks/services"},
	}
	for _, b := range builders {
		if b.got != b.want {
			t.Errorf("got %q, want %q", b.got, b.want)
		}
	}

	parses := []struct {
		key  string
		want parsedKey
	}{
		{"/meridian/regions/eu-west", parsedKey{kind: keyRegion, name: "eu-west"}},
		{"/meridian/services/www.gslb.example.", parsedKey{kind: keyService, name: "www.gslb.example."}},
		{"/meridian/health/eu-west/p1", parsedKey{kind: keyHealth, name: "eu-west", prober: "p1"}},
		{"/meridian/probers/p1", parsedKey{kind: keyProber, name: "p1"}},
		{"/meridian/latency/manifest", parsedKey{kind: keyLatencyManifest}},
		{"/meridian/latency/chunks/t1/000003", parsedKey{kind: keyLatencyChunk, name: "t1"}},
		{"/meridian/shifts/3fa2c81e", parsedKey{kind: keyShift, name: "3fa2c81e"}},
		{"/meridian/marks/services", parsedKey{kind: keyMark, name: "services"}},
		{"/meridian/marks/regions", parsedKey{}},
		{"/meridian/shifts/a/b", parsedKey{}},
		{"/meridian/regions/", parsedKey{}},
		{"/meridian/regions/a/b", parsedKey{}},
		{"/meridian/health/eu-west", parsedKey{}},
		{"/meridian/health/eu-west/p1/x", parsedKey{}},
		{"/meridian/other/x", parsedKey{}},
		{"/meridianx/regions/eu-west", parsedKey{}},
	}
	for _, p := range parses {
		t.Run(p.key, func(t *testing.T) {
			if got := k.parse(p.key); got != p.want {
				t.Fatalf("got %+v, want %+v", got, p.want)
			}
		})
	}
}

// TestDescribe: errors clients read name objects as they know them,
// never by their etcd key.
func TestDescribe(t *testing.T) {
	k := NewKeys("/secret-prefix/")
	for _, tc := range []struct{ key, want string }{
		{k.Region("eu-west"), `region "eu-west"`},
		{k.Service("www.gslb.example"), `service "www.gslb.example."`},
		{k.LatencyManifest(), "the latency table"},
		{k.LatencyChunk("abc", 3), "the latency table"},
		{k.Health("eu-west", "p1"), `the health report of prober "p1" on region "eu-west"`},
		{k.Prober("p1"), `prober "p1"`},
		{k.AuditRecord("x"), "an audit record"},
		{k.ServicesMark(), "the services' change mark"},
		{"/elsewhere/regions/eu-west", "an object outside Meridian's key layout"},
	} {
		if got := k.describe(tc.key); got != tc.want || strings.Contains(got, "secret-prefix") {
			t.Errorf("describe(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
