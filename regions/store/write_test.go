package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// auditLog reads the whole audit log, newest first.
func auditLog(t *testing.T, s *Store) []AuditRecord {
	t.Helper()
	var all []AuditRecord
	after := ""
	for range 100 {
		recs, next, err := s.ListAudit(etcdtest.Ctx(t), after, 7)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
		if next == "" {
			return all
		}
		after = next
	}
	t.Fatal("audit log paging does not end")
	return nil
}

func TestStoreWritesAreAudited(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	var ch Change
	rev, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent(), By("alice"), Report(&ch))
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Changed || ch.Before != nil || !strings.Contains(string(ch.After), `"eu-west"`) || ch.Revision != rev || ch.Action != "put" {
		t.Fatalf("change %+v", ch)
	}
	if _, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west"), Always, By("bob")); err != nil {
		t.Fatal(err)
	}
	wrev, err := s.SetWeights(ctx, "www.gslb.example", map[string]uint32{"eu-west": 3}, Always, By("carol"))
	if err != nil {
		t.Fatal(err)
	}
	// The service's only region: forced, as the guard refuses it otherwise.
	drev, err := s.SetDrained(ctx, "eu-west", true, Always, By("dave"), Force())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteService(ctx, "www.gslb.example.", IfRevision(wrev), By("erin")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,10\n"), By("frank")); err != nil {
		t.Fatal(err)
	}

	log := auditLog(t, s)
	type row struct{ actor, kind, name, action string }
	var got []row
	for _, r := range log {
		got = append(got, row{r.Actor, r.Kind, r.Name, r.Action})
	}
	want := []row{
		{"frank", "latency", "table", "import"},
		{"erin", "service", "www.gslb.example.", "delete"},
		{"dave", "region", "eu-west", "drain"},
		{"carol", "service", "www.gslb.example.", "set-weights"},
		{"bob", "service", "www.gslb.example.", "put"},
		{"alice", "region", "eu-west", "put"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit log\n%v\nwant\n%v", got, want)
	}
	// A record's revision is its write's: both are in one transaction.
	if log[5].Revision != rev || log[3].Revision != wrev || log[2].Revision != drev {
		t.Errorf("revisions %d %d %d, want %d %d %d", log[5].Revision, log[3].Revision, log[2].Revision, rev, wrev, drev)
	}
	var before, after regions.Service
	if err := json.Unmarshal(log[3].Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(log[3].After, &after); err != nil {
		t.Fatal(err)
	}
	if before.Regions[0].Weight != 10 || after.Regions[0].Weight != 3 {
		t.Errorf("weights record: before %v after %v", before.Regions, after.Regions)
	}
	if string(log[1].After) != "null" && log[1].After != nil {
		t.Errorf("delete record has an after: %s", log[1].After)
	}
	for i := 1; i < len(log); i++ {
		if log[i].Time.After(log[i-1].Time) {
			t.Errorf("record %d is newer than %d", i, i-1)
		}
	}
	// The audit log is no part of the state the watcher delivers.
	rec := newRecorder()
	runWatcher(t, NewWatcher(s.c, s.Keys().Prefix(), etcdtest.Logger()), rec)
	st := rec.waitFor(t, "the region", func(st *regions.State) bool { return st.Regions["eu-west"] != nil })
	if len(st.Problems) != 0 {
		t.Errorf("watcher problems: %v", st.Problems)
	}
}

func TestStoreDryRunAndNoOp(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), Always); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRegion(ctx, testRegion("us-east", 2), Always); err != nil {
		t.Fatal(err)
	}
	svcRev, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), Always)
	if err != nil {
		t.Fatal(err)
	}
	// The cases run in order, each on the state the one before left.
	cases := []struct {
		name        string
		write       func(opts ...WriteOption) error
		wantChanged bool
		wantErr     error
	}{
		{"put region", func(o ...WriteOption) error {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 9), Always, o...)
			return err
		}, true, nil},
		{"create region", func(o ...WriteOption) error {
			_, err := s.PutRegion(ctx, testRegion("ap-ne", 3), IfAbsent(), o...)
			return err
		}, true, nil},
		{"same region", func(o ...WriteOption) error {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 9), Always, o...)
			return err
		}, false, nil},
		{"drain", func(o ...WriteOption) error {
			_, err := s.SetDrained(ctx, "us-east", true, Always, o...)
			return err
		}, true, nil},
		{"drain a drained region", func(o ...WriteOption) error {
			_, err := s.SetDrained(ctx, "us-east", true, Always, o...)
			return err
		}, false, nil},
		{"weights", func(o ...WriteOption) error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 0}, IfRevision(svcRev), o...)
			return err
		}, true, nil},
		{"same weights", func(o ...WriteOption) error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 0}, Always, o...)
			return err
		}, false, nil},
		{"replace weights", func(o ...WriteOption) error {
			_, err := s.ReplaceWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 5}, Always, o...)
			return err
		}, true, nil},
		{"weights that leave no region to answer", func(o ...WriteOption) error {
			_, err := s.ReplaceWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 10}, Always, o...)
			return err
		}, false, ErrNoData},
		{"stale revision", func(o ...WriteOption) error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 1}, IfRevision(svcRev-1), o...)
			return err
		}, false, ErrConflict},
		{"invalid service", func(o ...WriteOption) error {
			_, err := s.PutService(ctx, testService("www.gslb.example.", "nowhere"), Always, o...)
			return err
		}, false, regions.ErrInvalid},
		{"region in use", func(o ...WriteOption) error { return s.DeleteRegion(ctx, "eu-west", Always, o...) }, false, ErrInUse},
		{"delete service", func(o ...WriteOption) error { return s.DeleteService(ctx, "www.gslb.example", Always, o...) }, true, nil},
		{"latency", func(o ...WriteOption) error {
			_, err := s.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,10\n"), o...)
			return err
		}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := keyRevs(t, s.c, s.Keys().Prefix())
			var ch Change
			err := tc.write(DryRun(), Report(&ch))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("dry run: err = %v, want %v", err, tc.wantErr)
			}
			if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
				t.Fatalf("a dry run wrote:\nbefore %v\nafter  %v", before, after)
			}
			if tc.wantErr != nil {
				return
			}
			if !ch.DryRun || ch.Changed != tc.wantChanged {
				t.Fatalf("dry run change %+v, want changed %v", ch, tc.wantChanged)
			}
			var real Change
			if err := tc.write(Report(&real)); err != nil {
				t.Fatal(err)
			}
			after := keyRevs(t, s.c, s.Keys().Prefix())
			if wrote := !maps.Equal(before, after); wrote != tc.wantChanged || real.Changed != tc.wantChanged {
				t.Fatalf("wrote %v, change %+v; want changed %v", wrote, real, tc.wantChanged)
			}
			if string(real.After) != string(ch.After) && ch.Kind != "latency" {
				t.Errorf("the dry run said\n%s\nthe write did\n%s", ch.After, real.After)
			}
		})
	}
	t.Run("a table imported again is not written", func(t *testing.T) {
		before := keyRevs(t, s.c, s.Keys().Prefix())
		var ch Change
		if _, err := s.ImportLatency(ctx, strings.NewReader("# same table\n192.0.2.0/24, eu-west, 10\n"), Report(&ch)); err != nil {
			t.Fatal(err)
		}
		if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) || ch.Changed {
			t.Fatalf("the same table was written again: %+v", ch)
		}
	})
}

