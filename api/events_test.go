package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

// sseReader reads events from a stream.
type sseReader struct{ sc *bufio.Scanner }

func (r *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				return ev
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("the stream ended: %v", r.sc.Err())
	return ev
}

// openEvents opens GET /v1/events with token (none: "").
func openEvents(t *testing.T, ctx context.Context, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestEvents: the stream follows the API's token rules (the token in the
// Authorization header only), sends the status and the traffic history
// at once, then each second completed and each new snapshot; streams are
// bounded in number.
func TestEvents(t *testing.T) {
	var cur atomic.Pointer[regions.Snapshot]
	cur.Store(testSnapshot())
	tr, fc := newFakeTraffic(cur.Load)
	fc.now = t0
	tr.sample()
	fc.add("eu", 0, 3)
	fc.now = t0.Add(time.Second)
	tr.sample()
	srv := httptest.NewServer(NewRouter(Options{
		Auth:            NewAuth(testTokens(t), false),
		Snapshot:        cur.Load,
		Traffic:         tr,
		MaxEventStreams: 1,
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("token rules", func(t *testing.T) {
		for _, tc := range []struct {
			name, token, query string
			status             int
		}{
			{"no token", "", "", 401},
			{"token in the URL is not read", "", "?token=" + readSecret, 401},
			{"bad token", "nope-0123456789abcdef", "", 401},
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events"+tc.query, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, srv.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+readSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("stream", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		resp := openEvents(t, sctx, srv.URL, readSecret)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		r := &sseReader{sc: bufio.NewScanner(resp.Body)}
		r.sc.Buffer(nil, 1<<22)
		ev := r.next(t)
		var st struct {
			Revision int64 `json:"revision"`
		}
		if ev.name != "status" || json.Unmarshal([]byte(ev.data), &st) != nil || st.Revision != 42 {
			t.Fatalf("first event %s %.200s, want the status at revision 42", ev.name, ev.data)
		}
		ev = r.next(t)
		var u TrafficUpdate
		if ev.name != "traffic" || json.Unmarshal([]byte(ev.data), &u) != nil {
			t.Fatalf("second event %s %.200s, want traffic", ev.name, ev.data)
		}
		if u.Seconds != 0 || u.Lines["unknown"]["eu"] != 3 {
			t.Errorf("first traffic: %+v, want no whole second yet and a line unknown→eu of 3", u)
		}

		// A stream at the limit: the next one is refused.
		if resp := openEvents(t, ctx, srv.URL, readSecret); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("a second stream: %d, want 503", resp.StatusCode)
		}

		// A second completes: the stream sends it.
		fc.add("eu", 0, 4)
		fc.now = t0.Add(2 * time.Second)
		tr.sample()
		for {
			ev = r.next(t)
			if ev.name == "traffic" {
				break
			}
		}
		if err := json.Unmarshal([]byte(ev.data), &u); err != nil || u.Start != t0.Unix()+1 || u.Seconds != 1 || u.Regions["eu"][0] != 4 {
			t.Errorf("the next traffic: %v %+v, want second %d with 4 answers of eu", err, u, t0.Unix()+1)
		}
		// A new snapshot: the status follows at the next tick.
		next := regions.NewState()
		next.Revision = 43
		cur.Store(regions.BuildSnapshot(next, nil, regions.SnapshotOptions{}))
		tr.sample()
		for {
			ev = r.next(t)
			if ev.name == "status" && json.Unmarshal([]byte(ev.data), &st) == nil && st.Revision == 43 {
				break
			}
		}
	})
}
