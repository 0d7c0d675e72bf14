package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestAuthBeforeUpgrade(t *testing.T) {
	n := start(t, "")
	expired, _ := mintExpired()
	for name, u := range map[string]string{
		"missing": n.url + "/ws",
		"garbage": n.url + "/ws?token=not-a-jwt",
		"expired": n.url + "/ws?token=" + expired,
	} {
		if status := upgradeStatus(t, u, ""); status != http.StatusUnauthorized {
			t.Errorf("%s token: status %d, want 401", name, status)
		}
	}
	// The Authorization header works as well as the query.
	if status := upgradeStatus(t, n.url+"/ws", "Bearer "+token(t, "alice")); status != http.StatusSwitchingProtocols {
		t.Errorf("Authorization header: status %d, want 101", status)
	}
}

// upgradeStatus sends a WebSocket upgrade request and returns the status.
func upgradeStatus(t *testing.T, url, authorization string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDirectMessageReachesEveryDeviceOfTheRecipientOnly(t *testing.T) {
	n := start(t, "")
	alice1, alice2 := n.dial("alice"), n.dial("alice")
	bob1, bob2 := n.dial("bob"), n.dial("bob")
	carol := n.dial("carol")

	alice1.send(map[string]any{"type": "send", "id": "1", "to": "bob", "event": "chat", "data": map[string]any{"text": "hi"}, "from": "mallory"})
	ack := alice1.expect("ack")
	if ack["id"] != "1" || ack["msg"] == "" || num(t, ack, "seq") != 1 {
		t.Fatalf("ack = %v", ack)
	}
	for _, c := range []*client{bob1, bob2, alice2} {
		m := c.expect("message")
		if m["from"] != "alice" || m["to"] != "bob" || m["event"] != "chat" || m["msg"] != ack["msg"] || num(t, m, "seq") != 1 {
			t.Fatalf("%s got %v", c.user, m)
		}
		if d := m["data"].(map[string]any); d["text"] != "hi" {
			t.Fatalf("data = %v", d)
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z", m["ts"].(string))
		if err != nil || time.Since(ts) > time.Minute {
			t.Fatalf("ts %v: %v", m["ts"], err)
		}
	}
	carol.quiet(200 * time.Millisecond)
	alice1.quiet(0)

	// Defaults: event "message", data null.
	bob1.send(`{"type":"send","to":"alice"}`)
	bob1.expect("ack")
	m := alice1.expect("message")
	if m["event"] != "message" || m["data"] != nil || num(t, m, "seq") != 2 {
		t.Fatalf("defaults: %v", m)
	}
	alice2.expect("message")
	bob2.expect("message") // bob's other device stays in sync
}

func TestConnTargetAndVolatile(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice")
	bob1, bob2 := n.dial("bob"), n.dial("bob")
	alice2 := n.dial("alice")

	alice.send(map[string]any{"type": "send", "id": "c", "to": "conn:" + bob2.conn, "event": "signal", "data": "offer"})
	ack := alice.expect("ack")
	if ack["msg"] == "" || ack["seq"] != nil {
		t.Fatalf("conn ack = %v", ack)
	}
	m := bob2.expect("message")
	if m["to"] != "conn:"+bob2.conn || m["seq"] != nil || m["data"] != "offer" {
		t.Fatalf("conn message = %v", m)
	}
	bob1.quiet(100 * time.Millisecond)
	alice2.quiet(0)

	alice.send(map[string]any{"type": "send", "id": "x", "to": "conn:nope"})
	if e := alice.expect("error"); e["code"] != "not_found" || e["id"] != "x" {
		t.Fatalf("unknown conn: %v", e)
	}

	alice.send(map[string]any{"type": "send", "id": "v", "to": "bob", "event": "typing", "volatile": true})
	if a := alice.expect("ack"); a["seq"] != nil || a["msg"] == "" {
		t.Fatalf("volatile ack = %v", a)
	}
	for _, b := range []*client{bob1, bob2} {
		if m := b.expect("message"); m["event"] != "typing" || m["seq"] != nil {
			t.Fatalf("volatile = %v", m)
		}
	}
	alice2.quiet(100 * time.Millisecond) // no sender sync for volatile

	// Nothing volatile is stored: bob's inbox is empty.
	bob3 := n.dial("bob")
	bob3.send(`{"type":"resume","id":"r","since":0}`)
	if a := bob3.expect("ack"); num(t, a, "seq") != 0 {
		t.Fatalf("resume after volatile only: %v", a)
	}
}

func TestRooms(t *testing.T) {
	n := start(t, "")
	a, b, c := n.dial("alice"), n.dial("bob"), n.dial("carol")
	a.send(`{"type":"publish","id":"p0","room":"lobby","data":1}`)
	if e := a.expect("error"); e["code"] != "forbidden" || e["id"] != "p0" {
		t.Fatalf("publish before join: %v", e)
	}
	for _, x := range []*client{a, b} {
		x.send(`{"type":"join","id":"j","room":"lobby"}`)
		x.expect("ack")
	}
	for i := 1; i <= 3; i++ {
		a.send(fmt.Sprintf(`{"type":"publish","id":"p%d","room":"lobby","event":"chat","data":%d}`, i, i))
		ack := a.expect("ack")
		if num(t, ack, "seq") != uint64(i) {
			t.Fatalf("room ack %d: %v", i, ack)
		}
		m := b.expect("message")
		if m["room"] != "lobby" || m["from"] != "alice" || num(t, m, "seq") != uint64(i) || m["to"] != nil {
			t.Fatalf("room message: %v", m)
		}
	}
	a.quiet(100 * time.Millisecond) // the publisher gets no copy
	c.quiet(0)

	b.send(`{"type":"leave","id":"l","room":"lobby"}`)
	b.expect("ack")
	a.send(`{"type":"publish","id":"p4","room":"lobby","data":4}`)
	if ack := a.expect("ack"); num(t, ack, "seq") != 4 {
		t.Fatalf("ack after leave: %v", ack)
	}
	b.quiet(150 * time.Millisecond)

	// A closed connection leaves its rooms, and a room with nobody is forgotten.
	b.send(`{"type":"join","id":"j2","room":"lobby"}`)
	b.expect("ack")
	b.close()
	waitFor(t, func() bool { return n.hub.Connections("bob") == 0 })
	a.send(`{"type":"publish","id":"p5","room":"lobby","data":5,"volatile":true}`)
	if ack := a.expect("ack"); ack["seq"] != nil {
		t.Fatalf("volatile publish ack: %v", ack)
	}
	status, body := n.api("POST", "/api/publish", testAPIKey, map[string]any{"room": "lobby", "event": "notice", "data": "x"})
	if status != 200 || num(t, body, "delivered") != 1 {
		t.Fatalf("api publish: %d %v", status, body)
	}
	if m := a.expect("message"); m["from"] != "system" || m["room"] != "lobby" {
		t.Fatalf("api publish message: %v", m)
	}
}

func TestOfflineThenResume(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice")
	for i := 1; i <= 5; i++ {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "data": i})
		alice.expect("ack")
	}
	// since= at connect replays, then live messages follow with no gap.
	bob := n.dial("bob", "since=2")
	for i := 3; i <= 5; i++ {
		m := bob.expect("message")
		if num(t, m, "seq") != uint64(i) || m["data"].(float64) != float64(i) {
			t.Fatalf("replayed %d: %v", i, m)
		}
	}
	alice.send(map[string]any{"type": "send", "id": "6", "to": "bob", "data": 6})
	alice.expect("ack")
	if m := bob.expect("message"); num(t, m, "seq") != 6 {
		t.Fatalf("live after replay: %v", m)
	}
	// A resume frame replays again and acks with the latest seq.
	bob.send(`{"type":"resume","id":"r","since":4}`)
	for i := 5; i <= 6; i++ {
		if m := bob.expect("message"); num(t, m, "seq") != uint64(i) {
			t.Fatalf("resume frame %d: %v", i, m)
		}
	}
	if a := bob.expect("ack"); a["id"] != "r" || num(t, a, "seq") != 6 {
		t.Fatalf("resume ack: %v", a)
	}
	// The sender's inbox holds its sent messages too.
	alice2 := n.dial("alice", "since=0")
	for i := 1; i <= 6; i++ {
		if m := alice2.expect("message"); num(t, m, "seq") != uint64(i) || m["to"] != "bob" {
			t.Fatalf("sender inbox %d: %v", i, m)
		}
	}
	// A client that claims more than exists is told the real head.
	carol := n.dial("carol")
	carol.send(`{"type":"resume","id":"r","since":99}`)
	if a := carol.expect("ack"); num(t, a, "seq") != 0 {
		t.Fatalf("resume past the head: %v", a)
	}
}

