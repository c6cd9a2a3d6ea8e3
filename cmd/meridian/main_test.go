package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMain lets this test binary be the embedded etcd's child process, as
// the meridian binary is for a server.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == etcdMemberCommand {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelp: every command's -h and --help print its usage on stdout and
// exit 0; a bad flag prints it on stderr and exits 2.
func TestHelp(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"meridian", []string{"--help"}, []string{"meridian server", "meridian geoip build", "meridian version"}},
		{"meridian help", []string{"help"}, []string{"meridian server"}},
		{"server --help", []string{"server", "--help"}, []string{"usage: meridian server", "-config string", "-check"}},
		{"server -h", []string{"server", "-h"}, []string{"usage: meridian server", "-dns-listen"}},
		{"server -help", []string{"server", "-help"}, []string{"usage: meridian server"}},
		{"help with other flags", []string{"server", "--config", "/nonexistent.yaml", "--help"}, []string{"usage: meridian server"}},
		{"geoip --help", []string{"geoip", "--help"}, []string{"meridian geoip build", "meridian geoip lookup"}},
		{"geoip build --help", []string{"geoip", "build", "--help"}, []string{"usage: meridian geoip build", "-out string", "/usr/share/tor/geoip"}},
		{"geoip build -h", []string{"geoip", "build", "-h"}, []string{"usage: meridian geoip build"}},
		{"geoip lookup --help", []string{"geoip", "lookup", "--help"}, []string{"usage: meridian geoip lookup", "-db string"}},
		{"version --help", []string{"version", "--help"}, []string{"usage: meridian version"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(tc.args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing on stderr", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("usage lacks %q:\n%s", w, stdout)
				}
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"server", []string{"server", "--nope"}, "flag provided but not defined: -nope"},
		{"geoip build", []string{"geoip", "build", "--nope"}, "flag provided but not defined: -nope"},
		{"geoip lookup", []string{"geoip", "lookup", "--db"}, "flag needs an argument: -db"},
		{"version", []string{"version", "--nope"}, "flag provided but not defined: -nope"},
		{"version argument", []string{"version", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range bad {
		t.Run("bad flag/"+tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(tc.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, stdout, stderr, tc.want)
			}
		})
	}
}

func TestVersionInfo(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	cases := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"from a git clone", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/meridian-gslb/meridian", Version: "v0.0.0-20251130105700-f7cded0abcde+dirty"},
			Settings:  vcs("-buildmode", "exe", "vcs", "git", "vcs.revision", "f7cded0abcde0123456789abcdef0123456789ab", "vcs.time", "2025-11-30T10:57:00Z", "vcs.modified", "true"),
		}, "meridian v0.0.0-20251130105700-f7cded0abcde+dirty\n" +
			"  revision: f7cded0abcde0123456789abcdef0123456789ab\n" +
			"  time:     2025-11-30T10:57:00Z\n" +
			"  modified: true\n" +
			"  go:       go1.26.8\n"},
		{"a released version", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/meridian-gslb/meridian", Version: "v1.2.3"},
		}, "meridian v1.2.3\n" +
			"  revision: unknown (built without VCS information)\n" +
			"  go:       go1.26.8\n"},
		{"without VCS information", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/meridian-gslb/meridian", Version: "(devel)"},
		}, "meridian (devel)\n" +
			"  revision: unknown (built without VCS information)\n" +
			"  go:       go1.26.8\n"},
		{"revision without time", &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Settings:  vcs("vcs.revision", "abc"),
		}, "meridian (devel)\n" +
			"  revision: abc\n" +
			"  time:     unknown\n" +
			"  modified: unknown\n" +
			"  go:       go1.26.8\n"},
		{"no build info", nil, "meridian: no build information in this binary\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionInfo(tc.bi); got != tc.want {
				t.Errorf("versionInfo =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestVersionCommand runs "meridian version" in this test binary, which has
// build info (without VCS data: go test does not stamp it).
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runArgs(args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "meridian ") ||
			!strings.Contains(stdout, "  go:       "+runtime.Version()+"\n") || strings.Contains(stdout, "dev\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}
