package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/regions"
)

// Errors of the store, checked with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("revision conflict")
	ErrInUse    = errors.New("in use")
)

// Cond is the precondition of a write, one rule for every write: the zero
// value (Always) writes unconditionally; Revision > 0 requires the key at
// that mod revision (HTTP If-Match); Absent requires that the key does not
// exist (HTTP If-None-Match: *). A write checks it against the key as it
// read it, and its transaction requires the key unchanged since.
type Cond struct {
	Revision int64
	Absent   bool
}

// Always is the unconditional write.
var Always = Cond{}

// IfRevision requires the key at mod revision rev (> 0).
func IfRevision(rev int64) Cond { return Cond{Revision: rev} }

// IfAbsent requires that the key does not exist: create only.
func IfAbsent() Cond { return Cond{Absent: true} }

func (c Cond) check() error {
	switch {
	case c.Revision < 0:
		return fmt.Errorf("revision %d: want a mod revision above 0: %w", c.Revision, regions.ErrInvalid)
	case c.Absent && c.Revision > 0:
		return fmt.Errorf("a write cannot require both a revision and an absent key: %w", regions.ErrInvalid)
	}
	return nil
}

func (c Cond) checkDelete() error {
	if c.Absent {
		return fmt.Errorf("a delete cannot require an absent key: %w", regions.ErrInvalid)
	}
	return c.check()
}

// holds says whether a key found at mod revision current (0: absent)
// meets the condition.
func (c Cond) holds(current int64) bool {
	switch {
	case c.Absent:
		return current == 0
	case c.Revision > 0:
		return current == c.Revision
	}
	return true
}

// ConflictError says that a conditional write found the object at
// another revision than asked for. What names the object as clients know
// it (`region "eu-west"`), never by its etcd key; Current is its mod
// revision now, 0 if it does not exist. It matches ErrConflict.
type ConflictError struct {
	What    string
	Current int64
}

func (e *ConflictError) Error() string {
	if e.Current == 0 {
		return fmt.Sprintf("%s: revision conflict: it does not exist", e.What)
	}
	return fmt.Sprintf("%s: revision conflict: current revision is %d", e.What, e.Current)
}

// Is lets errors.Is(err, ErrConflict) match.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// InUseError refuses to delete a region that services still use. It
// matches ErrInUse.
type InUseError struct {
	Region   string
	Services []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("region %q is in use by %s", e.Region, strings.Join(e.Services, ", "))
}

// Is lets errors.Is(err, ErrInUse) match.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// A write whose key or read set (regions for a service, services for a
// region delete) changed between its read and its transaction reads again
// and retries, until its context ends (the API's write timeout) or after
// maxAttempts in all, after a random pause of up to raceWaitMin doubled
// at each retry, at most raceWaitMax (raceWait). Without the pause,
// writers racing for one key (eight unconditional PATCHes of a service's
// weights at once) collide again in step, and a quarter of them ran out
// of attempts; a larger cap would let the writers that lost most often
// wait longest, and lose again to fresh ones.
const (
	maxAttempts = 64
	raceWaitMin = 2 * time.Millisecond
	raceWaitMax = 50 * time.Millisecond
)

// raceWait pauses before retry n (from 1) of a write that lost a race. It
// reports false if ctx ended first.
func raceWait(ctx context.Context, n int) bool {
	return SleepCtx(ctx, 1+rand.N(min(raceWaitMin<<min(n-1, 16), raceWaitMax)))
}

// listPage is how many keys one paginated Get returns.
const listPage = 500

// Store reads and writes Meridian's objects in etcd. Every write is
// validated before anything is sent, and writes that depend on other keys
// compare their revisions in the same transaction.
type Store struct {
	c         *clientv3.Client
	keys      Keys
	log       *slog.Logger
	nameCheck atomic.Pointer[func(string) error]
	// auditLimit bounds the audit log (SetAuditLimit); 0 means the default.
	auditLimit atomic.Int64

	// latencyChunk overrides maxLatencyChunk (tests use small chunks).
	latencyChunk int

	// svcCache holds the services decoded for the NODATA guard of
	// region writes, so that a drain decodes only what changed.
	svcCache serviceCache

	// testHookBeforeTxn runs between a write's reads and its transaction,
	// so tests can interleave a competing write deterministically.
	testHookBeforeTxn func(op string)
}

