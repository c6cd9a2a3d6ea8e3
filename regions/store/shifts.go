package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// Shifts (docs/shifts.md) live under shifts/<id>. They are written like
// every other object (validated, conditional, audited in the same
// transaction, the NODATA guard), and their end is recorded once: by the
// API for a cancel, by one server for an expiry or a guard's revert (a
// compare-and-swap on the shift's revision, so that N servers make one
// audit record).

// MissingError refuses a write that names a service or a region that
// does not exist; Err names the fields. It matches ErrNotFound (the API
// answers 404).
type MissingError struct {
	Err *regions.ValidationError
}

func (e *MissingError) Error() string { return e.Err.Error() }

// Is lets errors.Is(err, ErrNotFound) match.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// Unwrap is the validation error naming the fields.
func (e *MissingError) Unwrap() error { return e.Err }

// ErrShiftEnded matches a ShiftEndedError.
var ErrShiftEnded = errors.New("shift ended")

// ShiftEndedError refuses to change a shift that has ended: it expired,
// was cancelled or was reverted. It matches ErrShiftEnded.
type ShiftEndedError struct {
	ID    string
	State regions.ShiftState
	At    time.Time
}

func (e *ShiftEndedError) Error() string {
	return fmt.Sprintf("shift %s is %s (since %s): make a new one", e.ID, e.State, e.At.UTC().Format(time.RFC3339))
}

// Is lets errors.Is(err, ErrShiftEnded) match.
func (e *ShiftEndedError) Is(target error) bool { return target == ErrShiftEnded }

// newShiftID names a new shift: eight random hex digits, short enough to
// type (the write requires the key absent).
func newShiftID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// decodeShift decodes and validates a shift stored under kv.Key.
func decodeShift(kv *mvccpb.KeyValue, k parsedKey, sh *regions.Shift) error {
	if err := json.Unmarshal(kv.Value, sh); err != nil {
		return err
	}
	if sh.ID != k.name {
		return fmt.Errorf("id %q does not match the key", sh.ID)
	}
	return sh.Validate()
}

// GetShift returns a shift and its key's mod revision.
func (s *Store) GetShift(ctx context.Context, id string) (*regions.Shift, int64, error) {
	if !regions.ValidShiftID(id) {
		return nil, 0, fmt.Errorf("shift %q: %w", id, ErrNotFound)
	}
	sh := new(regions.Shift)
	rev, err := s.getJSON(ctx, s.keys.Shift(id), sh)
	if err != nil {
		return nil, 0, fmt.Errorf("shift %q: %w", id, err)
	}
	return sh, rev, nil
}

// ListShifts returns every stored shift (in force or ended), by id, and
// the store revision it was read at.
func (s *Store) ListShifts(ctx context.Context) ([]*regions.Shift, int64, error) {
	list, rev, err := s.shiftsAt(ctx, 0)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*regions.Shift, 0, len(list))
	for _, v := range list {
		out = append(out, v.obj)
	}
	return out, rev, nil
}

