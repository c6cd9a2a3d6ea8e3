package api

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// isUIRoute says whether a route pattern serves the dashboard's files.
func isUIRoute(pattern string) bool { return pattern == "/ui" || strings.HasPrefix(pattern, "/ui/") }

// TestUI: the dashboard's files are served with their types and a policy
// that lets the page load nothing from elsewhere; /ui redirects to /ui/;
// every file the page names is there; nothing in them points outside the
// server.
func TestUI(t *testing.T) {
	h := NewRouter(Options{Auth: NewAuth(testTokens(t), false)})
	get := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	cases := []struct {
		method, path, ctype string
		status              int
		body                string
	}{
		{"GET", "/ui/", "text/html; charset=utf-8", 200, `<script src="app.js" defer></script>`},
		{"HEAD", "/ui/", "text/html; charset=utf-8", 200, ""},
		{"GET", "/ui/app.js", "text/javascript; charset=utf-8", 200, `fetch("/v1/events"`},
		{"GET", "/ui/style.css", "text/css; charset=utf-8", 200, ":root"},
		{"GET", "/ui/land-110m.json", "application/json", 200, `"type":"Topology"`},
		{"GET", "/ui/nope.js", "text/plain; charset=utf-8", 404, "404 page not found"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := get(tc.method, tc.path)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d %s %.200q; want %d %s with %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.status, tc.ctype, tc.body)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD with a body of %d bytes", rec.Body.Len())
			}
		})
	}
	if rec := get("GET", "/ui"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q, want 301 to /ui/", rec.Code, rec.Header().Get("Location"))
	}

	// Every file index.html and app.js name is served.
	index := get("GET", "/ui/").Body.String()
	app := get("GET", "/ui/app.js").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(index, -1)
	refs = append(refs, regexp.MustCompile(`fetch\("([a-z0-9.-]+)"\)`).FindAllStringSubmatch(app, -1)...)
	if len(refs) < 3 {
		t.Fatalf("found only %v in the page", refs)
	}
	for _, m := range refs {
		if rec := get("GET", "/ui/"+m[1]); rec.Code != 200 {
			t.Errorf("%s named by the page: %d", m[1], rec.Code)
		}
	}
	// Nothing is fetched from elsewhere: no URL with a host in the code.
	err := fs.WalkDir(uiFiles, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "LICENSE") {
			return err
		}
		f, err := uiFiles.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9-]+\.[a-z]`).Find(b); m != nil && !strings.HasSuffix(path, ".json") {
			t.Errorf("%s points outside the server: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
