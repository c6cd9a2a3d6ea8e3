package dnsserver

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// The query path hands the accounts that start being limited to Run
// through a fixed ring of slots, claimed with a compare-and-swap: no
// lock, no allocation, and when every slot is taken the news is dropped
// (Run logs at most rrlLogLinesPerSecond lines a second anyway).
const rrlEventSlots = 64

type rrlEvents struct {
	next  atomic.Uint64
	slots [rrlEventSlots]rrlEvent
	lost  atomic.Uint64
}

// Slot states.
const (
	slotFree = iota
	slotWriting
	slotReady
)

type rrlEvent struct {
	state   atomic.Uint32
	addr    netip.Addr
	class   rrlClass
	qtype   uint16
	nameLen uint8
	name    [zones.MaxNameLen]byte
}

// noteStart passes on that the account of (a, class, qtype, name) went
// over its limit.
func (r *RRL) noteStart(a netip.Addr, class rrlClass, qtype uint16, name []byte) {
	r.starts.Add(1)
	e := &r.events.slots[r.events.next.Add(1)%rrlEventSlots]
	if !e.state.CompareAndSwap(slotFree, slotWriting) {
		r.events.lost.Add(1)
		return
	}
	e.addr, e.class, e.qtype = a, class, qtype
	e.nameLen = uint8(copy(e.name[:], name))
	e.state.Store(slotReady)
}

// rrlStart is a network that started being limited, as logged.
type rrlStart struct {
	network netip.Prefix
	class   rrlClass
	qtype   uint16
	name    string
}

// Run logs, once a second, the networks that started being limited: one
// line per network, repeated for the same network at most every
// rrlLogRepeat, and at most rrlLogLinesPerSecond lines a second (a line
// counts the rest). It returns when ctx ends.
func (r *RRL) Run(ctx context.Context) error {
	r.log.Info("response rate limiting", "rate", r.cfg.Rate, "window", r.cfg.Window, "slip", r.cfg.Slip,
		"ipv4_prefix_length", r.cfg.PrefixV4, "ipv6_prefix_length", r.cfg.PrefixV6,
		"accounts", r.Capacity(), "table_bytes", r.Capacity()*RRLEntryBytes,
		"exempt", len(r.cfg.Exempt), "log_only", r.cfg.LogOnly)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	logged := map[netip.Prefix]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			r.logStarts(r.drainStarts(), logged, now)
		}
	}
}

// drainStarts takes the events the query path left.
func (r *RRL) drainStarts() []rrlStart {
	var out []rrlStart
	for i := range r.events.slots {
		e := &r.events.slots[i]
		if e.state.Load() != slotReady {
			continue
		}
		out = append(out, rrlStart{network: r.network(e.addr), class: e.class, qtype: e.qtype, name: wireToText(e.name[:e.nameLen])})
		e.state.Store(slotFree)
	}
	return out
}

// logStarts logs the starts not logged for their network within
// rrlLogRepeat before now; logged remembers when each network was.
func (r *RRL) logStarts(starts []rrlStart, logged map[netip.Prefix]time.Time, now time.Time) {
	for p, at := range logged {
		if now.Sub(at) >= rrlLogRepeat {
			delete(logged, p)
		}
	}
	msg := "rrl: limiting answers to a network"
	if r.cfg.LogOnly {
		msg = "rrl: would limit answers to a network (log_only)"
	}
	lines, more := 0, 0
	for _, s := range starts {
		if _, ok := logged[s.network]; ok {
			continue
		}
		logged[s.network] = now
		if lines == rrlLogLinesPerSecond {
			more++
			continue
		}
		lines++
		attrs := []any{"network", s.network.String(), "answers", s.class.String(), "rate", r.cfg.Rate}
		if s.class&^rrlWildcard != rrlError {
			attrs = append(attrs, "name", s.name)
		}
		if s.qtype != 0 {
			attrs = append(attrs, "type", dns.Type(s.qtype).String())
		}
		r.log.Warn(msg, attrs...)
	}
	if lost := r.events.lost.Swap(0); more > 0 || lost > 0 {
		r.log.Warn("rrl: more networks started being limited", slog.Int("not_logged", more+int(lost)))
	}
}

// wireToText turns a lower-case wire name into presentation form.
func wireToText(w []byte) string {
	if len(w) == 0 {
		return "."
	}
	name, _, err := dns.UnpackDomainName(w, 0)
	if err != nil {
		return "?"
	}
	return name
}
