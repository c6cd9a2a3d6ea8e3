//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestServerCheck runs `meridian server --check` the way a deploy
// pipeline would: the guide's configuration passes; a broken one (or a
// broken bootstrap file) exits non-zero with file:line: field: message,
// the line being the one that holds the field, and nothing is created.
func TestServerCheck(t *testing.T) {
	dir := filepath.Join(runDir, "check")
	c := &etcdCluster{pki: filepath.Join(dir, "pki"), members: []*etcdMember{
		{name: "etcd-1", host: "127.0.0.11", clientPort: 2379}, {name: "etcd-2", host: "127.0.0.12", clientPort: 2379},
	}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// --check reads the TLS files and the GeoIP database: real ones.
	makeCerts(t, c.pki, c.members)
	geoip := geoipDB()
	if strings.HasPrefix(geoip, "error: ") {
		t.Fatal(geoip)
	}
	badState := filepath.Join(dir, "state.yaml")
	writeFile(t, badState, `regions:
  - name: eu-west
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.90, country: NL, continent: EU}
    check: {type: https, port: 443, path: /healthz}
services:
  - name: www.gslb.example.
    ttl: 60
    policy: weighted
    regions:
      - {region: eu-west, weight: -1}
`)
	outside := filepath.Join(dir, "outside.yaml")
	writeFile(t, outside, `regions:
  - name: eu-west
    vips: [192.0.2.10]
    location: {lat: 52.37, lon: 4.90, country: NL, continent: EU}
    check: {type: https, port: 443, path: /healthz}
services:
  - name: www.elsewhere.example.
    ttl: 60
    policy: weighted
    regions:
      - {region: eu-west, weight: 100}
`)

	cases := []struct {
		name   string
		change func(cfg map[string]any)
		// want: the file (config when ""), the field and part of the
		// message of every error, in order; the line is checked to hold
		// the field's last key.
		want []problem
	}{
		{"the guide's configuration", func(map[string]any) {}, nil},
		{"unknown key", func(cfg map[string]any) { section(cfg, "dns")["udp_socket"] = 2 },
			[]problem{{"", "dns.udp_socket", "unknown key", ""}}},
		{"listen address without a port", func(cfg map[string]any) { section(cfg, "listen")["dns"] = []string{"127.0.0.1"} },
			[]problem{{"", "listen.dns[0]", "is not an IP:port", "127.0.0.1"}}},
		{"etcd certificate without its key", func(cfg map[string]any) { delete(section(cfg, "etcd"), "key_file") },
			[]problem{{"", "etcd", "cert_file and key_file go together", ""}}},
		{"the API's key of another certificate", func(cfg map[string]any) {
			section(section(cfg, "api"), "tls")["key_file"] = filepath.Join(c.pki, "meridian-server-key.pem")
		}, []problem{{"", "api.tls.key_file", "does not belong to the certificate", ""}}},
		{"zone file missing", func(cfg map[string]any) {
			cfg["zones"] = []map[string]string{{"origin": "gslb.example.", "file": "missing.zone"}}
		},
			[]problem{{"", "zones[0].file", "no such file", ""}}},
		{"bad cookie secret and log level", func(cfg map[string]any) {
			section(cfg, "dns")["cookie_secrets"] = []string{"xyz"}
			section(cfg, "log")["level"] = "loud"
		}, []problem{{"", "log.level", "want debug, info, warn or error", ""}, {"", "dns.cookie_secrets[0]", "32 hex digits", "xyz"}}},
		{"bootstrap: a negative weight", func(cfg map[string]any) { cfg["bootstrap"] = badState },
			[]problem{{badState, "services[0].regions[0].weight", "", "weight: -1"}}},
		{"bootstrap: a service outside the zones served", func(cfg map[string]any) { cfg["bootstrap"] = outside },
			[]problem{{outside, "services[0].name", "not inside a zone served here", "www.elsewhere.example."}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &nameServer{name: "check", host: "127.0.0.1", dnsPort: 53, httpPort: 8053, dir: filepath.Join(dir, strconv.Itoa(i))}
			cfg := serverConfigMap(t, s, c, geoip, "00112233445566778899aabbccddeeff")
			tc.change(cfg)
			b, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(s.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(s.dir, "meridian.yaml")
			writeFile(t, path, string(b))
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(binary, "server", "--config", path, "--check")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			if fileExists(s.dataDir()) {
				t.Errorf("--check created the data directory %s", s.dataDir())
			}
			if tc.want == nil {
				if err != nil || !strings.Contains(stdout.String(), "are valid") {
					t.Fatalf("--check of a good configuration: %v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("--check of a bad configuration: %v, want a non-zero exit\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
			}
			for _, p := range tc.want {
				file := p.file
				if file == "" {
					file = path
				}
				if err := p.find(stderr.String(), file); err != nil {
					t.Errorf("%v; stderr:\n%s", err, &stderr)
				}
			}
		})
	}
}

// problem is one error --check must print: in file (the config when ""),
// for field, with msg in its message, on a line that holds at (the
// field's last key when "").
type problem struct{ file, field, msg, at string }

// find looks for "file:line: field: msg..." in out, and checks what that
// line of file holds.
func (p problem) find(out, file string) error {
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(file) + `:(\d+): ` + regexp.QuoteMeta(p.field) + `: (.*)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("no %q line for %s", "file:line: "+p.field+": message", file)
	}
	if !strings.Contains(m[2], p.msg) {
		return fmt.Errorf("%s: message %q lacks %q", p.field, m[2], p.msg)
	}
	n, _ := strconv.Atoi(m[1])
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	key := p.at
	if key == "" {
		key = p.field[strings.LastIndex(p.field, ".")+1:]
	}
	if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], key) {
		return fmt.Errorf("%s: line %d of %s does not hold %q", p.field, n, file, key)
	}
	return nil
}

func section(cfg map[string]any, name string) map[string]any {
	return cfg[name].(map[string]any)
}
