package web_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/courier-im/courier/web"
)

func TestServesTheDemoPage(t *testing.T) {
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.Contains(string(body), "/dev/token") || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q %.80s", rec.Code, rec.Header().Get("Content-Type"), body)
	}
}