// NewStore returns a store over c under prefix ("" for DefaultPrefix).
func NewStore(c *clientv3.Client, prefix string, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{c: c, keys: NewKeys(prefix), log: logger}
}

// Keys is the store's key layout.
func (s *Store) Keys() Keys { return s.keys }

// SetNameCheck sets what says why a service name cannot be served (for
// instance, outside every zone); nil means every valid name is servable.
func (s *Store) SetNameCheck(f func(fqdn string) error) {
	if f == nil {
		s.nameCheck.Store(nil)
		return
	}
	s.nameCheck.Store(&f)
}

func (s *Store) checkName() func(string) error {
	if p := s.nameCheck.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) hook(op string) {
	if s.testHookBeforeTxn != nil {
		s.testHookBeforeTxn(op)
	}
}

// GetRegion returns a region and its key's mod revision (the ETag).
func (s *Store) GetRegion(ctx context.Context, name string) (*regions.Region, int64, error) {
	r := new(regions.Region)
	rev, err := s.getJSON(ctx, s.keys.Region(name), r)
	if err != nil {
		return nil, 0, fmt.Errorf("region %q: %w", name, err)
	}
	return r, rev, nil
}

// ListRegions returns every region, by name, and the store revision it was
// read at. Entries that cannot be decoded are logged and skipped.
func (s *Store) ListRegions(ctx context.Context) ([]*regions.Region, int64, error) {
	list, rev, err := s.regionsAt(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*regions.Region, 0, len(list))
	for _, r := range list {
		out = append(out, r.obj)
	}
	return out, rev, nil
}

type versioned[T any] struct {
	obj *T
	rev int64
}

func (s *Store) regionsAt(ctx context.Context) ([]versioned[regions.Region], int64, error) {
	return s.regionsAtRev(ctx, 0)
}

// regionsAtRev is regionsAt reading at rev (0: the latest).
func (s *Store) regionsAtRev(ctx context.Context, rev int64) ([]versioned[regions.Region], int64, error) {
	kvs, rev, err := listRange(ctx, s.c, s.keys.Regions(), clientv3.GetPrefixRangeEnd(s.keys.Regions()), rev)
	if err != nil {
		return nil, 0, fmt.Errorf("list regions: %w", err)
	}
	out := make([]versioned[regions.Region], 0, len(kvs))
	for _, kv := range kvs {
		r := new(regions.Region)
		if err := decodeRegion(s.keys, kv, r); err != nil {
			s.log.Warn("skipping undecodable region in etcd", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, versioned[regions.Region]{r, kv.ModRevision})
	}
	return out, rev, nil
}

// PutRegion writes a region if cond holds and returns its new mod
// revision (the current one when the write changes nothing, or with
// DryRun). The write is recorded in the audit log.
func (s *Store) PutRegion(ctx context.Context, r *regions.Region, cond Cond, opts ...WriteOption) (int64, error) {
	if err := cond.check(); err != nil {
		return 0, err
	}
	if err := r.Validate(); err != nil {
		return 0, err
	}
	val, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("region %q: %w", r.Name, err)
	}
	ch := Change{Kind: "region", Name: r.Name, Action: "put"}
	o := newWriteOpts(opts)
	rev, err := s.writeKey(ctx, s.keys.Region(r.Name), "put-region", cond, &ch, o,
		func(cur current) ([]byte, []clientv3.Cmp, error) {
			if !mayTakeAnswers(cur.val, r) {
				return val, nil, noData(&ch, o, nil)
			}
			lost, cmps, err := s.regionLosses(ctx, r)
			if err != nil {
				return nil, nil, err
			}
			return val, cmps, noData(&ch, o, lost)
		})
	if err != nil {
		return 0, fmt.Errorf("put region %q: %w", r.Name, err)
	}
	return rev, nil
}

