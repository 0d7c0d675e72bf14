package webhook

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	n := &Notifier{firstRetry: DefaultFirstRetry, maxBackoff: DefaultMaxBackoff}
	for attempt := 1; attempt <= 70; attempt++ {
		d := DefaultFirstRetry
		for i := 1; i < attempt && d < DefaultMaxBackoff; i++ {
			d *= 2
		}
		d = min(d, DefaultMaxBackoff)
		for range 50 {
			if got := n.backoff(attempt); got < d*3/4 || got > d {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, got, d*3/4, d)
			}
		}
	}
	if got := n.backoff(1); got > 2*time.Second {
		t.Errorf("first retry after %v by default", got)
	}
}

func TestRetryAfterValues(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "5": 5 * time.Second, " 2 ": 2 * time.Second, "-1": 0, "soon": 0, "1.5": 0,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"type":"offline_message"}`)
	sig := Sign("k", body)
	if !Verify("k", body, sig) {
		t.Fatal("own signature refused")
	}
	for name, c := range map[string]struct {
		secret, header string
		body           []byte
	}{
		"wrong secret":  {"other", sig, body},
		"empty secret":  {"", Sign("", body), body},
		"tampered body": {"k", sig, []byte(`{"type":"offline_message" }`)},
		"no prefix":     {"k", strings.TrimPrefix(sig, "sha256="), body},
		"other scheme":  {"k", "sha1=" + strings.TrimPrefix(sig, "sha256="), body},
		"truncated":     {"k", sig[:len(sig)-2], body},
		"not hex":       {"k", "sha256=" + strings.Repeat("zz", 32), body},
		"empty header":  {"k", "", body},
		"prefix only":   {"k", "sha256=", body},
	} {
		if Verify(c.secret, c.body, c.header) {
			t.Errorf("%s: accepted", name)
		}
	}
}
