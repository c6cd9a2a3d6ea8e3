package sigstore

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/zones"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

const zone = "example.org."

const zoneText = `$ORIGIN example.org.
$TTL 300
@    SOA ns1 hostmaster 1 7200 3600 1209600 60
@    NS  ns1
ns1  A   192.0.2.53
www  A   192.0.2.1
www  AAAA 2001:db8::1
mail A   192.0.2.25
`

// signedZone is example.org signed by a CSK with the clock at now: the
// key set (private halves included), the zone set loaded with its apex
// records and the signatures, by RRset hash, a signer publishes.
type signedZone struct {
	ks      *dnssec.KeySet
	set     *zones.Set
	entries map[dnssec.Hash]*dnssec.Entry
}

func signZone(t *testing.T, ks *dnssec.KeySet, now time.Time) *signedZone {
	t.Helper()
	if ks == nil {
		k, err := dnssec.Generate(t.TempDir(), zone, dnssec.AlgED25519, dnssec.RoleCSK)
		if err != nil {
			t.Fatal(err)
		}
		if ks, err = dnssec.NewKeySet(zone, []*dnssec.Key{k}); err != nil {
			t.Fatal(err)
		}
	}
	set := zoneSet(t, ks)
	s := dnssec.NewSigner(map[string]dnssec.ZoneConfig{zone: {Keys: ks}}, func() time.Time { return now })
	if _, err := s.Build(set, nil); err != nil {
		t.Fatal(err)
	}
	return &signedZone{ks: ks, set: set, entries: s.Entries(zone)}
}

// hashes are the entries' hashes in a fixed order.
func (s *signedZone) hashes() []dnssec.Hash {
	return slices.SortedFunc(maps.Keys(s.entries), func(a, b dnssec.Hash) int { return strings.Compare(a.String(), b.String()) })
}

// keyless builds a State of the zone as a name server without keys
// does: the zone loaded with the apex records of ks, the public keys, and
// the signatures from src.
func keyless(t *testing.T, ks *dnssec.KeySet, src dnssec.Source) error {
	t.Helper()
	_, err := dnssec.NewSigner(map[string]dnssec.ZoneConfig{zone: {Keys: ks, Source: src}}, nil).Build(zoneSet(t, ks), nil)
	return err
}

