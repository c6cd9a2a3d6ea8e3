package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/dnssec/sigstore"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// followerSource is the keyless zones' dnssec.Source: the follower of
// etcd once the server has connected to it; nothing is found before.
type followerSource struct {
	f atomic.Pointer[sigstore.Follower]
}

func (s *followerSource) Entry(zone string, h dnssec.Hash) *dnssec.Entry {
	if f := s.f.Load(); f != nil {
		return f.Entry(zone, h)
	}
	return nil
}

// signerBehind is the DNS handler's SignerBehind: a keyless zone's
// signer is alive and has not signed snap yet.
func (s *followerSource) signerBehind(snap *regions.Snapshot) bool {
	f := s.f.Load()
	return f != nil && snap != nil && f.Behind(snap.Revision())
}

// followKeyless starts following the keyless zones' keys and signatures
// in etcd (connectEtcd calls it).
func (s *server) followKeyless() {
	if len(s.sec.keyless) == 0 {
		return
	}
	f := sigstore.NewFollower(s.etcd, s.cfg.Etcd.Prefix, s.sec.keyless, s.log.With("component", "dnssec"))
	f.OnKeys = s.keysFromEtcd
	f.OnSignatures = func() {
		s.sec.signer.Invalidate()
		select {
		case s.retrySign <- struct{}{}:
		default:
		}
	}
	s.follower = f
	s.src.f.Store(f)
}

// runRetrySign signs again what waits to be served whenever the
// follower brings signatures, one build at a time.
func (s *server) runRetrySign(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.retrySign:
			s.handler.RetrySigning()
		}
	}
}

// keysFromEtcd takes a keyless zone's key records as its signer
// published them: its key set, and the zone with their apex records.
func (s *server) keysFromEtcd(zone string, kr *dnssec.KeyRecords) {
	ks, err := kr.KeySet(nil, time.Now())
	if err != nil {
		s.log.Error("unusable DNSSEC key records in etcd; the zone keeps its keys", "zone", zone, "err", err)
		return
	}
	if sameKeySet(ks, s.sec.signer.Keys(zone)) {
		return
	}
	if err := s.sec.signer.SetKeys(zone, ks); err != nil {
		s.log.Error("DNSSEC keys from etcd", "zone", zone, "err", err)
		return
	}
	s.log.Info("DNSSEC keys from etcd", "zone", zone, "keys", describeKeys(ks), "rollover", kr.Rollover)
	s.zmu.Lock()
	defer s.zmu.Unlock()
	z := s.zset.Zone(zone)
	if z == nil {
		return
	}
	nz, err := z.WithDNSSEC(ks.Apex())
	var set *zones.Set
	if err == nil {
		set, err = s.zset.With(nz)
	}
	if err != nil {
		s.log.Error("the zone with its new DNSSEC keys; the previous version keeps serving", "zone", zone, "err", err)
		return
	}
	s.zset = set
	s.handler.SetZones(set)
}

// sameKeySet says whether a and b hold the same keys in the same states.
func sameKeySet(a, b *dnssec.KeySet) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TTL == b.TTL && slices.EqualFunc(a.Keys, b.Keys, func(x, y *dnssec.Key) bool {
		return x.Tag() == y.Tag() && x.DNSKEY.Algorithm == y.DNSKEY.Algorithm && x.Role == y.Role && x.State == y.State
	})
}

func describeKeys(ks *dnssec.KeySet) []string {
	var out []string
	for _, k := range ks.Keys {
		st := ""
		if k.State.Published {
			st += " published"
		}
		if k.State.Signing {
			st += " signing"
		}
		if k.State.CDS {
			st += " cds"
		}
		out = append(out, k.Describe()+st)
	}
	return out
}

// reloadKeys reads the key files of the zones this server signs again
// (SIGHUP). A zone whose files no longer load keeps its previous keys,
// and the log says why.
func (s *server) reloadKeys() {
	if s.sec.signer == nil {
		return
	}
	for _, zc := range s.cfg.Zones {
		d := zc.DNSSEC
		if d == nil || d.keyless() {
			continue
		}
		origin := dns.CanonicalName(zc.Origin)
		reload := *d
		reload.CreateKeys = false // a key gone is an error, not a reason for a new one
		ks, _, err := loadKeys(origin, &reload)
		if err != nil {
			s.log.Error("dnssec keys reload failed; the zone keeps its previous keys", "zone", origin, "err", err)
			continue
		}
		if sameKeySet(ks, s.sec.signer.Keys(origin)) {
			continue
		}
		if err := s.sec.signer.SetKeys(origin, ks); err != nil {
			s.log.Error("dnssec keys reload failed; the zone keeps its previous keys", "zone", origin, "err", err)
			continue
		}
		s.sec.files[origin] = ks
		s.log.Info("dnssec keys reloaded", "zone", origin, "keys", describeKeys(ks))
	}
}

