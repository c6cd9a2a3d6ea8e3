package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// The checks `meridian server --check` and `meridian prober
// --check-config` add to the validation every start does: what the
// configuration names on this host (the TLS files, as the user the check
// runs as; the addresses it binds; the GeoIP database; the data
// directory) and the placeholders of the files in deploy/. The units run
// them before every start (ExecStartPre), so a problem shows there once,
// not as a restart every second.
//
// Errors are what would keep the process from starting or from ever
// working; warnings are printed and leave the exit status 0.

// findings are what a host check found, each a regions.FileError.
type findings struct{ errs, warns []error }

func (f *findings) add(warning bool, err error) {
	if warning {
		f.warns = append(f.warns, err)
	} else {
		f.errs = append(f.errs, err)
	}
}

// exampleCookieSecret is the cookie secret examples/meridian.yaml shows
// in a comment: published, so anyone could make valid server cookies
// (and pass the RRL exemption) for a server that uses it.
const exampleCookieSecret = "5a1f0c9e3b7d4a6e8f2c1b0a9d8e7f6c"

// onHost says whether this host has address a, by binding a TCP socket
// to it on a port the kernel picks. A wildcard is always there.
func onHost(a netip.Addr) error {
	a = a.Unmap()
	if a.IsUnspecified() {
		return nil
	}
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			err = syscall.EADDRNOTAVAIL
		}
		return fmt.Errorf("%s is not an address of this host (%w)", a, err)
	}
	return ln.Close()
}

// Names and addresses reserved for examples: none is anyone's host.
var (
	exampleDomains = []string{"example", "example.com", "example.net", "example.org", "invalid"}
	docPrefixes    = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),    // RFC 5737
		netip.MustParsePrefix("198.51.100.0/24"), // RFC 5737
		netip.MustParsePrefix("203.0.113.0/24"),  // RFC 5737
		netip.MustParsePrefix("2001:db8::/32"),   // RFC 3849
	}
)

// exampleName says whether host is a name reserved for examples (RFC
// 2606): it resolves nowhere, so it can only be a placeholder.
func exampleName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range exampleDomains {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// docAddr says whether a is a documentation address (RFC 5737, RFC
// 3849), which no network routes.
func docAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range docPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// placeholder judges the host of something a process must reach (an etcd
// endpoint, the canary): a reserved example name is an error, a
// documentation address a warning (a lab may route one). msg is "" when
// it is neither.
func placeholder(host string) (warning bool, msg string) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if docAddr(a) {
			return true, fmt.Sprintf("%s is a documentation address (RFC 5737, RFC 3849) that no network routes", a)
		}
		return false, ""
	}
	if exampleName(host) {
		return false, fmt.Sprintf("%s is a name reserved for examples (RFC 2606) that resolves nowhere", host)
	}
	return false, ""
}

// endpointHost is the host of an etcd endpoint ("host:port" or a URL).
func endpointHost(ep string) string {
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(ep); err == nil {
		return h
	}
	return ep
}