// regionLosses lists the services that would answer NODATA to a type
// they answer now if r replaced the region of its name, and the
// comparisons that keep that true until the write: no region and no
// service changed since they were read.
func (s *Store) regionLosses(ctx context.Context, r *regions.Region) ([]apitypes.NoData, []clientv3.Cmp, error) {
	svcs, rev, unchanged, err := s.svcCache.at(ctx, s)
	if err != nil {
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	list, _, err := s.regionsAtRev(ctx, rev)
	if err != nil {
		return nil, nil, err
	}
	before := make(map[string]*regions.Region, len(list))
	for _, v := range list {
		before[v.obj.Name] = v.obj
	}
	after := maps.Clone(before)
	after[r.Name] = r
	var lost []apitypes.NoData
	for _, svc := range svcs {
		if !listsRegion(svc, r.Name) {
			continue // its answers do not depend on r
		}
		if nd, ok := LostAnswer(svc, svc, before, after); ok {
			lost = append(lost, nd)
		}
	}
	return lost, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.keys.Regions()), "<", rev+1).WithPrefix(),
		unchanged,
	}, nil
}

// servicesUnchanged is the comparison that holds in a transaction only if
// no service was created, changed or deleted since rev, given the
// services' mark as read at rev: its mod revision then. Without a mark
// (state written before it was kept, until the first service write or
// Bootstrap creates it) it compares the services' prefix instead, which
// costs etcd a read of every service key.
func (s *Store) servicesUnchanged(mark []*mvccpb.KeyValue, rev int64) clientv3.Cmp {
	if len(mark) == 0 {
		return clientv3.Compare(clientv3.ModRevision(s.keys.Services()), "<", rev+1).WithPrefix()
	}
	return clientv3.Compare(clientv3.ModRevision(s.keys.ServicesMark()), "=", mark[0].ModRevision)
}

// servicesUnchangedSince reads the services' mark at rev and returns
// servicesUnchanged for it.
func (s *Store) servicesUnchangedSince(ctx context.Context, rev int64) (clientv3.Cmp, error) {
	resp, err := s.c.Get(ctx, s.keys.ServicesMark(), clientv3.WithRev(rev))
	if err != nil {
		return clientv3.Cmp{}, fmt.Errorf("read the services' mark: %w", err)
	}
	return s.servicesUnchanged(resp.Kvs, rev), nil
}

// Follow has the NODATA guard of s's region writes take the services
// from the States w delivers instead of reading them from etcd, whenever
// the services' mark shows that none was written since the latest: a
// drain then reads a few keys, whatever the number of services. w must
// follow the whole of s's prefix on the same etcd; call it before w
// runs.
func (s *Store) Follow(w *Watcher) error {
	if w.Subtree != "" || w.keys.Prefix() != s.keys.Prefix() {
		return fmt.Errorf("follow: the watcher does not follow the whole of %q: %w", s.keys.Prefix(), regions.ErrInvalid)
	}
	w.follow = s.svcCache.followed.Store
	return nil
}

// markServices is the write of the services' mark that goes into every
// transaction that writes or deletes a service.
func (s *Store) markServices() clientv3.Op { return clientv3.OpPut(s.keys.ServicesMark(), "") }

// EnsureServicesMark creates the services' mark if etcd holds none
// (state written before the mark was kept), so that the guards of region
// writes compare it from then on. Creating it is safe at any time: a
// guard that read no mark compares the services' prefix, and every
// service write from then on rewrites the mark.
func (s *Store) EnsureServicesMark(ctx context.Context) error {
	mark := s.keys.ServicesMark()
	_, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(mark), "=", 0)).Then(s.markServices()).Commit()
	if err != nil {
		return fmt.Errorf("create the services' mark: %w", err)
	}
	return nil
}

// SetDrained drains a region (takes it out of every answer) or puts it
// back. With a Revision in cond the region must be at that mod revision;
// unconditionally, the change is reapplied if the region changes between
// read and write.
func (s *Store) SetDrained(ctx context.Context, name string, drained bool, cond Cond, opts ...WriteOption) (int64, error) {
	if err := cond.check(); err != nil {
		return 0, err
	}
	if cond.Absent {
		return 0, fmt.Errorf("only a region that exists can be drained: %w", regions.ErrInvalid)
	}
	action := "undrain"
	if drained {
		action = "drain"
	}
	o := newWriteOpts(opts)
	for attempt := range maxAttempts {
		if attempt > 0 && !raceWait(ctx, attempt) {
			break
		}
		r, rev, err := s.GetRegion(ctx, name)
		if err != nil {
			return 0, err
		}
		if !cond.holds(rev) {
			return 0, &ConflictError{What: describeRegion(name), Current: rev}
		}
		next := *r
		next.Drained = drained
		n, err := s.PutRegion(ctx, &next, IfRevision(rev), o.forward(action)...)
		if errors.Is(err, ErrConflict) && cond.Revision == 0 {
			continue
		}
		return n, err
	}
	return 0, fmt.Errorf("%s region %q: it keeps changing: %w", action, name, ErrConflict)
}

