package dnsserver

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// panicLogInterval is the least time between two log lines about panics
// at sites already logged, so that hostile input cannot flood the log.
const panicLogInterval = 10 * time.Second

// maxPanicSites bounds the sites remembered; a panic at a site beyond it
// is logged like a repeat.
const maxPanicSites = 64

// panicLog logs the panics the handler and the transport recover: the
// stack once per distinct site (the code that raised the panic), and
// further panics, at any site already logged, as one line with counts at
// most every panicLogInterval. It runs only after a panic was recovered:
// it locks and allocates, and the query path never calls it otherwise.
type panicLog struct {
	log *slog.Logger
	now func() time.Time // nil: time.Now; tests move it

	mu     sync.Mutex
	sites  map[uintptr]uint64 // panics per site
	last   time.Time          // the last line logged
	silent uint64             // panics not logged since
}

// record logs panic r, recovered while answering over proto; outcome says
// what became of the message, total is the count of panics so far. It
// must be called from the deferred function that recovered r, so that the
// stack still holds the panicking frames.
func (p *panicLog) record(r any, proto Proto, outcome string, total uint64) {
	// Logging must not turn a recovered panic into a crash.
	defer func() { _ = recover() }()
	site, where := panicSite()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sites == nil {
		p.sites = make(map[uintptr]uint64)
	}
	n, known := p.sites[site]
	first := !known && len(p.sites) < maxPanicSites
	if known || first {
		p.sites[site] = n + 1
	}
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	switch {
	case first:
		p.log.Error("dns handler panicked; "+outcome, slog.String("proto", proto.String()), slog.String("site", where),
			slog.Any("panic", r), slog.Uint64("panics_total", total), slog.String("stack", string(debug.Stack())))
	case now.Sub(p.last) >= panicLogInterval:
		p.log.Error("dns handler panics go on; "+outcome, slog.String("proto", proto.String()), slog.String("site", where),
			slog.Any("panic", r), slog.Uint64("at_site", n+1), slog.Uint64("since_last_line", p.silent+1), slog.Uint64("panics_total", total))
	default:
		p.silent++
		return
	}
	p.last, p.silent = now, 0
}

// panicSite finds the frame that raised the panic being recovered: the
// first frame below runtime.gopanic outside the runtime (a nil
// dereference or an index out of range panics from runtime helpers called
// by that frame). It returns its PC, the key of the site, and its
// function and line.
func panicSite() (uintptr, string) {
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
