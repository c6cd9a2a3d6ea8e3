package dnssec

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// RolloverPolicy says when a zone's keys are replaced and how long each
// step of a rollover waits (docs/dnssec.md, "Key rollover"; RFC 7583).
type RolloverPolicy struct {
	// CSK, KSK and ZSK are the lifetimes of keys of each role: a key
	// that has signed for this long is replaced. 0: never.
	CSK, KSK, ZSK time.Duration
	// Propagation is how long a change takes to be served by every name
	// server: the signer signing and publishing it, the name servers
	// reading it. 0: 5 minutes.
	Propagation time.Duration
	// DSTTL is the TTL of the zone's DS at its parent until an answer
	// from the parent tells it. 0: 1 day.
	DSTTL time.Duration
	// Algorithm of new keys; 0: the algorithm of the key replaced.
	Algorithm uint8
}

// Defaults of RolloverPolicy.
const (
	DefaultPropagation = 5 * time.Minute
	DefaultDSTTL       = 24 * time.Hour
)

func (p RolloverPolicy) normalized() RolloverPolicy {
	if p.Propagation == 0 {
		p.Propagation = DefaultPropagation
	}
	if p.DSTTL == 0 {
		p.DSTTL = DefaultDSTTL
	}
	return p
}

func (p RolloverPolicy) lifetime(role string) time.Duration {
	switch role {
	case "CSK":
		return p.CSK
	case "KSK":
		return p.KSK
	}
	return p.ZSK
}

// Rollover moves a zone's keys through their rollovers: a ZSK by
// pre-publication (RFC 7583 §3.2.1): published, then signing in place of
// the old one, which leaves the DNSKEY RRset once the signatures it made
// have left caches; a CSK or KSK by double signature with CDS and CDNSKEY
// (RFC 7583 §3.3, RFC 7344, RFC 8078): published and signing beside the
// old one; once caches hold it, its CDS and CDNSKEY ask the parent for
// its DS; the old key is retired only after the parent serves that DS
// (asked through DNS) and no DS that matches no key, and the DS's TTL has
// passed.
type Rollover struct {
	Policy RolloverPolicy
	// KeyDir is where new keys are written.
	KeyDir string
	// Parent asks the zone's parent for its DS RRset; nil: a CSK or KSK
	// rollover waits at that step for ever, and says so.
	Parent func(ctx context.Context, zone string) ([]*dns.DS, uint32, error)
	Now    func() time.Time
}

