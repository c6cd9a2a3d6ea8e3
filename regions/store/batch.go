package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// Limits of one transaction of PutServices, below etcd's defaults
// (--max-txn-ops 128, --max-request-bytes 1.5 MiB) with room for the
// regions compared and the audit count.
const (
	batchMaxServices = 48
	batchMaxBytes    = 512 << 10
	// MaxBatch is the most services one PutServices call takes.
	MaxBatch = 1000
)

// BatchError is a batch refused before anything was written: the
// problems of each invalid service, by its index in the batch.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("services[%d]: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// PutServices creates or replaces each of svcs, as PutService would
// unconditionally, in as few transactions as etcd's limits allow: every
// service is validated against the regions first (the batch is refused
// whole, with a BatchError, when one is invalid or names one twice); then
// each transaction writes a group of services with an audit record each,
// if the services and the regions they name are still as read (else the
// group is read again). A service that would not change is not written.
// The changes come back in the order of svcs; with DryRun nothing is
// written. A batch of more than MaxBatch is refused.
func (s *Store) PutServices(ctx context.Context, svcs []*regions.Service, opts ...WriteOption) ([]Change, error) {
	if len(svcs) > MaxBatch {
		return nil, fmt.Errorf("%d services in one batch, at most %d: %w", len(svcs), MaxBatch, regions.ErrInvalid)
	}
	o := newWriteOpts(opts)
	list, _, err := s.regionsAt(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*regions.Region, len(list))
	revs := make(map[string]int64, len(list))
	for _, r := range list {
		byName[r.obj.Name] = r.obj
		revs[r.obj.Name] = r.rev
	}
	vals := make([][]byte, len(svcs))
	seen := map[string]int{}
	for i, svc := range svcs {
		if err := svc.Validate(byName, s.checkName()); err != nil {
			return nil, &BatchError{i, err}
		}
		if j, ok := seen[svc.Name]; ok {
			return nil, &BatchError{i, fmt.Errorf("service %s is also services[%d]: %w", svc.Name, j, regions.ErrInvalid)}
		}
		seen[svc.Name] = i
		if vals[i], err = json.Marshal(svc); err != nil {
			return nil, &BatchError{i, err}
		}
	}
	var groups [][2]int
	for start := 0; start < len(svcs); {
		end, size := start, 0
		for end < len(svcs) && end-start < batchMaxServices && (end == start || size+2*len(vals[end]) <= batchMaxBytes) {
			size += 2 * len(vals[end])
			end++
		}
		groups = append(groups, [2]int{start, end})
		start = end
	}
	// The NODATA guard for the whole batch before anything is written;
	// each group checks again against what it writes over.
	if !o.force {
		var lost []apitypes.NoData
		first := -1
		for _, g := range groups {
			cur, err := s.readServices(ctx, svcs[g[0]:g[1]])
			if err != nil {
				return nil, err
			}
			for k, svc := range svcs[g[0]:g[1]] {
				if nd, ok := lostOver(cur[k].val, svc, byName); ok {
					lost = append(lost, nd)
					if first < 0 {
						first = g[0] + k
					}
				}
			}
		}
		if first >= 0 {
			return nil, &BatchError{first, noData(new(Change), o, lost)}
		}
	}
	out := make([]Change, len(svcs))
	for _, g := range groups {
		if err := s.putGroup(ctx, svcs[g[0]:g[1]], vals[g[0]:g[1]], byName, revs, out[g[0]:g[1]], o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readServices reads the keys of svcs in one transaction.
func (s *Store) readServices(ctx context.Context, svcs []*regions.Service) ([]current, error) {
	gets := make([]clientv3.Op, len(svcs))
	for i, svc := range svcs {
		gets[i] = clientv3.OpGet(s.keys.Service(svc.Name))
	}
	resp, err := s.c.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, err
	}
	out := make([]current, len(svcs))
	for i := range svcs {
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			out[i] = current{val: kvs[0].Value, rev: kvs[0].ModRevision}
		}
	}
	return out, nil
}

// lostOver is LostAnswer for svc written over the stored value old (nil:
// absent), with the regions byName.
func lostOver(old []byte, svc *regions.Service, byName map[string]*regions.Region) (apitypes.NoData, bool) {
	if old == nil {
		return apitypes.NoData{}, false
	}
	var prev regions.Service
	if json.Unmarshal(old, &prev) != nil {
		return apitypes.NoData{}, false // unusable as stored: it answered nothing
	}
	return LostAnswer(&prev, svc, byName, byName)
}

// putGroup writes one transaction's services.
func (s *Store) putGroup(ctx context.Context, svcs []*regions.Service, vals [][]byte, byName map[string]*regions.Region, revs map[string]int64, out []Change, o *writeOpts) error {
	keys := make([]string, len(svcs))
	for i, svc := range svcs {
		keys[i] = s.keys.Service(svc.Name)
	}
	for range maxAttempts {
		curs, err := s.readServices(ctx, svcs)
		if err != nil {
			return err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		var changed []int
		var lost []apitypes.NoData
		used := map[string]bool{}
		for i, svc := range svcs {
			cur := curs[i]
			action := "put"
			if o.action != "" {
				action = o.action
			}
			ch := Change{Kind: "service", Name: svc.Name, Action: action, Before: rawJSON(cur.val), After: rawJSON(vals[i]),
				Changed: !sameJSON(cur.val, vals[i]), DryRun: o.dryRun, Revision: cur.rev}
			if nd, ok := lostOver(cur.val, svc, byName); ok && ch.Changed {
				lost = append(lost, nd)
				ch.NoData = []apitypes.NoData{nd}
			}
			out[i] = ch
			if !ch.Changed || o.dryRun {
				continue
			}
			changed = append(changed, i)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", cur.rev))
			ops = append(ops, clientv3.OpPut(keys[i], string(vals[i])))
			for _, sr := range svc.Regions {
				used[sr.Region] = true
			}
		}
		if err := noData(new(Change), o, lost); err != nil {
			return err // a service changed since the batch's guard read it
		}
		if len(changed) == 0 {
			return nil
		}
		ops = append(ops, s.markServices())
		for _, name := range slices.Sorted(maps.Keys(used)) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Region(name)), "=", revs[name]))
		}
		recs := make([]*Change, len(changed))
		for k, i := range changed {
			recs[k] = &out[i]
		}
		s.hook("put-services")
		rev, ok, err := s.commitMany(ctx, cmps, ops, recs, o)
		if err != nil {
			return err
		}
		if ok {
			for _, i := range changed {
				out[i].Revision = rev
			}
			return nil
		}
		// A service or a region moved: read the regions again too.
		list, _, err := s.regionsAt(ctx)
		if err != nil {
			return err
		}
		clear(byName)
		for _, r := range list {
			byName[r.obj.Name] = r.obj
			revs[r.obj.Name] = r.rev
		}
		for _, svc := range svcs {
			if err := svc.Validate(byName, s.checkName()); err != nil {
				return fmt.Errorf("service %s: %w", svc.Name, err)
			}
		}
	}
	return fmt.Errorf("services keep changing: %w", ErrConflict)
}
