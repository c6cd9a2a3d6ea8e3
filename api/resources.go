package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// weightsBody is the body of PUT and PATCH /v1/services/{name}/weights.
// The weights are read as JSON values first so that a negative or
// fractional weight gets a message naming its region.
type weightsBody struct {
	Weights map[string]any `json:"weights"`
}

// respond answers a write with its change: 201 when it created the
// object, 200 otherwise; the ETag is the object's revision after it.
func respond(w http.ResponseWriter, resp apitypes.ChangeResponse) {
	respondChange(w, resp.Change, resp)
}

// respondChange answers a write of ch with body (which holds ch).
func respondChange(w http.ResponseWriter, ch apitypes.Change, body any) {
	if ch.After != nil && ch.Revision > 0 {
		w.Header().Set("ETag", etag(ch.Revision))
	}
	status := http.StatusOK
	if ch.Changed && !ch.DryRun && ch.Before == nil && ch.After != nil {
		status = http.StatusCreated
	}
	writeJSON(w, status, body)
}

// writeSetup reads what every write needs: the precondition headers, the
// dry-run flag, the store with a bounded context. With If-Match: * the
// object's current revision becomes the condition (exists, unchanged).
type writeReq struct {
	st     Store
	ctx    context.Context
	cancel context.CancelFunc
	cond   store.Cond
	opts   []store.WriteOption
	ch     store.Change
}

func (a *apiServer) writeSetup(w http.ResponseWriter, r *http.Request, current func(context.Context, Store) (int64, error)) (*writeReq, bool) {
	cond, mustExist, p := precondition(r)
	if p != nil {
		writeProblem(w, *p)
		return nil, false
	}
	wr := &writeReq{cond: cond}
	opts, _, p := writeOptions(r, &wr.ch)
	if p != nil {
		writeProblem(w, *p)
		return nil, false
	}
	wr.opts = opts
	st, ctx, cancel, ok := a.storeFor(w, r)
	if !ok {
		return nil, false
	}
	wr.st, wr.ctx, wr.cancel = st, ctx, cancel
	if mustExist {
		rev, err := current(ctx, st)
		if errors.Is(err, store.ErrNotFound) {
			err = &store.ConflictError{What: r.URL.Path, Current: 0}
		}
		if err != nil {
			cancel()
			a.fail(w, r, err)
			return nil, false
		}
		wr.cond = store.IfRevision(rev)
	}
	return wr, true
}

func regionRev(name string) func(context.Context, Store) (int64, error) {
	return func(ctx context.Context, st Store) (int64, error) {
		_, rev, err := st.GetRegion(ctx, name)
		return rev, err
	}
}

func serviceRev(name string) func(context.Context, Store) (int64, error) {
	return func(ctx context.Context, st Store) (int64, error) {
		_, rev, err := st.GetService(ctx, name)
		return rev, err
	}
}

// serveRead answers a read: the body read returns, with the revision it
// read at as the ETag; a store error becomes its problem.
func (a *apiServer) serveRead(w http.ResponseWriter, r *http.Request, read func(context.Context, Store) (any, int64, error)) {
	st, ctx, cancel, ok := a.storeFor(w, r)
	if !ok {
		return
	}
	defer cancel()
	body, rev, err := read(ctx, st)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(rev))
	writeJSON(w, http.StatusOK, body)
}

// serveChange is serveWrite answered with the change made (respond).
func (a *apiServer) serveChange(w http.ResponseWriter, r *http.Request, current func(context.Context, Store) (int64, error), write func(*writeReq) error) {
	if ch, ok := a.serveWrite(w, r, current, write); ok {
		respond(w, apitypes.ChangeResponse{Change: ch})
	}
}

// serveWrite runs write under the request's precondition and dry-run
// flag (writeSetup) and returns the change it made; on false the
// request has been answered with the problem.
func (a *apiServer) serveWrite(w http.ResponseWriter, r *http.Request, current func(context.Context, Store) (int64, error), write func(*writeReq) error) (store.Change, bool) {
	wr, ok := a.writeSetup(w, r, current)
	if !ok {
		return store.Change{}, false
	}
	defer wr.cancel()
	if err := write(wr); err != nil {
		a.fail(w, r, err)
		return store.Change{}, false
	}
	return wr.ch, true
}

func (a *apiServer) listRegions(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		list, rev, err := st.ListRegions(ctx)
		return apitypes.RegionList{Revision: rev, Regions: list}, rev, err
	})
}

