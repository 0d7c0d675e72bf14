package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestServerAPI(t *testing.T) {
	n := start(t, "")
	// Wrong or missing key: 401 on every endpoint.
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/send"}, {"POST", "/api/publish"}, {"GET", "/api/presence?user=bob"}, {"POST", "/api/disconnect"},
	} {
		for _, key := range []string{"", "wrong"} {
			status, body := n.api(c.method, c.path, key, map[string]any{"to": "bob"})
			if status != 401 || body["error"].(map[string]any)["code"] != "unauthorized" {
				t.Errorf("%s %s key %q: %d %v", c.method, c.path, key, status, body)
			}
		}
	}

	status, body := n.api("GET", "/api/presence?user=bob", testAPIKey, nil)
	if status != 200 || body["online"] != false || num(t, body, "connections") != 0 || body["lastSeen"] != nil {
		t.Fatalf("presence before: %d %v", status, body)
	}
	bob1, bob2 := n.dial("bob"), n.dial("bob")
	status, body = n.api("GET", "/api/presence?user=bob", testAPIKey, nil)
	if status != 200 || body["online"] != true || num(t, body, "connections") != 2 {
		t.Fatalf("presence online: %d %v", status, body)
	}

	// A backend sends to bob: stored in his inbox, from a label.
	status, body = n.api("POST", "/api/send", testAPIKey, map[string]any{"to": "bob", "from": "billing", "event": "notice", "data": map[string]any{"due": 5}})
	if status != 200 || num(t, body, "seq") != 1 || num(t, body, "delivered") != 2 || body["msg"] == "" {
		t.Fatalf("api send: %d %v", status, body)
	}
	for _, b := range []*client{bob1, bob2} {
		if m := b.expect("message"); m["from"] != "billing" || m["event"] != "notice" || num(t, m, "seq") != 1 {
			t.Fatalf("api message: %v", m)
		}
	}
	// from defaults to "system", and "system" has no inbox.
	status, body = n.api("POST", "/api/send", testAPIKey, map[string]any{"to": "bob", "data": "x"})
	if status != 200 || num(t, body, "seq") != 2 {
		t.Fatalf("api send 2: %d %v", status, body)
	}
	if m := bob1.expect("message"); m["from"] != "system" {
		t.Fatalf("default from: %v", m)
	}
	bob2.expect("message")
	sys := n.dial("system", "since=0")
	sys.send(`{"type":"resume","id":"r","since":0}`)
	if a := sys.expect("ack"); num(t, a, "seq") != 0 {
		t.Fatalf("label got an inbox: %v", a)
	}

	// Offline recipient: stored, delivered to nobody, replayable.
	status, body = n.api("POST", "/api/send", testAPIKey, map[string]any{"to": "dave", "data": "later"})
	if status != 200 || num(t, body, "delivered") != 0 || num(t, body, "seq") != 1 {
		t.Fatalf("offline api send: %d %v", status, body)
	}
	dave := n.dial("dave", "since=0")
	if m := dave.expect("message"); m["data"] != "later" {
		t.Fatalf("dave: %v", m)
	}

	// conn: targets are volatile; unknown → 404.
	status, body = n.api("POST", "/api/send", testAPIKey, map[string]any{"to": "conn:" + bob2.conn, "data": "only you"})
	if status != 200 || body["seq"] != nil || num(t, body, "delivered") != 1 {
		t.Fatalf("api conn send: %d %v", status, body)
	}
	if m := bob2.expect("message"); m["data"] != "only you" {
		t.Fatalf("conn message: %v", m)
	}
	bob1.quiet(100 * time.Millisecond)
	status, body = n.api("POST", "/api/send", testAPIKey, map[string]any{"to": "conn:gone"})
	if status != 404 || body["error"].(map[string]any)["code"] != "not_found" {
		t.Fatalf("unknown conn: %d %v", status, body)
	}

	// Bad bodies.
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/api/send", "{", 400},
		{"/api/send", `{"data":1}`, 400},
		{"/api/send", `{"to":""}`, 400},
		{"/api/send", `{"to":"bad\u0001user"}`, 400},
		{"/api/send", `{"to":5}`, 400},
		{"/api/publish", `{"data":1}`, 400},
		{"/api/send", `{"to":"bob","data":"` + strings.Repeat("x", 70000) + `"}`, 413},
		{"/api/disconnect", `{}`, 400},
		{"/api/send", "{\"to\":\"bob\",\"data\":\"\xff\xfe\"}", 400},
	} {
		status, body := n.api("POST", c.path, testAPIKey, c.body)
		if status != c.status || body["error"] == nil {
			t.Errorf("POST %s %.40q: %d %v, want %d", c.path, c.body, status, body, c.status)
		}
	}
	if status, _ := n.api("GET", "/api/send", testAPIKey, nil); status != 404 && status != 405 {
		t.Errorf("GET /api/send: %d", status)
	}

	// Disconnect closes every connection of bob with 4001.
	status, body = n.api("POST", "/api/disconnect", testAPIKey, map[string]any{"user": "bob"})
	if status != 200 || num(t, body, "disconnected") != 2 {
		t.Fatalf("disconnect: %d %v", status, body)
	}
	for _, b := range []*client{bob1, bob2} {
		if code := b.closeCode(); code != 4001 {
			t.Fatalf("disconnect close code %d", code)
		}
	}
	waitFor(t, func() bool { return n.hub.Connections("bob") == 0 })
	status, body = n.api("GET", "/api/presence?user=bob", testAPIKey, nil)
	if status != 200 || body["online"] != false || body["lastSeen"] == nil {
		t.Fatalf("presence after disconnect: %d %v", status, body)
	}
	if _, err := time.Parse(time.RFC3339, body["lastSeen"].(string)); err != nil {
		t.Fatalf("lastSeen: %v", err)
	}
}

func TestDevTokenOnlyInDevMode(t *testing.T) {
	n := start(t, "")
	if status, _ := n.api("GET", "/dev/token?user=alice", "", nil); status != 404 {
		t.Fatalf("dev token without dev: %d", status)
	}
	if status, _ := n.api("GET", "/healthz", "", nil); status != 200 {
		t.Fatalf("healthz: %d", status)
	}
	status, body := n.api("GET", "/metrics", "", nil)
	if status != 200 || !strings.Contains(body["raw"].(string), "courier_connections") {
		t.Fatalf("metrics: %d %.200v", status, body)
	}
}

// /metrics counts messages in by kind.
func TestMetricsCountMessages(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice")
	alice.send(`{"type":"send","id":"1","to":"bob"}`)
	alice.expect("ack")
	for i := range 2 {
		alice.send(fmt.Sprintf(`{"type":"send","id":"v%d","to":"bob","volatile":true}`, i))
		alice.expect("ack")
	}
	_, body := n.api("GET", "/metrics", "", nil)
	raw := body["raw"].(string)
	for _, want := range []string{`courier_messages_in_total{kind="durable"} 1`, `courier_messages_in_total{kind="volatile"} 2`} {
		if !strings.Contains(raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
