package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// The tests measure goroutines, so none of them runs in parallel.

// noLeak fails t when, after t's other cleanups (registered later, so run
// earlier), there are more goroutines than when noLeak was called.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A request as the endpoint received it.
type request struct {
	at     time.Time
	method string
	header http.Header
	body   []byte
	user   string // of the decoded body
	msg    string
}

// endpoint is a real HTTP listener on loopback that records every request
// and answers with what reply says (200 when reply is nil).
type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(r request, w http.ResponseWriter, req *http.Request)
}

func newEndpoint(t *testing.T, reply func(r request, w http.ResponseWriter, req *http.Request)) *endpoint {
	e := &endpoint{reply: reply}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r := request{at: time.Now(), method: req.Method, header: req.Header.Clone(), body: body}
		var v struct {
			User    string `json:"user"`
			Message struct {
				ID string `json:"msg"`
			} `json:"message"`
		}
		_ = json.Unmarshal(body, &v)
		r.user, r.msg = v.User, v.Message.ID
		e.mu.Lock()
		e.reqs = append(e.reqs, r)
		e.mu.Unlock()
		if e.reply != nil {
			e.reply(r, w, req)
		}
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]request(nil), e.reqs...)
}

// count returns how many requests came for message id msg ("" for all).
func (e *endpoint) count(msg string) int {
	n := 0
	for _, r := range e.requests() {
		if msg == "" || r.msg == msg {
			n++
		}
	}
	return n
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = "s3cret"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// testWriter sends the Notifier's logs to t.Log: shown with -v or on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func message(id string) courier.Message {
	return courier.Message{ID: id, From: "alice", To: "bob", Event: "chat", Data: json.RawMessage(`{"text":"hi"}`),
		Time: time.Date(2026, 11, 23, 14, 2, 11, 0, time.UTC), Seq: 7}
}

func TestNewChecksConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://example.com/x", "http://", "localhost:8080/hook", "://x", "/hook"} {
		if n, err := New(Config{URL: u, Secret: "s"}); err == nil {
			n.Close(context.Background())
			t.Errorf("New accepted URL %q", u)
		}
	}
	if _, err := New(Config{URL: "https://example.com/hook"}); err == nil {
		t.Error("New accepted an empty secret")
	}
	noLeak(t)
	n := newNotifier(t, Config{URL: "https://example.com/hook"})
	if n.firstRetry > 2*time.Second || n.maxAttempts != DefaultMaxAttempts || cap(n.work) != DefaultQueue ||
		n.workers != DefaultWorkers || n.timeout != DefaultTimeout || n.maxBackoff != DefaultMaxBackoff {
		t.Errorf("defaults: %+v", n)
	}
}

var tsFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestBodyAndSignature(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, nil)
	n := newNotifier(t, Config{URL: e.URL + "/hook?k=v", Secret: "s3cret"})

	m1 := message("m1") // a time on the second: ts must still have ".000"
	m2 := courier.Message{ID: "m2", From: "billing", To: `we"ird`, Event: "invoice", Time: time.Date(2026, 1, 2, 3, 4, 5, 67e6, time.UTC), Seq: 12}
	if !n.Notify("bob", m1) || !n.Notify(`we"ird`, m2) {
		t.Fatal("Notify dropped")
	}
	waitFor(t, 5*time.Second, "2 deliveries", func() bool { return n.Stats().Delivered == 2 })

	reqs := e.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.method != http.MethodPost || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with Content-Type %q", r.method, r.header.Get("Content-Type"))
		}
		sig := r.header.Get(SignatureHeader)
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(r.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
			t.Errorf("signature %q, want %q", sig, want)
		}
		if !Verify("s3cret", r.body, sig) || Verify("other", r.body, sig) {
			t.Error("Verify disagrees with the signature")
		}
		m := m1
		if r.msg == "m2" {
			m = m2
		}
		want := `{"type":"offline_message","user":` + string(protocol.AppendString(nil, r.user)) +
			`,"message":` + string(protocol.AppendMessage(nil, &m)) + `}`
		if string(r.body) != want {
			t.Errorf("body\n%s\nwant\n%s", r.body, want)
		}

		var v struct {
			Type    string
			User    string
			Message map[string]any
		}
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		mm := v.Message
		if v.Type != "offline_message" || v.User != m.To || mm["type"] != "message" || mm["msg"] != m.ID ||
			mm["from"] != m.From || mm["to"] != m.To || mm["event"] != m.Event || mm["seq"] != float64(m.Seq) {
			t.Errorf("decoded body %+v", v)
		}
		if data, _ := json.Marshal(mm["data"]); string(data) != string(m.Data) && (m.Data != nil || string(data) != "null") {
			t.Errorf("data %s, want %s", data, m.Data)
		}
		if ts, _ := mm["ts"].(string); !tsFormat.MatchString(ts) {
			t.Errorf("ts %q: want RFC 3339 UTC with 3 fractional digits", ts)
		}
	}
	if s := n.Stats(); s.Delivered != 2 || s.Pending != 0 || s.Retries != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRetriesBoundedWithGrowingBackoff(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, func(_ request, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	const first = 100 * time.Millisecond
	n := newNotifier(t, Config{URL: e.URL, MaxAttempts: 5, FirstRetry: first, MaxBackoff: 10 * time.Second})
	n.Notify("bob", message("m1"))
	waitFor(t, 10*time.Second, "the notification to be given up", func() bool { return n.Stats().Failed == 1 })
	time.Sleep(3 * first)
	reqs := e.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d attempts, want MaxAttempts = 5", len(reqs))
	}
	var prev time.Duration
	for i := 1; i < len(reqs); i++ {
		gap := reqs[i].at.Sub(reqs[i-1].at)
		base := first << (i - 1)
		t.Logf("wait %d: %v (base %v)", i, gap, base)
		if gap < base*3/4 || gap > base+300*time.Millisecond {
			t.Errorf("wait %d = %v, want between %v and about %v", i, gap, base*3/4, base)
		}
		if gap <= prev {
			t.Errorf("wait %d = %v, not longer than the one before (%v)", i, gap, prev)
		}
		prev = gap
	}
	if s := n.Stats(); s.Retries != 4 || s.Failed != 1 || s.Delivered != 0 || s.Pending != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestDefaultFirstRetryWithin2s(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, firstFails(http.StatusBadGateway))
	n := newNotifier(t, Config{URL: e.URL}) // every default
	n.Notify("bob", message("m1"))
	waitFor(t, 3*time.Second, "the retry to succeed", func() bool { return n.Stats().Delivered == 1 })
	reqs := e.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap > 2*time.Second {
		t.Errorf("first retry after %v, want within 2s", gap)
	} else {
		t.Logf("first retry after %v", gap)
	}
}

