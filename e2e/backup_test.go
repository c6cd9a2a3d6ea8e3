//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/testtool"
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
// restored from the backup on the same addresses. The restored cluster is
// back at the backup's revision, below the one the servers had seen, and
// under a new cluster ID: both servers notice, list it and serve the
// backup's state without a restart. Then the guide's fallback, a rolling
// restart of the servers while the resolvers resolve, and a write to the
// restored cluster.
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
	var backupStatus struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal([]byte(d.etcd.etcdctl(t, "snapshot", "status", backup, "-w", "json")), &backupStatus); err != nil || backupStatus.Revision == 0 {
		t.Fatalf("etcdctl snapshot status -w json: %v, revision %d", err, backupStatus.Revision)
	}

	// The backup holds api on ap-northeast (scenario 5's last write). A
	// change after it is lost with the cluster.
	ctlWeights(t, d.ns[0], api, "us-east")
	waitAnswer(t, d.ns, api, regionV4["us-east"], time.Now())
	var seen []int64 // the revision each server follows before the loss
	var clusters []string
	for _, s := range d.ns {
		w := s.mustStatus(t).Etcd.Watch
		seen = append(seen, w.Revision)
		clusters = append(clusters, w.ClusterID)
	}

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
	started := time.Now()

	// The servers follow the restored cluster on their own: each answers
	// with the backup's state (polled every millisecond), its watch
	// connected, having counted etcd going back once and logged it once.
	// The probers lost their leases with the cluster and register again:
	// their writes may take the restored cluster's revision past the one
	// the servers had seen, so the cluster ID tells the clusters apart.
	took := waitAnswer(t, d.ns, api, regionV4["ap-northeast"], started)
	d.etcd.waitHealthy(t, d.cli)
	report(t, sc, "cluster restored from the snapshot, healthy", "%v after the loss", since(t0))
	report(t, sc, "without a restart, ns1 / ns2 answer the backup's state after the restored members started", "%v / %v",
		took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
	var revs []string
	for i, s := range d.ns {
		var st *apitypes.Status
		waitFor(t, s.name+" following the restored cluster", waitLimit, func() error {
			var err error
			if st, err = s.status(); err != nil {
				return err
			}
			w := st.Etcd.Watch
			switch {
			case st.Snapshot.Source != "etcd" || !w.Connected:
				return fmt.Errorf("source %q, watch connected %v (%s)", st.Snapshot.Source, w.Connected, w.LastError)
			case w.WentBack != 1:
				return fmt.Errorf("went_back %d, want 1", w.WentBack)
			case w.ClusterID == clusters[i]:
				return fmt.Errorf("follows cluster %s, the one lost", w.ClusterID)
			case st.Snapshot.Revision < backupStatus.Revision:
				return fmt.Errorf("serves revision %d, below the backup's %d", st.Snapshot.Revision, backupStatus.Revision)
			case st.Snapshot.Regions != 3 || st.Snapshot.Services != 3:
				return fmt.Errorf("serves %d regions, %d services", st.Snapshot.Regions, st.Snapshot.Services)
			}
			return nil
		})
		b, err := os.ReadFile(s.p.log)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "etcd went back"); n != 1 {
			t.Errorf("%s logged %d times that etcd went back, want once", s.name, n)
		}
		revs = append(revs, fmt.Sprintf("%s %d → %d (cluster %s → %s)", s.name, seen[i], st.Snapshot.Revision, clusters[i], st.Etcd.Watch.ClusterID))
	}
	report(t, sc, "served revision before the loss → after the restore (the backup's: "+fmt.Sprint(backupStatus.Revision)+")", "%s", strings.Join(revs, ", "))

	// The guide's next step: restart the probers one at a time, so that
	// no report of the backup's time lingers.
	report(t, sc, "probers restarted one at a time, each counted again on both servers before the next", "%v", restartProbers(t, d))

	// The fallback the guide keeps, and its upgrade procedure: restart
	// one server at a time, each back on etcd before the next goes,
	// while both resolvers resolve fresh names.
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
	report(t, sc, "rolling restart: ns1 / ns2 back on etcd after", "%v / %v", restarted[0], restarted[1])
	for _, name := range []string{"unbound", "named"} {
		report(t, sc, name+" during the rolling restart", "%s", summarize(res[name], 200*time.Millisecond))
		for _, r := range res[name] {
			if r.err != nil {
				t.Errorf("%s failed a query during the rolling restart: %v", name, r.err)
				break
			}
		}
	}

	// The restored cluster takes writes through the API, and the servers
	// follow them.
	ctlWeights(t, d.ns[0], api, "eu-west")
	wrote := time.Now()
	took = waitAnswer(t, d.ns, api, regionV4["eu-west"], wrote)
	report(t, sc, "a meridian ctl write to the restored cluster answered by ns1 / ns2 after it returned", "%s", pair(took[0], took[1]))
}
