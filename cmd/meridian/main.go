// Command meridian is Meridian's single binary: the authoritative DNS
// server and its helpers, chosen by subcommand.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/meridian-gslb/meridian/internal/suggest"
)

const usage = `meridian — DNS-based global traffic manager

Usage:
  meridian server [--config FILE] [--dns-listen IP:PORT]... [--http-listen IP:PORT] [--check]
  meridian prober --region NAME [--etcd URL[,URL...]] [--id ID] [--config FILE] [--check-config]
  meridian ctl [--server URL] [--token TOKEN | --token-file FILE] [-o table|wide|json|yaml] COMMAND ...
  meridian geoip build [--v4 FILE] [--v6 FILE] --out FILE
  meridian geoip lookup --db FILE ADDRESS...
  meridian dnssec keygen --zone ZONE [--dir DIR] [--algorithm 13|15] [--ksk-zsk]
  meridian dnssec ds ZONE [--dir DIR | --config FILE]
  meridian signer [--config FILE] [--zone ZONE]... [--interval DURATION]
  meridian version
  meridian completion bash|zsh|fish

Run "meridian COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(ctx, args[1:], stdout, stderr)
	case "prober":
		return runProber(ctx, args[1:], stdout, stderr)
	case "ctl":
		return runCtl(ctx, args[1:], stdout, stderr)
	case "geoip":
		return runGeoIP(ctx, args[1:], stdout, stderr)
	case "dnssec":
		return runDNSSEC(ctx, args[1:], stdout, stderr)
	case "signer":
		return runSigner(ctx, args[1:], stdout, stderr)
	case "completion":
		return runCompletion(args[1:], stdout, stderr)
	case "__complete":
		return runComplete(ctx, args[1:], stdout)
	case etcdMemberCommand: // not for people: a server runs its embedded etcd so
		return runEtcdMember(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fs := newFlagSet("version", "meridian version\n\nPrints the version, VCS revision and build time of this binary.")
		if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
			return code
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "meridian version: unexpected argument %q\n", fs.Arg(0))
			return 2
		}
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprint(stdout, versionInfo(bi))
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	hint := ""
	if h := suggest.Hint(args[0], topCommands); h != "" {
		hint = "; " + h
	}
	fmt.Fprintf(stderr, "meridian: unknown command %q%s\n\n%s", args[0], hint, usage)
	return 2
}

// newFlagSet makes a subcommand's flag set whose usage starts with the
// synopsis.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("meridian "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a subcommand's arguments. ok is false when the
// command must end at once with code: 0 after -h/--help printed the usage
// on stdout, 2 after a bad flag was reported on stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	case err != nil:
		_, _ = stderr.Write(msg.Bytes())
		return 2, false
	}
	fs.SetOutput(stderr)
	return 0, true
}

// versionInfo describes the binary from its build info: the module version
// (a pseudo-version from the VCS state when the Go toolchain could make
// one, "(devel)" otherwise), the VCS revision, its commit time and whether
// the tree had local changes.
func versionInfo(bi *debug.BuildInfo) string {
	if bi == nil {
		return "meridian: no build information in this binary\n"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(&b, "meridian %s\n", version)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, "  revision: %s\n", rev)
		fmt.Fprintf(&b, "  time:     %s\n", or(settings["vcs.time"], "unknown"))
		fmt.Fprintf(&b, "  modified: %s\n", or(settings["vcs.modified"], "unknown"))
	} else {
		// go build leaves VCS data out with -buildvcs=false and outside a
		// git clone (a git worktree, a source archive).
		b.WriteString("  revision: unknown (built without VCS information)\n")
	}
	fmt.Fprintf(&b, "  go:       %s\n", bi.GoVersion)
	return b.String()
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