func TestRetriesAfterConnectionRefused(t *testing.T) {
	noLeak(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused

	n := newNotifier(t, Config{URL: "http://" + addr + "/hook", FirstRetry: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAttempts: 100})
	n.Notify("bob", message("m1"))
	waitFor(t, 5*time.Second, "two refused attempts", func() bool { return n.Stats().Retries >= 2 })

	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	got := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case got <- struct{}{}:
		default:
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	waitFor(t, 5*time.Second, "delivery once the endpoint listens", func() bool { return n.Stats().Delivered == 1 })
	if s := n.Stats(); s.Failed != 0 || s.Pending != 0 {
		t.Errorf("stats %+v", s)
	}
}

// firstFails answers code (and header) to the first request of each message
// and 200 to the next ones.
func firstFails(code int, header ...string) func(request, http.ResponseWriter, *http.Request) {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(r request, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		again := seen[r.msg]
		seen[r.msg] = true
		mu.Unlock()
		if again {
			return
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func Test429HonoursRetryAfter(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, firstFails(http.StatusTooManyRequests, "Retry-After", "1"))
	n := newNotifier(t, Config{URL: e.URL, FirstRetry: 10 * time.Millisecond})
	n.Notify("bob", message("m1"))
	waitFor(t, 5*time.Second, "delivery", func() bool { return n.Stats().Delivered == 1 })
	reqs := e.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second-20*time.Millisecond || gap > 2*time.Second {
		t.Errorf("retry after %v, want the 1s Retry-After asked for", gap)
	}

	// Within the cap: an hour asked, MaxBackoff given.
	e2 := newEndpoint(t, firstFails(http.StatusTooManyRequests, "Retry-After", "3600"))
	n2 := newNotifier(t, Config{URL: e2.URL, FirstRetry: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	n2.Notify("bob", message("m1"))
	waitFor(t, 5*time.Second, "delivery within MaxBackoff", func() bool { return n2.Stats().Delivered == 1 })
	reqs = e2.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap > time.Second {
		t.Errorf("retry after %v, want within MaxBackoff (100ms)", gap)
	}
}

func TestStatusClasses(t *testing.T) {
	noLeak(t)
	permanent := []int{400, 401, 403, 404, 410, 422}
	retried := []int{408, 429, 500, 502, 503, 504, 301}
	for _, codes := range [][]int{permanent, retried} {
		for _, code := range codes {
			e := newEndpoint(t, firstFails(code, "Location", "/elsewhere"))
			n := newNotifier(t, Config{URL: e.URL, FirstRetry: 10 * time.Millisecond})
			n.Notify("bob", message("m1"))
			waitFor(t, 5*time.Second, fmt.Sprint("the notification answered ", code, " to settle"), func() bool { return n.Stats().Pending == 0 })
			time.Sleep(30 * time.Millisecond) // a retry would have come by now
			s, attempts := n.Stats(), e.count("m1")
			if code < 500 && code >= 400 && code != 408 && code != 429 {
				if s.Rejected != 1 || s.Retries != 0 || attempts != 1 {
					t.Errorf("%d: %d attempts, stats %+v; want 1 attempt, rejected", code, attempts, s)
				}
			} else if s.Delivered != 1 || s.Retries != 1 || attempts != 2 {
				t.Errorf("%d: %d attempts, stats %+v; want a retry, then delivered", code, attempts, s)
			}
		}
	}
}

// hung is a handler that never answers until release is closed or the client
// goes away.
func hung(release chan struct{}) func(request, http.ResponseWriter, *http.Request) {
	return func(_ request, _ http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	noLeak(t)
	release := make(chan struct{})
	e := newEndpoint(t, hung(release))
	defer close(release) // before e.Close, which waits for its handlers
	n := newNotifier(t, Config{URL: e.URL, Workers: 1, Queue: 5, Timeout: time.Minute})

	var slowest time.Duration
	notify := func(want bool) {
		start := time.Now()
		if got := n.Notify("bob", message("m")); got != want {
			t.Fatalf("Notify = %v, want %v", got, want)
		}
		slowest = max(slowest, time.Since(start))
	}
	for range 5 {
		notify(true)
	}
	waitFor(t, 5*time.Second, "the sender to hang", func() bool { return e.count("") == 1 })
	for range 1000 {
		notify(false)
	}
	t.Logf("slowest Notify: %v", slowest)
	if slowest > 100*time.Millisecond {
		t.Errorf("a Notify took %v against a hung endpoint", slowest)
	}
	if s := n.Stats(); s.Dropped != 1000 || s.Pending != 5 {
		t.Errorf("stats %+v", s)
	}

	// Close gives up at the end of its context, hung request included.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the context's error", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v with a 100ms context", took)
	}
	if n.Notify("bob", message("late")) {
		t.Error("Notify accepted after Close")
	}
	if s := n.Stats(); s.Failed != 5 || s.Pending != 0 || s.Dropped != 1001 {
		t.Errorf("stats after Close %+v", s)
	}
}

func TestHungEndpointDoesNotStopOthers(t *testing.T) {
	noLeak(t)
	release := make(chan struct{})
	e := newEndpoint(t, nil)
	hang := hung(release)
	e.reply = func(r request, w http.ResponseWriter, req *http.Request) {
		if r.user == "hang" {
			hang(r, w, req)
		}
	}
	defer close(release)
	const timeout = 2 * time.Second
	n := newNotifier(t, Config{URL: e.URL, Workers: 2, Timeout: timeout, MaxAttempts: 1})

	n.Notify("hang", message("h"))
	waitFor(t, 5*time.Second, "the hung request", func() bool { return e.count("h") == 1 })
	hungAt := time.Now()
	for i := range 20 {
		n.Notify("bob", message(fmt.Sprint("ok", i)))
	}
	waitFor(t, timeout*8/10, "the other notifications, while one hangs", func() bool { return n.Stats().Delivered == 20 })
	if s := n.Stats(); s.Failed != 0 || s.Pending != 1 {
		t.Errorf("stats %+v, want the hung one still pending", s)
	}
	waitFor(t, 5*time.Second, "the hung request to be cut", func() bool { return n.Stats().Failed == 1 })
	if took := time.Since(hungAt); took < timeout*8/10 {
		t.Errorf("hung request cut after %v, before Timeout %v", took, timeout)
	}
}

func TestRetryWaitDoesNotHoldSender(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, nil)
	e.reply = func(r request, w http.ResponseWriter, _ *http.Request) {
		if r.user == "bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	// One sender, and the retry waits at least 1.5 s.
	n := newNotifier(t, Config{URL: e.URL, Workers: 1, FirstRetry: 2 * time.Second, MaxBackoff: 2 * time.Second, MaxAttempts: 2})
	n.Notify("bad", message("bad"))
	waitFor(t, 5*time.Second, "the first failure", func() bool { return n.Stats().Retries == 1 })
	for i := range 10 {
		n.Notify("bob", message(fmt.Sprint("ok", i)))
	}
	waitFor(t, time.Second, "the others, while the retry waits", func() bool { return n.Stats().Delivered == 10 })
	if got := e.count("bad"); got != 1 {
		t.Errorf("%d attempts of the failing one, want 1 so far", got)
	}
}

func TestCloseDrains(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, nil)
	fail := firstFails(http.StatusInternalServerError)
	e.reply = func(r request, w http.ResponseWriter, req *http.Request) {
		time.Sleep(10 * time.Millisecond)
		if r.msg == "retried" {
			fail(r, w, req)
		}
	}
	n := newNotifier(t, Config{URL: e.URL, Workers: 2, FirstRetry: 50 * time.Millisecond})
	n.Notify("bob", message("retried"))
	for i := range 20 {
		n.Notify("bob", message(fmt.Sprint("m", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := n.Stats(); s.Delivered != 21 || s.Retries != 1 || s.Pending != 0 || s.Failed != 0 {
		t.Errorf("stats after Close %+v", s)
	}
	if n.Notify("bob", message("late")) {
		t.Error("Notify accepted after Close")
	}
	if err := n.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentNotify(t *testing.T) {
	noLeak(t)
	e := newEndpoint(t, nil)
	n := newNotifier(t, Config{URL: e.URL})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if !n.Notify("bob", message(fmt.Sprint(g, "-", i))) {
					t.Error("dropped")
				}
				_ = n.Stats()
			}
		})
	}
	wg.Wait()
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := n.Stats(); s.Delivered != 800 || e.count("") != 800 {
		t.Errorf("stats %+v, %d requests", s, e.count(""))
	}
}
