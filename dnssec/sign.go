package dnssec

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// sigEntry is the signatures of one RRset, shared by every State that
// answers with it until they are due for refresh.
type sigEntry struct {
	rrsigs []dns.RR // *dns.RRSIG, one per signing key
	// tails are the RRSIGs in wire form from the type on (no owner), for
	// the query path to write behind an owner name of its own.
	tails     [][]byte
	refreshAt time.Time
	mark      uint64 // eviction: the last sweep that found it in use
}

// signer signs the RRsets of one zone with its keys, keeping each
// signature in a cache by the RRset's content until its refresh is due.
type signer struct {
	keys *KeySet
	pol  Policy
	now  func() time.Time
	rand func() float64

	mu    sync.Mutex
	cache map[string]*sigEntry

	made, reused atomic.Uint64
}

func newSigner(keys *KeySet, pol Policy, now func() time.Time) *signer {
	return &signer{keys: keys, pol: pol.Normalized(), now: now, rand: rand.Float64, cache: map[string]*sigEntry{}}
}

// rrsetKey is the content an RRset's signature covers: owner, type,
// original TTL and the records' data, in canonical order.
func rrsetKey(rrset []dns.RR, origTTL uint32) string {
	recs := make([]string, len(rrset))
	for i, rr := range rrset {
		s := rr.String()
		// Drop the owner and TTL as String writes them; they are added
		// once, canonically.
		if f := strings.SplitN(s, "\t", 3); len(f) == 3 {
			s = f[2]
		}
		recs[i] = strings.ToLower(s)
	}
	slices.Sort(recs)
	h := rrset[0].Header()
	return fmt.Sprintf("%s %d %d\n%s", strings.ToLower(h.Name), h.Rrtype, origTTL, strings.Join(recs, "\n"))
}

// sign returns the signatures of rrset (every record of one owner and
// type) with origTTL as their original TTL, from the cache while they are
// not due for refresh.
func (s *signer) sign(rrset []dns.RR, origTTL uint32) (*sigEntry, error) {
	return s.signKey(rrsetKey(rrset, origTTL), rrset, origTTL)
}

func (s *signer) signKey(key string, rrset []dns.RR, origTTL uint32) (*sigEntry, error) {
	now := s.now()
	s.mu.Lock()
	e := s.cache[key]
	s.mu.Unlock()
	if e != nil && now.Before(e.refreshAt) {
		s.reused.Add(1)
		return e, nil
	}
	typ := rrset[0].Header().Rrtype
	keys := s.keys.signers(typ)
	if len(keys) == 0 {
		return nil, fmt.Errorf("zone %s: no key signs %s records", s.keys.Zone, dns.TypeToString[typ])
	}
	// Spread: a random part of the slack between refresh and validity
	// comes off each signature's life.
	slack := s.pol.Validity - s.pol.Refresh
	life := s.pol.Validity - time.Duration(s.rand()*float64(slack)/4)
	inception := now.Add(-s.pol.Backdate)
	expiration := now.Add(life)
	ne := &sigEntry{refreshAt: expiration.Add(-s.pol.Refresh)}
	for _, k := range keys {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Ttl: origTTL},
			OrigTtl:    origTTL,
			Algorithm:  k.DNSKEY.Algorithm,
			KeyTag:     k.Tag(),
			SignerName: s.keys.Zone,
			Inception:  uint32(inception.Unix()),
			Expiration: uint32(expiration.Unix()),
		}
		if err := sig.Sign(k.Signer, rrset); err != nil {
			return nil, fmt.Errorf("zone %s: signing %s %s with key %d: %w", s.keys.Zone, rrset[0].Header().Name, dns.TypeToString[typ], k.Tag(), err)
		}
		sig.Hdr.Ttl = origTTL
		tail, err := rrsigTail(sig)
		if err != nil {
			return nil, err
		}
		ne.rrsigs = append(ne.rrsigs, sig)
		ne.tails = append(ne.tails, tail)
	}
	s.made.Add(uint64(len(keys)))
	s.mu.Lock()
	s.cache[key] = ne
	s.mu.Unlock()
	return ne, nil
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

// markKey marks the entry of key as in use by sweep m.
func (s *signer) markKey(key string, m uint64) {
	s.mu.Lock()
	if e := s.cache[key]; e != nil {
		e.mark = m
	}
	s.mu.Unlock()
}

// sweep drops the cache entries that marked says are no longer used.
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
