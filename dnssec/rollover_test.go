package dnssec

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestRolloverSteps walks a CSK and a ZSK rollover through their steps in
// fake time, with a parent that publishes what the CDS asks for when the
// test says so, and one that holds a DS of no key.
func TestRolloverSteps(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	csk, err := Generate(dir, "example.org.", AlgECDSAP256SHA256, RoleCSK)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := NewKeySet("example.org.", []*Key{csk})
	ks.TTL = 60
	kr := NewKeyRecords(ks, now)
	private := map[uint16]crypto.Signer{csk.Tag(): csk.Signer}

	var parent []*dns.DS // what the parent serves
	foreign := &dns.DS{KeyTag: 1, Algorithm: 13, DigestType: 2, Digest: strings.Repeat("AB", 32)}
	parent = []*dns.DS{csk.DNSKEY.ToDS(dns.SHA256)}
	ro := &Rollover{
		Policy: RolloverPolicy{CSK: time.Hour, Propagation: time.Minute},
		KeyDir: dir,
		Parent: func(context.Context, string) ([]*dns.DS, uint32, error) { return parent, 120, nil },
		Now:    func() time.Time { return now },
	}
	const maxTTL = 5 * time.Minute
	step := func(t *testing.T) {
		t.Helper()
		next, made, err := ro.Step(context.Background(), kr, maxTTL)
		if err != nil {
			t.Fatal(err)
		}
		if made != nil {
			private[made.Tag()] = made.Signer
		}
		if next != nil {
			kr = next
		}
		if _, err := kr.KeySet(private, now); err != nil {
			t.Fatalf("at %v: %v", now, err)
		}
	}
	// states returns the keys' states as "tag:PSC" (published, signing,
	// CDS), in record order.
	states := func() string {
		var out []string
		for _, r := range kr.Keys {
			st := r.state(now)
			s := ""
			for _, b := range []struct {
				on bool
				c  string
			}{{st.Published, "P"}, {st.Signing, "S"}, {st.CDS, "C"}} {
				if b.on {
					s += b.c
				}
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}

	step(t)
	if states() != "PSC" {
		t.Fatalf("before its lifetime: %s", states())
	}
	now = now.Add(time.Hour)
	step(t)
	if states() != "PSC PS" || !strings.Contains(kr.Rollover, "started") {
		t.Fatalf("rollover started: %s (%s)", states(), kr.Rollover)
	}
	newTag := kr.Keys[1].Tag
	// Caches must hold the new key first: max(DNSKEY TTL, max TTL) +
	// propagation.
	now = now.Add(maxTTL)
	step(t)
	if states() != "PSC PS" {
		t.Fatalf("too early for the CDS: %s", states())
	}
	now = now.Add(time.Minute)
	step(t)
	if states() != "PS PSC" {
		t.Fatalf("the CDS moves to the new key: %s", states())
	}
	// The parent has a DS of no key: the rollover waits and says so.
	parent = append(parent, foreign)
	now = now.Add(time.Hour)
	step(t)
	if states() != "PS PSC" || !strings.Contains(kr.Rollover, "matches no key") || kr.Parent == nil || len(kr.Parent.Unknown) != 1 {
		t.Fatalf("unknown DS: %s (%s) %+v", states(), kr.Rollover, kr.Parent)
	}
	// The parent publishes the new DS in place of both.
	parent = []*dns.DS{kr.Keys[1].dnskey(t).ToDS(dns.SHA256)}
	step(t)
	if kr.Keys[1].DSSeen.IsZero() || states() != "PS PSC" {
		t.Fatalf("DS seen: %s %+v", states(), kr.Keys[1])
	}
	// The old key retires once the DS's TTL (120 s) and propagation
	// have passed.
	now = now.Add(2 * time.Minute)
	step(t)
	if states() != "PS PSC" {
		t.Fatalf("too early to retire: %s", states())
	}
	now = now.Add(time.Minute)
	step(t)
	if states() != " PSC" {
		t.Fatalf("old key retired and withdrawn: %q", states())
	}
	now = now.Add(2 * time.Minute)
	step(t)
	if len(kr.Keys) != 1 || kr.Keys[0].Tag != newTag || kr.Rollover != "" {
		t.Fatalf("after the rollover: %+v", kr)
	}
}

func (r *KeyRecord) dnskey(t *testing.T) *dns.DNSKEY {
	t.Helper()
	k, err := r.DNSKEYRecord()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestZSKRollover: a ZSK is published, then signs in place of the old,
// which is withdrawn once its signatures left caches.
func TestZSKRollover(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	ksk, _ := Generate(dir, "example.org.", AlgECDSAP256SHA256, RoleKSK)
	zsk, _ := Generate(dir, "example.org.", AlgECDSAP256SHA256, RoleZSK)
	ks, err := NewKeySet("example.org.", []*Key{ksk, zsk})
	if err != nil {
		t.Fatal(err)
	}
	ks.TTL = 60
	kr := NewKeyRecords(ks, now)
	private := map[uint16]crypto.Signer{ksk.Tag(): ksk.Signer, zsk.Tag(): zsk.Signer}
	ro := &Rollover{Policy: RolloverPolicy{ZSK: time.Hour, Propagation: time.Minute}, KeyDir: dir, Now: func() time.Time { return now }}
	var want = []struct {
		after time.Duration
		zsks  string // the ZSKs' states: P published, S signing
	}{
		{time.Hour, "P S, P"},                  // the new one published
		{2 * time.Minute, "P, P S"},            // it signs in place of the old
		{5*time.Minute + time.Minute, ", P S"}, // the old withdrawn after max TTL + propagation
		{2 * time.Minute, "P S"},               // and forgotten
	}
	for _, w := range want {
		now = now.Add(w.after)
		next, made, err := ro.Step(context.Background(), kr, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if made != nil {
			private[made.Tag()] = made.Signer
		}
		if next != nil {
			kr = next
		}
		set, err := kr.KeySet(private, now)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range kr.Keys {
			if r.Role != "ZSK" {
				continue
			}
			st := r.state(now)
			var s []string
			if st.Published {
				s = append(s, "P")
			}
			if st.Signing {
				s = append(s, "S")
			}
			got = append(got, strings.Join(s, " "))
		}
		if strings.Join(got, ", ") != w.zsks {
			t.Fatalf("after %v: ZSKs %q, want %q (%s)", w.after, strings.Join(got, ", "), w.zsks, kr.Rollover)
		}
		if len(set.signers(dns.TypeA)) != 1 || set.signers(dns.TypeA)[0].Role != RoleZSK {
			t.Fatalf("A records signed by %v", set.signers(dns.TypeA))
		}
	}
}
