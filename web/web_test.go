package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/courier-im/courier/web"
)

func get(t *testing.T, p string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestServesTheDemoPage(t *testing.T) {
	res, body := get(t, "/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="app.js"`) {
		t.Fatalf("GET /: %d %q %.80s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": web.CSP,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-cache",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("GET /: %s = %q, want %q", k, got, want)
		}
	}
	if res, _ := get(t, "/no-such-file.js"); res.StatusCode != 404 {
		t.Errorf("GET /no-such-file.js: %d, want 404", res.StatusCode)
	}
}

var (
	// src="…" and href="…" in HTML.
	htmlRef = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*["']([^"']+)["']`)
	// import … from "…", import("…"), export … from "…" in JavaScript.
	jsImport = regexp.MustCompile(`(?m)(?:^\s*(?:import|export)\b[^;"'()]*?\bfrom\s*|^\s*import\s*|\bimport\s*\(\s*)["']([^"']+)["']`)
	// url(…) in CSS.
	cssURL = regexp.MustCompile(`url\(\s*["']?([^"')]+)`)
	// Anything that would load from another origin.
	external = regexp.MustCompile(`^(?:[a-z][a-z0-9+.-]*:|//)`)
)

var wantType = map[string]string{
	".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png",
}

// TestEverythingIsEmbedded follows every reference from index.html (and the
// scripts' imports, and the stylesheet's urls): each must be a relative path
// to an embedded file, served with its content type. Nothing comes from a CDN.
func TestEverythingIsEmbedded(t *testing.T) {
	static := web.Static()
	seen := map[string]bool{}
	var follow func(from, ref string)
	follow = func(from, ref string) {
		if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "data:") {
			return
		}
		if external.MatchString(ref) {
			t.Errorf("%s references %q: everything must be served by courier itself", from, ref)
			return
		}
		name := path.Clean(path.Join(path.Dir(from), strings.SplitN(ref, "?", 2)[0]))
		name = strings.TrimPrefix(name, "/")
		if seen[name] {
			return
		}
		seen[name] = true
		body, err := fs.ReadFile(static, name)
		if err != nil {
			if name == "courier.js" {
				// The JS client's browser build comes from clients/js.
				t.Logf("%s imports courier.js, which is not built yet (clients/js)", from)
				return
			}
			t.Errorf("%s references %q, which is not embedded: %v", from, ref, err)
			return
		}
		served := "/" + name
		if name == "index.html" {
			served = "/" // the file server redirects /index.html there
		}
		res, _ := get(t, served)
		ext := path.Ext(name)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), wantType[ext]) || wantType[ext] == "" {
			t.Errorf("GET %s: %d %q", served, res.StatusCode, res.Header.Get("Content-Type"))
		}
		var refs [][]string
		switch ext {
		case ".html":
			refs = htmlRef.FindAllStringSubmatch(string(body), -1)
		case ".js":
			refs = jsImport.FindAllStringSubmatch(string(body), -1)
		case ".css":
			refs = cssURL.FindAllStringSubmatch(string(body), -1)
		}
		for _, m := range refs {
			follow(name, m[1])
		}
	}
	follow("index.html", "index.html")
	for _, want := range []string{"index.html", "app.js", "style.css", "icon.svg"} {
		if !seen[want] {
			t.Errorf("%s is not referenced from index.html", want)
		}
	}
	// Every script is reached from app.js through imports (nested ones
	// included): a module nothing imports is dead code, or an import this
	// test failed to follow.
	var scripts strings.Builder
	err := fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		if !seen[p] {
			t.Errorf("%s is embedded but not imported from app.js", p)
		}
		if p != "courier.js" {
			b, _ := fs.ReadFile(static, p)
			scripts.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The page reaches the server only through relative URLs.
	for _, must := range []string{`"/dev/token?user="`, `import("./courier.js")`} {
		if !strings.Contains(scripts.String(), must) {
			t.Errorf("the page's scripts do not contain %s", must)
		}
	}
}

// TestNoInnerHTML guards the page's rule that user text only ever reaches
// the DOM as text.
func TestNoInnerHTML(t *testing.T) {
	err := fs.WalkDir(web.Static(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" || p == "courier.js" {
			return err
		}
		b, _ := fs.ReadFile(web.Static(), p)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