// DeleteRegion deletes a region, only if no service uses it; the check and
// the delete are one transaction that fails if any service changed
// meanwhile. A missing region is ErrNotFound, whatever cond says.
func (s *Store) DeleteRegion(ctx context.Context, name string, cond Cond, opts ...WriteOption) error {
	if err := cond.checkDelete(); err != nil {
		return err
	}
	ch := Change{Kind: "region", Name: name, Action: "delete"}
	_, err := s.writeKey(ctx, s.keys.Region(name), "delete-region", cond, &ch, newWriteOpts(opts),
		func(cur current) ([]byte, []clientv3.Cmp, error) {
			if cur.rev == 0 {
				return nil, nil, ErrNotFound
			}
			kvs, rev, err := listRange(ctx, s.c, s.keys.Services(), clientv3.GetPrefixRangeEnd(s.keys.Services()), 0)
			if err != nil {
				return nil, nil, fmt.Errorf("list services: %w", err)
			}
			var users []string
			for _, kv := range kvs {
				svc := new(regions.Service)
				if err := json.Unmarshal(kv.Value, svc); err != nil {
					continue
				}
				if slices.ContainsFunc(svc.Regions, func(sr regions.ServiceRegion) bool { return sr.Region == name }) {
					users = append(users, svc.Name)
				}
			}
			if len(users) > 0 {
				return nil, nil, &InUseError{Region: name, Services: users}
			}
			// No service key may have changed since the listing: a service
			// created or edited to use the region would otherwise survive it.
			unchanged, err := s.servicesUnchangedSince(ctx, rev)
			if err != nil {
				return nil, nil, err
			}
			return nil, []clientv3.Cmp{unchanged}, nil
		})
	if err != nil {
		return fmt.Errorf("delete region %q: %w", name, err)
	}
	return nil
}

// GetService returns a service by name (any case, with or without the
// final dot) and its key's mod revision.
func (s *Store) GetService(ctx context.Context, name string) (*regions.Service, int64, error) {
	svc := new(regions.Service)
	rev, err := s.getJSON(ctx, s.keys.Service(name), svc)
	if err != nil {
		return nil, 0, fmt.Errorf("service %q: %w", regions.CanonicalName(name), err)
	}
	return svc, rev, nil
}

// ListServices returns every service, by name, and the store revision it
// was read at. Entries that cannot be decoded are logged and skipped.
func (s *Store) ListServices(ctx context.Context) ([]*regions.Service, int64, error) {
	kvs, rev, err := listRange(ctx, s.c, s.keys.Services(), clientv3.GetPrefixRangeEnd(s.keys.Services()), 0)
	if err != nil {
		return nil, 0, fmt.Errorf("list services: %w", err)
	}
	out := make([]*regions.Service, 0, len(kvs))
	for _, kv := range kvs {
		svc := new(regions.Service)
		if err := decodeService(s.keys, kv, svc); err != nil {
			s.log.Warn("skipping undecodable service in etcd", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, svc)
	}
	return out, rev, nil
}

// PutService writes a service after validating it against the regions
// that exist at the revision read and the name check. The transaction
// fails if a region it references changed meanwhile, and is then retried
// with a fresh read. It writes only if cond holds, and records the write
// in the audit log.
func (s *Store) PutService(ctx context.Context, svc *regions.Service, cond Cond, opts ...WriteOption) (int64, error) {
	if err := cond.check(); err != nil {
		return 0, err
	}
	val, err := json.Marshal(svc)
	if err != nil {
		return 0, fmt.Errorf("service %q: %w", svc.Name, err)
	}
	ch := Change{Kind: "service", Name: regions.CanonicalName(svc.Name), Action: "put"}
	o := newWriteOpts(opts)
	rev, err := s.writeKey(ctx, s.keys.Service(svc.Name), "put-service", cond, &ch, o,
		func(cur current) ([]byte, []clientv3.Cmp, error) {
			list, _, err := s.regionsAt(ctx)
			if err != nil {
				return nil, nil, err
			}
			byName := make(map[string]*regions.Region, len(list))
			revs := make(map[string]int64, len(list))
			for _, r := range list {
				byName[r.obj.Name] = r.obj
				revs[r.obj.Name] = r.rev
			}
			if err := svc.Validate(byName, s.checkName()); err != nil {
				return nil, nil, err
			}
			cmps := make([]clientv3.Cmp, 0, len(svc.Regions))
			for _, sr := range svc.Regions {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Region(sr.Region)), "=", revs[sr.Region]))
			}
			var lost []apitypes.NoData
			if cur.val != nil {
				var prev regions.Service
				if json.Unmarshal(cur.val, &prev) == nil {
					if nd, ok := LostAnswer(&prev, svc, byName, byName); ok {
						lost = append(lost, nd)
					}
				}
			}
			return val, cmps, noData(&ch, o, lost)
		})
	if err != nil {
		var ve *regions.ValidationError
		if errors.As(err, &ve) {
			return 0, err
		}
		return 0, fmt.Errorf("put service %q: %w", svc.Name, err)
	}
	return rev, nil
}

