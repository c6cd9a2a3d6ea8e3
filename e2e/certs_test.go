//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestCertsScript: deploy/certs.sh keeps the CA's key private and out of
// git. It refuses a directory inside a git work tree unless git ignores
// it (creating nothing), writes keys 0600 in a directory of mode 0700,
// and, with ca.pem there but its key away (kept offline), neither makes
// a new CA nor signs.
func TestCertsScript(t *testing.T) {
	testtool.Need(t, "openssl")
	git := testtool.Need(t, "git")
	script := filepath.Join(repoRoot, "deploy", "certs.sh")
	dir := filepath.Join(runDir, "certs-script")
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(git, "init", "-q", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	certs := func(args ...string) (string, error) {
		out, err := exec.Command(script, args...).CombinedOutput()
		return string(out), err
	}

	inTree := filepath.Join(repo, "deploy", "pki")
	if out, err := certs("ca", inTree); err == nil || !strings.Contains(out, "inside the git work tree") {
		t.Errorf("certs.sh ca inside a git work tree: %v\n%s", err, out)
	}
	if fileExists(filepath.Join(repo, "deploy")) {
		t.Errorf("certs.sh made %s before refusing", filepath.Join(repo, "deploy"))
	}
	writeFile(t, filepath.Join(repo, ".gitignore"), "/deploy/pki/\n")
	if out, err := certs("ca", inTree); err != nil {
		t.Errorf("certs.sh ca in a directory git ignores: %v\n%s", err, out)
	}

	pki := filepath.Join(dir, "pki")
	for _, args := range [][]string{{"ca", pki}, {"client", pki, "meridian-server"}} {
		if out, err := certs(args...); err != nil {
			t.Fatalf("certs.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for name, want := range map[string]os.FileMode{"": 0o700, "ca-key.pem": 0o600, "meridian-server-key.pem": 0o600, "ca.pem": 0o644} {
		st, err := os.Stat(filepath.Join(pki, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", filepath.Join(pki, name), st.Mode().Perm(), want)
		}
	}

	// The key kept offline: nothing replaces or uses the CA meanwhile.
	ca, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(pki, "ca-key.pem"), filepath.Join(dir, "ca-key.offline")); err != nil {
		t.Fatal(err)
	}
	if out, err := certs("ca", pki); err == nil || !strings.Contains(out, "without ca-key.pem") {
		t.Errorf("certs.sh ca with the key away: %v\n%s", err, out)
	}
	if out, err := certs("client", pki, "meridian-prober"); err == nil || !strings.Contains(out, "ca-key.pem is missing") {
		t.Errorf("certs.sh client with the key away: %v\n%s", err, out)
	}
	if now, err := os.ReadFile(filepath.Join(pki, "ca.pem")); err != nil || !bytes.Equal(now, ca) {
		t.Errorf("ca.pem changed while the key was away (%v)", err)
	}
	if fileExists(filepath.Join(pki, "meridian-prober.pem")) {
		t.Error("a certificate was signed without the CA's key")
	}
}
