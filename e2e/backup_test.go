//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions/store"
)

// etcdctl runs etcdctl with the operator's certificate, as
// docs/deploy.md shows.
func (c *etcdCluster) etcdctl(t testing.TB, args ...string) string {
	t.Helper()
	bin := testtool.Need(t, "etcdctl")
	full := append([]string{
		"--cacert", filepath.Join(c.pki, "ca.pem"),
		"--cert", filepath.Join(c.pki, "meridian-admin.pem"),
		"--key", filepath.Join(c.pki, "meridian-admin-key.pem"),
	}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// scenarioBackupRestore: the guide's backup (etcdctl snapshot save) and
// disaster recovery: every member lost with its data, the cluster
// restored from the backup on the same addresses, then the name servers
// restarted one at a time (the guide's rolling restart) while the
// resolvers keep resolving. The servers answer on throughout and end on
// the backup's state.
func scenarioBackupRestore(t *testing.T, d *deployment) {
	const sc = "8 backup and restore"
	const api = "api.gslb.example"
	backup := filepath.Join(runDir, "backup", "etcd-snapshot.db")
	if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.etcd.etcdctl(t, "--endpoints", d.etcd.members[0].clientURL(), "snapshot", "save", backup)
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	report(t, sc, "etcdctl snapshot save", "%d bytes in %v", fi.Size(), since(start))
	t.Logf("etcdctl snapshot status:\n%s", d.etcd.etcdctl(t, "snapshot", "status", backup, "-w", "table"))

	// The backup holds api on ap-northeast (scenario 5's last write). A
	// change after it is lost with the cluster.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := d.store.SetWeights(ctx, api, onlyRegion("us-east"), store.Always); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, d.ns, api, regionV4["us-east"], time.Now())

	// Every member lost with its data.
	t0 := time.Now()
	for _, m := range d.etcd.members {
		if err := m.p.kill(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(m.dir); err != nil {
			t.Fatal(err)
		}
	}
	if got := serviceAnswer(d.ns[0], api, "193.0.0.0/24"); got != regionV4["us-east"] {
		t.Errorf("ns1 with the cluster gone answers %q, want the last state's %s", got, regionV4["us-east"])
	}
	for _, m := range d.etcd.members {
		d.etcd.etcdctl(t, d.etcd.restoreArgs(m, backup)...)
	}
	d.etcd.start(t)
	d.etcd.waitHealthy(t, d.cli)
	report(t, sc, "cluster restored from the snapshot, healthy", "%v after the loss", since(t0))

	// The restored cluster is back at the backup's revision, below the one
	// the servers' watches had reached: the etcd client resumes their
	// watches at that later revision, which the restored cluster has not
	// reached, so the servers neither see the restored state nor notice.
	// What they answer a few seconds on (more than a watch probe) is
	// measured here; the guide's procedure, the rolling restart below,
	// is what is checked.
	time.Sleep(3 * time.Second)
	report(t, sc, "3 s after the restore, without a restart, ns1 / ns2 answer api with", "%s / %s (backup's state: %s; lost: %s)",
		serviceAnswer(d.ns[0], api, "193.0.0.0/24"), serviceAnswer(d.ns[1], api, "193.0.0.0/24"), regionV4["ap-northeast"], regionV4["us-east"])

	// The rolling restart: one server at a time, each back on etcd before
	// the next goes, while both resolvers resolve fresh names.
	var restarted []time.Duration
	res := measureResolvers(d, "s8roll", func() {
		for _, s := range d.ns {
			t1 := time.Now()
			s.stop(t)
			s.start(t)
			s.waitReady(t)
			waitFor(t, s.name+" on the restored cluster's state", waitLimit, func() error {
				if got := serviceAnswer(s, api, "193.0.0.0/24"); got != regionV4["ap-northeast"] {
					return fmt.Errorf("answers %q", got)
				}
				st, err := s.status()
				if err != nil {
					return err
				}
				if st.Snapshot.Source != "etcd" || !st.Etcd.Watch.Connected {
					return fmt.Errorf("status: source %q, watch connected %v", st.Snapshot.Source, st.Etcd.Watch.Connected)
				}
				return nil
			})
			restarted = append(restarted, since(t1))
		}
	}, 0)
	report(t, sc, "rolling restart: ns1 / ns2 back on the backup's state after", "%v / %v", restarted[0], restarted[1])
	for _, name := range []string{"unbound", "named"} {
		report(t, sc, name+" during the rolling restart", "%s", summarize(res[name], 200*time.Millisecond))
		for _, r := range res[name] {
			if r.err != nil {
				t.Errorf("%s failed a query during the rolling restart: %v", name, r.err)
				break
			}
		}
	}

	// The restored cluster takes writes, and the servers follow them.
	if _, err := d.store.SetWeights(ctx, api, onlyRegion("eu-west"), store.Always); err != nil {
		t.Fatal(err)
	}
	wrote := time.Now()
	took := waitAnswer(t, d.ns, api, regionV4["eu-west"], wrote)
	report(t, sc, "a write to the restored cluster answered by ns1 / ns2 after it returned", "%s", pair(took[0], took[1]))
}
