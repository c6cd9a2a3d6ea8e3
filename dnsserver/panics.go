package dnsserver

import (
	"log/slog"

	"github.com/meridian-gslb/meridian/internal/panics"
)

// recordPanic logs panic r, recovered while answering over proto (the
// stack once per site, then counts at most every panics.Interval);
// outcome says what became of the message, total is the count of panics
// so far. It must be called from the deferred function that recovered r.
// It runs only after a panic: it locks and allocates, and the query path
// never calls it otherwise.
func recordPanic(p *panics.Log, r any, proto Proto, outcome string, total uint64) {
	p.Record(r, "dns handler panicked; "+outcome, "dns handler panics go on; "+outcome,
		slog.String("proto", proto.String()), slog.Uint64("panics_total", total))
}