func TestStoreAuditBounded(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	s.SetAuditLimit(16)
	for i := range 60 {
		if _, err := s.PutRegion(ctx, testRegion("eu-west", i+1), Always, By("loop")); err != nil {
			t.Fatal(err)
		}
	}
	log := auditLog(t, s)
	if len(log) < 16 || len(log) > 17 {
		t.Fatalf("%d audit records kept, want about 16", len(log))
	}
	var newest regions.Region
	if err := json.Unmarshal(log[0].After, &newest); err != nil || newest.VIPs[0].String() != "192.0.2.60" {
		t.Fatalf("newest record %s (%v)", log[0].After, err)
	}
	t.Run("bad cursor", func(t *testing.T) {
		if _, _, err := s.ListAudit(ctx, "../x", 10); !errors.Is(err, regions.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
		if _, _, err := s.ListAudit(ctx, "", MaxAuditPage+1); !errors.Is(err, regions.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestStoreUnavailable(t *testing.T) {
	m := etcdtest.NewMember(t, "gone")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	c := etcdtest.Connect(t, m.ClientURL())
	s := NewStore(c, "/meridian/", etcdtest.Logger())
	if _, err := s.PutRegion(etcdtest.Ctx(t), testRegion("eu-west", 1), Always); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := s.SetDrained(ctx, "eu-west", true, Always)
	if err == nil || !Unavailable(err) {
		t.Fatalf("err = %v, want one that says etcd is unavailable", err)
	}
	// A member that ran out of the request's deadline before the client
	// did answers the plain context error, as gRPC code Unknown.
	timedOut := fmt.Errorf("service %q: %w", "www", status.Error(codes.Unknown, context.DeadlineExceeded.Error()))
	if !Unavailable(timedOut) {
		t.Errorf("%v not counted as unavailable", timedOut)
	}
	for _, err := range []error{ErrConflict, ErrNotFound, &regions.ValidationError{}, errors.New("x"), context.Canceled,
		status.Error(codes.Unknown, "x"), status.Error(codes.Unknown, context.Canceled.Error())} {
		if Unavailable(err) {
			t.Errorf("%v counted as unavailable", err)
		}
	}
}
