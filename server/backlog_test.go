package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/server"
)

// startGated runs a node whose store holds the calls named (see
// testnode.NewGatedStore) until gs.Open, which the test's end calls too;
// hub and tweak adjust the hub's and the server's configs.
func startGated(t *testing.T, user string, calls []string, hub func(*courier.Config), tweak ...func(*server.Config)) (*node, *testnode.GatedStore) {
	var gs *testnode.GatedStore
	n := testnode.StartWith(t, "", testSecret, testAPIKey, func(c *courier.Config) {
		gs = testnode.NewGatedStore(c.Store, user, calls...)
		c.Store = gs
		if hub != nil {
			hub(c)
		}
	}, tweak...)
	t.Cleanup(gs.Open) // a failed test must not leave a handler waiting
	return &node{Node: n, t: t, url: n.URL, hub: n.Hub}, gs
}

// searchGated is a node whose every Search waits, so that a frame that may
// block is certainly still being handled.
func searchGated(t *testing.T, tweak ...func(*server.Config)) (*node, *testnode.GatedStore) {
	return startGated(t, "", []string{"Search"}, nil, tweak...)
}

// A frame that waits for the store holds up its own connection's later
// frames, in order, and nobody else's: the poller goes on handling the
// other connections.
func TestBlockingFrameStallsOnlyItsConnection(t *testing.T) {
	n, gs := searchGated(t)
	alice, bob, carol := n.dial("alice"), n.dial("bob"), n.dial("carol")

	alice.send(`{"type":"search","id":"s","q":"pizza"}`)
	<-gs.Entered
	alice.send(`{"type":"ping","id":"p"}`)
	alice.send(`{"type":"send","id":"v","to":"bob","volatile":true,"data":"after the search"}`)

	// Meanwhile everyone else is served.
	served(bob, carol)
	alice.quiet(200 * time.Millisecond) // her frames wait behind the search
	bob.quiet(0)

	gs.Open()
	if h := alice.expect("history"); h["id"] != "s" {
		t.Fatalf("first reply: %v", h)
	}
	if p := alice.expect("pong"); p["id"] != "p" {
		t.Fatalf("second reply: %v", p)
	}
	if a := alice.expect("ack"); a["id"] != "v" {
		t.Fatalf("third reply: %v", a)
	}
	if m := bob.expect("message"); m["data"] != "after the search" {
		t.Fatalf("bob got %v", m)
	}

	// The backlog is empty again: alice's frames are handled as they come.
	alice.send(`{"type":"ping","id":"q"}`)
	if p := alice.expect("pong"); p["id"] != "q" {
		t.Fatalf("after the backlog: %v", p)
	}
}

// Replies come in the order of the frames, whichever of them waited in the
// backlog and whichever were refused. (A durable send's ack comes once it
// is stored, which later frames do not wait for; it is left out here.)
func TestRepliesKeepFrameOrder(t *testing.T) {
	n := start(t, "")
	c := n.dial("alice")
	n.dial("bob")
	frames := []string{
		`{"type":"ping","id":"1"}`,
		`{"type":"history","id":"2","with":"bob"}`, // reads the store: backlog
		`{"type":"send","id":"3","to":"bob","volatile":true,"data":"live"}`,
		`{"type":"ping","id":"4"}`,
		`{"type":"nonsense","id":"5"}`,
		`{"type":"history","id":"6","with":"bob"}`,
		`not json`,
		`{"type":"ping","id":"8"}`,
	}
	for round := range 20 {
		for _, f := range frames {
			c.send(f)
		}
		want := []string{"pong 1", "history 2", "ack 3", "pong 4", "error 5", "history 6", "error <nil>", "pong 8"}
		for i, w := range want {
			m := c.next()
			if got := fmt.Sprintf("%v %v", m["type"], m["id"]); got != w {
				t.Fatalf("round %d, reply %d: want %s, got %v", round, i, w, m)
			}
		}
	}
}

