package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// MaxResponseBytes bounds what the client reads of one response.
const MaxResponseBytes = 64 << 20

// Client calls one Meridian server's HTTP API. It is safe for concurrent
// use.
type Client struct {
	base   *url.URL
	token  string
	hc     *http.Client
	agent  string
	strict bool
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as the bearer token of every request: an admin
// token for writes, a read or admin token for reads (unless the server
// has open reads).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes requests with hc instead of a client of its own
// (for TLS settings, proxies, a transport's timeouts).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(agent string) Option { return func(c *Client) { c.agent = agent } }

// WithStrictDecoding refuses responses with fields the API's types do
// not know: a check that client and server agree on every field (tests
// use it). By default unknown fields are ignored, so that an older
// client can read a newer server.
func WithStrictDecoding() Option { return func(c *Client) { c.strict = true } }

// New returns a client of the API at server: a base URL like
// http://127.0.0.1:8053, or host:port for http.
func New(server string, opts ...Option) (*Client, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(strings.TrimSuffix(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q: want a URL like http://127.0.0.1:8053", server)
	}
	c := &Client{base: u, hc: &http.Client{}, agent: "meridian-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Server is the base URL of the API.
func (c *Client) Server() string { return c.base.String() }

// Error is a request the API refused: its status and problem document.
type Error struct {
	// Method and Path are the request's (the path without the query).
	Method, Path string
	StatusCode   int
	// Problem is the answer's problem document. An answer that was not
	// one (a proxy's error page) gets the status's text as its title and
	// the body as its detail.
	Problem apitypes.Problem
}

// Error says, in one line, the status, the title, and each invalid field
// or else the detail.
func (e *Error) Error() string {
	title := e.Problem.Title
	if title == "" {
		title = http.StatusText(e.StatusCode)
	}
	msg := strconv.Itoa(e.StatusCode) + " " + title
	var parts []string
	for _, fe := range e.Problem.Errors {
		if fe.Field != "" {
			parts = append(parts, fe.Field+": "+fe.Message)
		} else {
			parts = append(parts, fe.Message)
		}
	}
	switch {
	case len(parts) > 0:
		msg += ": " + strings.Join(parts, "; ")
	case e.Problem.Detail != "":
		msg += ": " + e.Problem.Detail
	}
	return msg
}

// StatusCode is the HTTP status of a refused request (an *Error in err's
// chain), 0 for any other error.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// ProblemOf returns the problem document of a refused request, nil for
// any other error.
func ProblemOf(err error) *apitypes.Problem {
	var e *Error
	if errors.As(err, &e) {
		return &e.Problem
	}
	return nil
}

// RevisionTag is the entity tag of a mod revision, as the API's ETag
// header carries it.
func RevisionTag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// WriteOption changes how a write is made.
type WriteOption func(*writeOpts)

type writeOpts struct {
	dryRun, force bool
	ifMatch       string
	createOnly    bool
}

// DryRun validates the write and checks it against etcd as the write
// would be, writes nothing, and answers with what would change.
func DryRun() WriteOption { return func(o *writeOpts) { o.dryRun = true } }

// Force makes a write that leaves a service answering NODATA (every
// weight 0, the last region it can answer from drained); without it the
// API refuses such a write with 409.
func Force() WriteOption { return func(o *writeOpts) { o.force = true } }

// IfMatch makes the write conditional on the object's entity tag (the
// ETag of a read, or RevisionTag of a revision): 412 if it changed.
func IfMatch(etag string) WriteOption { return func(o *writeOpts) { o.ifMatch = etag } }

// IfRevision makes the write conditional on the object's mod revision.
func IfRevision(rev int64) WriteOption { return IfMatch(RevisionTag(rev)) }

// IfExists makes the write require that the object exists (If-Match: *).
func IfExists() WriteOption { return IfMatch("*") }

// CreateOnly makes a PUT create the object only: 412 if it exists
// (If-None-Match: *).
func CreateOnly() WriteOption { return func(o *writeOpts) { o.createOnly = true } }

// request is one call of the API.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	body         io.Reader
	contentType  string
	// raw, when set, receives the body instead of decoding it.
	raw *[]byte
	// also is an error status whose answer is decoded as a success (0:
	// none).
	also int
}

func (r *request) write(opts []WriteOption) {
	var o writeOpts
	for _, f := range opts {
		f(&o)
	}
	if r.query == nil {
		r.query = url.Values{}
	}
	if r.header == nil {
		r.header = http.Header{}
	}
	if o.dryRun {
		r.query.Set("dry_run", "true")
	}
	if o.force {
		r.query.Set("force", "true")
	}
	if o.ifMatch != "" {
		r.header.Set("If-Match", o.ifMatch)
	}
	if o.createOnly {
		r.header.Set("If-None-Match", "*")
	}
}

// jsonBody encodes v as a request body.
func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// do makes one request and decodes its JSON answer into out (nil: the
// answer is not read beyond its status). It returns the answer's headers.
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	target := c.base.String() + r.path
	if q := r.query.Encode(); q != "" {
		target += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, r.body)
	if err != nil {
		return nil, err
	}
	if f, ok := r.body.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			req.ContentLength = st.Size()
		}
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", cmpOr(r.contentType, "application/json"))
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.agent != "" {
		req.Header.Set("User-Agent", c.agent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return resp.Header, fmt.Errorf("%s %s: reading the answer: %w", r.method, r.path, err)
	}
	if len(b) > MaxResponseBytes {
		return resp.Header, fmt.Errorf("%s %s: the answer is larger than %d bytes", r.method, r.path, MaxResponseBytes)
	}
	if resp.StatusCode >= 400 && resp.StatusCode != r.also {
		return resp.Header, c.refused(r, resp, b)
	}
	if r.raw != nil {
		*r.raw = b
		return resp.Header, nil
	}
	if out != nil {
		if err := c.decode(b, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: cannot decode the answer (%d): %w", r.method, r.path, resp.StatusCode, err)
		}
	}
	return resp.Header, nil
}

// refused makes the *Error of an answer with an error status.
func (c *Client) refused(r request, resp *http.Response, b []byte) error {
	e := &Error{Method: r.method, Path: r.path, StatusCode: resp.StatusCode}
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/problem+json") || strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(b, &e.Problem); err == nil {
			return e
		}
	}
	e.Problem = apitypes.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: strings.TrimSpace(string(b))}
	return e
}

