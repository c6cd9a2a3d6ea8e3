package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// latencyCSV builds a table of n entries whose RTTs depend on seed, big
// enough at a few tens of thousands of lines to need several chunks.
func latencyCSV(n, seed int) string {
	var b strings.Builder
	b.WriteString("cidr,region,rtt_ms\n")
	for i := range n {
		fmt.Fprintf(&b, "10.%d.%d.0/24,eu-west,%d.5\n", i/256%256, i%256, 1+(i+seed)%500)
	}
	return b.String()
}

// chunkIDs lists the table ids that have chunks stored.
func chunkIDs(t *testing.T, s *Store) []string {
	t.Helper()
	resp, err := s.c.Get(etcdtest.Ctx(t), s.Keys().LatencyChunksAll(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, kv := range resp.Kvs {
		ids[s.Keys().parse(string(kv.Key)).name] = true
	}
	return slices.Sorted(maps.Keys(ids))
}

func TestImportLatency(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	rec := newRecorder()
	runWatcher(t, NewWatcher(s.c, s.Keys().Prefix(), etcdtest.Logger()), rec)
	rec.waitFor(t, "the initial state", func(*regions.State) bool { return true })
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
		t.Fatal(err)
	}

	// Small chunks, so that a small table needs many of them.
	s.latencyChunk = 8 << 10
	const n = 3000 // about 80 kB: ten chunks
	tables := []string{latencyCSV(n, 0), latencyCSV(n, 7)}
	var ids []string
	var wants [][]byte
	for i, csv := range tables {
		got, err := s.ImportLatency(ctx, strings.NewReader(csv))
		if err != nil || got != n {
			t.Fatalf("import %d: %d entries, %v", i, got, err)
		}
		entries, _ := latency.ParseCSV(strings.NewReader(csv))
		want := latency.FormatCSV(entries)
		wants = append(wants, want)
		st := rec.waitFor(t, fmt.Sprintf("table %d", i), func(st *regions.State) bool {
			return st.Latency != nil && !slices.Contains(ids, st.Latency.ID)
		})
		if st.Latency.Entries != n || !bytes.Equal(st.Latency.CSV, want) {
			t.Fatalf("table %d: %d entries, %d bytes, want %d bytes", i, st.Latency.Entries, len(st.Latency.CSV), len(want))
		}
		ids = append(ids, st.Latency.ID)
		// The previous table's chunks went with the switch.
		if got := chunkIDs(t, s); !slices.Equal(got, []string{st.Latency.ID}) {
			t.Fatalf("chunks stored for %v, want only %s", got, st.Latency.ID)
		}
		resp, err := s.c.Get(ctx, s.Keys().LatencyChunks(st.Latency.ID), clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) < len(want)/s.latencyChunk {
			t.Fatalf("table %d (%d bytes) in %d chunks of at most %d (%v)", i, len(want), len(resp.Kvs), s.latencyChunk, err)
		}
		for _, kv := range resp.Kvs {
			if len(kv.Value) > s.latencyChunk || !bytes.HasSuffix(kv.Value, []byte("\n")) {
				t.Fatalf("chunk %s: %d bytes, not whole lines within %d", kv.Key, len(kv.Value), s.latencyChunk)
			}
		}
	}

	// Watchers never saw half a table: every state had none or a whole one.
	rec.mu.Lock()
	for i, st := range rec.states {
		if st.Latency == nil {
			continue
		}
		if !slices.ContainsFunc(wants, func(w []byte) bool { return bytes.Equal(w, st.Latency.CSV) }) || st.Latency.Entries != n {
			t.Errorf("state %d: table %s is not one of the imported ones (%d bytes)", i, st.Latency.ID, len(st.Latency.CSV))
		}
	}
	rec.mu.Unlock()

	t.Run("bad line changes nothing", func(t *testing.T) {
		before := keyRevs(t, s.c, s.Keys().Prefix())
		bad := latencyCSV(100, 1) + "10.9.9.0/24,eu-west,-1\n"
		_, err := s.ImportLatency(ctx, strings.NewReader(bad))
		if !errors.Is(err, regions.ErrInvalid) || !strings.Contains(err.Error(), "line 102") {
			t.Fatalf("err = %v, want ErrInvalid naming line 102", err)
		}
		if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
			t.Fatal("a refused import changed etcd")
		}
	})

	t.Run("a region that does not exist changes nothing", func(t *testing.T) {
		before := keyRevs(t, s.c, s.Keys().Prefix())
		bad := latencyCSV(100, 1) + "10.9.9.0/24,eu-wset,5\n10.9.8.0/24,eu-wset,5\n"
		_, err := s.ImportLatency(ctx, strings.NewReader(bad))
		want := `line 102: region "eu-wset" does not exist (named on 2 lines); did you mean "eu-west"?`
		if !errors.Is(err, regions.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want ErrInvalid with %q", err, want)
		}
		if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
			t.Fatal("a refused import changed etcd")
		}
	})

	t.Run("get and load", func(t *testing.T) {
		info, err := s.GetLatency(ctx)
		if err != nil || info.ID != ids[len(ids)-1] || info.Entries != n || info.Bytes != len(wants[len(wants)-1]) || info.Created.IsZero() || info.Revision == 0 {
			t.Fatalf("%+v %v", info, err)
		}
		ld, err := s.LoadLatency(ctx, info)
		if err != nil || ld.ID != info.ID || !bytes.Equal(ld.CSV, wants[len(wants)-1]) {
			t.Fatalf("loaded %v", err)
		}
		if _, err := newTestStore(t).GetLatency(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no table: %v, want ErrNotFound", err)
		}
	})

	t.Run("racing import loses and cleans up", func(t *testing.T) {
		var fired atomic.Bool
		var inner error
		s.testHookBeforeTxn = func(op string) {
			if op == "import-latency" && fired.CompareAndSwap(false, true) {
				_, inner = s.ImportLatency(ctx, strings.NewReader(latencyCSV(10, 3)))
			}
		}
		defer func() { s.testHookBeforeTxn = nil }()
		_, err := s.ImportLatency(ctx, strings.NewReader(latencyCSV(20, 4)))
		if inner != nil || !errors.Is(err, ErrConflict) {
			t.Fatalf("inner import: %v; outer import: %v (want ErrConflict)", inner, err)
		}
		st := rec.waitFor(t, "the winning table", func(st *regions.State) bool { return st.Latency != nil && st.Latency.Entries == 10 })
		if got := chunkIDs(t, s); !slices.Equal(got, []string{st.Latency.ID}) {
			t.Fatalf("chunks stored for %v, want only the winner %s", got, st.Latency.ID)
		}
	})

	t.Run("clear", func(t *testing.T) {
		if err := s.ClearLatency(ctx); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "no table", func(st *regions.State) bool { return st.Latency == nil })
		if got := chunkIDs(t, s); len(got) != 0 {
			t.Fatalf("chunks left: %v", got)
		}
	})

	t.Run("manifest naming missing chunks", func(t *testing.T) {
		m := `{"id":"gone","entries":1,"chunks":1,"bytes":10,"sha256":"00"}`
		if _, err := s.c.Put(ctx, s.Keys().LatencyManifest(), m); err != nil {
			t.Fatal(err)
		}
		st := rec.waitFor(t, "a problem with the manifest", func(st *regions.State) bool { return len(st.Problems) == 1 })
		if st.Latency != nil || !strings.Contains(st.Problems[0], "latency/manifest") {
			t.Fatalf("latency %+v, problems %q", st.Latency, st.Problems)
		}
	})
	rec.checkUnmodified(t)
}

func TestSplitLines(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"empty", "", 10, nil},
		{"fits", "a\nb\n", 10, []string{"a\nb\n"}},
		{"at line ends", "aaa\nbbb\nccc\n", 8, []string{"aaa\nbbb\n", "ccc\n"}},
		{"exact", "aaa\nbbb\n", 4, []string{"aaa\n", "bbb\n"}},
		{"line longer than the limit", "aaaaaa\nb\n", 4, []string{"aaaa", "aa\n", "b\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range splitLines([]byte(tc.in), tc.limit) {
				got = append(got, string(c))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
