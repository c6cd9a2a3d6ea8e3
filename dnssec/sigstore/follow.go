package sigstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions"
)

// Follower keeps a name server's copy of the key records and signatures
// of its keyless zones: it lists dnssec/<zone>/ at one revision, then
// watches from the next, listing again after a compaction or when the
// watch is lost. It is the name server's dnssec.Source.
type Follower struct {
	c     *clientv3.Client
	l     layout
	zones []string
	log   *slog.Logger
	// OnKeys is called with a zone's key records when they change
	// (from the goroutine of Run); OnSignatures when signatures changed.
	// Set before Run.
	OnKeys       func(zone string, kr *dnssec.KeyRecords)
	OnSignatures func()

	mu sync.RWMutex
	z  map[string]*followed
	// state of the follow, for status
	listed  time.Time
	lastErr string
}

// followed is what the follower holds of one zone.
type followed struct {
	entries map[dnssec.Hash]*dnssec.Entry
	records *dnssec.KeyRecords
	recErr  string
	signed  *Signed
	signers map[string]candidate // election keys, by key
}

// candidate is a signer in a zone's election; the oldest key leads.
type candidate struct {
	SignerInfo
	rev int64 // the key's create revision
}

// NewFollower follows the zones (canonical names) under prefix.
func NewFollower(c *clientv3.Client, prefix string, zones []string, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Follower{c: c, l: newLayout(prefix), log: log, z: map[string]*followed{}}
	for _, z := range zones {
		z = regions.CanonicalName(z)
		f.zones = append(f.zones, z)
		f.z[z] = newFollowed()
	}
	return f
}

func newFollowed() *followed {
	return &followed{entries: map[dnssec.Hash]*dnssec.Entry{}, signers: map[string]candidate{}}
}

var _ dnssec.Source = (*Follower)(nil)

// Entry is the signatures published for the RRset with hash h in zone.
func (f *Follower) Entry(zone string, h dnssec.Hash) *dnssec.Entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if z := f.z[zone]; z != nil {
		return z.entries[h]
	}
	return nil
}

// Records is a zone's key records, nil while there are none.
func (f *Follower) Records(zone string) *dnssec.KeyRecords {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if z := f.z[zone]; z != nil {
		return z.records
	}
	return nil
}

// SignerStatus is what a name server knows of a zone's signer.
type SignerStatus struct {
	Alive   bool    // a signer holds the zone's election
	Leader  string  // its ID
	Signed  *Signed // what it signed last
	Entries int     // signatures held
	Problem string  // key records that cannot be used, a lost watch
}

// Signer says how a zone's signer is doing.
func (f *Follower) Signer(zone string) SignerStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	z := f.z[zone]
	if z == nil {
		return SignerStatus{}
	}
	st := SignerStatus{Alive: len(z.signers) > 0, Signed: z.signed, Entries: len(z.entries), Problem: z.recErr}
	var best candidate
	for _, k := range slices.Sorted(maps.Keys(z.signers)) {
		if c := z.signers[k]; best.rev == 0 || c.rev < best.rev {
			best = c
		}
	}
	st.Leader = best.ID
	if st.Problem == "" {
		st.Problem = f.lastErr
	}
	return st
}

// Behind says whether some zone's signer is alive and has signed no
// state as new as rev: worth waiting for (dnsserver's SignerBehind).
func (f *Follower) Behind(rev int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, z := range f.z {
		if len(z.signers) > 0 && (z.signed == nil || z.signed.Revision < rev) {
			return true
		}
	}
	return false
}

// Run follows etcd until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		rev, err := f.list(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			err = f.watch(ctx, rev)
		}
		if ctx.Err() != nil {
			return nil
		}
		f.mu.Lock()
		f.lastErr = err.Error()
		f.mu.Unlock()
		f.log.Warn("following DNSSEC keys and signatures in etcd", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff/2 + time.Duration(rand.Int64N(int64(backoff))))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// list reads every followed zone at one revision and replaces what the