func TestRestartKeepsInboxes(t *testing.T) {
	dir := t.TempDir()
	n := start(t, dir)
	alice := n.dial("alice")
	alice.send(`{"type":"send","id":"1","to":"bob","data":"before","key":"k1"}`)
	first := alice.expect("ack")
	n.stop()

	n2 := start(t, dir)
	bob := n2.dial("bob", "since=0")
	if m := bob.expect("message"); m["data"] != "before" || num(t, m, "seq") != 1 {
		t.Fatalf("after restart: %v", m)
	}
	alice = n2.dial("alice")
	alice.send(`{"type":"send","id":"2","to":"bob","data":"after"}`)
	if a := alice.expect("ack"); num(t, a, "seq") != 2 {
		t.Fatalf("seq continues after restart: %v", a)
	}
	if m := bob.expect("message"); num(t, m, "seq") != 2 {
		t.Fatalf("bob after restart: %v", m)
	}
	// Idempotency keys survive the restart.
	alice.send(`{"type":"send","id":"3","to":"bob","data":"before","key":"k1"}`)
	if a := alice.expect("ack"); a["msg"] != first["msg"] || num(t, a, "seq") != 1 {
		t.Fatalf("repeated key after restart: %v (first %v)", a, first)
	}
	bob.quiet(150 * time.Millisecond)
}

func TestIdempotentSend(t *testing.T) {
	n := start(t, "")
	alice, bob := n.dial("alice"), n.dial("bob")
	alice.send(`{"type":"send","id":"1","to":"bob","data":"once","key":"abc"}`)
	a1 := alice.expect("ack")
	bob.expect("message")
	alice.send(`{"type":"send","id":"2","to":"bob","data":"once","key":"abc"}`)
	a2 := alice.expect("ack")
	if a2["id"] != "2" || a2["msg"] != a1["msg"] || a2["seq"] != a1["seq"] {
		t.Fatalf("repeat ack %v, first %v", a2, a1)
	}
	bob.quiet(150 * time.Millisecond)
	// Another sender's same key is its own.
	carol := n.dial("carol")
	carol.send(`{"type":"send","id":"1","to":"bob","data":"carol","key":"abc"}`)
	if a := carol.expect("ack"); a["msg"] == a1["msg"] {
		t.Fatalf("key leaked across senders: %v", a)
	}
	bob.expect("message")
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