// A client may send as soon as the handshake is done, before its welcome
// and even before the server has set the connection up: nothing is lost,
// the welcome comes first, and the replies follow in order.
func TestFramesBeforeTheWelcome(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("before-link=%v", early), func(t *testing.T) {
			n := start(t, "")
			bob := n.dial("bob")
			hold := make(chan struct{})
			if early {
				server.SetTestHookUpgraded(func() { <-hold })
				t.Cleanup(func() { server.SetTestHookUpgraded(nil) })
			} else {
				close(hold)
			}
			c := n.dialRaw("alice")
			c.send(`{"type":"ping","id":"1"}`)
			c.send(`{"type":"history","id":"2","with":"bob"}`)
			c.send(`{"type":"send","id":"3","to":"bob","volatile":true,"data":"first words"}`)
			c.send(`{"type":"ping","id":"4"}`)
			c.send(`{"type":"send","id":"5","to":"bob","data":"stored words"}`)
			if early {
				time.Sleep(50 * time.Millisecond) // the poller reads them while serveWS waits
				close(hold)
			}
			if w := c.next(); w["type"] != "welcome" {
				t.Fatalf("first frame: %v", w)
			}
			for i, want := range []string{"pong 1", "history 2", "ack 3", "pong 4", "ack 5"} {
				m := c.next()
				if got := fmt.Sprintf("%v %v", m["type"], m["id"]); got != want {
					t.Fatalf("reply %d: want %s, got %v", i, want, m)
				}
			}
			for _, want := range []string{"first words", "stored words"} {
				if m := bob.expect("message"); m["data"] != want {
					t.Fatalf("bob got %v, want %q", m, want)
				}
			}
		})
	}
}

