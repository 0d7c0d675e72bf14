package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier/brokertest"
	"github.com/courier-im/courier/webhook"
)

// hook is a local HTTP listener that records verified offline notices.
type hook struct {
	mu     sync.Mutex
	bodies []map[string]any
	bad    int
	fail   int // answer 500 to this many requests first
}

func newHook(t *testing.T, secret string) (*hook, string) {
	h := &hook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !webhook.Verify(secret, body, r.Header.Get(webhook.SignatureHeader)) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if h.fail > 0 {
			h.fail--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		h.bodies = append(h.bodies, m)
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hook) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got, bad := append([]map[string]any(nil), h.bodies...), h.bad
		h.mu.Unlock()
		if bad > 0 {
			t.Fatalf("%d notices with a bad signature", bad)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d offline notices, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A message to a user with no connection is POSTed, signed, to the
// webhook, retried after a failure; a message to an online user is not.
func TestOfflineWebhook(t *testing.T) {
	t.Parallel()
	h, url := newHook(t, "hooksecret")
	h.fail = 1
	node := startServe(t, "", environ("COURIER_WEBHOOK_SECRET=hooksecret"), "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--jwt-secret", "S", "--api-key", "K", "--webhook-url", url)
	c := &testCluster{t: t, nodes: []*proc{node}, secret: "S", key: "K"}
	alice := c.client(0, "alice")
	alice.send(t, `{"type":"send","id":"1","to":"bob","event":"chat","data":{"text":"are you there?"}}`)
	ack := alice.next(t, "ack")
	got := h.wait(t, 1)
	m := got[0]["message"].(map[string]any)
	if got[0]["type"] != "offline_message" || got[0]["user"] != "bob" || m["msg"] != ack["msg"] || m["from"] != "alice" || m["seq"] != 1.0 {
		t.Fatalf("notice %v", got[0])
	}
	bob := c.client(0, "bob")
	alice.send(t, `{"type":"send","id":"2","to":"bob","data":"online now"}`)
	alice.next(t, "ack")
	bob.next(t, "message")
	time.Sleep(300 * time.Millisecond)
	if n := len(h.wait(t, 1)); n != 1 {
		t.Fatalf("%d notices: a message to an online user was notified", n)
	}
	if _, body := node.get("/metrics"); !regexp.MustCompile(`courier_webhook_delivered_total 1\b`).MatchString(body) ||
		!regexp.MustCompile(`courier_webhook_retries_total 1\b`).MatchString(body) {
		t.Fatalf("webhook metrics missing or wrong:\n%s", grepLines(body, "courier_webhook"))
	}
}

// On a cluster, a user online on another node is not offline.
func TestOfflineWebhookCluster(t *testing.T) {
	t.Parallel()
	brokertest.Service(t, "nats", "127.0.0.1:4222")
	h, url := newHook(t, "hooksecret")
	db := freshDatabase(t)
	name := brokertest.Unique("hook")
	var nodes []*proc
	for range 2 {
		nodes = append(nodes, startServe(t, "", environ("COURIER_WEBHOOK_SECRET=hooksecret"), "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--jwt-secret", "S", "--api-key", "K", "--webhook-url", url, "--store", db, "--broker", "nats://127.0.0.1:4222", "--cluster-name", name))
	}
	c := &testCluster{t: t, nodes: nodes, secret: "S", key: "K"}
	bob := c.client(1, "bob")
	deadline := time.Now().Add(10 * time.Second)
	for c.connections(0, "bob") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node 0 never saw bob")
		}
		time.Sleep(50 * time.Millisecond)
	}
	alice := c.client(0, "alice")
	alice.send(t, `{"type":"send","id":"1","to":"bob","data":"hi"}`)
	alice.next(t, "ack")
	bob.next(t, "message")
	alice.send(t, `{"type":"send","id":"2","to":"carol","data":"hi carol"}`)
	alice.next(t, "ack")
	got := h.wait(t, 1)
	time.Sleep(800 * time.Millisecond) // past the cluster's ask timeout
	got = h.wait(t, 1)
	if len(got) != 1 || got[0]["user"] != "carol" {
		t.Fatalf("notices %v, want carol's only", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
