package dnssec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// Hash names an RRset as its signatures cover it: SHA-256 over the
// owner (lower-case wire form), type, class and original TTL, then each
// record's RDATA (sorted, duplicates once), each after its length. A
// signer and the name servers compute it alike from the same zone and
// snapshot, and etcd keeps signatures under it (docs/architecture.md).
type Hash [sha256.Size]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads what String writes.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not an RRset hash (64 hex digits)", s)
	}
	copy(h[:], b)
	return h, nil
}

// RRsetHash is the Hash of rrset (every record of one owner and type)
// signed with origTTL as its original TTL.
func RRsetHash(rrset []dns.RR, origTTL uint32) (Hash, error) {
	if len(rrset) == 0 {
		return Hash{}, errors.New("empty RRset")
	}
	hdr := rrset[0].Header()
	owner, err := zones.WireName(hdr.Name)
	if err != nil {
		return Hash{}, err
	}
	var stack [8][]byte
	rdata := stack[:0]
	buf := make([]byte, 0, 64*len(rrset))
	for _, rr := range rrset {
		n := dns.Len(rr) + 16
		start := len(buf)
		buf = slices.Grow(buf, n)[:start+n]
		// PackRR writes the record's RDLENGTH into its header: pack a
		// copy, the records are shared.
		off, err := dns.PackRR(dns.Copy(rr), buf[start:], 0, nil, false)
		if err != nil {
			return Hash{}, err
		}
		rec := buf[start : start+off]
		// The owner, then type, class, TTL and RDLENGTH: 10 bytes.
		skip := nameLen(rec) + 10
		if skip > len(rec) {
			return Hash{}, fmt.Errorf("%s: cannot pack", rr)
		}
		rdata = append(rdata, rec[skip:])
		buf = buf[:start+off]
	}
	slices.SortFunc(rdata, bytes.Compare)
	rdata = slices.CompactFunc(rdata, bytes.Equal)
	h := sha256.New()
	h.Write([]byte(owner))
	var b [8]byte
	binary.BigEndian.PutUint16(b[0:], hdr.Rrtype)
	binary.BigEndian.PutUint16(b[2:], dns.ClassINET)
	binary.BigEndian.PutUint32(b[4:], origTTL)
	h.Write(b[:])
	for _, r := range rdata {
		binary.BigEndian.PutUint16(b[:2], uint16(len(r)))
		h.Write(b[:2])
		h.Write(r)
	}
	var out Hash
	h.Sum(out[:0])
	return out, nil
}

// nameLen is the length of the uncompressed wire name at the start of b.
func nameLen(b []byte) int {
	off := 0
	for off < len(b) && b[off] != 0 {
		off += int(b[off]) + 1
	}
	return off + 1
}

// Entry is the signatures of one RRset: one RRSIG per key that signed
// it. A signer makes it; a State shares it with every later State that
// answers with the same RRset; a name server without keys reads it from
// etcd (DecodeEntry). Immutable once made.
type Entry struct {
	rrsigs []dns.RR // *dns.RRSIG without owner (the answer gives it)
	// tails are the RRSIGs in wire form from the type on (no owner), for
	// the query path to write behind an owner name of its own.
	tails [][]byte
	tags  []uint16  // the signing keys' tags, as the RRSIGs come
	exp   time.Time // the earliest expiration
	// refreshAt: a signer makes the entry again from then on.
	refreshAt time.Time
	mark      uint64 // eviction: the last sweep that found it in use
}

// Expires is when the first of the entry's signatures expires.
func (e *Entry) Expires() time.Time { return e.exp }

// Tags are the key tags of the entry's signatures.
func (e *Entry) Tags() []uint16 { return e.tags }

// entryMagic starts an encoded entry (a format version).
const entryMagic = 0x01

// Encode is the entry as etcd keeps it: a version byte, then each
// RRSIG's RDATA after its length (two bytes).
func (e *Entry) Encode() []byte {
	n := 1
	for _, t := range e.tails {
		n += 2 + len(t) - 10
	}
	out := make([]byte, 1, n)
	out[0] = entryMagic
	for _, t := range e.tails {
		rd := t[10:] // type, class, TTL, RDLENGTH come first
		out = binary.BigEndian.AppendUint16(out, uint16(len(rd)))
		out = append(out, rd...)
	}
	return out
}

// DecodeEntry reads what Encode writes. It checks the form, not the
// signatures: the name server trusts etcd as it does for the rest of its
// state, and the signer verified nothing needs verifying.
func DecodeEntry(b []byte) (*Entry, error) {
	if len(b) < 1 || b[0] != entryMagic {
		return nil, errors.New("not a signature entry (unknown format)")
	}
	e := &Entry{}
	for off := 1; off < len(b); {
		if off+2 > len(b) {
			return nil, errors.New("signature entry cut short")
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if off+n > len(b) {
			return nil, errors.New("signature entry cut short")
		}
		rr, _, err := dns.UnpackRRWithHeader(dns.RR_Header{Name: ".", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Rdlength: uint16(n)}, b[:off+n], off)
		if err != nil {
			return nil, fmt.Errorf("signature entry: %w", err)
		}
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			return nil, errors.New("signature entry: not an RRSIG")
		}
		off += n
		sig.Hdr.Name = ""
		sig.Hdr.Ttl = sig.OrigTtl
		if err := e.add(sig); err != nil {
			return nil, err
		}
	}
	if len(e.rrsigs) == 0 {
		return nil, errors.New("signature entry without signatures")
	}
	return e, nil
}

// add appends a signature to e (while it is being made).
func (e *Entry) add(sig *dns.RRSIG) error {
	tail, err := rrsigTail(sig)
	if err != nil {
		return err
	}
	e.rrsigs = append(e.rrsigs, sig)
	e.tails = append(e.tails, tail)
	e.tags = append(e.tags, sig.KeyTag)
	exp := time.Unix(int64(sig.Expiration), 0)
	if e.exp.IsZero() || exp.Before(e.exp) {
		e.exp = exp
	}
	return nil
}

// covers says whether e's signatures are of type t.
func (e *Entry) covers(t uint16) bool {
	for _, rr := range e.rrsigs {
		if rr.(*dns.RRSIG).TypeCovered != t {
			return false
		}
	}
	return true
}

// only is e with the signatures of the keys keep says yes to, nil when
// none is left; e itself when all are kept.
func (e *Entry) only(keep func(tag uint16) bool) *Entry {
	n := 0
	for _, t := range e.tags {
		if keep(t) {
			n++
		}
	}
	switch n {
	case len(e.tags):
		return e
	case 0:
		return nil
	}
	out := &Entry{refreshAt: e.refreshAt}
	for i, t := range e.tags {
		if keep(t) {
			_ = out.add(e.rrsigs[i].(*dns.RRSIG)) // packed once already
		}
	}
	return out
}

// rrsigTail packs an RRSIG and returns it without its owner name: type,
// class, TTL, RDLENGTH and RDATA.
func rrsigTail(sig *dns.RRSIG) ([]byte, error) {
	c := *sig
	c.Hdr.Name = "."
	buf := make([]byte, dns.Len(&c)+16)
	n, err := dns.PackRR(&c, buf, 0, nil, false)
	if err != nil {
		return nil, err
	}
	return slices.Clip(buf[1:n]), nil
}
