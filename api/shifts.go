package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// shiftBody is the body of POST /v1/shifts as it is read: the fields of
// apitypes.ShiftRequest, the weights as JSON values so that a bad one is
// named with its region.
type shiftBody struct {
	Service   string              `json:"service"`
	Drain     string              `json:"drain"`
	Weights   map[string]any      `json:"weights"`
	ExpiresIn string              `json:"expires_in"`
	Expires   string              `json:"expires"`
	Reason    string              `json:"reason"`
	RevertIf  *regions.ShiftGuard `json:"revert_if"`
}

// expiryOf reads when a shift ends from expires_in (a duration from now)
// or expires (RFC 3339): one of the two, in the future, at most
// regions.MaxShiftDuration ahead. The problem names the field given.
func expiryOf(in, at string, now time.Time) (time.Time, *Problem) {
	bad := func(field, format string, args ...any) (time.Time, *Problem) {
		p := badField(field, format, args...)
		return time.Time{}, &p
	}
	var t time.Time
	field := "expires_in"
	switch {
	case in != "" && at != "":
		return bad("expires", "give expires_in or expires, not both")
	case in != "":
		d, err := time.ParseDuration(in)
		if err != nil {
			return bad("expires_in", "%q: want a duration like 30m or 1h", in)
		}
		t = now.Add(d)
	case at != "":
		var err error
		if t, err = time.Parse(time.RFC3339, at); err != nil {
			return bad("expires", "%q: want a time in RFC 3339, like 2026-03-01T12:00:00Z", at)
		}
		field = "expires"
	default:
		return bad("expires_in", "required: a shift must carry an expiry, at most %s ahead (expires_in, or expires)", regions.MaxShiftDuration)
	}
	var ve *regions.ValidationError
	if err := regions.CheckExpiry(field, t, now); errors.As(err, &ve) {
		p := validationProblem(ve)
		return time.Time{}, &p
	}
	return t.UTC(), nil
}

// noPrecondition refuses If-Match and If-None-Match on a request that
// creates an object of a new name: there is no revision to match.
func noPrecondition(w http.ResponseWriter, r *http.Request) bool {
	for _, h := range []string{"If-Match", "If-None-Match"} {
		if r.Header.Get(h) != "" {
			writeProblem(w, badField(h, "a new shift has no revision to match"))
			return false
		}
	}
	return true
}

func shiftRev(id string) func(context.Context, Store) (int64, error) {
	return func(ctx context.Context, st Store) (int64, error) {
		_, rev, err := st.GetShift(ctx, id)
		return rev, err
	}
}

// shiftStatus is sh as the API shows it at now: its state as snap
// applies it (reverted once its guard tripped, before the end is
// recorded).
func shiftStatus(sh *regions.Shift, snap *regions.Snapshot, now time.Time) apitypes.ShiftStatus {
	out := apitypes.ShiftStatus{Shift: *sh, State: sh.State(now), Does: sh.Describe()}
	if snap != nil {
		if st, why := snap.ShiftState(sh); st == regions.ShiftReverted {
			out.State, out.Why = st, why
		}
	}
	if out.State == regions.ShiftActive {
		out.ExpiresInSeconds = sh.Expires.Sub(now).Seconds()
	}
	return out
}

// snapshot is the served snapshot, nil before the first.
func (a *apiServer) snapshot() *regions.Snapshot {
	if a.opts.Snapshot == nil {
		return nil
	}
	return a.opts.Snapshot()
}

// shiftServices lists the services whose answers change when the shift
// goes from before (nil: absent) to after: each with its expected shares
// in snapshots of the served state with the one and the other in its
// place, with the health the server sees now. Whether the served
// snapshot has the write already does not matter.
func (a *apiServer) shiftServices(before, after *regions.Shift) ([]apitypes.ShiftedService, int) {
	out := []apitypes.ShiftedService{}
	snap := a.snapshot()
	if snap == nil {
		return out, 0
	}
	with := func(sh *regions.Shift) *regions.Snapshot {
		st := snap.State().Clone()
		delete(st.Shifts, after.ID)
		if sh != nil {
			st.Shifts[sh.ID] = sh
		}
		return regions.BuildSnapshot(st, snap, snap.Options())
	}
	s0, s1 := with(before), with(after)
	total := 0
	for _, v := range snap.Services() {
		if !after.Affects(v.Service()) {
			continue
		}
		total++
		if len(out) < apitypes.MaxShiftServices {
			name := v.Name()
			out = append(out, apitypes.ShiftedService{Service: name, Before: familyShares(s0, s0.ServiceByName(name)), After: familyShares(s1, s1.ServiceByName(name))})
		}
	}
	return out, total
}

