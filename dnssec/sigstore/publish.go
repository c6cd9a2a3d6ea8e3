package sigstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/dnssec"
)

// Within etcd's limits on one transaction (its --max-txn-ops default is
// 128, its request size limit 1.5 MiB): each write of signatures is cut
// into transactions of at most this many operations and bytes.
const (
	maxTxnOps   = 100
	maxTxnBytes = 512 << 10
)

// DefaultGCDelay is how long signatures no longer signed stay in etcd: a
// name server still building from an older snapshot may want them.
const DefaultGCDelay = 10 * time.Minute

// errNotLeader: a write found that this signer no longer leads its zone.
var errNotLeader = errors.New("no longer the zone's signer")

// publisher writes one zone's signatures, key records and progress to
// etcd, each write guarded by the leadership it was made under.
type publisher struct {
	c       *clientv3.Client
	l       layout
	zone    string
	log     *slog.Logger
	gcDelay time.Duration

	loaded bool
	// written are the entries in etcd as this signer wrote them (nil:
	// there before it, content unknown); unused since when they stopped
	// being signed.
	written map[dnssec.Hash]*dnssec.Entry
	unused  map[dnssec.Hash]time.Time
}

func newPublisher(c *clientv3.Client, l layout, zone string, log *slog.Logger, gcDelay time.Duration) *publisher {
	if gcDelay == 0 {
		gcDelay = DefaultGCDelay
	}
	return &publisher{c: c, l: l, zone: zone, log: log, gcDelay: gcDelay}
}

// load lists the signatures in etcd (keys only): a new leader rewrites
// those it signs and deletes the others in time.
func (p *publisher) load(ctx context.Context) error {
	p.written, p.unused = map[dnssec.Hash]*dnssec.Entry{}, map[dnssec.Hash]time.Time{}
	prefix := p.l.sigs(p.zone)
	kvs, _, err := listPrefix(ctx, p.c, prefix, 0, true)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		h, err := dnssec.ParseHash(string(kv.Key[len(prefix):]))
		if err != nil {
			continue
		}
		p.written[h] = nil
	}
	p.loaded = true
	return nil
}

// syncStats says what a sync wrote.
type syncStats struct {
	Wrote, Deleted int
	Expires        time.Time
}

// sync writes every entry of entries that etcd does not hold as it is,
// and deletes those no entry has needed for gcDelay.
func (p *publisher) sync(ctx context.Context, guard clientv3.Cmp, entries map[dnssec.Hash]*dnssec.Entry, now time.Time) (syncStats, error) {
	var st syncStats
	if !p.loaded {
		if err := p.load(ctx); err != nil {
			return st, err
		}
	}
	var ops []clientv3.Op
	var done []dnssec.Hash
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if err := p.txn(ctx, guard, ops); err != nil {
			return err
		}
		for _, h := range done {
			if e, ok := entries[h]; ok {
				p.written[h] = e
			} else {
				delete(p.written, h)
				delete(p.unused, h)
			}
		}
		ops, done, size = ops[:0], done[:0], 0
		return nil
	}
	for h, e := range entries {
		if !st.Expires.IsZero() && e.Expires().Before(st.Expires) || st.Expires.IsZero() {
			st.Expires = e.Expires()
		}
		delete(p.unused, h)
		if w, ok := p.written[h]; ok && w == e {
			continue
		}
		v := e.Encode()
		ops = append(ops, clientv3.OpPut(p.l.sig(p.zone, h), string(v)))
		done = append(done, h)
		size += len(v) + 100
		st.Wrote++
		if len(ops) >= maxTxnOps || size >= maxTxnBytes {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	for h := range p.written {
		if _, ok := entries[h]; ok {
			continue
		}
		since, ok := p.unused[h]
		if !ok {
			p.unused[h] = now
			continue
		}
		if now.Sub(since) < p.gcDelay {
			continue
		}
		ops = append(ops, clientv3.OpDelete(p.l.sig(p.zone, h)))
		done = append(done, h)
		size += 100
		st.Deleted++
		if len(ops) >= maxTxnOps || size >= maxTxnBytes {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	return st, flush()
}

// txn runs ops if guard still holds.
func (p *publisher) txn(ctx context.Context, guard clientv3.Cmp, ops []clientv3.Op) error {
	resp, err := p.c.Txn(ctx).If(guard).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("zone %s: writing signatures: %w", p.zone, err)
	}
	if !resp.Succeeded {
		return errNotLeader
	}
	return nil
}

// putJSON writes v at key if guard still holds.
func (p *publisher) putJSON(ctx context.Context, guard clientv3.Cmp, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.txn(ctx, guard, []clientv3.Op{clientv3.OpPut(key, string(b))})
}