func (s *Store) shiftsAt(ctx context.Context, rev int64) ([]versioned[regions.Shift], int64, error) {
	kvs, rev, err := listRange(ctx, s.c, s.keys.Shifts(), clientv3.GetPrefixRangeEnd(s.keys.Shifts()), rev)
	if err != nil {
		return nil, 0, fmt.Errorf("list shifts: %w", err)
	}
	out := make([]versioned[regions.Shift], 0, len(kvs))
	for _, kv := range kvs {
		sh := new(regions.Shift)
		if err := decodeShift(kv, s.keys.parse(string(kv.Key)), sh); err != nil {
			s.log.Warn("skipping undecodable shift in etcd", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, versioned[regions.Shift]{sh, kv.ModRevision})
	}
	return out, rev, nil
}

// shiftWorld is what a shift write is checked against, read at one
// revision: the regions and services, and the shifts in force (the one
// written left out).
type shiftWorld struct {
	rev    int64
	regs   map[string]*regions.Region
	svcs   map[string]*regions.Service
	active []*regions.Shift
	// servicesUnchanged holds while no service changed since rev.
	servicesUnchanged clientv3.Cmp
}

func (s *Store) readShiftWorld(ctx context.Context, skip string, now time.Time) (*shiftWorld, error) {
	regs, rev, err := s.regionsAt(ctx)
	if err != nil {
		return nil, err
	}
	w := &shiftWorld{rev: rev, regs: make(map[string]*regions.Region, len(regs)), svcs: map[string]*regions.Service{}}
	for _, r := range regs {
		w.regs[r.obj.Name] = r.obj
	}
	kvs, _, err := listRange(ctx, s.c, s.keys.Services(), clientv3.GetPrefixRangeEnd(s.keys.Services()), rev)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	for _, kv := range kvs {
		svc := new(regions.Service)
		if json.Unmarshal(kv.Value, svc) == nil {
			w.svcs[regions.CanonicalName(svc.Name)] = svc
		}
	}
	if w.servicesUnchanged, err = s.servicesUnchangedSince(ctx, rev); err != nil {
		return nil, err
	}
	shifts, _, err := s.shiftsAt(ctx, rev)
	if err != nil {
		return nil, err
	}
	for _, v := range shifts {
		if v.obj.ID != skip && v.obj.ActiveAt(now) {
			w.active = append(w.active, v.obj)
		}
	}
	return w, nil
}

// cmps are the comparisons that keep w true until a write: no region,
// service or shift changed since it was read.
func (s *Store) shiftWorldCmps(w *shiftWorld) []clientv3.Cmp {
	var out []clientv3.Cmp
	for _, p := range []string{s.keys.Regions(), s.keys.Shifts()} {
		out = append(out, clientv3.Compare(clientv3.ModRevision(p), "<", w.rev+1).WithPrefix())
	}
	return append(out, w.servicesUnchanged)
}

// lost lists the services that answer NODATA to a type they answer now
// when the shifts in force go from before to after (the NODATA guard):
// only the services sh affects can change.
func (w *shiftWorld) lost(sh *regions.Shift, before, after []*regions.Shift) []apitypes.NoData {
	var out []apitypes.NoData
	for _, svc := range w.svcs {
		if !sh.Affects(svc) {
			continue
		}
		if nd, ok := LostAnswer(regions.ShiftedService(svc, before), regions.ShiftedService(svc, after), w.regs, w.regs); ok {
			out = append(out, nd)
		}
	}
	return out
}

// CreateShift writes a new shift, made now by the write's actor
// (By): sh's ID, CreatedBy and Created are set here, and its Expires
// must be after now and at most regions.MaxShiftDuration ahead. The
// service and regions it names must exist (a MissingError otherwise);
// a shift after which a service answers NODATA where it answers now is
// refused unless forced. It returns the write's revision; Report gets
// the change, whose After is the shift as stored.
func (s *Store) CreateShift(ctx context.Context, sh *regions.Shift, opts ...WriteOption) (int64, error) {
	o := newWriteOpts(opts)
	now := time.Now().UTC()
	next := *sh
	next.CreatedBy, next.Created, next.Ended = o.actor, now, nil
	if next.ID == "" {
		id, err := newShiftID()
		if err != nil {
			return 0, err
		}
		next.ID = id
	}
	if next.CreatedBy == "" {
		next.CreatedBy = "-"
	}
	if err := next.Validate(); err != nil {
		return 0, err
	}
	if err := regions.CheckExpiry("expires", next.Expires, now); err != nil {
		return 0, err
	}
	ch := Change{Kind: "shift", Name: next.ID, Action: "create"}
	rev, err := s.writeKey(ctx, s.keys.Shift(next.ID), "create-shift", IfAbsent(), &ch, o,
		func(current) ([]byte, []clientv3.Cmp, error) {
			w, err := s.readShiftWorld(ctx, next.ID, now)
			if err != nil {
				return nil, nil, err
			}
			if missing, err := next.CheckAgainst(w.regs, w.svcs); err != nil {
				var ve *regions.ValidationError
				if missing && errors.As(err, &ve) {
					return nil, nil, &MissingError{Err: ve}
				}
				return nil, nil, err
			}
			val, err := json.Marshal(&next)
			if err != nil {
				return nil, nil, err
			}
			lost := w.lost(&next, w.active, append(w.active, &next))
			return val, s.shiftWorldCmps(w), noData(&ch, o, lost)
		})
	if err != nil {
		return 0, fmt.Errorf("create shift: %w", err)
	}
	*sh = next
	return rev, nil
}

// changeShift is the read-modify-write of one stored shift: change gets
// it as stored and the write's change (for its NODATA list), and returns
// it as it should be (the same pointer: no change) with the comparisons
// it depends on. It returns the write's revision and its change.
func (s *Store) changeShift(ctx context.Context, id, action string, cond Cond, o *writeOpts,
	change func(cur *regions.Shift, ch *Change) (*regions.Shift, []clientv3.Cmp, error)) (int64, Change, error) {
	ch := Change{Kind: "shift", Name: id, Action: action}
	if err := cond.checkDelete(); err != nil {
		return 0, ch, err
	}
	if !regions.ValidShiftID(id) {
		return 0, ch, fmt.Errorf("shift %q: %w", id, ErrNotFound)
	}
	rev, err := s.writeKey(ctx, s.keys.Shift(id), action+"-shift", cond, &ch, o,
		func(cur current) ([]byte, []clientv3.Cmp, error) {
			if cur.rev == 0 {
				return nil, nil, ErrNotFound
			}
			old := new(regions.Shift)
			if err := json.Unmarshal(cur.val, old); err != nil {
				return nil, nil, fmt.Errorf("decode: %w", err)
			}
			next, cmps, err := change(old, &ch)
			if err != nil || next == old {
				return cur.val, cmps, err
			}
			val, err := json.Marshal(next)
			return val, cmps, err
		})
	if err != nil {
		return 0, ch, fmt.Errorf("%s shift %q: %w", action, id, err)
	}
	return rev, ch, nil
}

// ExtendShift gives an active shift a new expiry, after now and at most
// regions.MaxShiftDuration ahead (shorter or longer), and with reason
// a new reason. A shift that ended is a ShiftEndedError.
func (s *Store) ExtendShift(ctx context.Context, id string, expires time.Time, reason *string, cond Cond, opts ...WriteOption) (int64, error) {
	now := time.Now().UTC()
	if err := regions.CheckExpiry("expires", expires, now); err != nil {
		return 0, err
	}
	rev, _, err := s.changeShift(ctx, id, "extend", cond, newWriteOpts(opts), func(cur *regions.Shift, _ *Change) (*regions.Shift, []clientv3.Cmp, error) {
		if !cur.ActiveAt(now) {
			return nil, nil, endedError(cur, now)
		}
		next := *cur
		next.Expires = expires.UTC()
		if reason != nil {
			next.Reason = *reason
		}
		return &next, nil, next.Validate()
	})
	return rev, err
}

// endedError says how and since when sh ended.
func endedError(sh *regions.Shift, now time.Time) error {
	e := &ShiftEndedError{ID: sh.ID, State: sh.State(now), At: sh.Expires}
	if sh.Ended != nil {
		e.At = sh.Ended.At
	}
	return e
}

// CancelShift ends an active shift now, recorded as cancelled by the
// write's actor; the weights it changed come back. A shift that already
// ended is left as it is (no write, Changed false). Like any write, a
// cancel after which a service answers NODATA where it answers now (a
// shift that gave weight to a service whose own weights are all 0) is
// refused unless forced.
func (s *Store) CancelShift(ctx context.Context, id string, cond Cond, opts ...WriteOption) (int64, error) {
	now := time.Now().UTC()
	o := newWriteOpts(opts)
	rev, _, err := s.changeShift(ctx, id, "cancel", cond, o, func(cur *regions.Shift, ch *Change) (*regions.Shift, []clientv3.Cmp, error) {
		if !cur.ActiveAt(now) {
			return cur, nil, nil
		}
		w, err := s.readShiftWorld(ctx, id, now)
		if err != nil {
			return nil, nil, err
		}
		if err := noData(ch, o, w.lost(cur, append(w.active, cur), w.active)); err != nil {
			return nil, nil, err
		}
		next := *cur
		next.Ended = &regions.ShiftEnd{At: now, How: regions.ShiftCancelled, By: o.actor}
		return &next, s.shiftWorldCmps(w), nil
	})
	return rev, err
}

// EndShift records that a shift ended by itself, as this server saw it:
// expired (its expiry passed) or reverted by its guard (detail says
// why), made by the write's actor. It reads the shift and writes it only
// if it has not ended meanwhile (an expiry also only if it was not
// extended), in one transaction with the audit record that requires the
// shift unchanged since it was read: when several servers record the
// same end, one writes and the others find it done. It reports whether
// this call recorded it.
func (s *Store) EndShift(ctx context.Context, id string, how regions.ShiftState, detail string, opts ...WriteOption) (bool, error) {
	switch how {
	case regions.ShiftExpired, regions.ShiftReverted:
	default:
		return false, fmt.Errorf("a shift ends by itself expired or reverted, not %q: %w", how, regions.ErrInvalid)
	}
	o := newWriteOpts(opts)
	action := map[regions.ShiftState]string{regions.ShiftExpired: "expire", regions.ShiftReverted: "revert"}[how]
	_, ch, err := s.changeShift(ctx, id, action, Always, o, func(cur *regions.Shift, _ *Change) (*regions.Shift, []clientv3.Cmp, error) {
		now := time.Now().UTC()
		if cur.Ended != nil || how == regions.ShiftExpired && now.Before(cur.Expires) {
			return cur, nil, nil
		}
		next := *cur
		next.Ended = &regions.ShiftEnd{At: now, How: how, By: o.actor, Detail: detail}
		if how == regions.ShiftExpired {
			next.Ended.At = cur.Expires // it stopped applying then
		}
		return &next, nil, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && ch.Changed && !ch.DryRun, err
}

// PruneShifts deletes the shifts that ended before before, each only if
// it has not changed since it was read; their end is in the audit log.
// It returns how many it deleted.
func (s *Store) PruneShifts(ctx context.Context, before time.Time) (int, error) {
	list, _, err := s.shiftsAt(ctx, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range list {
		if v.obj.Ended == nil || !v.obj.Ended.At.Before(before) {
			continue
		}
		key := s.keys.Shift(v.obj.ID)
		resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", v.rev)).Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return n, fmt.Errorf("prune shift %s: %w", v.obj.ID, err)
		}
		if resp.Succeeded {
			n++
		}
	}
	return n, nil
}