// Step advances the rollovers of kr by what time and the parent allow.
// maxTTL is the largest TTL the zone answers with (its records, its
// services, its negative answers). It returns the records to use next
// (nil when nothing changed) and the key it made, if it started a
// rollover (the files are in KeyDir).
func (ro *Rollover) Step(ctx context.Context, kr *KeyRecords, maxTTL time.Duration) (*KeyRecords, *Key, error) {
	pol := ro.Policy.normalized()
	now := ro.Now()
	next := kr.Clone()
	changed := false
	var status []string
	dnskeyTTL := time.Duration(kr.TTL) * time.Second
	rolling := map[bool]bool{} // by SEP-ness: a rollover of that kind is under way

	for i := range next.Keys {
		old := &next.Keys[i]
		if old.Successor == 0 {
			continue
		}
		nw := next.Record(old.Successor)
		sep := old.Role != "ZSK"
		rolling[sep] = true
		if nw == nil {
			status = append(status, fmt.Sprintf("%s %d: its successor %d is not in the records", old.Role, old.Tag, old.Successor))
			continue
		}
		pair := fmt.Sprintf("%s %d → %d: ", old.Role, old.Tag, nw.Tag)
		wait := func(until time.Time, what string) bool {
			if now.Before(until) {
				status = append(status, pair+what+" at "+until.UTC().Format(time.RFC3339))
				return true
			}
			return false
		}
		if !sep {
			switch {
			case nw.Active.IsZero():
				if !wait(nw.Published.Add(dnskeyTTL+pol.Propagation), "the new key published; it signs in place of the old") {
					nw.Active, old.Retired, changed = now, now, true
				}
			case old.Removed.IsZero():
				if !wait(old.Retired.Add(maxTTL+pol.Propagation), "the new key signs; the old leaves the DNSKEY RRset") {
					old.Removed, changed = now, true
				}
			default:
				if !wait(old.Removed.Add(dnskeyTTL+pol.Propagation), "the old key withdrawn; forgotten") {
					changed = true
					old.Successor = 0
				}
			}
			continue
		}
		switch {
		case nw.CDS.IsZero():
			if !wait(nw.Active.Add(max(dnskeyTTL, maxTTL)+pol.Propagation), "the new key published and signing; its CDS and CDNSKEY ask the parent for its DS") {
				nw.CDS, old.CDS, changed = now, time.Time{}, true
			}
		case nw.DSSeen.IsZero():
			pd := ro.checkParent(ctx, next, now)
			next.Parent, changed = pd, true
			switch {
			case pd.Err != "":
				status = append(status, pair+"asking the parent for the DS: "+pd.Err+"; the rollover waits")
			case len(pd.Unknown) > 0:
				status = append(status, pair+"the DS at the parent matches no key of the zone ("+strings.Join(pd.Unknown, "; ")+"); the rollover waits")
			case hasDS(pd, nw):
				nw.DSSeen = now
			default:
				status = append(status, pair+fmt.Sprintf("waiting for the parent to publish the DS of key %d (asked through CDS and CDNSKEY since %s)", nw.Tag, nw.CDS.UTC().Format(time.RFC3339)))
			}
		case old.Removed.IsZero():
			ttl := pol.DSTTL
			if next.Parent != nil && next.Parent.TTL > 0 {
				ttl = time.Duration(next.Parent.TTL) * time.Second
			}
			if !wait(nw.DSSeen.Add(ttl+pol.Propagation), "the parent serves the new DS; the old key retires") {
				old.Retired, old.Removed, changed = now, now, true
			}
		default:
			if !wait(old.Removed.Add(dnskeyTTL+pol.Propagation), "the old key retired and withdrawn; forgotten") {
				changed = true
				old.Successor = 0
			}
		}
	}
	// Forget keys whose rollover ended.
	before := len(next.Keys)
	next.Keys = slices.DeleteFunc(next.Keys, func(r KeyRecord) bool { return !r.Removed.IsZero() && r.Successor == 0 })
	changed = changed || len(next.Keys) != before

	// Start a rollover of a key that has signed for its lifetime, one of
	// each kind at a time.
	var made *Key
	for i := range next.Keys {
		r := &next.Keys[i]
		life := pol.lifetime(r.Role)
		sep := r.Role != "ZSK"
		if life <= 0 || rolling[sep] || r.Active.IsZero() || !r.Retired.IsZero() || r.Successor != 0 || now.Sub(r.Active) < life {
			continue
		}
		k, err := r.DNSKEYRecord()
		if err != nil {
			return nil, nil, err
		}
		alg := pol.Algorithm
		if alg == 0 {
			alg = k.Algorithm
		}
		role, _ := parseRole(r.Role)
		nk, err := Generate(ro.KeyDir, next.Zone, alg, role)
		if err != nil {
			return nil, nil, fmt.Errorf("zone %s: making the successor of %s %d: %w", next.Zone, r.Role, r.Tag, err)
		}
		nk.DNSKEY.Hdr.Ttl = next.TTL
		nr := KeyRecord{DNSKEY: nk.DNSKEY.String(), Role: r.Role, Tag: nk.Tag(), Created: now, Published: now}
		if sep {
			nr.Active = now // double signature from the start
		}
		r.Successor = nk.Tag()
		status = append(status, fmt.Sprintf("%s %d → %d: started, the key signed since %s", r.Role, r.Tag, nk.Tag(), r.Active.UTC().Format(time.RFC3339)))
		next.Keys = append(next.Keys, nr)
		rolling[sep], changed, made = true, true, nk
		break
	}
	st := strings.Join(status, "; ")
	if st != next.Rollover {
		next.Rollover, changed = st, true
	}
	if !changed {
		return nil, nil, nil
	}
	next.Updated = now
	return next, made, nil
}