// DeleteService deletes a service if cond holds; a missing one is
// ErrNotFound.
func (s *Store) DeleteService(ctx context.Context, name string, cond Cond, opts ...WriteOption) error {
	if err := cond.checkDelete(); err != nil {
		return err
	}
	ch := Change{Kind: "service", Name: regions.CanonicalName(name), Action: "delete"}
	_, err := s.writeKey(ctx, s.keys.Service(name), "delete-service", cond, &ch, newWriteOpts(opts),
		func(cur current) ([]byte, []clientv3.Cmp, error) {
			if cur.rev == 0 {
				return nil, nil, ErrNotFound
			}
			return nil, nil, nil
		})
	if err != nil {
		return fmt.Errorf("delete service %q: %w", regions.CanonicalName(name), err)
	}
	return nil
}

// SetWeights changes the weights of some of a service's regions (a weight
// for a region the service does not list is an error). With a Revision in
// cond the service must be at that mod revision; unconditionally, the
// change is reapplied if the service changes between read and write.
// Absent makes no sense for a change and is refused.
func (s *Store) SetWeights(ctx context.Context, service string, weights map[string]uint32, cond Cond, opts ...WriteOption) (int64, error) {
	return s.changeWeights(ctx, service, weights, false, cond, opts)
}

// ReplaceWeights sets every weight of a service: the regions weights
// names get theirs, every other region of the service 0. Otherwise as
// SetWeights.
func (s *Store) ReplaceWeights(ctx context.Context, service string, weights map[string]uint32, cond Cond, opts ...WriteOption) (int64, error) {
	return s.changeWeights(ctx, service, weights, true, cond, opts)
}

func (s *Store) changeWeights(ctx context.Context, service string, weights map[string]uint32, replace bool, cond Cond, opts []WriteOption) (int64, error) {
	if err := cond.check(); err != nil {
		return 0, err
	}
	if cond.Absent {
		return 0, fmt.Errorf("weights can only change on a service that exists: %w", regions.ErrInvalid)
	}
	name := regions.CanonicalName(service)
	if len(weights) == 0 && !replace {
		return 0, &regions.ValidationError{Kind: "service", Name: name, Problems: []regions.FieldProblem{{Field: "weights", Message: "no weights given"}}}
	}
	action := "set-weights"
	if replace {
		action = "replace-weights"
	}
	o := newWriteOpts(opts)
	for attempt := range maxAttempts {
		if attempt > 0 && !raceWait(ctx, attempt) {
			break
		}
		svc, rev, err := s.GetService(ctx, name)
		if err != nil {
			return 0, err
		}
		if !cond.holds(rev) {
			return 0, &ConflictError{What: describeService(name), Current: rev}
		}
		next := *svc
		next.Regions = slices.Clone(svc.Regions)
		var probs []regions.FieldProblem
		for _, region := range slices.Sorted(maps.Keys(weights)) {
			if !slices.ContainsFunc(next.Regions, func(sr regions.ServiceRegion) bool { return sr.Region == region }) {
				msg := fmt.Sprintf("%q is not one of the service's regions", region)
				if h := suggest.Hint(region, serviceRegions(&next)); h != "" {
					msg += "; " + h
				}
				probs = append(probs, regions.FieldProblem{Field: "weights." + region, Message: msg})
			}
		}
		if len(probs) > 0 {
			return 0, &regions.ValidationError{Kind: "service", Name: name, Problems: probs}
		}
		for i, sr := range next.Regions {
			if w, ok := weights[sr.Region]; ok {
				next.Regions[i].Weight = w
			} else if replace {
				next.Regions[i].Weight = 0
			}
		}
		n, err := s.PutService(ctx, &next, IfRevision(rev), o.forward(action)...)
		if errors.Is(err, ErrConflict) && cond.Revision == 0 {
			continue
		}
		return n, err
	}
	return 0, fmt.Errorf("set weights of %q: service keeps changing: %w", name, ErrConflict)
}

