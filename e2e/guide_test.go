//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDeployGuide keeps docs/deploy.md and the suite in step: the guide
// shows every flag the suite gives etcd, etcdctl and meridian prober (and
// the prober's unit gives no other), the certs.sh and --check commands it
// runs, the resolver settings it uses, the units it verifies, and
// delegation records that match the example zone.
func TestDeployGuide(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	c := &etcdCluster{pki: "pki", initial: "x"}
	m := &etcdMember{name: "etcd-1", host: "192.0.2.11", clientPort: 2379, peerPort: 2380, dir: "/var/lib/etcd"}
	var want []string
	for _, a := range append(c.memberArgs(m, "etcd"), c.restoreArgs(m, "snapshot.db")...) {
		if strings.HasPrefix(a, "--") {
			want = append(want, a+" ")
		}
	}
	// Debian's etcd unit reads the same settings from /etc/default/etcd.
	for _, w := range slices.Clone(want) {
		want = append(want, "ETCD_"+strings.ToUpper(strings.ReplaceAll(strings.Trim(w, "- "), "-", "_"))+"=")
	}
	want = append(want,
		"deploy/certs.sh ca "+pkiDir, "deploy/certs.sh member "+pkiDir+" ", "deploy/certs.sh client "+pkiDir+" meridian-server",
		"deploy/certs.sh client "+pkiDir+" meridian-prober", "deploy/certs.sh client "+pkiDir+" meridian-admin",
		// The API's own CA and each server's certificate.
		"deploy/certs.sh ca "+apiPKIDir, "deploy/certs.sh server "+apiPKIDir+" ", "/etc/meridian/tls/api-ca.pem",
		// The production bootstrap, not the make-run demo.
		"deploy/state.yaml /etc/meridian/state.yaml",
		"snapshot save ", "snapshot status ", "snapshot restore ",
		"meridian server --config /etc/meridian/meridian.yaml --check", "deploy/meridian.yaml",
		"--cacert ", "--cert ", "--key ",
		// The suite's resolvers.
		`module-config: "subnetcache validator iterator"`, `domain-insecure: "gslb.example"`, "send-client-subnet: ", "stub-zone:", "stub-addr: ",
		"type static-stub;", "server-addresses {",
		// The units it verifies, and the commands of the prober and ctl.
		"deploy/systemd/meridian-server.service", "deploy/systemd/meridian-prober.service",
		"meridian prober --region ", "--config /etc/meridian/prober.yaml", "deploy/prober.yaml",
		"meridian ctl ", "weights set ",
		// The operator's API token.
		tokenSecretCmd, tokenHashCmd, "tokens_file", "write_timeout")
	for _, c := range ctlCommands {
		want = append(want, " "+c+" ")
	}
	for _, f := range ctlFlags {
		want = append(want, f+" ")
	}
	want = append(want, proberFlags...)
	for _, w := range want {
		if !strings.Contains(guide, w) {
			t.Errorf("docs/deploy.md does not show %q, which the suite uses", strings.TrimSpace(w))
		}
	}

	// The meridian ctl commands and API calls the guide shows are ones
	// the suite runs, with flags it gives.
	for _, line := range codeLines(guide) {
		if strings.Contains(line, "examples/state.yaml") {
			t.Errorf("docs/deploy.md: %q: examples/state.yaml is the make run demo, its checks go to loopback stand-ins", line)
		}
		if _, cmd, ok := strings.Cut(line, "meridian ctl "); ok {
			var words []string
			fields := strings.Fields(cmd)
			for i := 0; i < len(fields); i++ {
				f := fields[i]
				if !strings.HasPrefix(f, "-") {
					words = append(words, f)
					continue
				}
				name, _, withValue := strings.Cut(f, "=")
				if !slices.Contains(ctlFlags, name) {
					t.Errorf("docs/deploy.md: %q: flag %s is not one the suite gives meridian ctl (%v)", line, name, ctlFlags)
				}
				if !withValue {
					i++
				}
			}
			if len(words) < 2 || !slices.Contains(ctlCommands, words[0]+" "+words[1]) {
				t.Errorf("docs/deploy.md: %q: not a meridian ctl command the suite runs (%v)", line, ctlCommands)
			}
		}
		if _, cmd, ok := strings.Cut(line, "meridian prober "); ok {
			if err := onlyFlags(cmd, proberFlags); err != nil {
				t.Errorf("docs/deploy.md: %q: %v", line, err)
			}
		}
		for _, m := range apiURL.FindAllStringSubmatch(line, -1) {
			if !slices.Contains(apiPaths, m[1]) {
				t.Errorf("docs/deploy.md: %q: %s is not an API path the suite requests (%v)", line, m[1], apiPaths)
			}
		}
	}

	// The prober's unit runs the commands the suite runs: the prober with
	// the suite's flags, and --check-config before it.
	unit, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "systemd", "meridian-prober.service"))
	if err != nil {
		t.Fatal(err)
	}
	execs := 0
	for _, l := range strings.Split(string(unit), "\n") {
		key, cmd, ok := strings.Cut(l, "=/usr/local/bin/meridian prober ")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		execs++
		if err := onlyFlags(cmd, proberFlags); err != nil {
			t.Errorf("meridian-prober.service: %s: %v", key, err)
		}
		if (key == "ExecStartPre") != strings.Contains(cmd, "--check-config") {
			t.Errorf("meridian-prober.service: %s: --check-config belongs to ExecStartPre only: %s", key, cmd)
		}
	}
	if execs != 2 {
		t.Errorf("meridian-prober.service: %d lines run meridian prober, want ExecStartPre and ExecStart", execs)
	}

	// The glue in the guide is the example zone's.
	zone, err := os.ReadFile(filepath.Join(repoRoot, "examples", "zones", "gslb.example.zone"))
	if err != nil {
		t.Fatal(err)
	}
	rr := regexp.MustCompile(`(?m)^(ns\d+)\s+(A|AAAA)\s+(\S+)$`)
	found := rr.FindAllStringSubmatch(string(zone), -1)
	if len(found) == 0 {
		t.Fatal("no name server addresses in the example zone")
	}
	for _, f := range found {
		glue := regexp.MustCompile(regexp.QuoteMeta(f[1]+".gslb.example.") + `\s+\d+\s+IN\s+` + f[2] + `\s+` + regexp.QuoteMeta(f[3]))
		if !glue.MatchString(guide) {
			t.Errorf("docs/deploy.md lacks the glue %s.gslb.example. %s %s of the example zone", f[1], f[2], f[3])
		}
	}
}