func (c *Client) decode(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if c.strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(out); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// regionPath and servicePath are the paths of one region or service; a
// name is one path segment whatever it holds. Paths are escaped.
func regionPath(name string) string  { return "/v1/regions/" + url.PathEscape(name) }
func servicePath(name string) string { return "/v1/services/" + url.PathEscape(name) }

// fetch reads path as a T, and its ETag.
func fetch[T any](ctx context.Context, c *Client, path string, query url.Values) (*T, string, error) {
	out := new(T)
	h, err := c.do(ctx, request{method: http.MethodGet, path: path, query: query}, out)
	if err != nil {
		return nil, "", err
	}
	return out, h.Get("ETag"), nil
}

// changeJSON makes a write with v as its JSON body.
func (c *Client) changeJSON(ctx context.Context, method, path string, v any, opts []WriteOption) (*apitypes.ChangeResponse, error) {
	body, err := jsonBody(v)
	if err != nil {
		return nil, err
	}
	return c.change(ctx, request{method: method, path: path, body: body}, opts)
}

// change makes a write and returns its change.
func (c *Client) change(ctx context.Context, r request, opts []WriteOption) (*apitypes.ChangeResponse, error) {
	r.write(opts)
	out := new(apitypes.ChangeResponse)
	if _, err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Live asks whether the process answers (GET /health/live).
func (c *Client) Live(ctx context.Context) (*apitypes.Health, error) {
	out, _, err := fetch[apitypes.Health](ctx, c, "/health/live", nil)
	return out, err
}

// Ready asks whether the server serves (GET /health/ready): Status is
// "ready", or "not ready" with the Reason, which is not an error.
func (c *Client) Ready(ctx context.Context) (*apitypes.Health, error) {
	out := new(apitypes.Health)
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/health/ready", also: http.StatusServiceUnavailable}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Details reads readiness, zones, DNS counters and the status
// (GET /health/details).
func (c *Client) Details(ctx context.Context) (*apitypes.Details, error) {
	out, _, err := fetch[apitypes.Details](ctx, c, "/health/details", nil)
	return out, err
}

// Metrics reads the Prometheus metrics, in the text exposition format
// (GET /metrics).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	var b []byte
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/metrics", raw: &b}, nil)
	return b, err
}

// OpenAPI reads the API's OpenAPI 3.1 document (GET /v1/openapi.json).
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var b []byte
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/openapi.json", raw: &b}, nil)
	return b, err
}

// Status reads each region's health, each service's weights and
// expected shares, and the snapshot served (GET /v1/status).
func (c *Client) Status(ctx context.Context) (*apitypes.Status, error) {
	out, _, err := fetch[apitypes.Status](ctx, c, "/v1/status", nil)
	return out, err
}

// ExplainRequest is the query GET /v1/explain explains.
type ExplainRequest struct {
	// Name is a service, or a name whose CNAME chain leads to one.
	Name string
	// Client is the ECS subnet the query carries: an address or a
	// prefix; "" for none.
	Client string
	// Resolver is the address the query comes from; "" for the caller.
	Resolver string
	// Type is A (the default) or AAAA.
	Type string
	// Seed, when set, fixes the weighted random draw.
	Seed *uint64
}

// Explain asks which answer a DNS query would get now, with every step
// of the decision (GET /v1/explain).
func (c *Client) Explain(ctx context.Context, q ExplainRequest) (*apitypes.Explain, error) {
	v := url.Values{"name": {q.Name}}
	for k, s := range map[string]string{"client": q.Client, "resolver": q.Resolver, "type": q.Type} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Seed != nil {
		v.Set("seed", strconv.FormatUint(*q.Seed, 10))
	}
	out, _, err := fetch[apitypes.Explain](ctx, c, "/v1/explain", v)
	return out, err
}

// Regions lists every region (GET /v1/regions).
func (c *Client) Regions(ctx context.Context) (*apitypes.RegionList, error) {
	out, _, err := fetch[apitypes.RegionList](ctx, c, "/v1/regions", nil)
	return out, err
}

// Region reads one region and its ETag (GET /v1/regions/{name}).
func (c *Client) Region(ctx context.Context, name string) (*regions.Region, string, error) {
	return fetch[regions.Region](ctx, c, regionPath(name), nil)
}

// PutRegion creates or replaces a region (PUT /v1/regions/{name}).
func (c *Client) PutRegion(ctx context.Context, r *regions.Region, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.changeJSON(ctx, http.MethodPut, regionPath(r.Name), r, opts)
}

// DeleteRegion deletes a region no service uses (DELETE
// /v1/regions/{name}); 409 while one does.
func (c *Client) DeleteRegion(ctx context.Context, name string, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodDelete, path: regionPath(name)}, opts)
}

