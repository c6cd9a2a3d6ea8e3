package api

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// uiFiles is the dashboard: plain HTML, CSS and JavaScript with the
// Natural Earth land outlines, built into the binary so that it works
// offline and needs no build step (docs/dashboard.md).
//
//go:embed ui
var uiFiles embed.FS

// uiPolicy lets the page load only its own files and talk only to this
// server: no inline script, nothing from elsewhere, no framing.
const uiPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// mountUI serves the dashboard at /ui/. Its files hold no data, so they
// need no token; the page reads through the API with the token the user
// gives it.
func (a *apiServer) mountUI(r chi.Router) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree always has ui/
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	serve := func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// A new binary may bring new files: the browser asks again.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, req)
	}
	redirect := func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "/ui/", http.StatusMovedPermanently)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.MethodFunc(m, "/ui", redirect)
		r.MethodFunc(m, "/ui/*", serve)
	}
}
