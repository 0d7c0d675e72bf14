package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
)

// startWith runs a node whose hub config hub adjusts.
func startWith(t testing.TB, hub func(*courier.Config), tweak ...func(*server.Config)) *node {
	t.Helper()
	n := testnode.StartWith(t, "", testSecret, testAPIKey, hub, tweak...)
	return &node{Node: n, t: t, url: n.URL, hub: n.Hub}
}

// messages returns the messages of a history reply.
func messages(t *testing.T, f map[string]any) []map[string]any {
	t.Helper()
	raw, ok := f["messages"].([]any)
	if !ok {
		t.Fatalf("no messages in %v", f)
	}
	out := make([]map[string]any, len(raw))
	for i, m := range raw {
		out[i] = m.(map[string]any)
	}
	return out
}

// chat has alice and bob exchange n messages ("m0".."m{n-1}", alternating
// senders, alice first) and returns their clients.
func chat(t *testing.T, n *node, count int) (alice, bob *client) {
	alice, bob = n.dial("alice"), n.dial("bob")
	for i := range count {
		from, to := alice, "bob"
		if i%2 == 1 {
			from, to = bob, "alice"
		}
		from.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": to, "data": map[string]any{"text": fmt.Sprintf("m%d word%d", i, i)}})
		for {
			if f := from.next(); f["type"] == "ack" {
				break
			}
		}
	}
	return alice, bob
}

