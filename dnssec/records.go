package dnssec

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// KeyRecords is a zone's keys as every signer and name server of a
// deployment agrees on them: the public half of each key, its role, and
// when it entered each state of its life (RFC 7583's timeline). Its
// signer keeps them in etcd (package dnssec/sigstore); the state of a
// key now follows from the times (KeySet). A name server needs nothing
// else to know which keys are published, sign and are asked of the
// parent.
type KeyRecords struct {
	Zone string `json:"zone"`
	// TTL of the DNSKEY, CDS and CDNSKEY RRsets.
	TTL  uint32      `json:"dnskey_ttl"`
	Keys []KeyRecord `json:"keys"`
	// Parent is what the signer last saw of the DS RRset at the parent.
	Parent *ParentDS `json:"parent,omitempty"`
	// Rollover says in a line where a rollover is and what it waits
	// for; "" when none is under way.
	Rollover string    `json:"rollover,omitempty"`
	Updated  time.Time `json:"updated"`
}

// KeyRecord is one key of KeyRecords.
type KeyRecord struct {
	DNSKEY string `json:"dnskey"` // presentation format
	Role   string `json:"role"`   // CSK, KSK or ZSK
	Tag    uint16 `json:"tag"`
	// When it entered each state (zero: not yet).
	Created   time.Time `json:"created"`
	Published time.Time `json:"published,omitzero"` // in the DNSKEY RRset
	Active    time.Time `json:"active,omitzero"`    // signs
	Retired   time.Time `json:"retired,omitzero"`   // signs no more
	Removed   time.Time `json:"removed,omitzero"`   // out of the DNSKEY RRset
	// CDS: since when its CDS and CDNSKEY are at the apex (zero: they
	// are not): the DS the zone asks its parent to hold.
	CDS time.Time `json:"cds,omitzero"`
	// DSSeen: when the parent was first seen holding its DS, and no DS
	// of a key gone.
	DSSeen time.Time `json:"ds_seen,omitzero"`
	// Successor is the tag of the key that replaces it in a rollover.
	Successor uint16 `json:"successor,omitempty"`
}

// ParentDS is the DS RRset of the zone at its parent, as the signer last
// asked for it.
type ParentDS struct {
	Checked time.Time `json:"checked"`
	DS      []string  `json:"ds,omitempty"` // presentation format
	TTL     uint32    `json:"ttl,omitempty"`
	// Unknown are the DS records that match no key of the zone.
	Unknown []string `json:"unknown,omitempty"`
	Err     string   `json:"error,omitempty"`
}

// state is what a record's times say about the key at now.
func (r *KeyRecord) state(now time.Time) KeyState {
	at := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
	gone := at(r.Removed)
	return KeyState{
		Published: at(r.Published) && !gone,
		Signing:   at(r.Active) && !at(r.Retired) && !gone,
		CDS:       at(r.CDS) && !gone,
	}
}

// DNSKEYRecord parses the record's DNSKEY.
func (r *KeyRecord) DNSKEYRecord() (*dns.DNSKEY, error) {
	rr, err := dns.NewRR(r.DNSKEY)
	if err != nil {
		return nil, err
	}
	k, ok := rr.(*dns.DNSKEY)
	if !ok || rr == nil {
		return nil, fmt.Errorf("%q is not a DNSKEY record", r.DNSKEY)
	}
	return k, nil
}

func parseRole(s string) (Role, error) {
	switch s {
	case "CSK":
		return RoleCSK, nil
	case "KSK":
		return RoleKSK, nil
	case "ZSK":
		return RoleZSK, nil
	}
	return 0, fmt.Errorf("role %q: want CSK, KSK or ZSK", s)
}