// fileFinding is a regions.FileError for field of the YAML document root
// read from file.
func fileFinding(file string, root *yaml.Node, field, format string, args ...any) error {
	return &regions.FileError{File: file, Line: yamlLine(root, field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkEtcd checks the etcd section of a configuration file: the TLS
// files and the endpoints. flagEndpoints: the endpoints came from a flag
// (reported as --etcd, without a line).
func checkEtcd(f *findings, file string, root *yaml.Node, ec store.EtcdConfig, flagEndpoints bool, now time.Time) {
	for i, ep := range ec.Endpoints {
		warning, msg := placeholder(endpointHost(ep))
		if msg == "" {
			continue
		}
		msg += ": list your etcd members (docs/deploy.md, TLS for etcd)"
		if flagEndpoints {
			f.add(warning, fmt.Errorf("--etcd: %s", msg))
		} else {
			f.add(warning, fileFinding(file, root, fmt.Sprintf("etcd.endpoints[%d]", i), "%s", msg))
		}
	}
	for _, p := range ec.CheckTLSFiles(now) {
		f.add(p.Warning, fileFinding(file, root, "etcd."+p.Field, "%s", p.Message))
	}
	if msg := ec.PasswordInClear(); msg != "" {
		f.add(true, fileFinding(file, root, "etcd.password", "%s", msg))
	}
}

// rootWarning: root reads every file whatever its mode, so a check run
// as root says nothing of what the service's user can read.
func rootWarning(f *findings, command string) {
	if os.Geteuid() == 0 {
		f.add(true, fmt.Errorf("running as root, which reads every file whatever its mode: run the check as the service's user to know that it can read them (runuser -u meridian -- %s)", command))
	}
}

// checkHost is the server's host check (see findings); desired is the
// bootstrap file's content, nil without one.
func (c *Config) checkHost(desired *regions.Desired, now time.Time) findings {
	var f findings
	for i, a := range c.Listen.DNS {
		ap, _ := netip.ParseAddrPort(a) // validated
		if err := onHost(ap.Addr()); err != nil {
			f.add(false, c.errf(fmt.Sprintf("listen.dns[%d]", i), "%v%s", err, docHint(ap.Addr(), "this server's public address (the glue at the parent)")))
		}
	}
	if c.Listen.HTTP != "" {
		ap, _ := netip.ParseAddrPort(c.Listen.HTTP)
		if err := onHost(ap.Addr()); err != nil {
			f.add(false, c.errf("listen.http", "%v", err))
		}
	}
	checkEtcd(&f, c.path, &c.root, c.Etcd.EtcdConfig, false, now)
	if c.API.TLS.CertFile != "" && c.API.TLS.KeyFile != "" {
		// The errors stopped validate already: the warnings.
		for _, p := range c.tlsFiles().Check(now) {
			if p.Warning {
				f.add(true, c.errf(p.Field, "%s", p.Message))
			}
		}
	}
	for i, s := range c.DNS.CookieSecrets {
		if strings.EqualFold(s, exampleCookieSecret) {
			f.add(false, c.errf(fmt.Sprintf("dns.cookie_secrets[%d]", i), "the example secret of examples/meridian.yaml, known to everyone: make one with `openssl rand -hex 16`"))
		}
	}
	if c.GeoIP.Database != "" {
		// The whole database is read, as the server reads it at start.
		if _, err := geo.Open(c.GeoIP.Database); err != nil {
			f.add(false, c.errf("geoip.database", "%v", err))
		}
	}
	// The server makes data_dir when it is missing; one it cannot write
	// keeps it from saving the state it answers from while etcd is away.
	if st, err := os.Stat(c.DataDir); err == nil {
		if !st.IsDir() {
			f.add(false, c.errf("data_dir", "%s is not a directory", c.DataDir))
		} else if err := unix.Faccessat(unix.AT_FDCWD, c.DataDir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			f.add(false, c.errf("data_dir", "%s: uid %d, which this runs as, cannot write in it (%v)", c.DataDir, os.Geteuid(), err))
		}
	}
	if desired != nil {
		checkDesired(&f, c.Bootstrap, desired)
	}
	rootWarning(&f, "meridian server --config "+c.path+" --check")
	return f
}

// docHint adds, to a problem with a documentation address, that it is
// the placeholder of the files in deploy/ and what belongs there.
func docHint(a netip.Addr, what string) string {
	if docAddr(a) {
		return "; it is a documentation address, the placeholder of deploy/: put " + what + " here"
	}
	return ""
}

// checkDesired warns of the placeholders of a desired-state file that a
// server would create in etcd: documentation VIPs (clients would be sent
// nowhere), checks sent to loopback (the stand-ins of `make run`, which
// every prober would look for on its own host) and example host names.
func checkDesired(f *findings, file string, d *regions.Desired) {
	var root yaml.Node
	if b, err := os.ReadFile(file); err == nil {
		_ = yaml.Unmarshal(b, &root) // loaded already; only for line numbers
	}
	for i, r := range d.Regions {
		for j, vip := range r.VIPs {
			if docAddr(vip) {
				f.add(true, fileFinding(file, &root, fmt.Sprintf("regions[%d].vips[%d]", i, j),
					"%s is a documentation address, a placeholder of deploy/state.yaml: clients would be sent nowhere; put region %s's VIPs here", vip, r.Name))
			}
		}
		for _, vip := range r.VIPs {
			if _, mapped := r.Check.Address[vip]; !mapped {
				continue
			}
			host, _, _ := net.SplitHostPort(r.Check.Target(vip))
			a, err := netip.ParseAddr(host)
			if strings.EqualFold(host, "localhost") || err == nil && a.IsLoopback() {
				f.add(true, fileFinding(file, &root, fmt.Sprintf("regions[%d].check.address", i),
					"%s is checked at %s, on each prober's own host (the stand-ins of examples/state.yaml): leave address out to check the VIP itself", vip, r.Check.Target(vip)))
			}
		}
		if exampleName(r.Check.Host) {
			f.add(true, fileFinding(file, &root, fmt.Sprintf("regions[%d].check.host", i),
				"%s is a name reserved for examples, a placeholder of deploy/state.yaml: put the name region %s's health endpoint answers to", r.Check.Host, r.Name))
		}
	}
}

// checkHost is the prober's host check (see findings). flagEndpoints:
// the etcd endpoints came from --etcd.
func (c *ProberConfig) checkHost(flagEndpoints bool, now time.Time) findings {
	var f findings
	file := c.path
	if file == "" {
		file = "defaults"
	}
	checkEtcd(&f, file, &c.root, c.Etcd, flagEndpoints, now)
	if src, err := netip.ParseAddr(c.SourceAddress); err == nil {
		if err := onHost(src); err != nil {
			f.add(false, fileFinding(file, &c.root, "source_address", "%v", err))
		}
	}
	if ap, err := netip.ParseAddrPort(c.Listen.HTTP); err == nil {
		if err := onHost(ap.Addr()); err != nil {
			if c.httpFlag {
				f.add(false, fmt.Errorf("--http-listen: %v", err))
			} else {
				f.add(false, fileFinding(file, &c.root, "listen.http", "%v%s", err, docHint(ap.Addr(), "the address Prometheus scrapes this prober at")))
			}
		}
	}
	canary, field := c.Canary.Address, "canary.address"
	if c.Canary.URL != "" {
		canary, field = c.Canary.URL, "canary.url"
	}
	if canary != "" {
		if warning, msg := placeholder(endpointHost(canary)); msg != "" {
			f.add(warning, fileFinding(file, &c.root, field,
				"%s: the prober would never trust itself; name a canary of yours (docs/deploy.md, Probers)", msg))
		}
	}
	if c.Etcd.CAFile != "" || c.Etcd.CertFile != "" {
		rootWarning(&f, "meridian prober --config "+c.path+" --check-config")
	}
	return f
}

// printWarnings prints what a check found that does not stop a start.
func printWarnings(w io.Writer, command string, warns []error) {
	if len(warns) > 0 {
		fmt.Fprintf(w, "%s: warning:\n%s\n", command, indent(errors.Join(warns...).Error()))
	}
}
