package zones

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Packed is an answer in wire format, compiled to follow a question name
// of one length. Compression pointers into the question refer to the
// suffixes every such name shares (see Answer.anchor), so the query's own
// question can be copied in front of Body unchanged, with the client's
// spelling of the name.
type Packed struct {
	Rcode         int
	Authoritative bool
	Body          []byte   // every record after the question section
	ends          []uint16 // end of each record in Body
	sections      [3]uint16
	required      int
	// TargetOff is the message offset of the name the answer section's
	// last record points to when that record is a CNAME (its target; in
	// a signed answer the record before the CNAME's signatures), for
	// compression pointers to it; 0 when there is none.
	TargetOff uint16
}

// Fit says how much of the answer to send when room bytes are left after
// the question (and the OPT record): n bytes of Body, with these section
// counts. tc is set, and nothing is sent, when a required record does not
// fit; optional additional records are dropped silently.
func (p *Packed) Fit(room int) (n int, counts [3]uint16, tc bool) {
	if len(p.Body) <= room {
		return len(p.Body), p.sections, false
	}
	k := 0
	for k < len(p.ends) && int(p.ends[k]) <= room {
		k++
	}
	if k < p.required {
		return 0, [3]uint16{}, true
	}
	left := k
	for i, c := range p.sections {
		take := min(int(c), left)
		counts[i] = uint16(take)
		left -= take
	}
	return int(p.ends[k-1]), counts, false
}

// wireCache holds an answer's compiled forms: one for query names as long
// as the anchor, and a table by length for the names below it.
type wireCache struct {
	exact  atomic.Pointer[Packed]
	byLen  atomic.Pointer[[MaxNameLen + 1]atomic.Pointer[Packed]]
	broken atomic.Bool
}

// errUnverified marks an answer whose compiled form did not decode back to
// its records; it is then packed per query instead.
var errUnverified = errors.New("compiled answer does not decode to its records")

// Packed returns the answer compiled for a question name of qlen bytes
// (wire form), or nil when it cannot be precompiled, in which case the
// caller packs it per query with Records. The first call for a length
// compiles; later ones only load a pointer.
func (a *Answer) Packed(qlen int) *Packed {
	if qlen <= 0 || qlen > MaxNameLen || a.wire.broken.Load() {
		return nil
	}
	alen := a.anchorLen
	var slot *atomic.Pointer[Packed]
	switch {
	case qlen == alen:
		slot = &a.wire.exact
	case qlen >= alen+2:
		tab := a.wire.byLen.Load()
		if tab == nil {
			a.wire.byLen.CompareAndSwap(nil, new([MaxNameLen + 1]atomic.Pointer[Packed]))
			tab = a.wire.byLen.Load()
		}
		slot = &tab[qlen]
	default:
		return nil
	}
	if p := slot.Load(); p != nil {
		return p
	}
	p, err := a.compile(qlen)
	if err != nil {
		a.wire.broken.Store(true)
		return nil
	}
	slot.Store(p)
	return p
}

// wireLen is the length of a presentation name in wire form.
func wireLen(name string) int {
	w, err := WireName(name)
	if err != nil {
		return 0
	}
	return len(w)
}

// padName returns a name of exactly qlen wire bytes that ends in anchor,
// built from labels of \255 bytes, which no sensible zone uses, so nothing
// but the query name itself can be compressed against them. compile checks
// that all the same.
func padName(anchor string, qlen int) (string, error) {
	fill := qlen - wireLen(anchor)
	if fill < 2 {
		return "", fmt.Errorf("cannot pad %q to %d bytes", anchor, qlen)
	}
	var b strings.Builder
	for fill > 0 {
		l := min(63, fill-1)
		if fill-(l+1) == 1 {
			l--
		}
		b.WriteString(strings.Repeat(`\255`, l))
		b.WriteByte('.')
		fill -= l + 1
	}
	if anchor != "." {
		b.WriteString(anchor)
	}
	return b.String(), nil
}

func (a *Answer) compile(qlen int) (*Packed, error) {
	qname := a.anchor
	if qlen != a.anchorLen {
		var err error
		if qname, err = padName(a.anchor, qlen); err != nil {
			return nil, err
		}
	}
	return a.PackedFor(qname)
}

// PackedFor compiles the answer behind one query name (presentation form).
// It allocates: the query path uses it only for answers that Packed cannot
// precompile.
func (a *Answer) PackedFor(qname string) (*Packed, error) {
	an, ns, ex := a.Records(qname)
	buf := make([]byte, dns.MaxMsgSize)
	comp := make(map[string]int)
	off, err := dns.PackDomainName(qname, buf, 12, comp, true)
	if err != nil {
		return nil, err
	}
	off += 4 // QTYPE, QCLASS: their values do not matter here
	start := off
	p := &Packed{Rcode: a.Rcode, Authoritative: a.Authoritative, required: a.required}
	for i, sec := range [][]dns.RR{an, ns, ex} {
		for _, rr := range sec {
			if off, err = dns.PackRR(rr, buf, off, comp, true); err != nil {
				return nil, err
			}
			if off-start > 0xFFFF {
				return nil, errors.New("answer too large")
			}
			p.ends = append(p.ends, uint16(off-start))
			p.sections[i]++
		}
	}
	p.Body = append([]byte(nil), buf[start:off]...)
	// The last CNAME of the answer section: the last record, or in a
	// signed answer the last but its signatures.
	last := len(an) - 1
	for last >= 0 && an[last].Header().Rrtype == dns.TypeRRSIG {
		last--
	}
	if last >= 0 && an[last].Header().Rrtype == dns.TypeCNAME {
		rrStart := start
		if last > 0 {
			rrStart += int(p.ends[last-1])
		}
		p.TargetOff = rdataName(buf[:off], rrStart)
	}

	// Decode what was built and compare: the only proof that every
	// compression pointer means what it should.
	msg := buf[:off]
	for i := range 12 {
		msg[i] = 0
	}
	msg[5] = 1 // QDCOUNT
	for i, c := range p.sections {
		msg[6+2*i], msg[7+2*i] = byte(c>>8), byte(c)
	}
	var m dns.Msg
	if err := m.Unpack(msg); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnverified, err)
	}
	if !sameRecords(m.Answer, an) || !sameRecords(m.Ns, ns) || !sameRecords(m.Extra, ex) {
		return nil, errUnverified
	}
	return p, nil
}

func sameRecords(got, want []dns.RR) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !strings.EqualFold(got[i].String(), want[i].String()) {
			return false
		}
	}
	return true
}

// rdataName returns where the name that starts the RDATA of the record at
// off is spelt out (following a compression pointer there), or 0 when that
// is beyond what a compression pointer can reach.
func rdataName(msg []byte, off int) uint16 {
	for off < len(msg) { // the owner name
		l := int(msg[off])
		if l&0xC0 == 0xC0 {
			off += 2
			break
		}
		off += l + 1
		if l == 0 {
			break
		}
	}
	off += 10 // type, class, TTL, RDLENGTH
	if off+1 < len(msg) && msg[off]&0xC0 == 0xC0 {
		off = int(msg[off]&0x3F)<<8 | int(msg[off+1])
	}
	if off <= 0 || off > 0x3FFF || off >= len(msg) {
		return 0
	}
	return uint16(off)
}
