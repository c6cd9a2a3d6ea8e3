package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// splitState is dnssecState with a third IPv4 VIP in eu: two of eu's
// VIPs failing leave a subset no signer signs ahead.
var splitState = strings.Replace(edgeState, "vips: [192.0.2.10, ", "vips: [192.0.2.10, 192.0.2.11, 192.0.2.12, ", 1)

// keylessServer runs a name server that holds no key of example.org and
// serves what the zone's signer publishes in etcd; the zone is
// signedServer's.
func keylessServer(t *testing.T, state string) *testServer {
	t.Helper()
	return startServerWith(t, serverSetup{extra: steeringConfig, files: delegatingFiles(t, state), zoneExtra: "    dnssec:\n      signer: etcd\n      signer_wait: 2s\n"})
}

// signerRun is a `meridian signer` running in this process.
type signerRun struct {
	cancel context.CancelFunc
	done   chan int
	stderr *testlog.Buffer
}

// startSigner runs a signer of ts's zone (the same file) with the keys
// in keyDir, publishing to ts's etcd; dnssecExtra adds to the zone's
// dnssec section (indented by 6).
func startSigner(t *testing.T, ts *testServer, keyDir, dnssecExtra string, interval time.Duration) *signerRun {
	t.Helper()
	dir := t.TempDir()
	ec := ts.etcdConfig(false) // the server's certificate
	cfg := fmt.Sprintf(`log:
  level: debug
data_dir: %s
zone_dir: %s
etcd:
  endpoints: [%s]
  ca_file: %s
  cert_file: %s
  key_file: %s
zones:
  - origin: example.org.
    file: example.org.zone
    dnssec:
      key_dir: %s
%s`, filepath.Join(dir, "data"), ts.dir, ec.Endpoints[0], ec.CAFile, ec.CertFile, ec.KeyFile, keyDir, dnssecExtra)
	path := filepath.Join(dir, "signer.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sr := &signerRun{cancel: cancel, done: make(chan int, 1), stderr: &testlog.Buffer{}}
	go func() {
		sr.done <- run(ctx, []string{"signer", "--config", path, "--interval", interval.String()}, &bytes.Buffer{}, sr.stderr)
	}()
	t.Cleanup(func() {
		if code := sr.stop(); code != 0 {
			t.Errorf("signer exited with %d:\n%s", code, sr.stderr)
		}
	})
	return sr
}

func (sr *signerRun) stop() int {
	sr.cancel()
	select {
	case code := <-sr.done:
		sr.done <- code
		return code
	case <-time.After(15 * time.Second):
		return -1
	}
}

// dnssecStatus reads the server's status of example.org.
func dnssecStatus(t *testing.T, ts *testServer) apitypes.DNSSECZoneStatus {
	t.Helper()
	resp, err := ts.hc.Get(ts.url() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apitypes.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, z := range st.DNSSEC {
		if z.Zone == "example.org." {
			return z
		}
	}
	t.Fatalf("no DNSSEC status of example.org: %+v", st.DNSSEC)
	return apitypes.DNSSECZoneStatus{}
}

// waitSecStatus waits up to 20 s until ok says yes to the server's
// DNSSEC status.
func waitSecStatus(t *testing.T, ts *testServer, what string, ok func(apitypes.DNSSECZoneStatus) bool) apitypes.DNSSECZoneStatus {
	t.Helper()
	return waitSecStatusWithin(t, ts, 20*time.Second, what, ok)
}

func waitSecStatusWithin(t *testing.T, ts *testServer, within time.Duration, what string, ok func(apitypes.DNSSECZoneStatus) bool) apitypes.DNSSECZoneStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := dnssecStatus(t, ts)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s: %+v\nserver log:\n%s", what, st, ts.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSignerAndKeylessNameServer: a name server without keys serves what
// `meridian signer` signs and publishes in etcd, validated by unbound for
// every kind of answer, its zone transfer accepted by dnssec-verify.
// With the signer stopped it keeps serving: a VIP failing finds its subset
// signed ahead; two failing are answered with the nearest superset signed
// ahead, and status says so; a new service waits, the previous snapshot
// serving. The signer back, the subset and the service are signed and
// served.
func TestSignerAndKeylessNameServer(t *testing.T) {
	verify := testtool.Need(t, "dnssec-verify")
	ts := keylessServer(t, splitState)
	waitAnswer(t, ts.addr(), "svc.deep.example.org.", "192.0.2.20")
	keyDir := t.TempDir()
	k, err := dnssec.Generate(keyDir, "example.org.", dnssec.AlgECDSAP256SHA256, dnssec.RoleCSK)
	if err != nil {
		t.Fatal(err)
	}
	key := k.DNSKEY
	sr := startSigner(t, ts, keyDir, "", 200*time.Millisecond)
	waitSecStatus(t, ts, "the signer's keys", func(st apitypes.DNSSECZoneStatus) bool {
		return st.Signer == "etcd" && st.SignerStatus != nil && st.SignerStatus.Alive && len(st.Keys) == 1 && st.Keys[0].Tag == k.Tag() && !st.Expires.IsZero()
	})

	ub := validator(t, ts, key)
	const eu3 = "lb.example.org. A 192.0.2.10\nlb.example.org. A 192.0.2.11\nlb.example.org. A 192.0.2.12"
	t.Run("weighted", func(t *testing.T) { checkWeighted(t, ub, ts, key, eu3, lbNA, lbAS) })
	for _, c := range answerKinds(t, ts, key) {
		if c.name == "geo Europe" {
			c.want = "geo.example.org. A 192.0.2.10\ngeo.example.org. A 192.0.2.11\ngeo.example.org. A 192.0.2.12"
		}
		t.Run(c.name, func(t *testing.T) { c.check(t, ub) })
	}
	t.Run("dnssec-verify of the transfer", func(t *testing.T) { verifyTransfer(t, ts, verify) })

	// The signer goes away: its election key goes with it.
	if code := sr.stop(); code != 0 {
		t.Fatalf("signer exited with %d:\n%s", code, sr.stderr)
	}
	waitSecStatus(t, ts, "the signer gone", func(st apitypes.DNSSECZoneStatus) bool { return !st.SignerStatus.Alive })
	report := healthReporter(t, ts, "192.0.2.10", "192.0.2.11", "192.0.2.12", "2001:db8::10")
	ok := dns.RcodeSuccess
	t.Run("a VIP fails: its subset was signed ahead", func(t *testing.T) {
		report("192.0.2.10")
		want := "geo.example.org. A 192.0.2.11\ngeo.example.org. A 192.0.2.12"
		waitDirect(t, ts, "geo.example.org.", "193.0.0.0/24", want)
		validated{"", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok, want}.check(t, validator(t, ts, key))
		if st := dnssecStatus(t, ts); st.Substituted != 0 {
			t.Errorf("substituted %d", st.Substituted)
		}
	})
	t.Run("two VIPs fail: the nearest signed superset stands in", func(t *testing.T) {
		report("192.0.2.10", "192.0.2.11")
		st := waitSecStatus(t, ts, "a stand-in", func(st apitypes.DNSSECZoneStatus) bool { return st.Substituted > 0 })
		if !strings.Contains(strings.Join(st.Warnings, "\n"), "signed superset") {
			t.Errorf("warnings %q", st.Warnings)
		}
		// Without DO the answer is the healthy subset; with DO, signed,
		// the smallest superset signed ahead: one VIP down, not both.
		r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, subnet("193.0.0.0/24"))
		if got := answerText(r); got != "geo.example.org. A 192.0.2.12" {
			t.Errorf("DO clear: %s", got)
		}
		validated{"", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok,
			"geo.example.org. A 192.0.2.11\ngeo.example.org. A 192.0.2.12"}.check(t, validator(t, ts, key))
	})
	t.Run("a new service waits for the signer", func(t *testing.T) {
		cli := ts.etcdClient(t)
		svc := &regions.Service{Name: "new.example.org.", TTL: 60, Policy: regions.PolicyWeighted, Regions: []regions.ServiceRegion{{Region: "na", Weight: 1}}}
		if _, err := store.NewStore(cli, store.DefaultPrefix, nil).PutService(context.Background(), svc, store.Always); err != nil {
			t.Fatal(err)
		}
		st := waitSecStatus(t, ts, "a snapshot waiting", func(st apitypes.DNSSECZoneStatus) bool { return !st.PendingSince.IsZero() })
		if !strings.Contains(st.PendingWhy, "new.example.org.") {
			t.Errorf("pending: %q", st.PendingWhy)
		}
		if r := query(t, "udp", ts.addr(), "new.example.org.", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Errorf("the new service is served before it is signed:\n%s", r)
		}
	})

	startSigner(t, ts, keyDir, "", 200*time.Millisecond)
	t.Run("the signer back", func(t *testing.T) {
		waitAnswer(t, ts.addr(), "new.example.org.", "192.0.2.20")
		waitDirect(t, ts, "geo.example.org.", "193.0.0.0/24", "geo.example.org. A 192.0.2.12")
		st := waitSecStatus(t, ts, "nothing standing in or waiting", func(st apitypes.DNSSECZoneStatus) bool {
			return st.Substituted == 0 && st.PendingSince.IsZero()
		})
		if len(st.Warnings) != 0 {
			t.Errorf("warnings %q", st.Warnings)
		}
		ub := validator(t, ts, key)
		validated{"", "new.example.org.", dns.TypeA, "", ok, "new.example.org. A 192.0.2.20"}.check(t, ub)
		validated{"", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok, "geo.example.org. A 192.0.2.12"}.check(t, ub)
		if strings.Contains(ub.log(), "validation failure") {
			t.Errorf("unbound saw bogus answers:\n%s", ub.log())
		}
	})
}

func subnet(cidr string) func(*dns.Msg) {
	return func(m *dns.Msg) {
		withSubnet(cidr)(m)
		m.IsEdns0().SetDo(false)
		m.AuthenticatedData = false
	}
}

// TestSignerConfigErrors: a signer given a bad configuration, bad keys
// or bad flags stops before it connects to etcd, with the field or file
// and the reason, and changes nothing: no key is made.
func TestSignerConfigErrors(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens: an error must come first
	for _, c := range []struct {
		name   string
		dnssec string // the zone's dnssec section, indented by 6
		etcd   string // etcd endpoints; "" = dead
		keys   func(t *testing.T, dir string)
		args   []string
		code   int
		want   []string
	}{
		{name: "signer neither local nor etcd", dnssec: "      signer: remote\n", code: 1,
			want: []string{"zones[0].dnssec.signer", `"remote": want local or etcd`}},
		{name: "rollover without the parent's servers", dnssec: "      rollover:\n        csk_lifetime: 720h\n", code: 1,
			want: []string{"zones[0].dnssec.rollover.parent_servers", "name the parent's servers"}},
		{name: "a parent server without a port", dnssec: "      rollover:\n        csk_lifetime: 720h\n        parent_servers: [ns.example.net]\n", code: 1,
			want: []string{"zones[0].dnssec.rollover.parent_servers[0]", `"ns.example.net": want host:port`}},
		{name: "a negative lifetime", dnssec: "      rollover:\n        zsk_lifetime: -1h\n", code: 1,
			want: []string{"line 11", `"-1h" is not a duration`}},
		{name: "no key in key_dir", code: 1,
			want: []string{"dnssec error", "no key in", "meridian dnssec keygen"}},
		{name: "a private key others can read", code: 1, keys: func(t *testing.T, dir string) {
			k, err := dnssec.Generate(dir, "example.org.", dnssec.AlgECDSAP256SHA256, dnssec.RoleCSK)
			if err != nil {
				t.Fatal(err)
			}
			priv := strings.TrimSuffix(k.File, ".key") + ".private"
			if err := os.Chmod(priv, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{".private", "mode 0644 lets other users read or change the private key"}},
		{name: "only keyless zones", dnssec: "      signer: etcd\n", code: 1,
			want: []string{"no zone with a dnssec section holding keys"}},
		{name: "a zone not in the configuration", args: []string{"--zone", "other.org."}, code: 1,
			want: []string{"--zone other.org.: not a zone of"}},
		{name: "no etcd", etcd: "-", code: 1,
			want: []string{"etcd.endpoints is empty"}},
		{name: "an interval too short", args: []string{"--interval", "10ms"}, code: 2,
			want: []string{"--interval must be at least 100ms"}},
		{name: "an argument", args: []string{"example.org."}, code: 2,
			want: []string{`unexpected argument "example.org."`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			keyDir := filepath.Join(dir, "keys")
			if err := os.Mkdir(keyDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if c.keys != nil {
				c.keys(t, keyDir)
			}
			before, _ := os.ReadDir(keyDir)
			etcd := "endpoints: [" + dead + "]"
			if c.etcd == "-" {
				etcd = "endpoints: []"
			}
			if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), []byte(rolloverZone), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := fmt.Sprintf("data_dir: %s\nzone_dir: %s\netcd:\n  %s\nzones:\n  - origin: example.org.\n    file: example.org.zone\n    dnssec:\n      key_dir: %s\n%s",
				filepath.Join(dir, "data"), dir, etcd, keyDir, c.dnssec)
			path := filepath.Join(dir, "signer.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"signer", "--config", path}, c.args...), &bytes.Buffer{}, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d:\n%s", code, c.code, &stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &stderr)
				}
			}
			if after, _ := os.ReadDir(keyDir); len(after) != len(before) {
				t.Errorf("key_dir held %d files, now %d", len(before), len(after))
			}
		})
	}
}