// pkiDir and apiPKIDir are where the guide makes the TLS material of
// etcd and of the API: outside any repository (deploy/certs.sh refuses
// a git work tree).
const (
	pkiDir    = "~/meridian-pki"
	apiPKIDir = "~/meridian-api-pki"
)

// onlyFlags checks that the command line cmd gives no flag but those in
// flags (single dashes and -flag=value included).
func onlyFlags(cmd string, flags []string) error {
	for _, f := range strings.Fields(cmd) {
		if !strings.HasPrefix(f, "-") {
			continue
		}
		name, _, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(name, "--") {
			name = "-" + name
		}
		if !slices.Contains(flags, name) {
			return fmt.Errorf("flag %s is not one the suite gives (%v)", name, flags)
		}
	}
	return nil
}

// apiURL finds the path of a call to a server's API (listen.http, port
// 8053 in the guide).
var apiURL = regexp.MustCompile(`https?://[^/\s]+:8053(/[^\s?"']*)`)

// codeLines are the lines of the guide's code blocks, with continued
// lines (ending in a backslash) joined.
func codeLines(md string) []string {
	var out []string
	in := false
	cur := ""
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if !in {
			continue
		}
		if c, ok := strings.CutSuffix(strings.TrimRight(l, " "), "\\"); ok {
			cur += c + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	return out
}
