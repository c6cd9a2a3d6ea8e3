package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
)

// The server's configuration of TestHostCheck: PKI and DIR are replaced
// by the run's directories.
const hostCheckServer = `listen:
  dns: ["127.0.0.1:53"]
  http: "127.0.0.1:8053"
data_dir: DIR/data
dns:
  cookie_secrets: ["00112233445566778899aabbccddeeff"]
etcd:
  endpoints: ["https://127.0.0.1:2379"]
  ca_file: PKI/ca.pem
  cert_file: PKI/meridian-server.pem
  key_file: PKI/meridian-server-key.pem
zone_dir: DIR
zones:
  - origin: example.org.
    file: example.org.zone
`

// The prober's.
const hostCheckProber = `etcd:
  endpoints: ["https://127.0.0.1:2379"]
  ca_file: PKI/ca.pem
  cert_file: PKI/meridian-prober.pem
  key_file: PKI/meridian-prober-key.pem
source_address: 127.0.0.1
canary:
  url: http://127.0.0.1:8080/ping
`

// A bootstrap file left as the placeholders of deploy/state.yaml and
// examples/state.yaml are: documentation VIPs, an example host name, a
// check sent to a stand-in on loopback.
const hostCheckState = `regions:
  - name: eu-west
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.90, country: NL, continent: EU}
    check:
      type: http
      port: 80
      host: eu-west.lb.example.com
      address: {192.0.2.10: 127.0.0.10}
`

