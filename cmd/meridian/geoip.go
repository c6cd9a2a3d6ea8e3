package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/geo"
)

const geoipUsage = `usage:
  meridian geoip build [--v4 FILE] [--v6 FILE] --out FILE
      build a country database (mmdb) from Debian's tor-geoipdb files
  meridian geoip lookup --db FILE ADDR...
      print where each address is according to a GeoIP database
`

// runGeoIP runs "meridian geoip ..." with args after "geoip". It returns
// the process exit code: 0 on success, 1 on failure, 2 on bad usage.
func runGeoIP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, geoipUsage)
		return 2
	}
	switch args[0] {
	case "build":
		return geoipBuild(ctx, args[1:], stdout, stderr)
	case "lookup":
		return geoipLookup(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, geoipUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "meridian geoip: unknown command %q\n%s", args[0], geoipUsage)
		return 2
	}
}

func geoipBuild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("geoip build", "meridian geoip build [--v4 FILE] [--v6 FILE] --out FILE\n\n"+
		"Builds a country database (mmdb) from Debian's tor-geoipdb files.")
	v4 := fs.String("v4", geo.DefaultTorGeoIPv4, "tor IPv4 geoip file (\"\" to leave IPv4 out)")
	v6 := fs.String("v6", geo.DefaultTorGeoIPv6, "tor IPv6 geoip6 file (\"\" to leave IPv6 out)")
	out := fs.String("out", "", "database file to write (required)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "meridian geoip build: --out is required and no arguments are taken")
		fs.Usage()
		return 2
	}

	start := time.Now()
	var stats geo.BuildStats
	err := writeFileAtomic(*out, func(w io.Writer) error {
		var err error
		stats, err = geo.BuildTorCountryDB(ctx, w, geo.BuildOptions{V4Path: *v4, V6Path: *v6})
		return err
	}, func(tmp string) error {
		// Refuse to install a file our own reader would reject.
		_, err := geo.Open(tmp)
		return err
	})
	if err != nil {
		fmt.Fprintf(stderr, "meridian geoip build: %v\n", err)
		return 1
	}
	printBuildStats(stdout, *out, stats, time.Since(start))
	return 0
}

// writeFileAtomic writes path through a temporary file in the same
// directory, checks it, and renames it into place, so that a reader (or a
// server reloading the file) never sees a partial database.
func writeFileAtomic(path string, write func(io.Writer) error, check func(tmp string) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := check(tmp); err != nil {
		return fmt.Errorf("checking the new database: %w", err)
	}
	return os.Rename(tmp, path)
}

func printBuildStats(w io.Writer, path string, s geo.BuildStats, took time.Duration) {
	skipped := make([]string, 0, len(s.SkippedCodes))
	for _, code := range slices.Sorted(maps.Keys(s.SkippedCodes)) {
		skipped = append(skipped, fmt.Sprintf("%s=%d", code, s.SkippedCodes[code]))
	}
	fmt.Fprintf(w, "wrote %s: %d bytes, type %s, build time %s (from %s), in %s\n",
		path, s.Bytes, geo.BuiltDatabaseType, s.BuildTime.Format(time.RFC3339), s.BuildTimeSource, took.Round(time.Millisecond))
	fmt.Fprintf(w, "  ranges read:        %d (IPv4 %d, IPv6 %d)\n", s.Ranges(), s.RangesV4, s.RangesV6)
	fmt.Fprintf(w, "  prefixes inserted:  %d\n", s.Prefixes)
	fmt.Fprintf(w, "  countries:          %d\n", s.Countries)
	fmt.Fprintf(w, "  renamed codes:      %d ranges (UK stored as GB)\n", s.Renamed)
	fmt.Fprintf(w, "  continent only:     %d ranges (EU, AP, AN, CS)\n", s.ContinentOnly)
	fmt.Fprintf(w, "  skipped, junk:      %d ranges\n", s.SkippedJunk)
	fmt.Fprintf(w, "  skipped, withdrawn: %d ranges\n", s.SkippedWithdrawn)
	fmt.Fprintf(w, "  skipped by code:    %s\n", strings.Join(skipped, " "))
	fmt.Fprintf(w, "  refused by writer:  %d reserved and %d IPv4-alias prefixes (%d ranges entirely, %d in part)\n",
		s.RefusedReserved, s.RefusedAliased, s.RefusedRanges, s.PartialRanges)
}

func geoipLookup(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("geoip lookup", "meridian geoip lookup --db FILE ADDR...\n\n"+
		"Prints where each address is according to a GeoIP database.")
	dbPath := fs.String("db", "", "GeoIP database (mmdb) to read (required)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *dbPath == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "meridian geoip lookup: --db and at least one address are required")
		fs.Usage()
		return 2
	}
	db, err := geo.Open(*dbPath)
	if err != nil {
		fmt.Fprintf(stderr, "meridian geoip lookup: %v\n", err)
		return 1
	}
	code := 0
	for _, arg := range fs.Args() {
		addr, err := netip.ParseAddr(arg)
		if err != nil {
			fmt.Fprintf(stderr, "meridian geoip lookup: %v\n", err)
			code = 1
			continue
		}
		fmt.Fprintln(stdout, formatLocation(db, addr))
	}
	return code
}

// formatLocation renders one lookup as "ADDR key=value...".
func formatLocation(db *geo.DB, addr netip.Addr) string {
	loc := db.Locate(addr)
	if !loc.Network.IsValid() {
		return addr.String() + " not-found"
	}
	var b strings.Builder
	b.WriteString(addr.String())
	fmt.Fprintf(&b, " network=%s", loc.Network)
	if loc.Country != "" {
		fmt.Fprintf(&b, " country=%s", loc.Country)
		if name, ok := geo.CountryName(loc.Country); ok {
			fmt.Fprintf(&b, " (%s)", name)
		}
	}
	if loc.Continent != "" {
		fmt.Fprintf(&b, " continent=%s", loc.Continent)
	}
	if rec, err := db.Record(addr); err == nil && rec.City.Names.English != "" {
		fmt.Fprintf(&b, " city=%q", rec.City.Names.English)
	}
	if loc.HasCoords {
		fmt.Fprintf(&b, " lat=%.4f lon=%.4f", loc.Lat, loc.Lon)
	}
	return b.String()
}
