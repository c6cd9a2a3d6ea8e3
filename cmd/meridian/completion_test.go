package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestCompletions: what `meridian __complete` offers for the word under
// the cursor: commands, verbs, flags (a command's own once it is known),
// flag values, files, and the names of regions and services from the
// server the command line names.
func TestCompletions(t *testing.T) {
	ts := startAPIServer(t, true)
	ctl := []string{"ctl", "--server", ts.url(), "--token-file", filepath.Join(ts.dir, "admin.token")}
	down := []string{"ctl", "--server", fmt.Sprintf("http://127.0.0.1:%d", testport.Free(t, 1)[0])}
	with := func(base []string, words ...string) []string { return append(slices.Clone(base), words...) }
	cases := []struct {
		name  string
		words []string
		want  []string
	}{
		{"commands", []string{""}, []string{"server", "prober", "ctl", "geoip", "dnssec", "signer", "version", "completion", "help"}},
		{"a command by its start", []string{"ct"}, []string{"ctl"}},
		{"shells", []string{"completion", ""}, []string{"bash", "fish", "zsh"}},
		{"server flags", []string{"server", "--c"}, []string{"--check", "--config"}},
		{"a file flag's value", []string{"server", "--config", ""}, []string{filesDirective}},
		{"geoip verbs", []string{"geoip", "l"}, []string{"lookup"}},
		{"geoip build flags", []string{"geoip", "build", "--o"}, []string{"--out"}},
		{"ctl commands", with(ctl, ""), []string{"apply", "get", "delete", "weights", "drain", "undrain", "explain", "latency", "shift", "audit", "state"}},
		{"shift verbs", with(ctl, "shift", ""), []string{"create", "list", "extend", "cancel"}},
		{"the region to drain", with(ctl, "shift", "create", "--drain", ""), []string{"as", "eu", "na"}},
		{"the service to shift", with(ctl, "shift", "create", "--drain", "eu", "--service", "l"), []string{"lb.example.org."}},
		{"guards", with(ctl, "shift", "create", "--revert-if", "h"), []string{"high-watermark"}},
		{"shift create flags", with(ctl, "shift", "create", "--d"), []string{"--drain", "--dry-run"}},
		{"a ctl command by its start", with(ctl, "dr"), []string{"drain"}},
		{"a group's verbs", with(ctl, "weights", ""), []string{"get", "set"}},
		{"global flags before the command", with(ctl, "--t"), []string{"--token", "--token-file", "--timeout"}},
		{"a command's own flags", with(ctl, "drain", "eu", "-"), []string{"--server", "--token", "--token-file", "--cacert", "--cert", "--key", "-o", "--output", "--timeout", "--dry-run", "--force"}},
		{"a certificate file", with(ctl, "--cacert", ""), []string{filesDirective}},
		{"output formats", with(ctl, "-o", ""), []string{"table", "wide", "json", "yaml"}},
		{"query types", with(ctl, "explain", "x", "--type", ""), []string{"A", "AAAA"}},
		{"region names", with(ctl, "drain", ""), []string{"as", "eu", "na"}},
		{"region names by their start", with(ctl, "undrain", "e"), []string{"eu"}},
		{"what get lists", with(ctl, "get", ""), []string{"regions", "services", "status"}},
		{"service names", with(ctl, "get", "services", ""), []string{"geo.example.org.", "lb.example.org.", "sticky.example.org."}},
		{"delete kinds", with(ctl, "delete", ""), []string{"region", "service"}},
		{"regions to delete", with(ctl, "delete", "region", "n"), []string{"na"}},
		{"explain names", with(ctl, "explain", "s"), []string{"sticky.example.org."}},
		{"the regions of a service", with(ctl, "weights", "set", "lb.example.org", ""), []string{"eu=", "na=", "as="}},
		{"the regions not given yet", with(ctl, "weights", "set", "lb.example.org", "eu=5", ""), []string{"na=", "as="}},
		{"a latency table", with(ctl, "latency", "import", ""), []string{filesDirective}},
		{"a state file", with(ctl, "apply", "-f", ""), []string{filesDirective}},
		{"nothing after the arguments", with(ctl, "drain", "eu", ""), nil},
		{"a server that does not answer", with(down, "drain", ""), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var out bytes.Buffer
			if code := run(context.Background(), append([]string{"__complete"}, tc.words...), &out, &out); code != 0 {
				t.Fatalf("exit %d: %s", code, out.String())
			}
			got := strings.Fields(out.String())
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%q: got %q, want %q", tc.words, got, tc.want)
			}
			if d := time.Since(start); d > completeTimeout+time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestCompletionScripts: the scripts of `meridian completion` complete
// in the real shells, calling the binary for the candidates: bash
// (COMPREPLY, no space after REGION=), zsh (compadd, with the same
// suffix rule) and fish (complete -C).
func TestCompletionScripts(t *testing.T) {
	bash, zsh, fish := testtool.Need(t, "bash"), testtool.Need(t, "zsh"), testtool.Need(t, "fish")
	ts := startAPIServer(t, true)
	bin := buildMeridian(t)
	dir := filepath.Dir(bin)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		if code := run(context.Background(), []string{"completion", sh}, &out, &out); code != 0 {
			t.Fatalf("completion %s: exit %d", sh, code)
		}
		if err := os.WriteFile(filepath.Join(dir, "complete."+sh), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The command line typed, and what each shell offers for its last
	// word (bash and zsh: with the suffix after the candidate).
	cases := []struct {
		name     string
		line     []string
		bashZsh  []string
		fishWant []string
	}{
		{"a command", []string{"ctl", "dr"}, []string{"drain| "}, []string{"drain"}},
		{"regions", []string{"ctl", "--server", ts.url(), "drain", ""}, []string{"as| ", "eu| ", "na| "}, []string{"as", "eu", "na"}},
		{"weights", []string{"ctl", "--server", ts.url(), "weights", "set", "lb.example.org", "n"}, []string{"na=|"}, []string{"na="}},
		{"flags", []string{"ctl", "drain", "eu", "--dr"}, []string{"--dry-run| "}, []string{"--dry-run"}},
	}
	env := append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	shell := func(t *testing.T, prog string, args ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", prog, err, out)
		}
		return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	}
	quote := func(words []string) string {
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = "'" + w + "'"
		}
		return strings.Join(q, " ")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			words := append([]string{"meridian"}, tc.line...)
			t.Run("bash", func(t *testing.T) {
				got := shell(t, bash, "--norc", "--noprofile", "-c", fmt.Sprintf(
					`source ./complete.bash
COMP_WORDS=(%s); COMP_CWORD=%d
# compopt works only while the shell completes: stand in for it.
compopt() { [[ $2 == nospace ]] && nospace=1; }
_meridian
for w in "${COMPREPLY[@]}"; do if [[ -n $nospace ]]; then echo "$w|"; else echo "$w| "; fi; done`, quote(words), len(words)-1))
				if !slices.Equal(got, tc.bashZsh) {
					t.Fatalf("got %q, want %q", got, tc.bashZsh)
				}
			})
			t.Run("zsh", func(t *testing.T) {
				got := shell(t, zsh, "-f", "-c", fmt.Sprintf(
					`compdef() { : }
compadd() { local suffix=" "; while [[ $1 == -* && $1 != -- ]]; do [[ $1 == -S ]] && { suffix=$2; shift }; shift; done; [[ $1 == -- ]] && shift; for w in "$@"; do print -r -- "$w|$suffix"; done }
_files() { print _files }
source ./complete.zsh
words=(%s); CURRENT=%d
_meridian`, quote(words), len(words)))
				if !slices.Equal(got, tc.bashZsh) {
					t.Fatalf("got %q, want %q", got, tc.bashZsh)
				}
			})
			t.Run("fish", func(t *testing.T) {
				line := strings.Join(words, " ")
				got := shell(t, fish, "--no-config", "-c", "source ./complete.fish; complete -C'"+line+"'")
				if !slices.Equal(got, tc.fishWant) {
					t.Fatalf("got %q, want %q", got, tc.fishWant)
				}
			})
		})
	}
}