// respondShift answers a shift write: its change, the shift after it,
// and (with services) the services whose answers it changes.
func (a *apiServer) respondShift(w http.ResponseWriter, ch store.Change, services bool) {
	resp := apitypes.ShiftChange{Change: ch, Services: []apitypes.ShiftedService{}}
	var after regions.Shift
	if err := json.Unmarshal(ch.After, &after); err == nil && after.ID != "" {
		st := shiftStatus(&after, a.snapshot(), time.Now())
		resp.Shift = &st
		if services && ch.Changed {
			var before *regions.Shift
			if !apitypes.Absent(ch.Before) {
				before = new(regions.Shift)
				if err := json.Unmarshal(ch.Before, before); err != nil {
					before = nil
				}
			}
			resp.Services, resp.ServicesTotal = a.shiftServices(before, &after)
		}
	}
	respondChange(w, ch, resp)
}

// createShift answers POST /v1/shifts. The expiry is the server's clock
// plus expires_in, or expires; the guard's baseline is the health this
// server sees now.
func (a *apiServer) createShift(w http.ResponseWriter, r *http.Request) {
	if !noPrecondition(w, r) {
		return
	}
	var body shiftBody
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &body) {
		return
	}
	sh := &regions.Shift{Drain: body.Drain, Reason: body.Reason, RevertIf: body.RevertIf}
	if body.Service != "" {
		sh.Service = regions.CanonicalName(body.Service)
	}
	if body.Weights != nil {
		ws, p := parseWeights(body.Weights)
		if p != nil {
			writeProblem(w, *p)
			return
		}
		sh.Weights = ws
	}
	exp, p := expiryOf(body.ExpiresIn, body.Expires, time.Now())
	if p != nil {
		writeProblem(w, *p)
		return
	}
	sh.Expires = exp
	if g := sh.RevertIf; g != nil {
		if !g.Unhealthy && !g.HighWatermark {
			writeProblem(w, badField("revert_if", "name a guard: unhealthy or high_watermark"))
			return
		}
		if p := a.checkWatermarkGuard(sh); p != nil {
			writeProblem(w, *p)
			return
		}
		if snap := a.snapshot(); snap != nil && g.Unhealthy {
			sh.Baseline = snap.ShiftBaseline(sh)
		}
	}
	ch, ok := a.serveWrite(w, r, nil, func(wr *writeReq) error {
		_, err := wr.st.CreateShift(wr.ctx, sh, wr.opts...)
		return err
	})
	if !ok {
		return
	}
	if ch.Changed && !ch.DryRun {
		w.Header().Set("Location", "/v1/shifts/"+ch.Name)
	}
	a.respondShift(w, ch, true)
}

func (a *apiServer) listShifts(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		list, rev, err := st.ListShifts(ctx)
		if err != nil {
			return nil, 0, err
		}
		snap, now := a.snapshot(), time.Now()
		out := apitypes.ShiftList{Revision: rev, Shifts: make([]apitypes.ShiftStatus, 0, len(list))}
		for _, sh := range list {
			out.Shifts = append(out.Shifts, shiftStatus(sh, snap, now))
		}
		return out, rev, nil
	})
}

func (a *apiServer) getShift(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		sh, rev, err := st.GetShift(ctx, chi.URLParam(r, "id"))
		if err != nil {
			return nil, 0, err
		}
		return shiftStatus(sh, a.snapshot(), time.Now()), rev, nil
	})
}

// extendShift answers PATCH /v1/shifts/{id}: a new expiry for an active
// shift, and a new reason if given.
func (a *apiServer) extendShift(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !noCreateOnly(w, r) {
		return
	}
	var body apitypes.ShiftPatch
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &body) {
		return
	}
	exp, p := expiryOf(body.ExpiresIn, body.Expires, time.Now())
	if p != nil {
		writeProblem(w, *p)
		return
	}
	ch, ok := a.serveWrite(w, r, shiftRev(id), func(wr *writeReq) error {
		_, err := wr.st.ExtendShift(wr.ctx, id, exp, body.Reason, wr.cond, wr.opts...)
		return err
	})
	if ok {
		a.respondShift(w, ch, false)
	}
}

// cancelShift answers DELETE /v1/shifts/{id}: the shift ends now and the
// weights it changed come back (through slow start where a service has
// it). The shift stays listed, cancelled, for a day.
func (a *apiServer) cancelShift(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !drainBody(w, r) || !noCreateOnly(w, r) {
		return
	}
	ch, ok := a.serveWrite(w, r, shiftRev(id), func(wr *writeReq) error {
		_, err := wr.st.CancelShift(wr.ctx, id, wr.cond, wr.opts...)
		return err
	})
	if ok {
		a.respondShift(w, ch, true)
	}
}

// checkWatermarkGuard refuses revert_if.high_watermark for a shift none
// of whose services (as this server serves them) steers by load: they
// have no high watermark to watch.
func (a *apiServer) checkWatermarkGuard(sh *regions.Shift) *Problem {
	if !sh.RevertIf.HighWatermark {
		return nil
	}
	if snap := a.snapshot(); snap != nil {
		for _, svc := range snap.State().Services {
			if svc != nil && svc.Load != nil && sh.Affects(svc) {
				return nil
			}
		}
	}
	p := badField("revert_if.high_watermark", "%s: no service it shifts steers by load, so none has a high watermark", sh.Describe())
	return &p
}