// serviceRegions lists the regions svc names.
func serviceRegions(svc *regions.Service) []string {
	names := make([]string, len(svc.Regions))
	for i, sr := range svc.Regions {
		names[i] = sr.Region
	}
	return names
}

// ErrNotRegistered refuses a health report whose prober is not registered
// under the lease the report would be bound to.
var ErrNotRegistered = errors.New("prober not registered under this lease")

// PutHealthReport writes a prober's report bound to lease, in one
// transaction with the check that the prober is registered under that
// lease: a report always vanishes with its prober, and one written by
// anything else is refused. The report's Lease field is set to lease.
// It returns etcd's revision after the write.
func (s *Store) PutHealthReport(ctx context.Context, r *regions.HealthReport, lease clientv3.LeaseID) (int64, error) {
	_, rev, err := s.PutHealthReports(ctx, []*regions.HealthReport{r}, lease)
	return rev, err
}

// Limits of one transaction of PutHealthReports, below etcd's defaults
// (--max-txn-ops 128, --max-request-bytes 1.5 MiB).
const (
	reportsMaxOps   = 64
	reportsMaxBytes = 512 << 10
)

// PutHealthReports writes reports of one prober as PutHealthReport does,
// in as few transactions as etcd's limits allow (one for a prober's
// usual reports), so that they make one revision and one event for the
// watchers. Every report is validated first; nothing is written when one
// is invalid. It returns how many reports, from the first, were written
// and etcd's revision after the last transaction.
func (s *Store) PutHealthReports(ctx context.Context, reps []*regions.HealthReport, lease clientv3.LeaseID) (int, int64, error) {
	if len(reps) == 0 {
		return 0, 0, nil
	}
	if lease == clientv3.NoLease {
		return 0, 0, fmt.Errorf("health report %s/%s: no lease: %w", reps[0].Region, reps[0].Prober, regions.ErrInvalid)
	}
	prober := reps[0].Prober
	vals := make([]string, len(reps))
	for i, r := range reps {
		rep := *r
		rep.Lease = int64(lease)
		if err := rep.Validate(); err != nil {
			return 0, 0, err
		}
		if rep.Prober != prober {
			return 0, 0, fmt.Errorf("health report %s/%s: one batch is one prober's (%s): %w", rep.Region, rep.Prober, prober, regions.ErrInvalid)
		}
		val, err := json.Marshal(&rep)
		if err != nil {
			return 0, 0, fmt.Errorf("health report: %w", err)
		}
		vals[i] = string(val)
	}
	reg := s.keys.Prober(prober)
	written, rev := 0, int64(0)
	for written < len(reps) {
		var ops []clientv3.Op
		size := 0
		for end := written; end < len(reps) && len(ops) < reportsMaxOps && (len(ops) == 0 || size+len(vals[end]) <= reportsMaxBytes); end++ {
			ops = append(ops, clientv3.OpPut(s.keys.Health(reps[end].Region, prober), vals[end], clientv3.WithLease(lease)))
			size += len(vals[end])
		}
		first := reps[written]
		resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(reg), "=", lease)).Then(ops...).Commit()
		if err != nil {
			return written, rev, fmt.Errorf("put health report %s/%s: %w", first.Region, prober, err)
		}
		if !resp.Succeeded {
			return written, rev, fmt.Errorf("put health report %s/%s: %w", first.Region, prober, ErrNotRegistered)
		}
		written += len(ops)
		rev = resp.Header.Revision
	}
	return written, rev, nil
}

