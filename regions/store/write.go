package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// Change is what one write of a region, service or latency table changed
// (or, in a dry run, would change); the API answers with it, so it is
// the API's type.
type Change = apitypes.Change

// AuditRecord is one accepted write as the audit log keeps it.
type AuditRecord = apitypes.AuditRecord

// DefaultAuditLimit is how many audit records are kept unless
// SetAuditLimit says otherwise.
const DefaultAuditLimit = 1000

// WriteOption changes how a write is made.
type WriteOption func(*writeOpts)

type writeOpts struct {
	actor  string
	dryRun bool
	force  bool
	report *Change
	action string
}

// By names who makes the write in its audit record: an API token's name,
// "bootstrap".
func By(actor string) WriteOption { return func(o *writeOpts) { o.actor = actor } }

// DryRun validates a write and checks its preconditions against etcd as
// the write would, and writes nothing; Report says what would change.
func DryRun() WriteOption { return func(o *writeOpts) { o.dryRun = true } }

// Force makes a write that leaves services answering NODATA, which is
// refused otherwise (NoDataError); the change lists them (Change.NoData).
func Force() WriteOption { return func(o *writeOpts) { o.force = true } }

// Report has the write fill *c with what it changed (or would change).
func Report(c *Change) WriteOption { return func(o *writeOpts) { o.report = c } }

func newWriteOpts(opts []WriteOption) *writeOpts {
	o := &writeOpts{}
	for _, f := range opts {
		f(o)
	}
	return o
}

// forward passes the caller's options on to an inner write, with an
// action of its own.
func (o *writeOpts) forward(action string) []WriteOption {
	return []WriteOption{func(in *writeOpts) { *in = *o; in.action = action }}
}

func (o *writeOpts) done(ch *Change) {
	if o.report != nil {
		*o.report = *ch
	}
}

// SetAuditLimit bounds the audit log to about n records (the oldest go);
// 0 or less means DefaultAuditLimit.
func (s *Store) SetAuditLimit(n int) {
	if n <= 0 {
		n = DefaultAuditLimit
	}
	s.auditLimit.Store(int64(n))
}

func (s *Store) auditMax() int64 {
	if n := s.auditLimit.Load(); n > 0 {
		return n
	}
	return DefaultAuditLimit
}

// current is a key as read before a write: its value and mod revision (0
// when absent).
type current struct {
	val []byte
	rev int64
}

func (s *Store) read(ctx context.Context, key string) (current, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return current{}, err
	}
	if len(resp.Kvs) == 0 {
		return current{}, nil
	}
	return current{val: resp.Kvs[0].Value, rev: resp.Kvs[0].ModRevision}, nil
}

// writeKey is the one way a region, service or table manifest is written
// or deleted: read the key, let prepare compute the new value (nil
// deletes) and the comparisons of the read set it depends on, check cond,
// then write in one transaction with the audit record, if the key and the
// read set are still as read. When they are not, it reads again; a cond
// that no longer holds then fails with a ConflictError. prepare may fill
// in ch.NoData (see noData); writeKey fills in the rest of ch.
func (s *Store) writeKey(ctx context.Context, key, hook string, cond Cond, ch *Change, o *writeOpts,
	prepare func(cur current) (val []byte, extra []clientv3.Cmp, err error)) (int64, error) {
	if o.action != "" {
		ch.Action = o.action
	}
	for attempt := range maxAttempts {
		if attempt > 0 && !raceWait(ctx, attempt) {
			break
		}
		cur, err := s.read(ctx, key)
		if err != nil {
			return 0, err
		}
		val, extra, err := prepare(cur)
		if err != nil {
			return 0, err
		}
		if !cond.holds(cur.rev) {
			return 0, &ConflictError{What: s.keys.describe(key), Current: cur.rev}
		}
		ch.Before, ch.After = rawJSON(cur.val), rawJSON(val)
		ch.Changed = !sameJSON(cur.val, val)
		ch.DryRun = o.dryRun
		ch.Revision = cur.rev
		if !ch.Changed || o.dryRun {
			o.done(ch)
			return cur.rev, nil
		}
		s.hook(hook)
		op := clientv3.OpPut(key, string(val))
		if val == nil {
			op = clientv3.OpDelete(key)
		}
		ops := []clientv3.Op{op}
		if s.keys.parse(key).kind == keyService {
			ops = append(ops, s.markServices())
		}
		cmps := append(slices.Clone(extra), clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev))
		rev, ok, err := s.commit(ctx, cmps, ops, ch, o)
		if err != nil {
			return 0, err
		}
		if ok {
			ch.Revision = rev
			o.done(ch)
			return rev, nil
		}
	}
	return 0, fmt.Errorf("%s keeps changing: %w", s.keys.describe(key), ErrConflict)
}

