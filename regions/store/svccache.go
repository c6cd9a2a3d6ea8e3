package store

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/regions"
)

// serviceCache keeps the services as decoded at a revision, so that the
// NODATA guard of a region write reads and decodes only the services
// written since its last use instead of every service stored.
type serviceCache struct {
	// followed is the latest State a watcher of the whole prefix
	// delivered (Store.Follow), nil if none: when it holds every service
	// stored, no service is read from etcd at all.
	followed atomic.Pointer[regions.State]

	mu  sync.Mutex
	rev int64 // the revision keys reflects; 0: empty
	// keys maps a service key to its service; nil: undecodable, so it
	// has no answer to lose.
	keys map[string]*regions.Service
}

// at returns the services stored at the latest revision, that revision,
// and the comparison that holds in a transaction while no service
// changed since (Store.servicesUnchanged). When the services' mark says
// that no service was written since the followed State, whose services
// are then those stored, or since the previous call, nothing else is
// read; otherwise only keys modified since are fetched and decoded (etcd
// still reads every service to find them), and deletions are found by
// comparing counts and, when one was made, by listing the keys without
// their values.
func (sc *serviceCache) at(ctx context.Context, s *Store) ([]*regions.Service, int64, clientv3.Cmp, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	prefix := s.keys.Services()
	end := clientv3.GetPrefixRangeEnd(prefix)
	// The mark and the count at one revision, the one read.
	resp, err := s.c.Txn(ctx).Then(
		clientv3.OpGet(s.keys.ServicesMark()),
		clientv3.OpGet(prefix, clientv3.WithRange(end), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, 0, clientv3.Cmp{}, err
	}
	rev := resp.Header.Revision
	mark := resp.Responses[0].GetResponseRange().GetKvs()
	count := resp.Responses[1].GetResponseRange().GetCount()
	unchanged := s.servicesUnchanged(mark, rev)
	if st := sc.followed.Load(); st != nil && len(mark) > 0 && mark[0].ModRevision <= st.Revision && st.Revision <= rev &&
		int64(len(st.Services)) == count {
		// Every service write rewrites the mark: none since st, which holds
		// every service stored then (as many as etcd has: none left out
		// as unusable).
		return slices.Collect(maps.Values(st.Services)), rev, unchanged, nil
	}
	if sc.rev == 0 || rev < sc.rev {
		sc.keys = make(map[string]*regions.Service, count)
		sc.rev = 0
	}
	if sc.rev > 0 && len(mark) > 0 && mark[0].ModRevision <= sc.rev && int64(len(sc.keys)) == count {
		// Every service write rewrites the mark: none since sc.rev.
		sc.rev = rev
		return sc.list(), rev, unchanged, nil
	}
	var changed []clientv3.OpOption
	if sc.rev > 0 {
		changed = append(changed, clientv3.WithMinModRev(sc.rev+1))
	}
	kvs, _, err := listRange(ctx, s.c, prefix, end, rev, changed...)
	if err != nil {
		sc.rev = 0 // a partial update is no state: start over next time
		return nil, 0, clientv3.Cmp{}, err
	}
	for _, kv := range kvs {
		var svc *regions.Service
		if v := new(regions.Service); json.Unmarshal(kv.Value, v) == nil {
			svc = v
		}
		sc.keys[string(kv.Key)] = svc
	}
	if int64(len(sc.keys)) != count {
		// Some were deleted: every key present at rev is in the map
		// (unchanged since sc.rev, or fetched now), so drop the others.
		live, _, err := listRange(ctx, s.c, prefix, end, rev, clientv3.WithKeysOnly())
		if err != nil {
			sc.rev = 0
			return nil, 0, clientv3.Cmp{}, err
		}
		present := make(map[string]struct{}, len(live))
		for _, kv := range live {
			present[string(kv.Key)] = struct{}{}
		}
		for k := range sc.keys {
			if _, ok := present[k]; !ok {
				delete(sc.keys, k)
			}
		}
	}
	sc.rev = rev
	return sc.list(), rev, unchanged, nil
}

// list is the decodable services of the cache.
func (sc *serviceCache) list() []*regions.Service {
	out := make([]*regions.Service, 0, len(sc.keys))
	for _, svc := range sc.keys {
		if svc != nil {
			out = append(out, svc)
		}
	}
	return out
}

// listsRegion says whether name is among the regions that decide svc's
// answers (regions.NoAnswer looks at the first MaxRegions).
func listsRegion(svc *regions.Service, name string) bool {
	for i, sr := range svc.Regions {
		if i == regions.MaxRegions {
			break
		}
		if sr.Region == name {
			return true
		}
	}
	return false
}