func (a *apiServer) getRegion(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		return st.GetRegion(ctx, chi.URLParam(r, "name"))
	})
}

func (a *apiServer) putRegion(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var reg regions.Region
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &reg) {
		return
	}
	switch {
	case reg.Name == "":
		reg.Name = name
	case reg.Name != name:
		writeProblem(w, badField("name", "%q does not match the region %q of the path", reg.Name, name))
		return
	}
	a.serveChange(w, r, regionRev(name), func(wr *writeReq) error {
		_, err := wr.st.PutRegion(wr.ctx, &reg, wr.cond, wr.opts...)
		return err
	})
}

// noCreateOnly refuses If-None-Match on a request that cannot create.
func noCreateOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("If-None-Match") != "" {
		writeProblem(w, badField("If-None-Match", "this request does not create anything; If-Match makes it conditional"))
		return false
	}
	return true
}

func (a *apiServer) deleteRegion(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if !drainBody(w, r) || !noCreateOnly(w, r) {
		return
	}
	a.serveChange(w, r, regionRev(name), func(wr *writeReq) error {
		return wr.st.DeleteRegion(wr.ctx, name, wr.cond, wr.opts...)
	})
}

// drain answers POST /v1/regions/{name}/drain and …/undrain.
func (a *apiServer) drain(drained bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if !drainBody(w, r) || !noCreateOnly(w, r) {
			return
		}
		a.serveChange(w, r, regionRev(name), func(wr *writeReq) error {
			_, err := wr.st.SetDrained(wr.ctx, name, drained, wr.cond, wr.opts...)
			return err
		})
	}
}

func (a *apiServer) listServices(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		list, rev, err := st.ListServices(ctx)
		return apitypes.ServiceList{Revision: rev, Services: list}, rev, err
	})
}

// serviceName is the path's service name, with or without the final dot,
// in its canonical form.
func serviceName(r *http.Request) string {
	return regions.CanonicalName(chi.URLParam(r, "name"))
}

func (a *apiServer) getService(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		return st.GetService(ctx, serviceName(r))
	})
}

func (a *apiServer) putService(w http.ResponseWriter, r *http.Request) {
	name := serviceName(r)
	var svc regions.Service
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &svc) {
		return
	}
	switch {
	case svc.Name == "":
		svc.Name = name
	case regions.CanonicalName(svc.Name) != name:
		writeProblem(w, badField("name", "%q does not match the service %q of the path", svc.Name, name))
		return
	default:
		svc.Name = name
	}
	a.serveChange(w, r, serviceRev(name), func(wr *writeReq) error {
		_, err := wr.st.PutService(wr.ctx, &svc, wr.cond, wr.opts...)
		return err
	})
}

