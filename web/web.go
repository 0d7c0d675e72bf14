// Package web holds courier's demo chat page, embedded in the binary and
// served at / by `courier serve --dev`.
//
// static/ holds the page (index.html; app.js, the entry that wires the ES
// modules beside it, one per concern: conversation, people, lobby, search,
// login, connection; style.css; icon.svg) and the browser build of the JS client (courier.js, built from clients/js). The
// page loads nothing from anywhere else; the Content-Security-Policy says so
// to the browser too. e2e/ holds the browser tests (see browser_test.go).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

//go:embed static
var static embed.FS

// contentTypes fixes the type of each kind of asset, so that it does not
// depend on the machine's mime.types (a module script needs a JavaScript type).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
	".map":  "application/json",
}

// CSP is the Content-Security-Policy of the demo page: everything from the
// server itself (the WebSocket included), nothing inline, no frames.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Static is the page and its assets, as served (the static/ folder).
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return sub
}

// Handler serves the demo page and its assets.
func Handler() http.Handler {
	files := http.FileServerFS(Static())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if ct, ok := contentTypes[path.Ext(r.URL.Path)]; ok {
			h.Set("Content-Type", ct)
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", CSP)
		// The embedded files have no modification time: ask the browser to
		// check each time, so a new binary's page is never mixed with an old one.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