// DeleteHealthReport removes a prober's report on a region (a region it no
// longer checks).
func (s *Store) DeleteHealthReport(ctx context.Context, region, prober string) error {
	if _, err := s.c.Delete(ctx, s.keys.Health(region, prober)); err != nil {
		return fmt.Errorf("delete health report %s/%s: %w", region, prober, err)
	}
	return nil
}

// RegisterProber writes a prober's registration bound to lease (required):
// the registration and every report under it vanish when the lease ends.
func (s *Store) RegisterProber(ctx context.Context, p *regions.ProberInfo, lease clientv3.LeaseID) error {
	if lease == clientv3.NoLease {
		return fmt.Errorf("prober %s: no lease: %w", p.ID, regions.ErrInvalid)
	}
	reg := *p
	reg.Lease = int64(lease)
	if err := reg.Validate(); err != nil {
		return err
	}
	val, err := json.Marshal(&reg)
	if err != nil {
		return fmt.Errorf("prober: %w", err)
	}
	if _, err := s.c.Put(ctx, s.keys.Prober(reg.ID), string(val), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("register prober %s: %w", reg.ID, err)
	}
	return nil
}

// Compact compacts etcd's history up to the current revision, which it
// returns. Watchers behind it must relist.
func (s *Store) Compact(ctx context.Context) (int64, error) {
	resp, err := s.c.Get(ctx, s.keys.Prefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	rev := resp.Header.Revision
	if _, err := s.c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, fmt.Errorf("compact at %d: %w", rev, err)
	}
	return rev, nil
}

// getJSON reads one key into v and returns its mod revision.
func (s *Store) getJSON(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNotFound
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// listRange reads [key, end) page by page at one revision: rev, or the
// revision of the first page when rev is 0, which it returns.
func listRange(ctx context.Context, c *clientv3.Client, key, end string, rev int64, extra ...clientv3.OpOption) ([]*mvccpb.KeyValue, int64, error) {
	kvs, hdr, err := listRangeHeader(ctx, c, key, end, rev, extra...)
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		rev = hdr.Revision
	}
	return kvs, rev, nil
}

// listRangeHeader is listRange returning the header of the first page:
// its revision is the one read when rev is 0, and it names the cluster.
func listRangeHeader(ctx context.Context, c *clientv3.Client, key, end string, rev int64, extra ...clientv3.OpOption) ([]*mvccpb.KeyValue, *etcdserverpb.ResponseHeader, error) {
	var out []*mvccpb.KeyValue
	var first *etcdserverpb.ResponseHeader
	for {
		opts := append([]clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}, extra...)
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.Get(ctx, key, opts...)
		if err != nil {
			return nil, nil, err
		}
		if first == nil {
			first = resp.Header
			if first == nil {
				first = new(etcdserverpb.ResponseHeader)
			}
		}
		if rev == 0 {
			rev = first.Revision
		}
		out = append(out, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return out, first, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// decodeRegion decodes and validates a region stored under kv.Key.
func decodeRegion(k Keys, kv *mvccpb.KeyValue, r *regions.Region) error {
	if err := json.Unmarshal(kv.Value, r); err != nil {
		return err
	}
	if want := k.parse(string(kv.Key)).name; r.Name != want {
		return fmt.Errorf("name %q does not match the key", r.Name)
	}
	return r.Validate()
}

// decodeService decodes and validates a service stored under kv.Key. The
// regions it names are not checked here: a snapshot skips unknown ones.
func decodeService(k Keys, kv *mvccpb.KeyValue, svc *regions.Service) error {
	if err := json.Unmarshal(kv.Value, svc); err != nil {
		return err
	}
	if want := k.parse(string(kv.Key)).name; svc.Name != want {
		return fmt.Errorf("name %q does not match the key", svc.Name)
	}
	return svc.Validate(nil, nil)
}
