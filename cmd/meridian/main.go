// Command meridian is Meridian's single binary: the authoritative DNS
// server and its helpers, chosen by subcommand.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

const usage = `meridian — DNS-based global traffic manager

Usage:
  meridian server [--config FILE] [--dns-listen IP:PORT]... [--http-listen IP:PORT] [--check]
  meridian prober --region NAME [--etcd URL[,URL...]] [--id ID] [--config FILE] [--check-config]
  meridian geoip build [--v4 FILE] [--v6 FILE] --out FILE
  meridian geoip lookup --db FILE ADDRESS...
  meridian version

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
	case "geoip":
		return runGeoIP(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "meridian", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meridian: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
