package testtool

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recorder stands in for the test given to Need: it keeps the message of
// Fatal and ends the goroutine as the real one does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs f with a recorder and returns what f returned and the failure.
func call(t *testing.T, f func(testing.TB) string) (got, failed string) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = f(r)
	}()
	<-done
	return got, r.failed
}

func TestNeed(t *testing.T) {
	bin := t.TempDir()
	kdig := filepath.Join(bin, "kdig")
	if err := os.WriteFile(kdig, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "dig"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	saved := sbinDirs
	sbinDirs = []string{t.TempDir()}
	t.Cleanup(func() { sbinDirs = saved })

	cases := []struct {
		name, program, want, failed string
	}{
		{"found on PATH", "kdig", kdig, ""},
		{"missing", "unbound", "", "unbound not found: install unbound (make test installs it)"},
		{"not executable", "dig", "", "dig not found: install dnsutils (make test installs it)"},
		{"bench tool", "dnsperf", "", "dnsperf not found: install dnsperf (make bench installs it)"},
		{"not listed", "nosuchtool", "", `testtool: "nosuchtool" is not listed; add it with its Debian package to internal/testtool and scripts/deps.sh`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, failed := call(t, func(tb testing.TB) string { return Need(tb, tc.program) })
			if got != tc.want || failed != tc.failed {
				t.Errorf("Need(%q) = %q, failed %q; want %q, failed %q", tc.program, got, failed, tc.want, tc.failed)
			}
		})
	}

	t.Run("found in sbin", func(t *testing.T) {
		sbin := t.TempDir()
		unbound := filepath.Join(sbin, "unbound")
		if err := os.WriteFile(unbound, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		sbinDirs = []string{sbin}
		if got, failed := call(t, func(tb testing.TB) string { return Need(tb, "unbound") }); got != unbound || failed != "" {
			t.Errorf("Need(unbound) = %q, failed %q; want %q", got, failed, unbound)
		}
	})
}

func TestNeedFile(t *testing.T) {
	present := filepath.Join(t.TempDir(), "geoip")
	if err := os.WriteFile(present, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "geoip6")
	files[present] = source{"tor-geoipdb", "test"}
	files[absent] = source{"tor-geoipdb", "test"}
	t.Cleanup(func() {
		delete(files, present)
		delete(files, absent)
	})

	cases := []struct {
		name, path, want, failed string
	}{
		{"present", present, present, ""},
		{"absent", absent, "", absent + " not found: install tor-geoipdb (make test installs it)"},
		{"not listed", "/etc/passwd", "", `testtool: "/etc/passwd" is not listed; add it with its Debian package to internal/testtool and scripts/deps.sh`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, failed := call(t, func(tb testing.TB) string { return NeedFile(tb, tc.path) })
			if got != tc.want || failed != tc.failed {
				t.Errorf("NeedFile(%q) = %q, failed %q; want %q, failed %q", tc.path, got, failed, tc.want, tc.failed)
			}
		})
	}
}

// depsGroups reads the package lists of scripts/deps.sh: "NAME_packages=("
// followed by one package a line (with an optional comment) up to ")".
func depsGroups(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := regexp.MustCompile(`^(\w+)_packages=\($`)
	groups := map[string][]string{}
	group := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case group == "":
			if m := start.FindStringSubmatch(line); m != nil {
				group = m[1]
				groups[group] = []string{}
			}
		case line == ")":
			group = ""
		default:
			if pkg, _, _ := strings.Cut(line, "#"); strings.TrimSpace(pkg) != "" {
				groups[group] = append(groups[group], strings.TrimSpace(pkg))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if group != "" || len(groups["test"]) == 0 {
		t.Fatalf("scripts/deps.sh: cannot read the package lists (%v)", groups)
	}
	return groups
}

// TestPackagesListed checks that every package a test can ask for is
// installed by its make target, and that every package make test installs
// is one a test can ask for.
func TestPackagesListed(t *testing.T) {
	groups := depsGroups(t)
	used := map[string]bool{}
	for _, table := range []map[string]source{programs, files} {
		for name, src := range table {
			used[src.pkg] = true
			if !slices.Contains(groups[src.target], src.pkg) {
				t.Errorf("%s needs %s, which is not in %s_packages of scripts/deps.sh (%v)", name, src.pkg, src.target, groups[src.target])
			}
		}
	}
	for _, pkg := range groups["test"] {
		if !used[pkg] {
			t.Errorf("scripts/deps.sh installs %s for make test, but no program or file of it is listed here", pkg)
		}
	}
}