// TestHostCheck runs `meridian server --check` and `meridian prober
// --check-config` on each bad file of a deployment: TLS files missing,
// mixed up, unreadable by the service's user or not matching; addresses
// not on this host; placeholders of deploy/ left in. Each error is
// reported as file:line: field: message, on the line of the field, and
// fails the check; each warning is printed and leaves it passing.
func TestHostCheck(t *testing.T) {
	dir := t.TempDir()
	openForAll(t, dir)
	pki := filepath.Join(dir, "pki")
	openssl := testtool.Need(t, "openssl")
	certs := func(args ...string) {
		cmd := exec.Command("../../deploy/certs.sh", args...)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(openssl)+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("deploy/certs.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	certs("ca", pki)
	certs("client", pki, "meridian-server")
	certs("client", pki, "meridian-prober")
	if err := os.Chmod(pki, 0o755); err != nil { // the CA's directory is private: here the service's user looks in
		t.Fatal(err)
	}
	junk := writeFile(t, filepath.Join(dir, "junk.mmdb"), "not a database\n")

	type testCase struct {
		name    string
		command string            // server or prober
		edit    [][2]string       // replacements in the configuration
		files   map[string]string // more files in the case's directory
		args    []string          // more flags
		// asService: run as an unprivileged user (nobody when this runs as
		// root), with the key unreadable and data_dir not writable to it.
		asService bool
		errs      []string // "field: part of the message", in the order printed
		warns     []string
	}
	cases := []testCase{
		{name: "server: the files certs.sh makes", command: "server"},
		{name: "server: etcd cert_file missing", command: "server",
			edit: [][2]string{{"PKI/meridian-server.pem", "PKI/none.pem"}},
			errs: []string{"etcd.cert_file: PKI/none.pem: no such file"}},
		{name: "server: a private key as ca_file", command: "server",
			edit: [][2]string{{"PKI/ca.pem", "PKI/meridian-server-key.pem"}},
			errs: []string{"etcd.ca_file: PKI/meridian-server-key.pem: it holds a private key, not CA certificates"}},
		{name: "server: the key of another certificate", command: "server",
			edit: [][2]string{{"PKI/meridian-server-key.pem", "PKI/meridian-prober-key.pem"}},
			errs: []string{"etcd.key_file: PKI/meridian-prober-key.pem does not belong to the certificate in PKI/meridian-server.pem"}},
		{name: "server: the service's user cannot read the key or write data_dir", command: "server", asService: true,
			errs: []string{"etcd.key_file: PKI/meridian-server-key.pem: user ", "data_dir: DIR/data: uid "}},
		{name: "server: listen addresses not on this host", command: "server",
			edit: [][2]string{{"127.0.0.1:53", "192.0.2.53:53"}, {"127.0.0.1:8053", "198.51.100.80:8053"}},
			errs: []string{"listen.dns[0]: 192.0.2.53 is not an address of this host (cannot assign requested address); it is a documentation address, the placeholder of deploy/",
				"listen.http: 198.51.100.80 is not an address of this host"}},
		{name: "server: placeholders of deploy/meridian.yaml and examples/meridian.yaml", command: "server",
			edit: [][2]string{{"https://127.0.0.1:2379", "https://etcd-1.example.net:2379"}, {"00112233445566778899aabbccddeeff", exampleCookieSecret}},
			errs: []string{"etcd.endpoints[0]: etcd-1.example.net is a name reserved for examples",
				"dns.cookie_secrets[0]: the example secret of examples/meridian.yaml"}},
		{name: "server: an etcd password without TLS", command: "server",
			edit:  [][2]string{{`endpoints: ["https://127.0.0.1:2379"]`, "endpoints: [\"http://127.0.0.1:2379\"]\n  username: meridian\n  password: secret"}},
			warns: []string{"etcd.password: the etcd password goes in clear to http://127.0.0.1:2379, without TLS"}},
		{name: "server: a GeoIP database that is none", command: "server",
			edit: [][2]string{{"zone_dir:", "geoip:\n  database: " + junk + "\nzone_dir:"}},
			errs: []string{"geoip.database: geoip database " + junk + ": not a readable MaxMind DB"}},
		{name: "server: the placeholders of a bootstrap file are warnings", command: "server",
			edit:  [][2]string{{"zone_dir:", "bootstrap: state.yaml\nzone_dir:"}},
			files: map[string]string{"state.yaml": hostCheckState},
			warns: []string{"regions[0].vips[0]: 192.0.2.10 is a documentation address",
				"regions[0].check.address: 192.0.2.10 is checked at 127.0.0.10:80, on each prober's own host",
				"regions[0].check.host: eu-west.lb.example.com is a name reserved for examples"}},

		{name: "prober: the files certs.sh makes", command: "prober"},
		{name: "prober: source_address not on this host", command: "prober",
			edit: [][2]string{{"source_address: 127.0.0.1", "source_address: 203.0.113.41"}},
			errs: []string{"source_address: 203.0.113.41 is not an address of this host"}},
		{name: "prober: the example canary", command: "prober",
			edit: [][2]string{{"http://127.0.0.1:8080/ping", "https://canary.example.net/ping"}},
			errs: []string{"canary.url: canary.example.net is a name reserved for examples (RFC 2606) that resolves nowhere: the prober would never trust itself"}},
		{name: "prober: a canary at a documentation address is a warning", command: "prober",
			edit:  [][2]string{{"url: http://127.0.0.1:8080/ping", "address: 198.51.100.53:53"}},
			warns: []string{"canary.address: 198.51.100.53 is a documentation address"}},
		{name: "prober: the service's user cannot read the key", command: "prober", asService: true,
			errs: []string{"etcd.key_file: PKI/meridian-prober-key.pem: user "}},
		{name: "prober: example endpoints on the command line", command: "prober",
			args: []string{"--etcd", "https://etcd-1.example.net:2379"},
			errs: []string{"--etcd: etcd-1.example.net is a name reserved for examples"}},
	}
	var bin string // for the cases run as another user
	if os.Geteuid() == 0 {
		bin = buildMeridian(t)
		openForAll(t, filepath.Dir(bin))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cdir := filepath.Join(dir, strconv.Itoa(i))
			if err := os.MkdirAll(filepath.Join(cdir, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			subst := strings.NewReplacer("PKI", pki, "DIR", cdir)
			text, file := hostCheckServer, "meridian.yaml"
			if tc.command == "prober" {
				text, file = hostCheckProber, "prober.yaml"
			}
			for _, e := range tc.edit {
				if !strings.Contains(text, e[0]) {
					t.Fatalf("the configuration has no %q", e[0])
				}
				text = strings.Replace(text, e[0], e[1], 1)
			}
			if tc.command == "server" {
				tc.files = mapWith(tc.files, "example.org.zone", testZone(1, "192.0.2.1"))
			}
			for name, content := range tc.files {
				writeFile(t, filepath.Join(cdir, name), content)
			}
			config := writeFile(t, filepath.Join(cdir, file), subst.Replace(text))
			args := []string{tc.command, "--config", config, "--check"}
			if tc.command == "prober" {
				args = append([]string{"prober", "--config", config, "--check-config"}, tc.args...)
			}

			var code int
			var stdout, stderr string
			switch {
			case tc.asService && os.Geteuid() == 0:
				code, stdout, stderr = runAs(t, 65534, bin, args...)
			case tc.asService:
				// Not root: the modes alone keep this user out.
				key := filepath.Join(pki, "meridian-"+tc.command+"-key.pem")
				for p, mode := range map[string]os.FileMode{key: 0, filepath.Join(cdir, "data"): 0o555} {
					if err := os.Chmod(p, mode); err != nil {
						t.Fatal(err)
					}
				}
				t.Cleanup(func() { _ = os.Chmod(key, 0o600) })
				code, stdout, stderr = runArgs(args...)
			default:
				code, stdout, stderr = runArgs(args...)
			}

			errs, warns := checkSections(t, stderr, "meridian "+tc.command)
			if len(tc.errs) == 0 && (code != 0 || !strings.Contains(stdout, "valid")) {
				t.Fatalf("exit %d, want 0 and \"valid\"\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if len(tc.errs) > 0 && code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			want := func(kind string, got, want []string) {
				if os.Geteuid() == 0 && kind == "warning" && !tc.asService {
					want = append(want, "running as root")
				}
				if len(got) != len(want) {
					t.Errorf("%d %ss, want %d:\n%s", len(got), kind, len(want), stderr)
					return
				}
				for j, w := range want {
					w = subst.Replace(w)
					if err := fileLine(got[j], config, w); err != nil {
						t.Errorf("%s %d: %v", kind, j, err)
					}
				}
			}
			want("error", errs, tc.errs)
			want("warning", warns, tc.warns)
		})
	}
}

// mapWith is m (made when nil) with key set.
func mapWith(m map[string]string, key, value string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}

// checkSections splits a check's stderr into its errors and warnings,
// one a line.
func checkSections(t *testing.T, stderr, command string) (errs, warns []string) {
	t.Helper()
	var into *[]string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		switch {
		case l == "":
		case l == command+": configuration error:":
			into = &errs
		case l == command+": warning:":
			into = &warns
		case into != nil && strings.HasPrefix(l, "  "):
			*into = append(*into, strings.TrimSpace(l))
		default:
			t.Errorf("unexpected line %q in:\n%s", l, stderr)
		}
	}
	return errs, warns
}

// fieldFirst matches a message about a field of a file.
var fieldFirst = regexp.MustCompile(`^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: `)

// fileLine checks that line is "FILE:N: want...", FILE the configuration
// (or the bootstrap file beside it) and line N of it holding the field's
// last key; a flag (--etcd) has no file.
func fileLine(line, config, want string) error {
	if !fieldFirst.MatchString(want) { // a flag, or the check itself
		if !strings.HasPrefix(line, want) {
			return fmt.Errorf("%q does not start with %q", line, want)
		}
		return nil
	}
	m := regexp.MustCompile(`^(\S+?):(\d+): (.*)$`).FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("%q is not file:line: field: message", line)
	}
	if !strings.HasPrefix(m[3], want) {
		return fmt.Errorf("%q does not start with %q", m[3], want)
	}
	if filepath.Dir(m[1]) != filepath.Dir(config) {
		return fmt.Errorf("%q: not a file beside %s", line, config)
	}
	field, _, _ := strings.Cut(m[3], ": ")
	key := field[strings.LastIndex(field, ".")+1:]
	key, _, _ = strings.Cut(key, "[")
	b, err := os.ReadFile(m[1])
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(m[2])
	lines := strings.Split(string(b), "\n")
	if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], key) {
		return fmt.Errorf("%q: line %d of %s does not hold %q", line, n, m[1], key)
	}
	return nil
}