// NewKeyRecords records the keys of ks as they are now: every key
// published and signing since now, the CDS of each SEP key at the apex
// (the zone's DS is taken to be at the parent).
func NewKeyRecords(ks *KeySet, now time.Time) *KeyRecords {
	kr := &KeyRecords{Zone: ks.Zone, TTL: ks.ttl(), Updated: now}
	for _, k := range ks.Keys {
		r := KeyRecord{DNSKEY: k.DNSKEY.String(), Role: k.Role.String(), Tag: k.Tag(), Created: now, Published: now, Active: now}
		if k.DNSKEY.Flags == flagSEP {
			r.CDS = now
		}
		kr.Keys = append(kr.Keys, r)
	}
	return kr
}

// KeySet is the key set the records make at now: every key published or
// signing, with its state. private holds the private halves by tag (nil
// for a name server): a signing key whose private half is missing there
// is an error when private is not nil.
func (kr *KeyRecords) KeySet(private map[uint16]crypto.Signer, now time.Time) (*KeySet, error) {
	ks := &KeySet{Zone: dns.CanonicalName(kr.Zone), TTL: kr.TTL}
	for i := range kr.Keys {
		r := &kr.Keys[i]
		st := r.state(now)
		if !st.Published && !st.Signing {
			continue
		}
		k, err := r.DNSKEYRecord()
		if err != nil {
			return nil, fmt.Errorf("zone %s: key %d: %w", kr.Zone, r.Tag, err)
		}
		if k.KeyTag() != r.Tag || dns.CanonicalName(k.Hdr.Name) != ks.Zone {
			return nil, fmt.Errorf("zone %s: key %d: the record holds key %d of %s", kr.Zone, r.Tag, k.KeyTag(), k.Hdr.Name)
		}
		role, err := parseRole(r.Role)
		if err != nil {
			return nil, fmt.Errorf("zone %s: key %d: %w", kr.Zone, r.Tag, err)
		}
		key := &Key{DNSKEY: k, Role: role, State: st}
		if private != nil {
			key.Signer = private[r.Tag]
			if key.Signer == nil && st.Signing {
				return nil, fmt.Errorf("zone %s: key %d signs, but its private key is not in the key directory", kr.Zone, r.Tag)
			}
		}
		ks.Keys = append(ks.Keys, key)
	}
	if !slices.ContainsFunc(ks.Keys, func(k *Key) bool { return k.State.Signing && k.Role != RoleZSK }) {
		return nil, fmt.Errorf("zone %s: no key signs the DNSKEY RRset", kr.Zone)
	}
	return ks, nil
}

// Record returns the record of the key with tag, nil if none.
func (kr *KeyRecords) Record(tag uint16) *KeyRecord {
	for i := range kr.Keys {
		if kr.Keys[i].Tag == tag {
			return &kr.Keys[i]
		}
	}
	return nil
}

// Clone is a deep copy of kr.
func (kr *KeyRecords) Clone() *KeyRecords {
	c := *kr
	c.Keys = slices.Clone(kr.Keys)
	if kr.Parent != nil {
		p := *kr.Parent
		p.DS = slices.Clone(p.DS)
		p.Unknown = slices.Clone(p.Unknown)
		c.Parent = &p
	}
	return &c
}

// Validate checks records read from etcd.
func (kr *KeyRecords) Validate() error {
	var errs []error
	if _, ok := dns.IsDomainName(kr.Zone); !ok || kr.Zone == "" {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name", kr.Zone))
	}
	if len(kr.Keys) == 0 {
		errs = append(errs, errors.New("no keys"))
	}
	for i := range kr.Keys {
		r := &kr.Keys[i]
		if _, err := parseRole(r.Role); err != nil {
			errs = append(errs, fmt.Errorf("key %d: %w", r.Tag, err))
		}
		k, err := r.DNSKEYRecord()
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d: %w", r.Tag, err))
			continue
		}
		if k.KeyTag() != r.Tag {
			errs = append(errs, fmt.Errorf("key %d: the DNSKEY's tag is %d", r.Tag, k.KeyTag()))
		}
		if !strings.EqualFold(dns.Fqdn(k.Hdr.Name), dns.Fqdn(kr.Zone)) {
			errs = append(errs, fmt.Errorf("key %d belongs to %s", r.Tag, k.Hdr.Name))
		}
	}
	return errors.Join(errs...)
}