// Drain takes a region out of every answer (POST
// /v1/regions/{name}/drain).
func (c *Client) Drain(ctx context.Context, name string, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodPost, path: regionPath(name) + "/drain"}, opts)
}

// Undrain answers a region again by its weights (POST
// /v1/regions/{name}/undrain).
func (c *Client) Undrain(ctx context.Context, name string, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodPost, path: regionPath(name) + "/undrain"}, opts)
}

// Services lists every service (GET /v1/services).
func (c *Client) Services(ctx context.Context) (*apitypes.ServiceList, error) {
	out, _, err := fetch[apitypes.ServiceList](ctx, c, "/v1/services", nil)
	return out, err
}

// Service reads one service and its ETag (GET /v1/services/{name}); the
// name may lack the final dot.
func (c *Client) Service(ctx context.Context, name string) (*regions.Service, string, error) {
	return fetch[regions.Service](ctx, c, servicePath(name), nil)
}

// PutService creates or replaces a service (PUT /v1/services/{name});
// every region it names must exist.
func (c *Client) PutService(ctx context.Context, s *regions.Service, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.changeJSON(ctx, http.MethodPut, servicePath(s.Name), s, opts)
}

// PutServices creates or replaces several services at once (POST
// /v1/services, at most 1000): one invalid service, or one that would
// answer NODATA where it answers now (without Force), refuses the whole
// batch, its problem naming it as services[i].
func (c *Client) PutServices(ctx context.Context, svcs []*regions.Service, opts ...WriteOption) (*apitypes.BatchResponse, error) {
	body, err := jsonBody(apitypes.ServiceBatch{Services: svcs})
	if err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: "/v1/services", body: body}
	r.write(opts)
	out := new(apitypes.BatchResponse)
	if _, err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteService deletes a service (DELETE /v1/services/{name}).
func (c *Client) DeleteService(ctx context.Context, name string, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodDelete, path: servicePath(name)}, opts)
}

// Weights reads a service's weights, the shares of answers to expect,
// and its ETag (GET /v1/services/{name}/weights).
func (c *Client) Weights(ctx context.Context, service string) (*apitypes.Weights, string, error) {
	return fetch[apitypes.Weights](ctx, c, servicePath(service)+"/weights", nil)
}

// SetWeights changes the weights of the regions named, leaving the
// others as they are (PATCH /v1/services/{name}/weights).
func (c *Client) SetWeights(ctx context.Context, service string, weights map[string]uint32, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.weights(ctx, http.MethodPatch, service, weights, opts)
}