// openForAll lets every user into dir and the directory above it (a
// test's temporary directory is private).
func openForAll(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// runAs runs bin with args as uid (and the same gid), as systemd runs a
// unit's ExecStartPre with its User=.
func runAs(t *testing.T, uid uint32, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// TestDeployPlaceholders: the files of deploy/, installed unedited, are
// refused (or warned of) for each placeholder they hold, and the example
// cookie secret is the one examples/meridian.yaml shows.
func TestDeployPlaceholders(t *testing.T) {
	fields := func(errs []error) []string {
		var out []string
		for _, err := range errs {
			var fe *regions.FileError
			if errors.As(err, &fe) {
				out = append(out, fe.Field)
			}
		}
		return out
	}
	hasAll := func(t *testing.T, kind string, got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("no %s for %s: %v", kind, w, got)
			}
		}
	}

	t.Run("deploy/meridian.yaml", func(t *testing.T) {
		cfg, err := readConfig("../../deploy/meridian.yaml")
		if err != nil {
			t.Fatal(err)
		}
		f := cfg.checkHost(nil, time.Now())
		hasAll(t, "error", fields(f.errs), "listen.dns[0]", "listen.dns[1]", "etcd.endpoints[0]", "etcd.endpoints[1]", "etcd.endpoints[2]")
	})
	t.Run("deploy/prober.yaml", func(t *testing.T) {
		cfg, err := readProberConfig("../../deploy/prober.yaml")
		if err != nil {
			t.Fatal(err)
		}
		f := cfg.checkHost(false, time.Now())
		hasAll(t, "error", fields(f.errs), "etcd.endpoints[0]", "etcd.endpoints[1]", "etcd.endpoints[2]", "canary.url")
	})
	t.Run("deploy/state.yaml", func(t *testing.T) {
		const file = "../../deploy/state.yaml"
		d, err := regions.LoadDesired(file)
		if err != nil {
			t.Fatal(err)
		}
		var f findings
		checkDesired(&f, file, d)
		var want []string
		for i, r := range d.Regions {
			for j := range r.VIPs {
				want = append(want, fmt.Sprintf("regions[%d].vips[%d]", i, j))
			}
			want = append(want, fmt.Sprintf("regions[%d].check.host", i))
		}
		if got := fields(f.warns); !slices.Equal(got, want) || len(f.errs) > 0 {
			t.Errorf("warnings for %v, errors %v; want warnings for %v", got, f.errs, want)
		}
	})
	t.Run("examples/state.yaml is not for production", func(t *testing.T) {
		const file = "../../examples/state.yaml"
		d, err := regions.LoadDesired(file)
		if err != nil {
			t.Fatal(err)
		}
		var f findings
		checkDesired(&f, file, d)
		n := 0
		for _, w := range fields(f.warns) {
			if strings.HasSuffix(w, ".check.address") {
				n++
			}
		}
		if n != 6 {
			t.Errorf("%d warnings of checks sent to loopback, want one per VIP (6): %v", n, f.warns)
		}
	})
	t.Run("the example cookie secret", func(t *testing.T) {
		b, err := os.ReadFile("../../examples/meridian.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), exampleCookieSecret) {
			t.Errorf("examples/meridian.yaml does not show %s: keep exampleCookieSecret its example", exampleCookieSecret)
		}
	})
}