// putServices creates or replaces the services of the body, in batches
// of etcd transactions (store.PutServices): how `meridian ctl apply`
// writes thousands of services.
func (a *apiServer) putServices(w http.ResponseWriter, r *http.Request) {
	var body apitypes.ServiceBatch
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &body) {
		return
	}
	for i, svc := range body.Services {
		if svc == nil {
			writeProblem(w, badField(fmt.Sprintf("services[%d]", i), "null is not a service"))
			return
		}
		svc.Name = regions.CanonicalName(svc.Name)
	}
	opts, dry, p := writeOptions(r, nil)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	st, ctx, cancel, ok := a.storeFor(w, r)
	if !ok {
		return
	}
	defer cancel()
	changes, err := st.PutServices(ctx, body.Services, opts...)
	var be *store.BatchError
	if errors.As(err, &be) {
		p := a.storeProblem(r, be.Err)
		prefix := fmt.Sprintf("services[%d]", be.Index)
		p.Detail = prefix + ": " + p.Detail
		for i := range p.Errors {
			p.Errors[i].Field = prefix + "." + p.Errors[i].Field
		}
		if len(p.Errors) == 0 {
			p.Errors = []FieldError{{Field: prefix, Message: be.Err.Error()}}
		}
		writeProblem(w, p)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := apitypes.BatchResponse{Changes: changes, DryRun: dry}
	if resp.Changes == nil {
		resp.Changes = []store.Change{}
	}
	for _, ch := range changes {
		switch {
		case !ch.Changed:
			resp.Counts.Unchanged++
		case ch.Before == nil:
			resp.Counts.Created++
		default:
			resp.Counts.Replaced++
		}
		resp.Changed = resp.Changed || ch.Changed
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *apiServer) deleteService(w http.ResponseWriter, r *http.Request) {
	name := serviceName(r)
	if !drainBody(w, r) || !noCreateOnly(w, r) {
		return
	}
	a.serveChange(w, r, serviceRev(name), func(wr *writeReq) error {
		return wr.st.DeleteService(wr.ctx, name, wr.cond, wr.opts...)
	})
}

func (a *apiServer) getWeights(w http.ResponseWriter, r *http.Request) {
	a.serveRead(w, r, func(ctx context.Context, st Store) (any, int64, error) {
		svc, rev, err := st.GetService(ctx, serviceName(r))
		if err != nil {
			return nil, 0, err
		}
		ws := make(map[string]uint32, len(svc.Regions))
		for _, sr := range svc.Regions {
			ws[sr.Region] = sr.Weight
		}
		return apitypes.Weights{Service: svc.Name, Revision: rev, Weights: ws, ExpectedShare: a.shares(svc)}, rev, nil
	})
}

// setWeights answers PUT (replace: every region of the service not named
// gets 0) and PATCH (only the regions named change).
func (a *apiServer) setWeights(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := serviceName(r)
		var body weightsBody
		if !decodeJSON(w, r, a.opts.MaxBodyBytes, &body) {
			return
		}
		if body.Weights == nil {
			writeProblem(w, badField("weights", `required: {"weights": {"REGION": WEIGHT, ...}}`))
			return
		}
		ws, p := parseWeights(body.Weights)
		if p != nil {
			writeProblem(w, *p)
			return
		}
		ch, ok := a.serveWrite(w, r, serviceRev(name), func(wr *writeReq) error {
			set := wr.st.SetWeights
			if replace {
				set = wr.st.ReplaceWeights
			}
			_, err := set(wr.ctx, name, ws, wr.cond, wr.opts...)
			return err
		})
		if !ok {
			return
		}
		resp := apitypes.ChangeResponse{Change: ch}
		var after regions.Service
		if err := json.Unmarshal(ch.After, &after); err == nil {
			resp.ExpectedShare = a.shares(&after)
		}
		respond(w, resp)
	}
}

// parseWeights reads weights given as JSON values: each a whole number
// from 0 to regions.MaxWeight, at least one; a problem names each bad
// one by its region.
func parseWeights(in map[string]any) (map[string]uint32, *Problem) {
	if len(in) == 0 {
		p := badField("weights", "give at least one region's weight")
		return nil, &p
	}
	ws := make(map[string]uint32, len(in))
	var errs []FieldError
	for _, region := range slices.Sorted(maps.Keys(in)) {
		f, ok := in[region].(float64)
		if !ok || f != math.Trunc(f) || f < 0 || f > regions.MaxWeight {
			v, _ := json.Marshal(in[region])
			errs = append(errs, FieldError{Field: "weights." + region, Message: fmt.Sprintf("%s: want a whole number from 0 to %d", v, regions.MaxWeight)})
			continue
		}
		ws[region] = uint32(f)
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Field + ": " + e.Message
		}
		return nil, &Problem{Status: http.StatusBadRequest, Title: "invalid weights", Detail: strings.Join(msgs, "; "), Errors: errs}
	}
	return ws, nil
}

// shares is the expected share of answers per region of svc, per family,
// in the server's current snapshot with svc in it as given.
func (a *apiServer) shares(svc *regions.Service) map[string]regions.Shares {
	out := map[string]regions.Shares{}
	if a.opts.Snapshot == nil {
		return out
	}
	snap := a.opts.Snapshot()
	if snap == nil {
		return out
	}
	st := snap.State().Clone()
	name := regions.CanonicalName(svc.Name)
	st.Services[name] = svc
	s := regions.BuildSnapshot(st, snap, snap.Options())
	return familyShares(s, s.ServiceByName(name))
}

// familyShares is the expected share of answers per region of v in s,
// per address family ("ipv4", "ipv6"); empty for a nil v.
func familyShares(s *regions.Snapshot, v *regions.ServiceView) map[string]regions.Shares {
	out := map[string]regions.Shares{}
	if v == nil {
		return out
	}
	for fam, qt := range map[string]uint16{"ipv4": regions.QTypeA, "ipv6": regions.QTypeAAAA} {
		if sh, ok := s.ExpectedShares(v, qt); ok {
			out[fam] = sh
		}
	}
	return out
}