// follower held.
func (f *Follower) list(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fresh := map[string]*followed{}
	var rev int64
	for _, zone := range f.zones {
		kvs, r, err := listPrefix(lctx, f.c, f.l.zone(zone), rev, false)
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", f.l.zone(zone), err)
		}
		rev = r
		z := newFollowed()
		for _, kv := range kvs {
			f.apply(z, zone, mvccpb.PUT, kv)
		}
		fresh[zone] = z
	}
	f.mu.Lock()
	old := f.z
	f.z = fresh
	f.listed, f.lastErr = time.Now(), ""
	f.mu.Unlock()
	for _, zone := range f.zones {
		f.notifyKeys(zone, old[zone], fresh[zone])
	}
	if f.OnSignatures != nil {
		f.OnSignatures()
	}
	return rev, nil
}

func (f *Follower) notifyKeys(zone string, was, is *followed) {
	if f.OnKeys == nil || is.records == nil || was != nil && was.records != nil && sameRecords(was.records, is.records) {
		return
	}
	f.OnKeys(zone, is.records)
}

func sameRecords(a, b *dnssec.KeyRecords) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// watch follows changes after rev until the watch ends.
func (f *Follower) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := f.c.Watch(wctx, f.l.keys.DNSSECAll(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("watch: compacted at revision %d", wr.CompactRevision)
		}
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		sigs := false
		keysChanged := map[string]*followed{}
		f.mu.Lock()
		for _, ev := range wr.Events {
			zone, kind, _ := f.l.parse(string(ev.Kv.Key))
			z := f.z[zone]
			if z == nil {
				continue
			}
			if kind == "keys" {
				if _, ok := keysChanged[zone]; !ok {
					keysChanged[zone] = &followed{records: z.records}
				}
			}
			sigs = f.apply(z, zone, ev.Type, ev.Kv) || sigs
		}
		f.mu.Unlock()
		for zone, was := range keysChanged {
			f.mu.RLock()
			is := f.z[zone]
			f.mu.RUnlock()
			f.notifyKeys(zone, was, is)
		}
		if sigs && f.OnSignatures != nil {
			f.OnSignatures()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch ended")
}

// apply applies one key of zone to z, saying whether signatures changed.
func (f *Follower) apply(z *followed, zone string, typ mvccpb.Event_EventType, kv *mvccpb.KeyValue) bool {
	_, kind, rest := f.l.parse(string(kv.Key))
	del := typ == mvccpb.DELETE
	switch kind {
	case "sigs":
		h, err := dnssec.ParseHash(rest)
		if err != nil {
			return false
		}
		if del {
			delete(z.entries, h)
			return true
		}
		e, err := dnssec.DecodeEntry(kv.Value)
		if err != nil {
			f.log.Warn("skipping an unusable signature entry", "key", string(kv.Key), "err", err)
			delete(z.entries, h)
			return true
		}
		z.entries[h] = e
		return true
	case "keys":
		if del {
			z.records, z.recErr = nil, ""
			return false
		}
		kr, err := decodeRecords(kv.Value)
		if err == nil && regions.CanonicalName(kr.Zone) != zone {
			err = fmt.Errorf("key records of %s under %s", kr.Zone, zone)
		}
		if err != nil {
			z.recErr = err.Error()
			f.log.Error("unusable DNSSEC key records; the previous ones stay", "zone", zone, "err", err)
			return false
		}
		z.records, z.recErr = kr, ""
	case "signed":
		if del {
			z.signed = nil
			return false
		}
		s := new(Signed)
		if json.Unmarshal(kv.Value, s) == nil {
			z.signed = s
		}
	case "signer":
		if del {
			delete(z.signers, string(kv.Key))
			return false
		}
		var s SignerInfo
		_ = json.Unmarshal(kv.Value, &s)
		z.signers[string(kv.Key)] = candidate{SignerInfo: s, rev: kv.CreateRevision}
	}
	return false
}