// dnssecStatus is /v1/status's DNSSEC part.
func (s *server) dnssecStatus() []apitypes.DNSSECZoneStatus {
	if s.sec.signer == nil {
		return nil
	}
	hs := s.handler.DNSSECStatus()
	now := time.Now()
	var out []apitypes.DNSSECZoneStatus
	for _, zc := range s.cfg.Zones {
		d := zc.DNSSEC
		if d == nil {
			continue
		}
		origin := dns.CanonicalName(zc.Origin)
		zs := apitypes.DNSSECZoneStatus{Zone: origin, Signer: "local"}
		if ks := s.sec.signer.Keys(origin); ks != nil {
			for _, k := range ks.Keys {
				dk := apitypes.DNSSECKey{Tag: k.Tag(), Role: k.Role.String(), Algorithm: k.DNSKEY.Algorithm,
					Published: k.State.Published, Signing: k.State.Signing, CDS: k.State.CDS}
				if k.Role != dnssec.RoleZSK {
					dk.DS = k.DNSKEY.ToDS(dns.SHA256).String()
				}
				zs.Keys = append(zs.Keys, dk)
			}
		}
		if d.keyless() {
			zs.Signer = "etcd"
			zs.SignerStatus = &apitypes.DNSSECSigner{}
			if f := s.follower; f != nil {
				ss := f.Signer(origin)
				zs.SignerStatus = &apitypes.DNSSECSigner{Alive: ss.Alive, ID: ss.Leader, Entries: ss.Entries, Problem: ss.Problem}
				if ss.Signed != nil {
					zs.SignerStatus.SignedRevision, zs.SignerStatus.SignedAt = ss.Signed.Revision, ss.Signed.At
				}
				if kr := f.Records(origin); kr != nil {
					zs.Rollover = kr.Rollover
					if p := kr.Parent; p != nil {
						zs.Parent = &apitypes.DNSSECParent{Checked: p.Checked, DS: p.DS, Unknown: p.Unknown, Error: p.Err}
					}
				}
			}
			if !zs.SignerStatus.Alive {
				zs.Warnings = append(zs.Warnings, "no signer of the zone is alive: the signatures served age, health changes that need new ones are answered with signed supersets, and new services wait")
			}
			if zs.Keys == nil {
				zs.Warnings = append(zs.Warnings, "no key records from the zone's signer yet: the zone is served unsigned")
			}
		}
		if zs.Parent != nil && len(zs.Parent.Unknown) > 0 {
			zs.Warnings = append(zs.Warnings, "the DS at the parent matches no key of the zone: "+fmt.Sprint(zs.Parent.Unknown))
		}
		if st := hs.Served; st != nil {
			if exp := st.Expires(origin); !exp.IsZero() {
				zs.Expires, zs.ExpiresInSeconds = exp, exp.Sub(now).Seconds()
				if left := exp.Sub(now); left < d.expiryWarning() {
					zs.Warnings = append(zs.Warnings, fmt.Sprintf("a signature served expires in %s (at %s): its signer has not made it again", left.Round(time.Minute), exp.UTC().Format(time.RFC3339)))
				}
			}
			zs.Substituted = st.Substituted(origin)
			if zs.Substituted > 0 {
				zs.Warnings = append(zs.Warnings, fmt.Sprintf("%d address sets are answered with a signed superset (VIPs that are down included): the signer has not signed the subsets health chose", zs.Substituted))
			}
		}
		if !hs.Pending.IsZero() {
			zs.PendingSince, zs.PendingWhy = hs.Pending, hs.Why
			zs.Warnings = append(zs.Warnings, fmt.Sprintf("new zones or a new snapshot wait to be signed since %s; the previous ones serve: %s", hs.Pending.UTC().Format(time.RFC3339), hs.Why))
		}
		out = append(out, zs)
	}
	return out
}
