package store

import "testing"

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
