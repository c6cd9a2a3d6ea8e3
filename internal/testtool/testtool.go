// Package testtool finds the outside programs and data files that tests
// drive (dig, kdig, unbound, gdnsd, ...) and fails the test with the
// install hint when one is missing, so a test never passes by not running.
//
// Every program or file a test asks for must be listed here with its
// Debian package and the make target whose dependency step installs it
// (scripts/deps.sh); TestPackagesListed checks the two agree.
//
// Start runs a long-running program (a resolver, a name server, etcd, a
// meridian subprocess) so that it dies with the test binary even when
// that is killed by its timeout, and with the test that started it.
package testtool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// source is where a program or file comes from.
type source struct {
	pkg    string // Debian package
	target string // make target that installs it (its group in scripts/deps.sh)
}

// programs maps a program's name to its package.
var programs = map[string]source{
	"dig":               {"dnsutils", "test"},
	"kdig":              {"knot-dnsutils", "test"},
	"unbound":           {"unbound", "test"},
	"unbound-checkconf": {"unbound", "test"},
	"mmdblookup":        {"mmdb-bin", "test"},
	"gdnsd":             {"gdnsd", "test"},
	"named":             {"bind9", "test"},
	"named-checkzone":   {"bind9-utils", "test"},
	"named-checkconf":   {"bind9-utils", "test"},
	"dnssec-verify":     {"bind9-utils", "test"},
	"delv":              {"bind9-dnsutils", "test"},
	"nsupdate":          {"bind9-dnsutils", "test"},
	"etcdctl":           {"etcd-client", "test"},
	"openssl":           {"openssl", "test"},
	"git":               {"git", "test"},
	"systemd-analyze":   {"systemd", "test"},
	"etcd":              {"etcd-server", "test"},
	"haproxy":           {"haproxy", "test"},
	"promtool":          {"prometheus", "test"},
	"chromium":          {"chromium", "test"},
	"dnsperf":           {"dnsperf", "bench"},
	"bash":              {"bash", "test"},
	"zsh":               {"zsh", "test"},
	"fish":              {"fish", "test"},
}

// files maps a data file's absolute path to its package.
var files = map[string]source{
	"/usr/share/tor/geoip":  {"tor-geoipdb", "test"},
	"/usr/share/tor/geoip6": {"tor-geoipdb", "test"},
}

// sbinDirs are searched after PATH: Debian installs servers such as
// unbound, gdnsd and named there, and a normal user's PATH leaves it out.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// Need returns the path of the program name, failing the test with the
// Debian package to install when it is not found.
func Need(tb testing.TB, name string) string {
	tb.Helper()
	src, ok := programs[name]
	if !ok {
		tb.Fatalf("testtool: %q is not listed; add it with its Debian package to internal/testtool and scripts/deps.sh", name)
	}
	path, err := lookPath(name)
	if err != nil {
		tb.Fatal(src.hint(name))
	}
	return path
}

// NeedFile returns path, failing the test with the Debian package to
// install when the file does not exist.
func NeedFile(tb testing.TB, path string) string {
	tb.Helper()
	src, ok := files[path]
	if !ok {
		tb.Fatalf("testtool: %q is not listed; add it with its Debian package to internal/testtool and scripts/deps.sh", path)
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		tb.Fatal(src.hint(path))
	}
	return path
}

func (s source) hint(name string) string {
	return fmt.Sprintf("%s not found: install %s (make %s installs it)", name, s.pkg, s.target)
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("not found")
}

// HAProxy is the configuration of an HAProxy in front of one backend
// server, as the tests run Debian's haproxy: an HTTP frontend "www" and a
// stats page (at /stats), all on loopback.
type HAProxy struct {
	Stats, Front, Backend string        // host:port of each
	MaxConn               int           // the frontend's maxconn
	Timeout               time.Duration // client and server inactivity
}

// Config is the haproxy.cfg text of h.
func (h HAProxy) Config() string {
	return fmt.Sprintf(`global
    maxconn %d
defaults
    mode http
    timeout connect 1s
    timeout client %dms
    timeout server %dms
frontend stats
    bind %s
    stats enable
    stats uri /stats
frontend www
    bind %s
    maxconn %d
    default_backend app
backend app
    server s1 %s
`, max(1000, 2*h.MaxConn), h.Timeout.Milliseconds(), h.Timeout.Milliseconds(), h.Stats, h.Front, h.MaxConn, h.Backend)
}