// zoneSet is the zone loaded with the apex records of ks.
func zoneSet(t *testing.T, ks *dnssec.KeySet) *zones.Set {
	t.Helper()
	z, err := zones.Parse(strings.NewReader(zoneText), "test", zones.LoadOptions{Origin: zone, DNSSEC: ks.Apex()})
	if err != nil {
		t.Fatal(err)
	}
	set, err := zones.NewSet(z)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// public is ks without its private halves, as a name server knows it.
func public(ks *dnssec.KeySet) *dnssec.KeySet {
	out := &dnssec.KeySet{Zone: ks.Zone, TTL: ks.TTL}
	for _, k := range ks.Keys {
		c := *k
		c.Signer = nil
		out.Keys = append(out.Keys, &c)
	}
	return out
}

// published is the key set a name server makes of f's key records.
func published(t *testing.T, f *Follower) *dnssec.KeySet {
	t.Helper()
	ks, err := f.Records(zone).KeySet(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func put(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := c.Put(etcdtest.Ctx(t), key, value); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// follow runs a Follower of zone under prefix until the test ends.
func follow(t *testing.T, c *clientv3.Client, prefix string) *Follower {
	t.Helper()
	f := NewFollower(c, prefix, []string{zone}, etcdtest.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	})
	return f
}

// TestFollower writes to etcd what a signer and worse would, and checks
// what a name server's follower makes of it: signatures are served as
// they decode, never from a previous value once garbled, keys that are
// no hash are left alone, unusable key records leave the previous ones
// in force with the reason in status, and the signer's election says
// who leads. Each step ends with a "signed" record of its own, so that
// the follower is known to have seen the step before it is checked.
func TestFollower(t *testing.T) {
	c := etcdtest.Shared(t)
	prefix := etcdtest.Prefix(t)
	l := newLayout(prefix)
	now := time.Now()
	sz := signZone(t, nil, now)
	old := signZone(t, sz.ks, now.Add(-30*24*time.Hour)) // the same RRsets, signed long ago
	hs := sz.hashes()
	if len(hs) < 4 {
		t.Fatalf("%d entries signed", len(hs))
	}
	enc := func(h dnssec.Hash) string { return string(sz.entries[h].Encode()) }
	records := dnssec.NewKeyRecords(sz.ks, now)
	other := *records
	other.Zone = "example.net."

	// Before the follower starts: listed, not watched.
	put(t, c, l.sig(zone, hs[0]), enc(hs[0]))
	put(t, c, l.records(zone), mustJSON(t, records))
	f := follow(t, c, prefix)
	etcdtest.WaitUntil(t, "the listing", func() bool { return f.Entry(zone, hs[0]) != nil && f.Records(zone) != nil })
	if f.Records(zone).Keys[0].Tag != sz.ks.Keys[0].Tag() {
		t.Fatalf("records %+v", f.Records(zone))
	}

	sameEntry := func(h dnssec.Hash, want *dnssec.Entry) bool {
		got := f.Entry(zone, h)
		return got != nil && string(got.Encode()) == string(want.Encode())
	}
	var leaseA, leaseB string
	for i, step := range []struct {
		name string
		do   func(*testing.T)
		ok   func() bool
	}{
		{"a signature written", func(t *testing.T) { put(t, c, l.sig(zone, hs[1]), enc(hs[1])) },
			func() bool { return sameEntry(hs[1], sz.entries[hs[1]]) && sameEntry(hs[0], sz.entries[hs[0]]) }},
		{"a signature deleted", func(t *testing.T) {
			if _, err := c.Delete(etcdtest.Ctx(t), l.sig(zone, hs[1])); err != nil {
				t.Fatal(err)
			}
		}, func() bool { return f.Entry(zone, hs[1]) == nil && f.Entry(zone, hs[0]) != nil }},
		{"garbled over a good one: gone, not kept", func(t *testing.T) { put(t, c, l.sig(zone, hs[0]), "not an entry") },
			func() bool { return f.Entry(zone, hs[0]) == nil }},
		{"cut short", func(t *testing.T) { put(t, c, l.sig(zone, hs[2]), enc(hs[2])[:len(enc(hs[2]))-3]) },
			func() bool { return f.Entry(zone, hs[2]) == nil }},
		{"an unknown format", func(t *testing.T) { put(t, c, l.sig(zone, hs[2]), "\x02"+enc(hs[2])[1:]) },
			func() bool { return f.Entry(zone, hs[2]) == nil }},
		{"no signature in it", func(t *testing.T) { put(t, c, l.sig(zone, hs[2]), "\x01") },
			func() bool { return f.Entry(zone, hs[2]) == nil }},
		{"expired: passed on as it is, the name server judges", func(t *testing.T) { put(t, c, l.sig(zone, hs[3]), string(old.entries[hs[3]].Encode())) },
			func() bool { return sameEntry(hs[3], old.entries[hs[3]]) && f.Entry(zone, hs[3]).Expires().Before(now) }},
		{"a key that is no hash: left alone", func(t *testing.T) { put(t, c, l.sigs(zone)+"zz", enc(hs[1])) },
			func() bool { return f.Signer(zone).Entries == 1 }},
		{"another zone's signatures: not followed", func(t *testing.T) { put(t, c, l.sig("example.net.", hs[1]), enc(hs[1])) },
			func() bool { return f.Entry("example.net.", hs[1]) == nil && f.Entry(zone, hs[1]) == nil }},
		{"garbled key records: the previous stay", func(t *testing.T) { put(t, c, l.records(zone), "{") },
			func() bool {
				return f.Records(zone) != nil && strings.Contains(f.Signer(zone).Problem, "key records")
			}},
		{"key records of another zone: the previous stay", func(t *testing.T) { put(t, c, l.records(zone), mustJSON(t, &other)) },
			func() bool {
				return f.Records(zone) != nil && f.Records(zone).Zone == records.Zone && strings.Contains(f.Signer(zone).Problem, "key records")
			}},
		{"good key records again", func(t *testing.T) { put(t, c, l.records(zone), mustJSON(t, records)) },
			func() bool { return f.Records(zone) != nil && f.Signer(zone).Problem == "" }},
		{"two signers stand: the first leads", func(t *testing.T) {
			leaseA, leaseB = l.election(zone)+"/a", l.election(zone)+"/b"
			put(t, c, leaseA, mustJSON(t, SignerInfo{ID: "signer-a"}))
			put(t, c, leaseB, mustJSON(t, SignerInfo{ID: "signer-b"}))
		}, func() bool { s := f.Signer(zone); return s.Alive && s.Leader == "signer-a" }},
		{"the leader gone: the other leads", func(t *testing.T) {
			if _, err := c.Delete(etcdtest.Ctx(t), leaseA); err != nil {
				t.Fatal(err)
			}
		}, func() bool { s := f.Signer(zone); return s.Alive && s.Leader == "signer-b" }},
		{"no signer: nothing to wait for", func(t *testing.T) {
			if _, err := c.Delete(etcdtest.Ctx(t), leaseB); err != nil {
				t.Fatal(err)
			}
		}, func() bool { return !f.Signer(zone).Alive && !f.Behind(1<<40) }},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			rev := int64(1000 + i)
			put(t, c, l.signed(zone), mustJSON(t, Signed{Revision: rev, Signer: "test"}))
			etcdtest.WaitUntil(t, "the step's signed record", func() bool {
				s := f.Signer(zone).Signed
				return s != nil && s.Revision == rev
			})
			if !step.ok() {
				t.Errorf("after %q: entries %d, status %+v", step.name, f.Signer(zone).Entries, f.Signer(zone))
			}
		})
	}
}

// TestKeylessFromEtcd: a name server without keys builds its signed
// answers from what the follower holds, and refuses, rather than
// serves, signatures that are garbled or expired.
func TestKeylessFromEtcd(t *testing.T) {
	now := time.Now()
	sz := signZone(t, nil, now)
	old := signZone(t, sz.ks, now.Add(-30*24*time.Hour))
	for _, tc := range []struct {
		name     string
		override func(h dnssec.Hash) (string, bool) // the value of one entry instead, or leave it out
		unsigned bool
	}{
		{name: "all published"},
		{name: "one missing", override: func(dnssec.Hash) (string, bool) { return "", false }, unsigned: true},
		{name: "one garbled", override: func(dnssec.Hash) (string, bool) { return "\x01\x00\x10garbage", true }, unsigned: true},
		{name: "one expired", override: func(h dnssec.Hash) (string, bool) { return string(old.entries[h].Encode()), true }, unsigned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := etcdtest.Shared(t)
			prefix := etcdtest.Prefix(t)
			l := newLayout(prefix)
			hs := sz.hashes()
			for i, h := range hs {
				v, keep := string(sz.entries[h].Encode()), true
				if i == 0 && tc.override != nil {
					v, keep = tc.override(h)
				}
				if keep {
					put(t, c, l.sig(zone, h), v)
				}
			}
			put(t, c, l.signed(zone), mustJSON(t, Signed{Revision: 1, Signer: "test"}))
			f := follow(t, c, prefix)
			etcdtest.WaitUntil(t, "the listing", func() bool { return f.Signer(zone).Signed != nil })
			err := keyless(t, public(sz.ks), f)
			if tc.unsigned != (err != nil) {
				t.Fatalf("build: %v, want unsigned %v", err, tc.unsigned)
			}
			if err != nil && !strings.Contains(err.Error(), dnssec.ErrUnsigned.Error()) {
				t.Fatalf("build: %v, want %v", err, dnssec.ErrUnsigned)
			}
		})
	}
}

