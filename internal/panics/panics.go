package panics

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Interval is the least time between two log lines about panics at sites
// already logged.
const Interval = 10 * time.Second

// maxSites bounds the sites remembered; a panic at a site beyond it is
// logged like a repeat.
const maxSites = 64

// Log logs recovered panics to Logger: the stack once per distinct site
// (the code that raised the panic), and further panics, at any site
// already logged, as one line with counts at most every Interval. It is
// called only after a panic was recovered: it locks and allocates.
type Log struct {
	Logger *slog.Logger     // nil: logs nothing
	Now    func() time.Time // nil: time.Now; tests move it

	mu     sync.Mutex
	sites  map[uintptr]uint64 // panics per site
	last   time.Time          // the last line logged
	silent uint64             // panics not logged since
}

// Record logs panic r: with message first and its stack for the first
// panic at its site, with message repeat and the counts (at_site,
// since_last_line) for a later one, if Interval has passed since the last
// line; attrs are added to either. It must be called from the deferred
// function that recovered r, so that the stack still holds the panicking
// frames.
func (p *Log) Record(r any, first, repeat string, attrs ...slog.Attr) {
	// Logging must not turn a recovered panic into a crash.
	defer func() { _ = recover() }()
	if p.Logger == nil {
		return
	}
	site, where := Site()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sites == nil {
		p.sites = make(map[uintptr]uint64)
	}
	n, known := p.sites[site]
	isFirst := !known && len(p.sites) < maxSites
	if known || isFirst {
		p.sites[site] = n + 1
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	head := []slog.Attr{slog.String("site", where), slog.Any("panic", r)}
	switch {
	case isFirst:
		p.Logger.LogAttrs(context.Background(), slog.LevelError, first, append(append(head, attrs...), slog.String("stack", string(debug.Stack())))...)
	case now.Sub(p.last) >= Interval:
		p.Logger.LogAttrs(context.Background(), slog.LevelError, repeat, append(append(head, slog.Uint64("at_site", n+1), slog.Uint64("since_last_line", p.silent+1)), attrs...)...)
	default:
		p.silent++
		return
	}
	p.last, p.silent = now, 0
}

// Site finds the frame that raised the panic being recovered, seen from
// a deferred function: the first frame below runtime.gopanic outside the
// runtime (a nil dereference or an index out of range panics from
// runtime helpers called by that frame). It returns its PC, the key of
// the site, and its function, file and line.
func Site() (uintptr, string) {
	var pcs [64]uintptr
	n := runtime.Callers(2, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	below := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			below = true
		case below && !strings.HasPrefix(f.Function, "runtime."):
			return f.PC, fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
		}
		if !more {
			return 0, "unknown"
		}
	}
}