// drain reads what is waiting for c for a moment.
func drain(c *client) {
	for {
		select {
		case <-c.frames:
			<-c.raw
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

func TestHistory(t *testing.T) {
	n := start(t, "")
	alice, bob := chat(t, n, 6)
	drain(alice)
	drain(bob)

	alice.send(map[string]any{"type": "history", "id": "h", "with": "bob", "limit": 4})
	f := alice.expect("history")
	ms := messages(t, f)
	if f["id"] != "h" || len(ms) != 4 {
		t.Fatalf("history %v", f)
	}
	for i, m := range ms { // newest first, alice's seqs 6..3
		if num(t, m, "seq") != uint64(6-i) || m["type"] != "message" {
			t.Fatalf("item %d: %v", i, m)
		}
	}
	alice.send(map[string]any{"type": "history", "id": "h2", "with": "bob", "limit": 4, "before": 3})
	if ms := messages(t, alice.expect("history")); len(ms) != 2 || num(t, ms[0], "seq") != 2 || num(t, ms[1], "seq") != 1 {
		t.Fatalf("second page %v", ms)
	}
	// A third user reads nothing of alice and bob, through any door.
	carol := n.dial("carol")
	carol.send(map[string]any{"type": "history", "id": "c", "with": "bob"})
	if ms := messages(t, carol.expect("history")); len(ms) != 0 {
		t.Fatalf("carol read %v", ms)
	}
	carol.send(map[string]any{"type": "history", "id": "c", "with": "alice"})
	if ms := messages(t, carol.expect("history")); len(ms) != 0 {
		t.Fatalf("carol read %v", ms)
	}
	carol.send(map[string]any{"type": "conversations", "id": "c"})
	if cs := carol.expect("conversations")["conversations"].([]any); len(cs) != 0 {
		t.Fatalf("carol's conversations %v", cs)
	}
	carol.send(map[string]any{"type": "search", "id": "c", "q": "word1"})
	if ms := messages(t, carol.expect("history")); len(ms) != 0 {
		t.Fatalf("carol found %v", ms)
	}
	// The server API reads any conversation.
	status, out := n.api("GET", "/api/history?user=bob&with=alice&limit=2", testAPIKey, nil)
	if status != http.StatusOK || len(out["messages"].([]any)) != 2 {
		t.Fatalf("/api/history: %d %v", status, out)
	}
	if status, _ := n.api("GET", "/api/history?user=bob", testAPIKey, nil); status != http.StatusBadRequest {
		t.Fatalf("/api/history without with: %d", status)
	}
	if status, _ := n.api("GET", "/api/history?user=bob&with=alice", "wrong", nil); status != http.StatusUnauthorized {
		t.Fatalf("/api/history with a wrong key: %d", status)
	}
}

func TestRoomHistoryAndClaims(t *testing.T) {
	n := startWith(t, func(c *courier.Config) { c.RoomsRequireClaim = true })
	mint := func(user string, rooms []string) *client {
		tok, err := jwt.Mint([]byte(testSecret), user, time.Hour, rooms)
		if err != nil {
			t.Fatal(err)
		}
		c := n.dialRaw(user, "token="+tok)
		c.expect("welcome")
		return c
	}
	member := mint("ann", []string{"team-*"})
	outsider := mint("olaf", []string{"other"})
	noClaim := n.dial("nick") // no rooms claim: refused with --rooms-require-claim
	noClaim.send(map[string]any{"type": "join", "id": "j", "room": "team-a"})
	if e := noClaim.expect("error"); e["code"] != "forbidden" {
		t.Fatalf("join without a claim: %v", e)
	}
	member.send(map[string]any{"type": "join", "id": "j", "room": "team-a"})
	member.expect("ack")
	for i := range 3 {
		member.send(map[string]any{"type": "publish", "id": fmt.Sprint(i), "room": "team-a", "data": i})
		member.expect("ack")
	}
	member.send(map[string]any{"type": "history", "id": "r", "room": "team-a", "limit": 2})
	ms := messages(t, member.expect("history"))
	if len(ms) != 2 || num(t, ms[0], "seq") != 3 || ms[0]["room"] != "team-a" {
		t.Fatalf("room history %v", ms)
	}
	for _, c := range []*client{outsider, noClaim} {
		c.send(map[string]any{"type": "history", "id": "r", "room": "team-a"})
		if e := c.expect("error"); e["code"] != "forbidden" {
			t.Fatalf("%s read the room: %v", c.user, e)
		}
	}
}

func TestSearch(t *testing.T) {
	n := start(t, "")
	alice, bob := n.dial("alice"), n.dial("bob")
	alice.send(map[string]any{"type": "send", "id": "1", "to": "bob", "data": map[string]any{"text": "Pizza on Friday?", "meta": map[string]any{"place": "Luigi's"}}})
	alice.expect("ack")
	n.dial("carol").send(map[string]any{"type": "send", "id": "1", "to": "dave", "data": "pizza for dave"})
	search := func(c *client, q string) map[string]any {
		c.send(map[string]any{"type": "search", "id": "s", "q": q})
		for {
			if f := c.next(); f["id"] == "s" {
				return f
			}
		}
	}
	// Indexing may lag a write by up to a second.
	deadline := time.Now().Add(3 * time.Second)
	for {
		if ms := messages(t, search(bob, "pizza")); len(ms) == 1 {
			if ms[0]["from"] != "alice" || num(t, ms[0], "seq") != 1 {
				t.Fatalf("found %v", ms[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob did not find alice's message within 3 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for q, want := range map[string]int{"luigi": 1, `"on friday"`: 1, "piz*": 1, "pizza friday": 1, "pizza sunday": 0, "dave": 0} {
		if ms := messages(t, search(bob, q)); len(ms) != want {
			t.Errorf("search %q found %d, want %d", q, len(ms), want)
		}
	}
	// Engine syntax and injection attempts: a clear error or only own rows,
	// never an internal error.
	for _, q := range []string{`pizza" OR "dave`, `') OR 1=1 --`, `NEAR(pizza dave)`, `pizza OR dave`, `*`, `"`, `{to}: dave`, `dave*`} {
		f := search(bob, q)
		switch f["type"] {
		case "error":
			if f["code"] != "bad_request" {
				t.Errorf("search %q: %v", q, f)
			}
		case "history":
			for _, m := range messages(t, f) {
				if m["to"] != "bob" && m["from"] != "bob" {
					t.Errorf("search %q reached another pair's message %v", q, m)
				}
			}
		default:
			t.Errorf("search %q: %v", q, f)
		}
	}
}

func TestReceiptsAndConversations(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice").withReceipts()
	// bob is offline: no delivered receipt until he connects.
	for i := range 3 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "data": i})
		alice.expect("ack")
	}
	alice.quiet(200 * time.Millisecond)
	checkStatus(t, n, "sent", "sent", "sent")
	bob := n.dial("bob", "since=0")
	for range 3 {
		bob.expect("message")
	}
	got := map[string]bool{}
	for range 3 {
		r := alice.expect("receipt")
		if r["status"] != "delivered" || r["by"] != "bob" {
			t.Fatalf("receipt %v", r)
		}
		got[r["msg"].(string)] = true
	}
	bob2 := n.dial("bob", "since=0") // a second device: no second receipt
	for range 3 {
		bob2.expect("message")
	}
	alice.quiet(200 * time.Millisecond)

	bob.send(map[string]any{"type": "conversations", "id": "c"})
	cs := bob.expect("conversations")["conversations"].([]any)
	if len(cs) != 1 {
		t.Fatalf("conversations %v", cs)
	}
	c := cs[0].(map[string]any)
	if c["with"] != "alice" || num(t, c, "unread") != 3 || num(t, c["last"].(map[string]any), "seq") != 3 {
		t.Fatalf("conversation %v", c)
	}
	bob.send(map[string]any{"type": "read", "id": "r", "with": "alice", "seq": 2})
	bob.expect("ack")
	r := alice.expect("receipt")
	if r["status"] != "read" || r["by"] != "bob" || !got[r["msg"].(string)] {
		t.Fatalf("read receipt %v", r)
	}
	bob.send(map[string]any{"type": "conversations", "id": "c"})
	c = bob.expect("conversations")["conversations"].([]any)[0].(map[string]any)
	if num(t, c, "unread") != 1 {
		t.Fatalf("after reading up to 2: %v", c)
	}
	if _, ok := c["last"].(map[string]any)["status"]; ok {
		t.Fatalf("bob's last message is alice's, yet has a status: %v", c)
	}
	checkStatus(t, n, "read", "read", "delivered")
	bob.send(map[string]any{"type": "read", "id": "r", "with": "alice", "seq": 1}) // backwards: no receipt
	bob.expect("ack")
	alice.quiet(200 * time.Millisecond)
}

func TestPresenceFrames(t *testing.T) {
	n := startWith(t, func(c *courier.Config) { c.MaxWatches = 3 })
	w := n.dial("watcher")
	w.send(map[string]any{"type": "presence", "id": "p", "users": []string{"bob", "never"}})
	p := w.expect("presence")
	users := p["users"].(map[string]any)
	if b := users["bob"].(map[string]any); b["online"] != false || b["lastSeen"] != nil {
		t.Fatalf("presence %v", p)
	}
	w.send(map[string]any{"type": "watch", "id": "w", "users": []string{"bob"}})
	w.expect("ack")
	if f := w.expect("presence"); f["user"] != "bob" || f["online"] != false {
		t.Fatalf("current state %v", f)
	}
	bob := n.dial("bob")
	if f := w.expect("presence"); f["user"] != "bob" || f["online"] != true {
		t.Fatalf("online push %v", f)
	}
	bob.close()
	f := w.expect("presence")
	if f["online"] != false || f["lastSeen"] == nil {
		t.Fatalf("offline push %v", f)
	}
	w.send(map[string]any{"type": "watch", "id": "w2", "users": []string{"a", "b", "c"}})
	if e := w.expect("error"); e["code"] != "too_large" || e["id"] != "w2" {
		t.Fatalf("watching past --max-watches: %v", e)
	}
	w.send(map[string]any{"type": "unwatch", "id": "u", "users": []string{"bob"}})
	w.expect("ack")
	n.dial("bob")
	w.quiet(200 * time.Millisecond)
}

func TestRetentionTellsWhatIsGone(t *testing.T) {
	n := startWith(t, func(c *courier.Config) { c.Retention = time.Second })
	alice := n.dial("alice")
	for i := range 3 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "data": i})
		alice.expect("ack")
	}
	time.Sleep(3 * time.Second) // older than the retention, and the expirer ran
	bob := n.dial("bob")
	bob.send(map[string]any{"type": "resume", "id": "r", "since": 0})
	e := bob.expect("expired")
	if num(t, e, "from") != 1 || num(t, e, "to") != 3 {
		t.Fatalf("expired %v", e)
	}
	if a := bob.expect("ack"); num(t, a, "seq") != 3 {
		t.Fatalf("resume ack %v", a)
	}
}

// lastSeen is kept in the store: a restart remembers it.
func TestLastSeenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := start(t, dir)
	bob := n.dial("bob")
	bob.close()
	var seen string
	for deadline := time.Now().Add(5 * time.Second); seen == ""; time.Sleep(10 * time.Millisecond) {
		_, p := n.api("GET", "/api/presence?user=bob", testAPIKey, nil)
		if s, ok := p["lastSeen"].(string); ok && p["online"] == false {
			seen = s
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence after bob left: %v", p)
		}
	}
	n.stop()
	n2 := start(t, dir)
	if _, p := n2.api("GET", "/api/presence?user=bob", testAPIKey, nil); p["lastSeen"] != seen || p["online"] != false {
		t.Fatalf("after a restart: %v, want lastSeen %s", p, seen)
	}
	w := n2.dial("watcher")
	w.send(map[string]any{"type": "presence", "id": "p", "users": []string{"bob"}})
	if b := w.expect("presence")["users"].(map[string]any)["bob"].(map[string]any); b["lastSeen"] != seen {
		t.Fatalf("presence frame after a restart: %v", b)
	}
}

