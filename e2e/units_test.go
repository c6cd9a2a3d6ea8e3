//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestSystemdUnits checks deploy/systemd with systemd-analyze verify:
// each unit parses, every setting is known, and its commands point at
// the binary (here the one under test, in place of /usr/local/bin).
func TestSystemdUnits(t *testing.T) {
	analyze := testtool.Need(t, "systemd-analyze")
	units, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "systemd", "*.service"))
	if err != nil || len(units) == 0 {
		t.Fatalf("no units in deploy/systemd: %v", err)
	}
	dir := filepath.Join(runDir, "systemd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		t.Run(filepath.Base(u), func(t *testing.T) {
			b, err := os.ReadFile(u)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "/usr/local/bin/meridian ") {
				t.Fatalf("%s does not run /usr/local/bin/meridian", u)
			}
			path := filepath.Join(dir, filepath.Base(u))
			writeFile(t, path, strings.ReplaceAll(string(b), "/usr/local/bin/meridian ", binary+" "))
			out, err := exec.Command(analyze, "verify", path).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
			}
		})
	}
}
