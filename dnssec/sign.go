package dnssec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Policy says how long signatures last and when they are made again.
type Policy struct {
	// Validity is how long a new signature is valid, from its inception;
	// 0: 14 days. Each signature is made a little shorter at random (up
	// to a quarter of Validity minus Refresh), so that signatures made
	// together fall due for refresh at different times.
	Validity time.Duration
	// Refresh: a signature is made again once less than this is left of
	// its validity; 0: 5 days. A server whose signer stops keeps serving
	// valid signatures for at least this long.
	Refresh time.Duration
	// Backdate is how long before now a signature's inception lies, for
	// resolvers whose clocks are behind; 0: 1 hour.
	Backdate time.Duration
}

// The Policy defaults.
const (
	DefaultValidity = 14 * 24 * time.Hour
	DefaultRefresh  = 5 * 24 * time.Hour
	DefaultBackdate = time.Hour
)

// Normalized fills in the defaults.
func (p Policy) Normalized() Policy {
	if p.Validity == 0 {
		p.Validity = DefaultValidity
	}
	if p.Refresh == 0 {
		p.Refresh = DefaultRefresh
	}
	if p.Backdate == 0 {
		p.Backdate = DefaultBackdate
	}
	return p
}

// Validate checks that signatures are made again before they expire, with
// time to spare.
func (p Policy) Validate() error {
	p = p.Normalized()
	switch {
	case p.Validity < time.Hour:
		return fmt.Errorf("validity %s: want at least 1h", p.Validity)
	case p.Refresh <= 0 || p.Refresh*2 > p.Validity:
		return fmt.Errorf("refresh %s: want more than 0 and at most half the validity (%s)", p.Refresh, p.Validity)
	case p.Backdate < 0:
		return fmt.Errorf("backdate %s: must not be negative", p.Backdate)
	}
	return nil
}

// ErrUnsigned is what a State cannot be built without: a signature that
// is not there, on a name server without the zone's private keys whose
// signer has not made (or not yet published) it.
var ErrUnsigned = errors.New("not signed yet")

// Source is where a Signer without the private keys of a zone finds its
// signatures: what the zone's signer made and published (package
// dnssec/sigstore follows them in etcd).
type Source interface {
	// Entry returns the signatures published for the RRset with hash h
	// in zone (lower case, fully qualified), nil if there are none.
	Entry(zone string, h Hash) *Entry
}

// signer signs the RRsets of one zone with its keys, keeping each
// signature in a cache by the RRset's content until its refresh is due;
// or, without private keys, finds them in a Source.
type signer struct {
	zone string
	keys atomic.Pointer[KeySet]
	pol  Policy
	now  func() time.Time
	rand func() float64
	src  Source // nil: sign with the keys

	mu    sync.Mutex
	cache map[Hash]*Entry

	made, reused, missing atomic.Uint64
}

func newSigner(zone string, keys *KeySet, pol Policy, src Source, now func() time.Time) *signer {
	s := &signer{zone: zone, pol: pol.Normalized(), now: now, rand: rand.Float64, src: src, cache: map[Hash]*Entry{}}
	s.keys.Store(keys)
	return s
}

// sign returns the signatures of rrset (every record of one owner and
// type) with origTTL as their original TTL, from the cache while they
// are not due for refresh and were made by the keys that sign now.
func (s *signer) sign(rrset []dns.RR, origTTL uint32) (*Entry, error) {
	h, err := RRsetHash(rrset, origTTL)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %s %s: %w", s.zone, rrset[0].Header().Name, dns.TypeToString[rrset[0].Header().Rrtype], err)
	}
	return s.signHash(h, rrset, origTTL)
}