// checkParent asks the parent for the zone's DS RRset and compares it
// with the zone's keys.
func (ro *Rollover) checkParent(ctx context.Context, kr *KeyRecords, now time.Time) *ParentDS {
	pd := &ParentDS{Checked: now}
	if ro.Parent == nil {
		pd.Err = "no parent servers configured (rollover.parent_servers)"
		return pd
	}
	ds, ttl, err := ro.Parent(ctx, kr.Zone)
	if err != nil {
		pd.Err = err.Error()
		return pd
	}
	pd.TTL = ttl
	for _, d := range ds {
		txt := fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest))
		pd.DS = append(pd.DS, txt)
		if matchDS(kr, d) == nil {
			pd.Unknown = append(pd.Unknown, txt)
		}
	}
	return pd
}

// matchDS returns the record of the key ds is of, nil if none.
func matchDS(kr *KeyRecords, ds *dns.DS) *KeyRecord {
	for i := range kr.Keys {
		r := &kr.Keys[i]
		if r.Tag != ds.KeyTag {
			continue
		}
		k, err := r.DNSKEYRecord()
		if err != nil || k.Algorithm != ds.Algorithm {
			continue
		}
		if d := k.ToDS(ds.DigestType); d != nil && strings.EqualFold(d.Digest, ds.Digest) {
			return r
		}
	}
	return nil
}

// hasDS says whether the parent's DS RRset holds a DS of the key r.
func hasDS(pd *ParentDS, r *KeyRecord) bool {
	for _, s := range pd.DS {
		if strings.HasPrefix(s, fmt.Sprintf("%d ", r.Tag)) {
			return true
		}
	}
	return false
}

// ParentDSQuery asks the parent's name servers (host:port each, or a
// resolver) for zone's DS RRset over DNS, UDP and TCP when truncated. Every
// server must give the same RRset: a parent whose servers disagree is
// still publishing. It returns the RRset and its TTL.
func ParentDSQuery(servers []string, timeout time.Duration) func(ctx context.Context, zone string) ([]*dns.DS, uint32, error) {
	return func(ctx context.Context, zone string) ([]*dns.DS, uint32, error) {
		var first []*dns.DS
		var ttl uint32
		for i, srv := range servers {
			ds, t, err := askDS(ctx, srv, zone, timeout)
			if err != nil {
				return nil, 0, err
			}
			if i == 0 {
				first, ttl = ds, t
				continue
			}
			if !sameDS(first, ds) {
				return nil, 0, fmt.Errorf("the parent's servers disagree: %s has %d DS, %s %d", servers[0], len(first), srv, len(ds))
			}
			ttl = max(ttl, t)
		}
		return first, ttl, nil
	}
}

func askDS(ctx context.Context, server, zone string, timeout time.Duration) ([]*dns.DS, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeDS)
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: timeout}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", server, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("%s: %s", server, dns.RcodeToString[r.Rcode])
	}
	var out []*dns.DS
	var ttl uint32
	for _, rr := range r.Answer {
		if d, ok := rr.(*dns.DS); ok && dns.CanonicalName(d.Hdr.Name) == dns.CanonicalName(zone) {
			out = append(out, d)
			ttl = d.Hdr.Ttl
		}
	}
	return out, ttl, nil
}

func sameDS(a, b []*dns.DS) bool {
	key := func(ds []*dns.DS) []string {
		var out []string
		for _, d := range ds {
			out = append(out, fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest)))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// HostPort checks a parent server's address.
func HostPort(s string) error {
	_, _, err := net.SplitHostPort(s)
	return err
}
