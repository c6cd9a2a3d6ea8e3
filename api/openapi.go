package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// opDoc documents one route for the OpenAPI document.
type opDoc struct {
	summary     string
	description string
	query       []paramDoc
	// body is a value of the JSON request body's type; csv says the body
	// is the latency CSV instead.
	body any
	csv  bool
	// resp is a value of the 2xx response body's type; text says the
	// response is Prometheus text.
	resp any
	text bool
	// events: the response is a stream of server-sent events.
	events bool
	// errors lists the problem statuses the route answers with.
	errors []int
	// force: the write may leave services answering NODATA, which is
	// refused with 409 unless it has ?force=true.
	force bool
	// created: the write creates an object of a new name: 201.
	created bool
	// head: the HEAD twin of a GET route, answered without a body.
	head bool
}

type paramDoc struct {
	name, typ, desc string
	required        bool
}

var (
	readErrors  = []int{401, 404, 503}
	writeErrors = []int{400, 401, 403, 404, 409, 412, 413, 503}
	healthResp  = apitypes.Health{}
)

var (
	docLive    = opDoc{summary: "Liveness: the process answers", resp: healthResp}
	docReady   = opDoc{summary: "Readiness: zones, GeoIP (when configured) and a regions snapshot are loaded; 503 until then", resp: healthResp}
	docDetails = opDoc{summary: "Readiness, zones, DNS transport counters and the status", resp: apitypes.Details{}, errors: []int{401}}
	docMetrics = opDoc{summary: "Prometheus metrics (text exposition format)", text: true}
	docOpenAPI = opDoc{summary: "This document (OpenAPI 3.1)", resp: map[string]any{}}
	docStatus  = opDoc{summary: "Each region's state, VIPs and prober votes, answers per region, each service's weights and expected shares, the snapshot's revision and age",
		query: []paramDoc{
			{"services", "boolean", "false: leave the list of services out (default true)", false},
		},
		resp: apitypes.Status{}, errors: []int{400, 401}}
	docExplain = opDoc{summary: "The decision a DNS query would get now, with every step",
		query: []paramDoc{
			{"name", "string", "service name, with or without the final dot", true},
			{"client", "string", "the ECS subnet of the query: an address or prefix, like 192.0.2.1 or 2001:db8::/48; default: none", false},
			{"resolver", "string", "the address the query comes from; default: the caller", false},
			{"type", "string", "A (default) or AAAA", false},
			{"seed", "integer", "fixes the weighted random draw", false},
		},
		resp: apitypes.Explain{}, errors: []int{400, 401, 404, 503}}
	docListRegions  = opDoc{summary: "Every region, and the etcd revision it was read at (ETag)", resp: apitypes.RegionList{}, errors: readErrors}
	docGetRegion    = opDoc{summary: "One region; the ETag is its mod revision", resp: regions.Region{}, errors: readErrors}
	docPutRegion    = opDoc{summary: "Create or replace a region", body: regions.Region{}, resp: apitypes.ChangeResponse{}, errors: writeErrors, force: true}
	docDeleteRegion = opDoc{summary: "Delete a region no service uses (409 while one does)", resp: apitypes.ChangeResponse{}, errors: writeErrors}
	docDrain        = opDoc{summary: "Drain a region: take it out of every answer, whatever the weights", resp: apitypes.ChangeResponse{}, errors: writeErrors, force: true}
	docUndrain      = opDoc{summary: "Undrain a region: answer it again by its weights", resp: apitypes.ChangeResponse{}, errors: writeErrors}
	docListServices = opDoc{summary: "Every service, and the etcd revision it was read at (ETag)", resp: apitypes.ServiceList{}, errors: readErrors}
	docGetService   = opDoc{summary: "One service; the ETag is its mod revision", resp: regions.Service{}, errors: readErrors}
	docPutService   = opDoc{summary: "Create or replace a service; every region it names must exist", body: regions.Service{}, resp: apitypes.ChangeResponse{}, errors: writeErrors, force: true}
	docPutServices  = opDoc{summary: "Create or replace several services at once",
		description: "Each service is validated against the regions first; one invalid service refuses the whole batch " +
			"(errors name it as services[i]), and so does one that would answer NODATA where it answers now (409, unless force=true). " +
			"The services are then written in groups, each group one etcd transaction " +
			"within etcd's request limits, each service with its audit record; a service that would not change is not written. " +
			"At most 1000 services per request (and api.max_body_bytes).",
		body: apitypes.ServiceBatch{}, resp: apitypes.BatchResponse{}, errors: []int{400, 401, 403, 409, 413, 503}, force: true}
	docDeleteService = opDoc{summary: "Delete a service", resp: apitypes.ChangeResponse{}, errors: writeErrors}
	docGetWeights    = opDoc{summary: "A service's weights and the share of answers each region can expect", resp: apitypes.Weights{}, errors: readErrors}
	docPutWeights    = opDoc{summary: "Replace every weight of a service: regions not named get 0",
		body: apitypes.WeightsRequest{}, resp: apitypes.ChangeResponse{}, errors: writeErrors, force: true}
	docPatchWeights = opDoc{summary: "Change the weights of the regions named", body: apitypes.WeightsRequest{}, resp: apitypes.ChangeResponse{}, errors: writeErrors, force: true}
	docPutLatency   = opDoc{summary: "Replace the latency table",
		description: "The body is CSV, one \"cidr,region,rtt_ms\" entry per line, at most api.max_latency_bytes (64 MiB by default); " +
			"it is received whole (within api.upload_timeout, 10 minutes by default), then parsed and checked whole before anything is written: every region it names must exist " +
			"(the error names the first line of each that does not). The answer gives the entries of the new table and of the one it replaces.",
		csv: true, resp: apitypes.ChangeResponse{}, errors: []int{400, 401, 403, 408, 413, 503}}
	docGetLatency = opDoc{summary: "The stored latency table: id, age, entries, networks, size, checksum, each region it names with its entries and whether it exists, and whether this server serves it",
		resp: apitypes.Latency{}, errors: readErrors}
	docAcceptEmpty = opDoc{summary: "Serve the empty state from etcd that this server refuses",
		description: "A listing from etcd with no regions and no services is not served over a state that has some " +
			"(a fresh cluster or a wrong prefix would wipe steering); this is the operator's confirmation that etcd " +
			"is meant to be empty. It acts on this server only (call each server); 409 when it refuses nothing.",
		resp: apitypes.ChangeResponse{}, errors: []int{400, 401, 403, 409, 503}}
	docListShifts  = opDoc{summary: "Every shift, in force or ended within the last day, with its state", resp: apitypes.ShiftList{}, errors: readErrors}
	docCreateShift = opDoc{summary: "Shift traffic for a while: drain a region from one service or all, or set weights of one service",
		description: "A shift carries an expiry (expires_in from now, or expires), at most 72 h ahead; every server stops applying it then, " +
			"and one of them records the end. The service and regions it names must exist (404 naming the field otherwise). " +
			"revert_if ends it early when a region it moves traffic to loses healthy VIPs (unhealthy) or goes above a service's " +
			"high watermark (high_watermark). The answer lists the services it changes with their expected shares before and after; " +
			"with dry_run=true, what they would be.",
		body: apitypes.ShiftRequest{}, resp: apitypes.ShiftChange{}, errors: []int{400, 401, 403, 404, 409, 413, 503}, force: true, created: true}
	docGetShift    = opDoc{summary: "One shift with its state; the ETag is its mod revision", resp: apitypes.ShiftStatus{}, errors: readErrors}
	docExtendShift = opDoc{summary: "Give an active shift a new expiry (and reason): expires_in from now, or expires, at most 72 h ahead",
		body: apitypes.ShiftPatch{}, resp: apitypes.ShiftChange{}, errors: writeErrors}
	docCancelShift = opDoc{summary: "Cancel a shift: it ends now and the weights it changed come back",
		description: "The shift stays listed, cancelled, for a day. Cancelling a shift that ended changes nothing.",
		resp:        apitypes.ShiftChange{}, errors: writeErrors, force: true}
	docEvents = opDoc{summary: "The dashboard's live data as server-sent events",
		description: "Event \"status\" carries GET /v1/status's body: at once, with every new snapshot and every 2 s. " +
			"Event \"traffic\" carries the answers per region and per service per second (the last hour at once, then each second completed), " +
			"each client continent's answers by region over the last second, and the regions' changes of state (to and from shifted with the shifts' ids). " +
			"With service, the traffic carries that service's answers, in all and by region, instead of every service's. " +
			"The token goes in the Authorization header, never in the URL.",
		query:  []paramDoc{{"service", "string", "a service whose answers by region to send", false}},
		events: true, errors: []int{401, 503}}
	docAudit = opDoc{summary: "The audit log, newest first, a page at a time",
		query: []paramDoc{
			{"limit", "integer", "records per page, 1 to 500 (default 50)", false},
			{"after", "string", "the next cursor of the page before", false},
		},
		resp: apitypes.AuditPage{}, errors: []int{400, 401, 503}}
)

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// openAPIDoc builds the OpenAPI 3.1 document from the route table.
func (a *apiServer) openAPIDoc() map[string]any {
	g := &schemaGen{comps: map[string]any{}, names: map[reflect.Type]string{}}
	problem := g.schema(reflect.TypeFor[Problem]())
	paths := map[string]any{}
	for _, rt := range a.routes() {
		d := rt.doc
		op := map[string]any{"summary": d.summary, "operationId": operationID(rt.method, rt.pattern)}
		if d.head {
			op["summary"] = "GET's headers and status without the body: " + d.summary
		}
		if d.description != "" {
			op["description"] = d.description
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.pattern, -1) {
			desc := "region name"
			switch {
			case strings.HasPrefix(rt.pattern, "/v1/services/"):
				desc = "service name, with or without the final dot"
			case strings.HasPrefix(rt.pattern, "/v1/shifts/"):
				desc = "shift id"
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "description": desc, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range d.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "required": q.required, "description": q.desc, "schema": map[string]any{"type": q.typ}})
		}
		ok := "200"
		if d.created {
			ok = "201"
		}
		if rt.access == accessWrite {
			params = append(params,
				map[string]any{"name": "dry_run", "in": "query", "description": "true: validate and say what would change, write nothing", "schema": map[string]any{"type": "boolean"}})
		}
		if rt.access == accessWrite && !d.created {
			params = append(params,
				map[string]any{"name": "If-Match", "in": "header", "description": "write only if the object is at this revision (its ETag), or exists (*); 412 otherwise", "schema": map[string]any{"type": "string"}},
				map[string]any{"name": "If-None-Match", "in": "header", "description": "*: create only; 412 if it exists", "schema": map[string]any{"type": "string"}})
		}
		if d.force {
			params = append(params, map[string]any{"name": "force", "in": "query", "schema": map[string]any{"type": "boolean"},
				"description": "true: make the write even though it leaves services answering NODATA (every weight 0, the last region they answer from drained); " +
					"refused with 409 otherwise, the problem's nodata naming them. A dry run is refused as the write would be"})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch {
		case d.csv:
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"text/csv": map[string]any{"schema": map[string]any{"type": "string"}}}}
		case d.body != nil:
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(d.body))}}}
		}
		resp := map[string]any{"description": "success"}
		switch {
		case d.text:
			resp["content"] = map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
		case d.events:
			resp["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
		case d.resp != nil:
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(d.resp))}}
		}
		if rt.access != accessOpen && !slices.Contains([]string{"/v1/status", "/v1/explain", "/v1/audit", "/v1/events", "/health/details"}, rt.pattern) {
			resp["headers"] = map[string]any{"ETag": map[string]any{"description": "the mod revision, quoted", "schema": map[string]any{"type": "string"}}}
		}
		responses := map[string]any{ok: resp}
		if d.created {
			responses["200"] = map[string]any{"description": "a dry run: what would be created", "content": resp["content"]}
		}
		if rt.access == accessWrite && rt.method == "PUT" && !strings.HasSuffix(rt.pattern, "/weights") {
			responses["201"] = map[string]any{"description": "created", "content": resp["content"]}
		}
		if d.head {
			delete(resp, "content")
		}
		for _, code := range d.errors {
			e := map[string]any{"description": http.StatusText(code), "content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}}
			if d.head {
				delete(e, "content")
			}
			if code == http.StatusConflict && d.force {
				e["description"] = "the write would leave services answering NODATA (nodata lists them; force=true writes anyway), or it conflicts with another"
			}
			if code == http.StatusServiceUnavailable {
				e["description"] = "etcd did not answer within the write timeout; DNS keeps answering"
				e["headers"] = map[string]any{"Retry-After": map[string]any{"schema": map[string]any{"type": "integer"}}}
			}
			responses[strconv.Itoa(code)] = e
		}
		op["responses"] = responses
		switch rt.access {
		case accessOpen:
			op["security"] = []any{}
		case accessRead:
			op["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{}}
		case accessWrite:
			op["security"] = []any{map[string]any{"bearer": []any{}}}
		}
		p, _ := paths[rt.pattern].(map[string]any)
		if p == nil {
			p = map[string]any{}
			paths[rt.pattern] = p
		}
		p[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Meridian API",
			"version": "1",
			"description": "Regions, services, weights, health and the decisions of Meridian's DNS. Writes need an admin token " +
				"(Authorization: Bearer TOKEN); reads a read or admin token unless api.open_reads is set. Errors are RFC 9457 " +
				"problem documents naming the invalid fields. Every write accepts ?dry_run=true, If-Match and If-None-Match: *, " +
				"and is recorded in the audit log.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         g.comps,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func operationID(method, pattern string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	up := true
	for _, r := range pattern {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if up {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

func (a *apiServer) openAPI(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.openAPIDoc())
}

// schemaGen turns Go types into JSON Schema (2020-12, as OpenAPI 3.1
// uses), from their JSON tags: the document cannot drift from what the
// handlers encode.
type schemaGen struct {
	comps map[string]any
	names map[reflect.Type]string
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	durationType = reflect.TypeFor[regions.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case addrType:
		return map[string]any{"type": "string", "description": "an IPv4 or IPv6 address"}
	case prefixType:
		return map[string]any{"type": "string", "description": "an address prefix, like 192.0.2.0/24"}
	case durationType:
		return map[string]any{"type": "string", "description": "a duration, like 5s or 1m30s"}
	case rawType:
		return map[string]any{"description": "the object as stored; null when it does not exist"}
	}
	if t.Kind() == reflect.Interface {
		return map[string]any{}
	}
	if marshalsItself(t) {
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.Struct:
		return g.ref(t)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

// ref puts a struct type's schema in the components and refers to it.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	name, done := g.names[t]
	if !done {
		name = componentName(t)
		if _, taken := g.comps[name]; taken {
			name = componentName(t) + "_" + strings.ReplaceAll(t.PkgPath(), "/", "_")
		}
		g.names[t] = name
		g.comps[name] = map[string]any{} // a placeholder while it is built
		props, required := map[string]any{}, []string{}
		g.fields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		g.comps[name] = s
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			g.fields(f.Type, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

func componentName(t reflect.Type) string {
	n := t.Name()
	if n == "" {
		return "Object"
	}
	return strings.ToUpper(n[:1]) + n[1:]
}