// checkStatus opens a new connection of alice, as a reloaded page would,
// and checks the status of her messages to bob in history (oldest first)
// and on the last one in her conversations. Delivered marks are written
// in the background, so it waits a little for them.
func checkStatus(t *testing.T, n *node, want ...string) {
	t.Helper()
	alice := n.dial("alice")
	deadline := time.Now().Add(5 * time.Second)
	for {
		alice.send(map[string]any{"type": "history", "id": "h", "with": "bob"})
		ms := messages(t, alice.expect("history"))
		var got []string
		for i := len(ms) - 1; i >= 0; i-- {
			got = append(got, fmt.Sprint(ms[i]["status"]))
		}
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses in alice's history %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice.send(map[string]any{"type": "conversations", "id": "c"})
	c := alice.expect("conversations")["conversations"].([]any)[0].(map[string]any)
	if st := c["last"].(map[string]any)["status"]; st != want[len(want)-1] {
		t.Fatalf("alice's last message to bob has status %v, want %s", st, want[len(want)-1])
	}
	alice.close()
}

// A recipient who reads a message the moment it arrives makes the sender
// see its delivered receipt, then its read receipt, never the other way
// round (on one node; see protocol.md).
func TestDeliveredBeforeRead(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice").withReceipts()
	bob := n.dial("bob")
	for i := range 20 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "data": i})
		m := bob.expect("message")
		bob.send(map[string]any{"type": "read", "id": "r", "with": "alice", "seq": m["seq"]})
		bob.expect("ack")
		var statuses []string
		for len(statuses) < 2 {
			f := alice.next()
			switch f["type"] {
			case "ack":
			case "receipt":
				if f["msg"] != m["msg"] {
					t.Fatalf("message %d: a receipt for another message: %v", i, f)
				}
				statuses = append(statuses, f["status"].(string))
			default:
				t.Fatalf("message %d: %v", i, f)
			}
		}
		if statuses[0] != "delivered" || statuses[1] != "read" {
			t.Fatalf("message %d: receipts %v, want delivered then read", i, statuses)
		}
	}
}