// A client that floods the server before its connection is set up is
// closed with 1008, not silently trimmed.
func TestFloodBeforeTheLink(t *testing.T) {
	n := start(t, "")
	hold := make(chan struct{})
	server.SetTestHookUpgraded(func() { <-hold })
	t.Cleanup(func() { server.SetTestHookUpgraded(nil) })
	c := n.dialRaw("alice")
	for i := range 80 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"ping","id":"%d"}`, i))
		cancel()
		if err != nil {
			break // closed under us
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(hold)
	if code := c.closeCode(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	waitConns(t, n, 0)
}

// A connection that closes between its upgrade and its setup is not left
// attached, nor counted against --max-conns.
func TestCloseBeforeTheLink(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.MaxConns = 1 })
	hold := make(chan struct{})
	server.SetTestHookUpgraded(func() { <-hold })
	c := n.dialRaw("alice")
	c.close()
	time.Sleep(100 * time.Millisecond) // the server sees the close while setup waits
	server.SetTestHookUpgraded(nil)
	close(hold)
	waitConns(t, n, 0)
	// The slot is free again.
	d := n.dial("bob")
	d.send(`{"type":"ping","id":"1"}`)
	d.expect("pong")
}

// waitConns waits until the hub counts want connections.
func waitConns(t *testing.T, n *node, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.hub.ConnCount() != want {
		if time.Now().After(deadline) {
			t.Fatalf("hub counts %d connections, want %d", n.hub.ConnCount(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that piles up frames behind a slow one past --max-backlog is
// closed with 1008; the replies made before go out first, the frames that
// waited are not handled.
func TestBacklogLimit(t *testing.T) {
	n, gs := searchGated(t, func(c *server.Config) { c.MaxBacklog = 1000 })
	bob := n.dial("bob")
	c := n.dial("alice")
	c.send(`{"type":"ping","id":"first"}`)
	c.expect("pong")
	c.send(`{"type":"search","id":"s","q":"x"}`)
	<-gs.Entered
	// Each frame is 75 bytes: 13 fit in 1,000, the 14th does not.
	for i := range 14 {
		c.send(fmt.Sprintf(`{"type":"send","id":"w%02d","to":"bob","volatile":true,"data":"waited......"}`, i))
	}
	if code := c.closeCode(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	gs.Open()
	bob.quiet(300 * time.Millisecond) // the frames that waited were dropped, not handled
	// Other connections are untouched.
	d := n.dial("carol")
	d.send(`{"type":"ping","id":"1"}`)
	d.expect("pong")
}

// Under the limit, a backlog is worked through in full.
func TestBacklogUnderTheLimit(t *testing.T) {
	n, gs := searchGated(t)
	bob := n.dial("bob")
	c := n.dial("alice")
	c.send(`{"type":"search","id":"s","q":"x"}`)
	<-gs.Entered
	for i := range 200 {
		c.send(fmt.Sprintf(`{"type":"send","id":"w%d","to":"bob","volatile":true,"data":%d}`, i, i))
	}
	gs.Open()
	c.expect("history")
	for i := range 200 {
		if a := c.expect("ack"); a["id"] != fmt.Sprintf("w%d", i) {
			t.Fatalf("ack %d: %v", i, a)
		}
		if m := bob.expect("message"); m["data"] != float64(i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
}

// Durable sends are handled on the event loop while the commit queue has
// room, and wait in their connection's backlog when it is full: a full
// queue stalls only the connections whose sends wait for it, and every
// send is acked, in order, once the store goes on.
func TestFullCommitQueueStallsOnlyItsConnection(t *testing.T) {
	n, gs := startGated(t, "", []string{"Append"}, func(c *courier.Config) {
		c.MaxBatch = 1 // a queue of two
	})
	alice, bob, carol := n.dial("alice"), n.dial("bob"), n.dial("carol")

	alice.send(`{"type":"send","id":"d1","to":"bob","data":1}`)
	<-gs.Entered // d1 is in the commit, at the gate
	for i := 2; i <= 6; i++ {
		alice.send(fmt.Sprintf(`{"type":"send","id":"d%d","to":"bob","data":%d}`, i, i))
	}
	// d2 and d3 fill the queue; d4 waits for room in alice's backlog, and
	// d5 and d6 behind it. Everyone else is served meanwhile.
	served(carol, bob)
	alice.quiet(200 * time.Millisecond)

	gs.Open()
	for i := 1; i <= 6; i++ {
		if a := alice.expect("ack"); a["id"] != fmt.Sprint("d", i) || a["seq"] != float64(i) {
			t.Fatalf("ack %d: %v", i, a)
		}
	}
	for i := 1; i <= 6; i++ {
		if m := bob.expect("message"); m["data"] != float64(i) {
			t.Fatalf("bob's message %d: %v", i, m)
		}
	}
}

// A volatile message and a receipt that reach a connection while it is
// being attached, before its welcome, come after the welcome: the welcome
// is a connection's first frame.
func TestWelcomeFirst(t *testing.T) {
	// bob's inbox head read, which Attach makes between adding the
	// connection to bob's and sending the welcome, waits.
	n, gs := startGated(t, "bob", []string{"LatestSeq"}, nil)
	alice := n.dial("alice")
	if _, err := n.Hub.Send(context.Background(), courier.Outgoing{From: "bob", To: "alice", Data: []byte(`"hi"`)}); err != nil {
		t.Fatal(err)
	}
	m := alice.expect("message")

	bob := n.dialRaw("bob").withReceipts()
	<-gs.Entered // bob is among the hub's connections; no welcome yet
	alice.send(`{"type":"send","id":"v","to":"bob","volatile":true,"data":"early"}`)
	if a := alice.expect("ack"); a["id"] != "v" {
		t.Fatalf("alice's ack: %v", a)
	}
	alice.send(map[string]any{"type": "read", "id": "r", "with": "bob", "seq": m["seq"]})
	alice.expect("ack") // bob's connections were handed the read receipt
	gs.Open()
	if w := bob.next(); w["type"] != "welcome" {
		t.Fatalf("bob's first frame: %v", w)
	}
	if f := bob.expect("message"); f["data"] != "early" {
		t.Fatalf("bob's second frame: %v", f)
	}
	// The delivered receipt of bob's message may have gone out before bob
	// connected, or reach this connection now; the read receipt does.
	r := bob.expect("receipt")
	if r["status"] == "delivered" && r["msg"] == m["msg"] {
		r = bob.expect("receipt")
	}
	if r["status"] != "read" || r["msg"] != m["msg"] {
		t.Fatalf("bob's read receipt: %v", r)
	}
}

// served checks that from and to are served while another connection's
// frames wait: a volatile send from from is acknowledged and reaches to,
// and to's ping is answered.
func served(from, to *client) {
	from.t.Helper()
	from.send(`{"type":"send","id":"served","to":"` + to.user + `","volatile":true,"data":"live"}`)
	if a := from.expect("ack"); a["id"] != "served" {
		from.t.Fatalf("%s's ack: %v", from.user, a)
	}
	if m := to.expect("message"); m["data"] != "live" {
		to.t.Fatalf("%s got %v", to.user, m)
	}
	to.send(`{"type":"ping","id":"served"}`)
	to.expect("pong")
}
