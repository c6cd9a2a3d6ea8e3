package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// DefaultMaxEventStreams bounds the event streams served at once: each
// holds an HTTP connection for as long as a dashboard is open.
const DefaultMaxEventStreams = 64

const (
	// statusEvery is how often a stream sends the status when no new
	// snapshot has come (ages, the etcd connection and load change
	// without one).
	statusEvery = 2 * time.Second
	// eventWriteTimeout bounds the write of one event: a client that
	// reads nothing for that long is cut off.
	eventWriteTimeout = 10 * time.Second
	// eventRetryMs is how long the page waits before it reconnects.
	eventRetryMs = 1000
)

// events streams the dashboard's data as server-sent events: "status"
// (GET /v1/status's body) at once, whenever a new snapshot is served and
// every two seconds; "traffic" (TrafficUpdate) at once with the whole
// history, then at every reading with the seconds completed since and the
// map's lines; with ?service=, the service's traffic by region. A comment line keeps the stream alive when nothing else
// is sent.
func (a *apiServer) events(w http.ResponseWriter, r *http.Request) {
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, RetryAfter: retryAfter,
			Detail: "too many event streams are open (at most " + strconv.Itoa(cap(a.streams)) + ")"})
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	var buf bytes.Buffer
	send := func(event string, v any) bool {
		buf.Reset()
		if event != "" {
			buf.WriteString("event: " + event + "\ndata: ")
			if err := json.NewEncoder(&buf).Encode(v); err != nil {
				a.opts.Logger.Error("event stream: encoding an event", "event", event, "err", err)
				return false
			}
			buf.WriteByte('\n') // Encode ended the data line; this ends the event
		} else {
			buf.WriteString(": keep-alive\n\n")
		}
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	buf.WriteString("retry: " + strconv.Itoa(eventRetryMs) + "\n\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return
	}

	var lastSnap *regions.Snapshot
	snapshot := func() *regions.Snapshot {
		if a.opts.Snapshot == nil {
			return nil
		}
		return a.opts.Snapshot()
	}
	sendStatus := func() bool {
		lastSnap = snapshot()
		return send("status", a.statusOf(true))
	}
	if !sendStatus() {
		return
	}
	statusAt := time.Now()
	tr := a.opts.Traffic
	// ?service= asks for one service's traffic by region.
	service := r.URL.Query().Get("service")
	if service != "" {
		service = regions.CanonicalName(service)
	}
	var lastSec int64
	var lastMark uint64
	sendTraffic := func(u TrafficUpdate) bool {
		if u.Seconds > 0 {
			lastSec = u.Start + int64(u.Seconds) - 1
		}
		if n := len(u.Marks); n > 0 {
			lastMark = u.Marks[n-1].Seq
		}
		return send("traffic", u)
	}
	// The next tick is taken before the data it follows is read, so that
	// no reading is missed between the two.
	var tick <-chan struct{}
	if tr != nil {
		tick = tr.Tick()
		if !sendTraffic(tr.Since(0, 0, service)) {
			return
		}
	}
	// Without traffic, the stream still looks for new snapshots.
	var fb <-chan time.Time
	if tr == nil {
		fallback := time.NewTicker(trafficTick)
		defer fallback.Stop()
		fb = fallback.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.opts.Closing:
			return
		case <-tick:
			tick = tr.Tick()
			if !sendTraffic(tr.Since(lastSec, lastMark, service)) {
				return
			}
		case <-fb:
			if time.Since(statusAt) >= statusEvery/2 && !send("", nil) {
				return
			}
		}
		if snapshot() != lastSnap || time.Since(statusAt) >= statusEvery {
			if !sendStatus() {
				return
			}
			statusAt = time.Now()
		}
	}
}