func (s *signer) signHash(h Hash, rrset []dns.RR, origTTL uint32) (*Entry, error) {
	now := s.now()
	ks := s.keys.Load()
	typ := rrset[0].Header().Rrtype
	if s.src != nil {
		return s.lookup(ks, h, rrset, now)
	}
	keys := ks.signers(typ)
	if len(keys) == 0 {
		return nil, fmt.Errorf("zone %s: no key signs %s records", s.zone, dns.TypeToString[typ])
	}
	s.mu.Lock()
	e := s.cache[h]
	s.mu.Unlock()
	if e != nil && now.Before(e.refreshAt) && sameSigners(e.tags, keys) {
		s.reused.Add(1)
		return e, nil
	}
	// Spread: a random part of the slack between refresh and validity
	// comes off each signature's life.
	slack := s.pol.Validity - s.pol.Refresh
	life := s.pol.Validity - time.Duration(s.rand()*float64(slack)/4)
	inception := now.Add(-s.pol.Backdate)
	expiration := now.Add(life)
	ne := &Entry{refreshAt: expiration.Add(-s.pol.Refresh)}
	for _, k := range keys {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Ttl: origTTL},
			OrigTtl:    origTTL,
			Algorithm:  k.DNSKEY.Algorithm,
			KeyTag:     k.Tag(),
			SignerName: s.zone,
			Inception:  uint32(inception.Unix()),
			Expiration: uint32(expiration.Unix()),
		}
		if err := sig.Sign(k.Signer, rrset); err != nil {
			return nil, fmt.Errorf("zone %s: signing %s %s with key %d: %w", s.zone, rrset[0].Header().Name, dns.TypeToString[typ], k.Tag(), err)
		}
		sig.Hdr.Name = ""
		sig.Hdr.Ttl = origTTL
		if err := ne.add(sig); err != nil {
			return nil, err
		}
	}
	s.made.Add(uint64(len(keys)))
	s.mu.Lock()
	s.cache[h] = ne
	s.mu.Unlock()
	return ne, nil
}

// sameSigners says whether an entry signed by tags is what keys sign
// with now.
func sameSigners(tags []uint16, keys []*Key) bool {
	if len(tags) != len(keys) {
		return false
	}
	for i, k := range keys {
		if tags[i] != k.Tag() {
			return false
		}
	}
	return true
}

// lookup finds the signatures of an RRset in the source: usable while
// they have not expired, cover the RRset's type and at least one of them
// is by a published key; only those are served.
func (s *signer) lookup(ks *KeySet, h Hash, rrset []dns.RR, now time.Time) (*Entry, error) {
	e := s.src.Entry(s.zone, h)
	if e != nil && (!e.covers(rrset[0].Header().Rrtype) || !now.Before(e.exp)) {
		e = nil
	}
	if e != nil {
		e = e.only(ks.published)
	}
	if e == nil {
		s.missing.Add(1)
		return nil, &missingError{zone: s.zone, name: rrset[0].Header().Name, typ: rrset[0].Header().Rrtype}
	}
	s.reused.Add(1)
	return e, nil
}

// missingError is an RRset a keyless State lacks the signatures of.
type missingError struct {
	zone, name string
	typ        uint16
}

func (e *missingError) Error() string {
	return fmt.Sprintf("zone %s: %s %s: %v", e.zone, e.name, dns.TypeToString[e.typ], ErrUnsigned)
}

func (e *missingError) Unwrap() error { return ErrUnsigned }

// mark marks e as in use by sweep m.
func (s *signer) mark(e *Entry, m uint64) {
	if e != nil {
		e.mark = m
	}
}

// sweep drops the cache entries that mark says are no longer used.
func (s *signer) sweep(mark uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.cache {
		if e.mark != mark {
			delete(s.cache, k)
			n++
		}
	}
	return n
}

// dueOf is when e is due: made again, by a signer with keys; looked up
// again, by a keyless one, halfway through the refresh interval after
// its signer should have made it again.
func (s *signer) dueOf(e *Entry) time.Time {
	if s.src == nil {
		return e.refreshAt
	}
	return e.exp.Add(-s.pol.Refresh / 2)
}
