package health

import (
	"fmt"
	"strconv"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// passiveSpec is a region's passive health check, compiled.
type passiveSpec struct {
	window      time.Duration
	minRequests float64
	errorRatio  float64
	// errWord names the errors in reasons: "5xx" (HAProxy's hrsp_5xx) or
	// "errors" (a Prometheus metric of the operator's choosing).
	errWord string
}

// newPassiveSpec compiles c's passive check (nil without one); c has its
// defaults.
func newPassiveSpec(c regions.HealthCheck) *passiveSpec {
	if c.Passive == nil || c.Stats == nil {
		return nil
	}
	s := &passiveSpec{window: time.Duration(c.Passive.Window), minRequests: float64(c.Passive.MinRequests),
		errorRatio: *c.Passive.ErrorRatio, errWord: "errors"}
	if c.Stats.Type == regions.StatsHAProxy {
		s.errWord = "5xx"
	}
	return s
}

func (s *passiveSpec) key() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%s/%v/%v/%s", s.window, s.minRequests, s.errorRatio, s.errWord)
}

// counterSample is the counters of one reading.
type counterSample struct {
	at             time.Time
	requests, errs float64
}

// maxWindowSamples bounds the samples a window keeps: readings closer
// than window/maxWindowSamples to the last kept one are judged but not
// kept, so a long window over a short interval stays small.
const maxWindowSamples = 512

// passiveWindow keeps a VIP's counter readings over one window.
type passiveWindow struct {
	samples []counterSample
}

// verdict is passive health's judgement of one reading.
type verdict struct {
	// known: the reading covers a whole window with enough requests.
	known bool
	fail  bool
	// summary is what was seen ("5xx 37% of 1,204 requests in 10s"), or
	// why there is no verdict.
	summary string
}

// observe adds a reading and judges the error ratio since the newest
// reading at least a window old. Counters that went back (the load
// balancer restarted or reloaded) start the window again.
func (w *passiveWindow) observe(s *passiveSpec, rd *reading) verdict {
	if !rd.counted {
		return verdict{summary: rd.countErr}
	}
	cur := counterSample{at: rd.at, requests: rd.requests, errs: rd.errors}
	if n := len(w.samples); n > 0 {
		last := w.samples[n-1]
		if cur.requests < last.requests || cur.errs < last.errs || !cur.at.After(last.at) {
			w.samples = w.samples[:0]
		}
	}
	// The baseline is the newest sample at least a window old; older
	// ones are of no more use.
	base := -1
	for i, smp := range w.samples {
		if cur.at.Sub(smp.at) < s.window {
			break
		}
		base = i
	}
	if base > 0 {
		w.samples = append(w.samples[:0], w.samples[base:]...)
		base = 0
	}
	var v verdict
	if base < 0 {
		span := time.Duration(0)
		if len(w.samples) > 0 {
			span = cur.at.Sub(w.samples[0].at)
		}
		v.summary = fmt.Sprintf("counting: %s of the %s window seen", roundSpan(span), s.window)
	} else {
		b := w.samples[0]
		reqs, errs, span := cur.requests-b.requests, cur.errs-b.errs, cur.at.Sub(b.at)
		switch {
		case reqs < s.minRequests:
			v.summary = fmt.Sprintf("%s of %s requests in %s: fewer than %s, no verdict",
				thousands(errs), thousands(reqs), roundSpan(span), thousands(s.minRequests))
		default:
			ratio := errs / reqs
			v.known, v.fail = true, ratio > s.errorRatio
			v.summary = fmt.Sprintf("%s %s of %s requests in %s", s.errWord, percent(ratio), thousands(reqs), roundSpan(span))
		}
	}
	if n := len(w.samples); n == 0 || cur.at.Sub(w.samples[n-1].at) >= s.window/maxWindowSamples {
		w.samples = append(w.samples, cur)
	}
	return v
}

// percent writes a ratio as a percentage: 37%, or 2.5% below 10%.
func percent(r float64) string {
	p := 100 * r
	if p > 0 && p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// thousands writes a count with thousands separators: 1,204.
func thousands(f float64) string {
	s := strconv.FormatFloat(f, 'f', 0, 64)
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// roundSpan rounds a time span for reasons: to the second from one
// second, else to the millisecond.
func roundSpan(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
