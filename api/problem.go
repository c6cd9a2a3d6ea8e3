package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// Problem is an RFC 9457 problem details object (apitypes.Problem).
type Problem = apitypes.Problem

// FieldError is one invalid input field.
type FieldError = apitypes.FieldError

// writeProblem answers with application/problem+json.
func writeProblem(w http.ResponseWriter, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client went away; nothing to do
}

// badField is a 400 naming one field.
func badField(field, format string, args ...any) Problem {
	msg := fmt.Sprintf(format, args...)
	return Problem{Status: http.StatusBadRequest, Title: "invalid request", Detail: field + ": " + msg,
		Errors: []FieldError{{Field: field, Message: msg}}}
}

// retryAfter is what a 503 asks clients to wait, in seconds.
const retryAfter = 5

// storeProblem turns a store error into the answer: 400 for invalid
// input (with each field), 404 (with the fields that name what does not
// exist), 409 for a region in use, a shift that ended or a write that
// would leave services answering NODATA (naming them), 412 for a failed
// precondition, 413 for an oversized upload, 503 with Retry-After when
// etcd cannot answer in time (DNS keeps answering from its last state),
// 500 for anything else.
//
// The details of an answer are Meridian's own words about the request:
// what etcd or its client said (its addresses, its keys, the server's
// paths) goes to the server's log, never to the client; the 503 and the
// 500 say so.
func (a *apiServer) storeProblem(r *http.Request, err error) Problem {
	var (
		ve  *regions.ValidationError
		ce  *store.ConflictError
		iu  *store.InUseError
		nd  *store.NoDataError
		me  *store.MissingError
		se  *store.ShiftEndedError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &me):
		p := validationProblem(me.Err)
		p.Status, p.Title = http.StatusNotFound, "not found"
		return p
	case errors.As(err, &ve):
		return validationProblem(ve)
	case errors.Is(err, regions.ErrInvalid):
		return Problem{Status: http.StatusBadRequest, Title: "invalid request", Detail: err.Error()}
	case errors.As(err, &ce):
		cur := ce.Current
		return Problem{Status: http.StatusPreconditionFailed, Detail: err.Error(), CurrentRevision: &cur}
	case errors.Is(err, store.ErrNotFound):
		return Problem{Status: http.StatusNotFound, Detail: err.Error()}
	case errors.As(err, &se):
		return Problem{Status: http.StatusConflict, Title: "shift ended", Detail: err.Error()}
	case errors.As(err, &iu):
		return Problem{Status: http.StatusConflict, Title: "in use", Detail: err.Error(), InUseBy: iu.Services}
	case errors.As(err, &nd):
		return Problem{Status: http.StatusConflict, Title: "would answer NODATA",
			Detail: "refused: " + store.DescribeNoData(nd.Services) + ". Add force=true to make the write anyway", NoData: nd.Services}
	case errors.Is(err, store.ErrConflict):
		return Problem{Status: http.StatusConflict, Detail: err.Error() + "; try again"}
	case store.Unavailable(err):
		a.opts.Logger.Warn("api request: etcd did not answer in time", "method", r.Method, "path", r.URL.Path, "err", err)
		return Problem{Status: http.StatusServiceUnavailable, Title: "etcd unavailable",
			Detail: "etcd did not answer in time. DNS keeps answering from the last state it had. " +
				"Retry later; a write that timed out may still have been applied, so read before writing again",
			RetryAfter: retryAfter}
	case errors.Is(err, context.Canceled):
		return Problem{Status: 499, Title: "client closed request", Detail: "the request was canceled before it was done"}
	}
	return a.internalProblem(r, err)
}

// internalProblem logs an error the client cannot act on and answers
// 500 without its details.
func (a *apiServer) internalProblem(r *http.Request, err error) Problem {
	a.opts.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return Problem{Status: http.StatusInternalServerError, Detail: internalDetail}
}

// internalDetail is the detail of every 500: the log has the rest.
const internalDetail = "the server failed on this request; its log has the details"

// validationProblem is a 400 naming each invalid field.
func validationProblem(ve *regions.ValidationError) Problem {
	p := Problem{Status: http.StatusBadRequest, Title: "invalid " + ve.Kind, Detail: ve.Error()}
	for _, fp := range ve.Problems {
		p.Errors = append(p.Errors, FieldError{Field: fp.Field, Message: fp.Message})
	}
	return p
}

func (a *apiServer) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, a.storeProblem(r, err))
}
