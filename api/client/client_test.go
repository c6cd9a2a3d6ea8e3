package client

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/api/apitypes"
)

// TestDependencies: a program that imports the client links no etcd,
// gRPC or DNS library (the package's promise; the client's own tests run
// against the handlers in the api package).
func TestDependencies(t *testing.T) {
	out, err := exec.Command(filepath.Join(build.Default.GOROOT, "bin", "go"), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/", "google.golang.org/grpc", "github.com/miekg/dns", "github.com/meridian-gslb/meridian/regions/store"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("the client links %s", pkg)
			}
		}
	}
}

func TestErrorMessage(t *testing.T) {
	cases := []struct {
		name string
		err  Error
		want string
	}{
		{"fields", Error{StatusCode: 400, Problem: apitypes.Problem{Title: "invalid service", Detail: "d",
			Errors: []apitypes.FieldError{{Field: "weights.x", Message: `"x" is not one of the service's regions`}, {Message: "and more"}}}},
			`400 invalid service: weights.x: "x" is not one of the service's regions; and more`},
		{"detail", Error{StatusCode: 409, Problem: apitypes.Problem{Title: "in use", Detail: `region "eu" is in use by a.example.`}},
			`409 in use: region "eu" is in use by a.example.`},
		{"no title", Error{StatusCode: 502}, "502 Bad Gateway"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNew(t *testing.T) {
	cases := []struct{ in, want string }{
		{"127.0.0.1:8053", "http://127.0.0.1:8053"},
		{"https://gslb.example:8443/", "https://gslb.example:8443"},
		{"http://[::1]:8053/meridian", "http://[::1]:8053/meridian"},
	}
	for _, tc := range cases {
		c, err := New(tc.in)
		if err != nil || c.Server() != tc.want {
			t.Errorf("New(%q): %v %v, want %s", tc.in, c, err, tc.want)
		}
	}
}