// commit runs ops with an audit record of ch in one transaction, if every
// comparison holds (ok false otherwise), and returns its revision.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op, ch *Change, o *writeOpts) (rev int64, ok bool, err error) {
	return s.commitMany(ctx, cmps, ops, []*Change{ch}, o)
}

// commitMany is commit with an audit record of each of chs.
func (s *Store) commitMany(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op, chs []*Change, o *writeOpts) (rev int64, ok bool, err error) {
	ops = slices.Clone(ops)
	for _, ch := range chs {
		id, err := newAuditID(time.Now())
		if err != nil {
			return 0, false, err
		}
		rec, err := json.Marshal(AuditRecord{ID: id, Time: time.Now().UTC(), Actor: o.actor, Change: *ch})
		if err != nil {
			return 0, false, fmt.Errorf("audit record: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.keys.AuditRecord(id), string(rec)))
	}
	ops = append(ops, clientv3.OpGet(s.keys.Audit(), clientv3.WithPrefix(), clientv3.WithCountOnly()))
	resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, false, err
	}
	if !resp.Succeeded {
		return 0, false, nil
	}
	s.trimAudit(ctx, resp.Responses[len(resp.Responses)-1].GetResponseRange().GetCount())
	return resp.Header.Revision, true, nil
}

// trimAudit deletes the oldest audit records once there are a sixteenth
// more than the limit, so that trimming is not a cost of every write. A
// failure is only logged: the write is done.
func (s *Store) trimAudit(ctx context.Context, count int64) {
	limit := s.auditMax()
	if count <= limit+limit/16 {
		return
	}
	prefix := s.keys.Audit()
	end := clientv3.GetPrefixRangeEnd(prefix)
	// Keys sort newest first: everything from the limit-th key on goes.
	resp, err := s.c.Get(ctx, prefix, clientv3.WithRange(end), clientv3.WithLimit(limit+1), clientv3.WithKeysOnly())
	if err == nil && int64(len(resp.Kvs)) > limit {
		_, err = s.c.Delete(ctx, string(resp.Kvs[limit].Key), clientv3.WithRange(end))
	}
	if err != nil {
		s.log.Warn("could not trim the audit log", "err", err)
	}
}

// newAuditID names an audit record so that keys sort newest first: the
// time counted down from the largest int64, in hex, and a random tail for
// writes in the same nanosecond on different servers.
func newAuditID(t time.Time) (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%016x-%s", uint64(math.MaxInt64-t.UnixNano()), hex.EncodeToString(r[:])), nil
}

var auditIDRE = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{8}$`)

// MaxAuditPage bounds one page of ListAudit.
const MaxAuditPage = 500

// ListAudit returns up to limit audit records, newest first, after the
// record with id after ("" for the newest), and the id to pass as after
// for the next page ("" when there is none).
func (s *Store) ListAudit(ctx context.Context, after string, limit int) ([]AuditRecord, string, error) {
	if after != "" && !auditIDRE.MatchString(after) {
		return nil, "", fmt.Errorf("audit cursor %q: not a record id: %w", after, regions.ErrInvalid)
	}
	if limit <= 0 || limit > MaxAuditPage {
		return nil, "", fmt.Errorf("audit page of %d: want 1 to %d: %w", limit, MaxAuditPage, regions.ErrInvalid)
	}
	prefix := s.keys.Audit()
	from := prefix
	if after != "" {
		from = s.keys.AuditRecord(after) + "\x00"
	}
	resp, err := s.c.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, "", fmt.Errorf("audit log: %w", err)
	}
	out := make([]AuditRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rec AuditRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			s.log.Warn("skipping an undecodable audit record", "key", string(kv.Key), "err", err)
			continue
		}
		rec.ID = string(kv.Key[len(prefix):])
		// The record is written in the transaction it describes.
		rec.Revision = kv.ModRevision
		out = append(out, rec)
	}
	next := ""
	if resp.More && len(resp.Kvs) > 0 {
		next = string(resp.Kvs[len(resp.Kvs)-1].Key[len(prefix):])
	}
	return out, next, nil
}

// rawJSON is a stored value as JSON for a Change: null when absent, and
// a JSON string when it is not JSON at all (written by hand).
func rawJSON(b []byte) json.RawMessage {
	switch {
	case b == nil:
		return nil
	case json.Valid(b):
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// sameJSON says whether two stored values hold the same JSON, whatever
// the spacing and key order; nil (absent) equals only nil.
func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Unavailable says whether err means that etcd could not take or answer a
// request in time (no quorum, no leader, unreachable), as opposed to a
// refusal: the caller may retry later.
func Unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		switch ee.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
			return true
		}
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
			return true
		}
	}
	// The caller's deadline travels with the request: when the member's
	// handler runs out of it first, gRPC sends the plain context error
	// back with code Unknown.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		return st.Code() == codes.Unknown && st.Message() == context.DeadlineExceeded.Error()
	}
	return false
}