// ReplaceWeights sets every weight of a service: the regions not named
// get 0 (PUT /v1/services/{name}/weights).
func (c *Client) ReplaceWeights(ctx context.Context, service string, weights map[string]uint32, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.weights(ctx, http.MethodPut, service, weights, opts)
}

func (c *Client) weights(ctx context.Context, method, service string, weights map[string]uint32, opts []WriteOption) (*apitypes.ChangeResponse, error) {
	return c.changeJSON(ctx, method, servicePath(service)+"/weights", apitypes.WeightsRequest{Weights: weights}, opts)
}

// Latency reads what the stored latency table holds (GET /v1/latency);
// a 404 when there is none.
func (c *Client) Latency(ctx context.Context) (*apitypes.Latency, error) {
	out, _, err := fetch[apitypes.Latency](ctx, c, "/v1/latency", nil)
	return out, err
}

// ImportLatency replaces the latency table with the CSV read from csv,
// "cidr,region,rtt_ms" lines (PUT /v1/latency). An *os.File is sent with
// its length; other readers are sent chunked.
func (c *Client) ImportLatency(ctx context.Context, csv io.Reader, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodPut, path: "/v1/latency", body: csv, contentType: "text/csv"}, opts)
}

// Audit reads a page of the audit log, newest first (GET /v1/audit):
// up to limit records (0: the server's default) after the cursor after
// ("" for the newest; the Next of the page before).
func (c *Client) Audit(ctx context.Context, limit int, after string) (*apitypes.AuditPage, error) {
	v := url.Values{}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		v.Set("after", after)
	}
	out, _, err := fetch[apitypes.AuditPage](ctx, c, "/v1/audit", v)
	return out, err
}

// AcceptEmpty confirms to this server that etcd is meant to hold no
// regions and no services, so that it serves the empty state it refuses
// (POST /v1/state/accept-empty); 409 when it refuses nothing.
func (c *Client) AcceptEmpty(ctx context.Context, opts ...WriteOption) (*apitypes.ChangeResponse, error) {
	return c.change(ctx, request{method: http.MethodPost, path: "/v1/state/accept-empty"}, opts)
}

// shiftPath is the path of one shift.
func shiftPath(id string) string { return "/v1/shifts/" + url.PathEscape(id) }

// Shifts lists every shift, in force or ended within the last day, with
// its state (GET /v1/shifts).
func (c *Client) Shifts(ctx context.Context) (*apitypes.ShiftList, error) {
	out, _, err := fetch[apitypes.ShiftList](ctx, c, "/v1/shifts", nil)
	return out, err
}

// Shift reads one shift and its ETag (GET /v1/shifts/{id}).
func (c *Client) Shift(ctx context.Context, id string) (*apitypes.ShiftStatus, string, error) {
	return fetch[apitypes.ShiftStatus](ctx, c, shiftPath(id), nil)
}

// shiftWrite makes a shift write and returns its change.
func (c *Client) shiftWrite(ctx context.Context, r request, v any, opts []WriteOption) (*apitypes.ShiftChange, error) {
	if v != nil {
		body, err := jsonBody(v)
		if err != nil {
			return nil, err
		}
		r.body = body
	}
	r.write(opts)
	out := new(apitypes.ShiftChange)
	if _, err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateShift makes a shift (POST /v1/shifts): it drains a region from a
// service or from all, or sets weights of one service, until its expiry
// (at most 72 h ahead). The answer has the shift with its id and the
// services it changes with their expected shares; with DryRun, what
// they would be.
func (c *Client) CreateShift(ctx context.Context, req apitypes.ShiftRequest, opts ...WriteOption) (*apitypes.ShiftChange, error) {
	return c.shiftWrite(ctx, request{method: http.MethodPost, path: "/v1/shifts"}, req, opts)
}

// ExtendShift gives an active shift a new expiry, and a new reason if
// the patch has one (PATCH /v1/shifts/{id}).
func (c *Client) ExtendShift(ctx context.Context, id string, patch apitypes.ShiftPatch, opts ...WriteOption) (*apitypes.ShiftChange, error) {
	return c.shiftWrite(ctx, request{method: http.MethodPatch, path: shiftPath(id)}, patch, opts)
}

// CancelShift ends a shift now (DELETE /v1/shifts/{id}); the weights it
// changed come back.
func (c *Client) CancelShift(ctx context.Context, id string, opts ...WriteOption) (*apitypes.ShiftChange, error) {
	return c.shiftWrite(ctx, request{method: http.MethodDelete, path: shiftPath(id)}, nil, opts)
}
