package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

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
	out := make([]Change, len(svcs))
	for start := 0; start < len(svcs); {
		end, size := start, 0
		for end < len(svcs) && end-start < batchMaxServices && (end == start || size+2*len(vals[end]) <= batchMaxBytes) {
			size += 2 * len(vals[end])
			end++
		}
		if err := s.putGroup(ctx, svcs[start:end], vals[start:end], revs, out[start:end], o); err != nil {
			return nil, err
		}
		start = end
	}
	return out, nil
}

// putGroup writes one transaction's services.
func (s *Store) putGroup(ctx context.Context, svcs []*regions.Service, vals [][]byte, revs map[string]int64, out []Change, o *writeOpts) error {
	keys := make([]string, len(svcs))
	gets := make([]clientv3.Op, len(svcs))
	for i, svc := range svcs {
		keys[i] = s.keys.Service(svc.Name)
		gets[i] = clientv3.OpGet(keys[i])
	}
	for range maxAttempts {
		resp, err := s.c.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		var changed []int
		used := map[string]bool{}
		for i, svc := range svcs {
			cur := current{}
			if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
				cur = current{val: kvs[0].Value, rev: kvs[0].ModRevision}
			}
			action := "put"
			if o.action != "" {
				action = o.action
			}
			ch := Change{Kind: "service", Name: svc.Name, Action: action, Before: rawJSON(cur.val), After: rawJSON(vals[i]),
				Changed: !sameJSON(cur.val, vals[i]), DryRun: o.dryRun, Revision: cur.rev}
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
		if len(changed) == 0 {
			return nil
		}
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
		byName := make(map[string]*regions.Region, len(list))
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