// TestPublisher: a signer's writes of signatures. Unchanged entries are
// not written again, entries no longer signed go after the GC delay and
// not before, a write larger than one transaction is cut into several,
// and a signer that lost its lead writes nothing.
func TestPublisher(t *testing.T) {
	c := etcdtest.Shared(t)
	now := time.Now()
	sz := signZone(t, nil, now)
	hs := sz.hashes()
	// many: more entries than one transaction takes, made from the real
	// ones under hashes of their own.
	many := map[dnssec.Hash]*dnssec.Entry{}
	for i := range 2*maxTxnOps + 10 {
		var h dnssec.Hash
		h[0], h[1] = byte(i>>8), byte(i)
		many[h] = sz.entries[hs[i%len(hs)]]
	}
	without := maps.Clone(sz.entries)
	delete(without, hs[0])

	type round struct {
		entries       map[dnssec.Hash]*dnssec.Entry
		at            time.Duration // after now
		wrote, del    int
		notLeader     bool
		inEtcd        int
		newPublisher  bool // a new leader's publisher from here on
		guardMismatch bool
	}
	for _, tc := range []struct {
		name   string
		rounds []round
	}{
		{"written once", []round{
			{entries: sz.entries, wrote: len(hs), inEtcd: len(hs)},
			{entries: sz.entries, at: time.Minute, inEtcd: len(hs)},
		}},
		{"no longer signed: kept for the GC delay", []round{
			{entries: sz.entries, wrote: len(hs), inEtcd: len(hs)},
			{entries: without, at: time.Minute, inEtcd: len(hs)},
			{entries: without, at: time.Minute + DefaultGCDelay - time.Second, inEtcd: len(hs)},
			{entries: without, at: time.Minute + DefaultGCDelay, del: 1, inEtcd: len(hs) - 1},
		}},
		{"signed again within the delay: kept", []round{
			{entries: sz.entries, wrote: len(hs), inEtcd: len(hs)},
			{entries: without, at: time.Minute, inEtcd: len(hs)},
			{entries: sz.entries, at: 2 * time.Minute, inEtcd: len(hs)},
			{entries: sz.entries, at: time.Hour, inEtcd: len(hs)},
		}},
		{"more than a transaction", []round{
			{entries: many, wrote: len(many), inEtcd: len(many)},
		}},
		{"a new leader rewrites what it signs, and collects the rest", []round{
			{entries: sz.entries, wrote: len(hs), inEtcd: len(hs)},
			{newPublisher: true, entries: without, at: time.Minute, wrote: len(hs) - 1, inEtcd: len(hs)},
			{entries: without, at: time.Minute + DefaultGCDelay, del: 1, inEtcd: len(hs) - 1},
		}},
		{"not the leader: nothing written", []round{
			{entries: sz.entries, guardMismatch: true, notLeader: true, inEtcd: 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := etcdtest.Ctx(t)
			prefix := etcdtest.Prefix(t)
			l := newLayout(prefix)
			// The guard: the election key as a Runner holds it.
			lead := l.election(zone) + "/lease"
			resp, err := c.Put(ctx, lead, "{}")
			if err != nil {
				t.Fatal(err)
			}
			guard := clientv3.Compare(clientv3.CreateRevision(lead), "=", resp.Header.Revision)
			p := newPublisher(c, l, zone, etcdtest.Logger(), 0)
			for i, s := range tc.rounds {
				if s.newPublisher {
					p = newPublisher(c, l, zone, etcdtest.Logger(), 0)
				}
				g := guard
				if s.guardMismatch {
					g = clientv3.Compare(clientv3.CreateRevision(lead), "=", resp.Header.Revision+1)
				}
				st, err := p.sync(ctx, g, s.entries, now.Add(s.at))
				if s.notLeader != (err == errNotLeader) || err != nil && err != errNotLeader {
					t.Fatalf("sync %d: %v", i, err)
				}
				if err == nil && (st.Wrote != s.wrote || st.Deleted != s.del) {
					t.Errorf("sync %d: wrote %d deleted %d, want %d %d", i, st.Wrote, st.Deleted, s.wrote, s.del)
				}
				kvs, _, err := listPrefix(ctx, c, l.sigs(zone), 0, false)
				if err != nil {
					t.Fatal(err)
				}
				if len(kvs) != s.inEtcd {
					t.Errorf("sync %d: %d entries in etcd, want %d", i, len(kvs), s.inEtcd)
				}
				for _, kv := range kvs {
					h, err := dnssec.ParseHash(strings.TrimPrefix(string(kv.Key), l.sigs(zone)))
					if err != nil {
						t.Fatalf("key %s: %v", kv.Key, err)
					}
					e := s.entries[h]
					if e == nil {
						continue // kept for the delay
					}
					if string(kv.Value) != string(e.Encode()) {
						t.Errorf("sync %d: %s holds something else than its entry", i, kv.Key)
					}
				}
			}
		})
	}
}

// TestRunner: a signer publishes key records, signatures and what it
// signed; a name server without keys follows them and builds its signed
// answers from them; when the signer stops, its election key goes with
// its lease and the name server sees no signer.
func TestRunner(t *testing.T) {
	c := etcdtest.Shared(t)
	prefix := etcdtest.Prefix(t)
	sz := signZone(t, nil, time.Now())
	r := NewRunner(RunnerConfig{
		Client: c, Prefix: prefix, ID: "signer-1",
		Signer: dnssec.NewSigner(map[string]dnssec.ZoneConfig{zone: {Keys: sz.ks}}, nil),
		Zones:  sz.set, Files: map[string]*dnssec.KeySet{zone: sz.ks},
		Interval: time.Hour, Log: etcdtest.Logger(),
	})
	f := follow(t, c, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	etcdtest.WaitUntil(t, "the signer's publication", func() bool {
		s := f.Signer(zone)
		return s.Alive && s.Leader == "signer-1" && s.Signed != nil && f.Records(zone) != nil
	})
	s := f.Signer(zone)
	if s.Signed.Entries != s.Entries || s.Entries < len(sz.entries) {
		t.Errorf("signed %d entries, the follower holds %d, the zone has %d RRsets", s.Signed.Entries, s.Entries, len(sz.entries))
	}
	if got := r.Status()[zone]; got != "leading" {
		t.Errorf("status %q", got)
	}
	if err := keyless(t, published(t, f), f); err != nil {
		t.Fatalf("a name server without keys: %v", err)
	}
	stop()
	etcdtest.WaitUntil(t, "the signer gone", func() bool { return !f.Signer(zone).Alive })
	// Its signatures stay: name servers keep serving them.
	if err := keyless(t, published(t, f), f); err != nil {
		t.Fatalf("after the signer stopped: %v", err)
	}
}
