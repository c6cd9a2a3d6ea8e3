package api

import (
	"cmp"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// TestOpenAPI checks that every route is in the document and every
// documented operation is a route, and that every schema it refers to is
// in it.
func TestOpenAPI(t *testing.T) {
	h := NewRouter(Options{})
	var routes []string
	if err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !isUIRoute(route) { // the dashboard's files are not part of the API
			routes = append(routes, strings.ToLower(method)+" "+route)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, h: h}
	rec := f.do(req{method: "GET", path: "/v1/openapi.json"})
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("%v: %.300s", err, rec.Body)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, method+" "+path)
			if op["summary"] == "" || op["responses"] == nil || op["operationId"] == "" {
				t.Errorf("%s %s: incomplete: %v", method, path, op)
			}
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	if !slices.Equal(routes, documented) {
		t.Fatalf("routes\n%v\ndocumented\n%v", routes, documented)
	}
	// Every $ref names a schema of the document.
	refs := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				refs++
				name := strings.TrimPrefix(ref, "#/components/schemas/")
				if doc.Components.Schemas[name] == nil {
					t.Errorf("dangling reference %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var all any
	_ = json.Unmarshal(rec.Body.Bytes(), &all)
	walk(all)
	if refs == 0 {
		t.Error("no schema references at all")
	}
	// The write bodies are described field by field.
	region, _ := doc.Components.Schemas["Region"].(map[string]any)
	props, _ := region["properties"].(map[string]any)
	for _, field := range []string{"name", "vips", "location", "check", "drained"} {
		if props[field] == nil {
			t.Errorf("Region schema lacks %s", field)
		}
	}
}

func TestConditionalWrites(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	put := func(path, body string, hdr map[string]string) (int, string) {
		rec := f.do(req{method: "PUT", path: path, body: body, token: adminSecret, hdr: hdr})
		return rec.Code, rec.Header().Get("ETag")
	}
	newRegion := strings.ReplaceAll(regionBody, "eu-west", "sa-east")
	cases := []struct {
		name       string
		path, body string
		hdr        map[string]string
		want       int
	}{
		{"create only", "/v1/regions/sa-east", newRegion, map[string]string{"If-None-Match": "*"}, http.StatusCreated},
		{"create only when it exists", "/v1/regions/sa-east", newRegion, map[string]string{"If-None-Match": "*"}, http.StatusPreconditionFailed},
		{"if it exists, when it does not", "/v1/regions/nowhere", strings.ReplaceAll(regionBody, "eu-west", "nowhere"), map[string]string{"If-Match": "*"}, http.StatusPreconditionFailed},
		{"if it exists", "/v1/regions/sa-east", strings.Replace(newRegion, `"capacity":100`, `"capacity":5`, 1), map[string]string{"If-Match": "*"}, http.StatusOK},
		{"weak tag", "/v1/regions/sa-east", newRegion, map[string]string{"If-Match": `W/"1"`}, http.StatusPreconditionFailed},
		{"both headers", "/v1/regions/sa-east", newRegion, map[string]string{"If-Match": `"1"`, "If-None-Match": "*"}, http.StatusBadRequest},
		{"bad tag", "/v1/regions/sa-east", newRegion, map[string]string{"If-Match": `"abc"`}, http.StatusBadRequest},
		{"name differs from the path", "/v1/regions/other", newRegion, nil, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := put(tc.path, tc.body, tc.hdr); code != tc.want {
				t.Fatalf("%d, want %d", code, tc.want)
			}
		})
	}
	t.Run("the ETag of a write is the If-Match of the next", func(t *testing.T) {
		_, tag := put("/v1/regions/sa-east", newRegion, nil)
		if tag != etag(f.revOf("region", "sa-east")) {
			t.Fatalf("ETag %s, revision %d", tag, f.revOf("region", "sa-east"))
		}
		code, tag2 := put("/v1/regions/sa-east", strings.Replace(newRegion, `"capacity":100`, `"capacity":7`, 1), map[string]string{"If-Match": tag})
		if code != http.StatusOK || tag2 == tag {
			t.Fatalf("%d %s", code, tag2)
		}
		if code, _ := put("/v1/regions/sa-east", newRegion, map[string]string{"If-Match": tag}); code != http.StatusPreconditionFailed {
			t.Fatalf("a second write with the same tag: %d", code)
		}
	})
	t.Run("service names with or without the final dot", func(t *testing.T) {
		for _, p := range []string{"/v1/services/www.gslb.example", "/v1/services/www.gslb.example.", "/v1/services/WWW.gslb.example"} {
			if rec := f.do(req{method: "GET", path: p, token: readSecret}); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"www.gslb.example."`) {
				t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
			}
		}
		body := strings.Replace(serviceBody, `"name":"www.gslb.example"`, `"name":"www.gslb.example."`, 1)
		if code, _ := put("/v1/services/www.gslb.example", body, nil); code != http.StatusOK {
			t.Fatalf("PUT without the dot, body with it: %d", code)
		}
	})
	t.Run("deleting a region in use", func(t *testing.T) {
		f.unchanged(t, func() {
			p := problem(t, f.do(req{method: "DELETE", path: "/v1/regions/eu-west", token: adminSecret}), http.StatusConflict)
			if !strings.Contains(p.Detail, "api.gslb.example.") {
				t.Errorf("%+v", p)
			}
		})
	})
}

func TestAuditThroughTheAPI(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rec := f.do(req{method: "PATCH", path: "/v1/services/api.gslb.example/weights", body: `{"weights":{"us-east":1}}`, token: adminSecret})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec = f.do(req{method: "POST", path: "/v1/regions/eu-west/drain", token: adminSecret})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// Drained again: nothing changes, nothing is recorded.
	rec = f.do(req{method: "POST", path: "/v1/regions/eu-west/drain", token: adminSecret})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"changed": false`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var page apitypes.AuditPage
	rec = f.do(req{method: "GET", path: "/v1/audit?limit=2", token: readSecret})
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.Records) != 2 {
		t.Fatalf("%s", rec.Body)
	}
	drain, weights := page.Records[0], page.Records[1]
	if drain.Actor != "alice" || drain.Action != "drain" || drain.Name != "eu-west" || weights.Actor != "alice" || weights.Action != "set-weights" {
		t.Fatalf("records %+v", page.Records)
	}
	if drain.Revision != f.revOf("region", "eu-west") || drain.Time.IsZero() {
		t.Errorf("drain record revision %d, region at %d", drain.Revision, f.revOf("region", "eu-west"))
	}
	var before, after regions.Service
	_ = json.Unmarshal(weights.Before, &before)
	_ = json.Unmarshal(weights.After, &after)
	if before.Regions[0].Weight != 50 || after.Regions[0].Weight != 1 {
		t.Errorf("before %v after %v", before.Regions, after.Regions)
	}
	// The next page goes on where this one ended.
	rec = f.do(req{method: "GET", path: "/v1/audit?limit=2&after=" + page.Next, token: readSecret})
	var next apitypes.AuditPage
	if err := json.Unmarshal(rec.Body.Bytes(), &next); err != nil || len(next.Records) == 0 || next.Records[0].Actor != "seed" {
		t.Fatalf("%s", rec.Body)
	}
	problem(t, f.do(req{method: "GET", path: "/v1/audit?after=nonsense", token: readSecret}), http.StatusBadRequest)
}

func TestAccessConfigurations(t *testing.T) {
	t.Run("open reads", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{openReads: true})
		if rec := f.do(req{method: "GET", path: "/v1/regions"}); rec.Code != http.StatusOK {
			t.Errorf("read without a token: %d", rec.Code)
		}
		problem(t, f.do(req{method: "GET", path: "/v1/regions", token: "wrong-wrong-wrong-wrong"}), http.StatusUnauthorized)
		problem(t, f.do(req{method: "POST", path: "/v1/regions/eu-west/drain"}), http.StatusUnauthorized)
		problem(t, f.do(req{method: "POST", path: "/v1/regions/eu-west/drain", hdr: map[string]string{"Authorization": "Basic YTpi"}}), http.StatusUnauthorized)
	})
	t.Run("no tokens configured", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{noAuth: true})
		if rec := f.do(req{method: "GET", path: "/v1/status"}); rec.Code != http.StatusOK {
			t.Errorf("read: %d", rec.Code)
		}
		f.unchanged(t, func() {
			p := problem(t, f.do(req{method: "POST", path: "/v1/regions/eu-west/drain", token: adminSecret}), http.StatusUnauthorized)
			if !strings.Contains(p.Detail, "read-only") {
				t.Errorf("%+v", p)
			}
		})
	})
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	hashes := "tokens:\n  - {name: a, role: admin, sha256: " + strings.Repeat("cd", 32) + "}\n  - {name: b, role: read, sha256: " + strings.Repeat("ab", 32) + "}\n"
	cases := []struct {
		name, body string
		mode       os.FileMode // 0: 0600
		want       []string
	}{
		{"good", "tokens:\n  - {name: a, role: admin, token: 0123456789abcdef}\n  - {name: b, role: read, sha256: " + strings.Repeat("ab", 32) + "}\n", 0, nil},
		{"secrets readable by the group", "tokens:\n  - {name: a, role: admin, token: 0123456789abcdef}\n  - {name: b, role: read, token: 0123456789abcdeg}\n", 0o640, nil},
		{"hashes readable by all", hashes, 0o644, nil},
		// Reported once, on the first secret, with the mode.
		{"secrets readable by all", "tokens:\n  - {name: b, role: read, sha256: " + strings.Repeat("ab", 32) + "}\n  - {name: a, role: admin, token: 0123456789abcdef}\n  - {name: c, role: read, token: 0123456789abcdeg}\n",
			0o604, []string{":3: tokens[1].token: the file holds secrets (token:) and every user of this host can read it (mode 0604)"}},
		{"bad role", "tokens:\n  - name: a\n    role: root\n    token: 0123456789abcdef\n", 0, []string{":2: tokens[0].role", `"root"`}},
		{"short", "tokens:\n  - {name: a, role: read, token: short}\n", 0, []string{"tokens[0].token", "shorter than 16"}},
		{"both", "tokens:\n  - {name: a, role: read, token: 0123456789abcdef, sha256: ab}\n", 0, []string{"tokens[0].token", "either"}},
		{"twice", "tokens:\n  - {name: a, role: read, token: 0123456789abcdef}\n  - {name: a, role: read, token: 0123456789abcdeg}\n", 0, []string{":3: tokens[1].name", "twice"}},
		{"bad hash", "tokens:\n  - {name: a, role: read, sha256: xyz}\n", 0, []string{"tokens[0].sha256"}},
		{"unknown key", "tokens:\n  - {name: a, role: read, token: 0123456789abcdef, colour: red}\n", 0, []string{"colour"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".yaml")
			mode := cmp.Or(tc.mode, 0o600)
			if err := os.WriteFile(path, []byte(tc.body), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil { // whatever the umask
				t.Fatal(err)
			}
			tokens, err := LoadTokens(path)
			if tc.want == nil {
				if err != nil || len(tokens) != 2 {
					t.Fatalf("%v %v", tokens, err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCreateAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokensPath, secretPath := filepath.Join(dir, "tokens.yaml"), filepath.Join(dir, "sub", "admin.token")
	created, err := CreateAdminToken(tokensPath, secretPath)
	if err != nil || !created {
		t.Fatalf("%v %v", created, err)
	}
	for _, p := range []string{tokensPath, secretPath} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	secret, _ := os.ReadFile(secretPath)
	tokens, err := LoadTokens(tokensPath)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuth(tokens, false)
	if tok := a.find(strings.TrimSpace(string(secret))); tok == nil || tok.Role != RoleAdmin || tok.Name != "admin" {
		t.Fatalf("the created token does not authenticate: %+v", tok)
	}
	if strings.Contains(mustRead(t, tokensPath), strings.TrimSpace(string(secret))) {
		t.Error("the tokens file holds the secret itself")
	}
	again, err := CreateAdminToken(tokensPath, secretPath)
	if err != nil || again {
		t.Fatalf("second call: %v %v", again, err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmptyLists(t *testing.T) {
	type inner struct {
		List []int            `json:"list"`
		Map  map[string]int   `json:"map"`
		Raw  json.RawMessage  `json:"raw"`
		Opt  []string         `json:"opt,omitempty"`
		Deep map[string][]int `json:"deep"`
	}
	type outer struct {
		In    *inner   `json:"in"`
		Items []inner  `json:"items"`
		Any   any      `json:"any"`
		Nil   *inner   `json:"nil"`
		Bytes []byte   `json:"bytes"`
		Strs  []string `json:"strs"`
	}
	shared := &inner{Deep: map[string][]int{"x": nil}}
	v := outer{In: shared, Items: []inner{{}}, Any: inner{}}
	b, err := json.Marshal(emptyLists(reflect.ValueOf(v)).Interface())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"in":{"list":[],"map":{},"raw":null,"deep":{"x":[]}},"items":[{"list":[],"map":{},"raw":null,"deep":{}}],"any":{"list":[],"map":{},"raw":null,"deep":{}},"nil":null,"bytes":null,"strs":[]}`
	if string(b) != want {
		t.Fatalf("\n%s\nwant\n%s", b, want)
	}
	if shared.List != nil || shared.Deep["x"] != nil {
		t.Fatal("the original was modified")
	}
}

// TestSharesDryRun: a weights dry run says the shares to expect and
// writes nothing.
func TestSharesDryRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.unchanged(t, func() {
		rec := f.do(req{method: "PUT", path: "/v1/services/api.gslb.example/weights?dry_run=true", body: `{"weights":{"us-east":1,"eu-west":3}}`, token: adminSecret})
		var ch apitypes.ChangeResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || !ch.DryRun || !ch.Changed {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		v4, v6 := ch.ExpectedShare["ipv4"], ch.ExpectedShare["ipv6"]
		if v4.Regions["us-east"] != 0.25 || v4.Regions["eu-west"] != 0.75 || v4.Regions["ap-northeast"] != 0 || v6.Regions["eu-west"] != 0.75 {
			t.Fatalf("shares %+v", ch.ExpectedShare)
		}
	})
}

// TestServiceFactorsValidation: load steering and slow start that make
// no sense are refused with a problem document naming each field, and
// nothing is written, on PUT and on the batch POST.
func TestServiceFactorsValidation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	with := func(extra string) string { return strings.TrimSuffix(serviceBody, "}") + "," + extra + "}" }
	cases := []struct {
		name, extra string
		fields      []string
	}{
		{"low above high", `"load":{"low_watermark":0.9,"high_watermark":0.7}`, []string{"load.low_watermark"}},
		{"ratios outside 0-1", `"load":{"low_watermark":-1,"high_watermark":1.2,"max_step":3}`,
			[]string{"load.low_watermark", "load.high_watermark", "load.max_step"}},
		{"negative signal age", `"load":{"low_watermark":0.7,"high_watermark":0.9,"max_signal_age":"-5s"}`, []string{"load.max_signal_age"}},
		{"not a duration", `"load":{"low_watermark":0.7,"high_watermark":0.9,"max_signal_age":"5 parsecs"}`, []string{"load.max_signal_age"}},
		{"no window", `"slow_start":{}`, []string{"slow_start.window"}},
		{"window not a duration", `"slow_start":{"window":true}`, []string{"slow_start.window"}},
		{"bad curve", `"slow_start":{"window":"1m","aggression":-2,"min_weight":2}`, []string{"slow_start.aggression", "slow_start.min_weight"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.unchanged(t, func() {
				p := problem(t, f.do(req{method: "PUT", path: "/v1/services/www.gslb.example", body: with(tc.extra), token: adminSecret}), http.StatusBadRequest)
				for _, field := range tc.fields {
					if !namesField(p, field) {
						t.Errorf("PUT: the problem does not name %s: %+v", field, p)
					}
				}
				p = problem(t, f.do(req{method: "POST", path: "/v1/services", body: `{"services":[` + with(tc.extra) + `]}`, token: adminSecret}), http.StatusBadRequest)
				for _, field := range tc.fields {
					found := false
					for _, e := range p.Errors {
						found = found || strings.HasSuffix(e.Field, field)
					}
					if !found {
						t.Errorf("POST: the problem does not name %s: %+v", field, p)
					}
				}
			})
		})
	}
	t.Run("valid", func(t *testing.T) {
		body := with(`"load":{"low_watermark":0.7,"high_watermark":0.9,"max_step":0.2,"max_signal_age":"15s"},"slow_start":{"window":"1m","aggression":2}`)
		if rec := f.do(req{method: "PUT", path: "/v1/services/www.gslb.example", body: body, token: adminSecret}); rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		rec := f.do(req{method: "GET", path: "/v1/services/www.gslb.example", token: readSecret})
		if !strings.Contains(rec.Body.String(), `"max_signal_age": "15s"`) || !strings.Contains(rec.Body.String(), `"window": "1m0s"`) {
			t.Fatalf("%s", rec.Body)
		}
	})
}