// A message that was never pushed to a connection of its recipient, read
// from history on a device that did not resume, was still delivered: the
// read marks it so, and its sender gets the delivered receipt before the
// read receipt (see protocol.md, receipt).
func TestReadFromHistoryDelivers(t *testing.T) {
	n := start(t, "")
	alice := n.dial("alice").withReceipts()
	alice.send(map[string]any{"type": "send", "id": "s", "to": "bob", "data": "while bob is away"})
	msg := alice.expect("ack")["msg"]
	bob := n.dial("bob") // no since: nothing is replayed to it
	bob.send(map[string]any{"type": "history", "id": "h", "with": "alice"})
	ms := messages(t, bob.expect("history"))
	if len(ms) != 1 || ms[0]["msg"] != msg {
		t.Fatalf("bob's history with alice: %v", ms)
	}
	bob.send(map[string]any{"type": "read", "id": "r", "with": "alice", "seq": ms[0]["seq"]})
	bob.expect("ack")
	for _, status := range []string{"delivered", "read"} {
		if f := alice.expect("receipt"); f["status"] != status || f["msg"] != msg || f["by"] != "bob" {
			t.Fatalf("receipt %v, want %s of %v by bob", f, status, msg)
		}
	}
	checkStatus(t, n, "read")
}

// The welcome names the inbox head at attach: 0 for an empty inbox, then
// the seq of the newest message stored, whatever since the client gave.
func TestWelcomeSeq(t *testing.T) {
	n := start(t, "")
	welcomeSeq := func(query ...string) any {
		t.Helper()
		c := n.dialRaw("bob", query...)
		defer c.close()
		w := c.next()
		if w["type"] != "welcome" {
			t.Fatalf("first frame %v", w)
		}
		return w["seq"]
	}
	if s := welcomeSeq(); s != 0.0 {
		t.Fatalf("welcome seq %v for an empty inbox, want 0", s)
	}
	alice := n.dial("alice")
	for i := range 2 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "data": i})
		alice.expect("ack")
	}
	if s := welcomeSeq(); s != 2.0 {
		t.Fatalf("welcome seq %v after two messages, want 2", s)
	}
	if s := welcomeSeq("since=1"); s != 2.0 {
		t.Fatalf("welcome seq %v with since=1, want 2", s)
	}
}
