package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/client"
	"github.com/courier-im/courier/internal/testnode"
)

func withEvents(o *client.Options) { o.Events = true }

// nextEvent returns c's next event, failing after 10 s.
func nextEvent(t testing.TB, c *client.Client) client.Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("%s: events closed: %v", c.User(), c.Err())
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event within 10s", c.User())
	}
	panic("unreachable")
}

// quietEvents fails when c gets an event within d.
func quietEvents(t testing.TB, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case e := <-c.Events():
		t.Fatalf("%s: unexpected event %#v", c.User(), e)
	case <-time.After(d):
	}
}

// nextPresence returns c's next event, which must be a PresenceChange of
// user with the online state.
func nextPresence(t testing.TB, c *client.Client, user string, online bool) client.PresenceChange {
	t.Helper()
	e := nextEvent(t, c)
	p, ok := e.(client.PresenceChange)
	if !ok || p.User != user || p.Online != online {
		t.Fatalf("%s: got %#v, want %s online=%v", c.User(), e, user, online)
	}
	return p
}

func TestReceipts(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice := dial(t, n.WS(), "alice", withEvents)
	alice2 := dial(t, n.WS(), "alice", withEvents)
	bob := dial(t, n.WS(), "bob", withEvents)

	ack, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, bob)
	want := client.Receipt{Status: client.StatusDelivered, By: "bob", Msg: ack.Msg}
	for _, c := range []*client.Client{alice, alice2} { // every connection of the sender
		if e := nextEvent(t, c); e != want {
			t.Fatalf("%s: got %#v, want %#v", c.User(), e, want)
		}
	}
	next(t, alice2) // the sender's copy

	// A second message, then bob reads up to it: one read receipt naming
	// the newest message read.
	ack2, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "there?"})
	if err != nil {
		t.Fatal(err)
	}
	m2 := next(t, bob)
	if e := nextEvent(t, alice); e != (client.Receipt{Status: client.StatusDelivered, By: "bob", Msg: ack2.Msg}) {
		t.Fatalf("got %#v", e)
	}
	if err := bob.Read(ctx(t), "alice", m2.Seq); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, alice); e != (client.Receipt{Status: client.StatusRead, By: "bob", Msg: ack2.Msg}) {
		t.Fatalf("got %#v", e)
	}
	// An older mark changes nothing and sends no receipt.
	if err := bob.Read(ctx(t), "alice", m.Seq); err != nil {
		t.Fatal(err)
	}
	quietEvents(t, alice, 150*time.Millisecond)
	quietEvents(t, bob, 0) // bob sent nothing: no receipts for him

	// A new device of alice learns the same from history and conversations:
	// both messages read, and nothing on bob's side.
	alice3 := dial(t, n.WS(), "alice")
	hist, err := alice3.History(ctx(t), client.HistoryQuery{With: "bob"})
	if err != nil || len(hist) != 2 || hist[0].Status != client.StatusRead || hist[1].Status != client.StatusRead {
		t.Fatalf("alice's history with bob: %+v, %v", hist, err)
	}
	convs, err := alice3.Conversations(ctx(t), 0)
	if err != nil || len(convs) != 1 || convs[0].Last.Status != client.StatusRead {
		t.Fatalf("alice's conversations: %+v, %v", convs, err)
	}
	hist, err = bob.History(ctx(t), client.HistoryQuery{With: "alice"})
	if err != nil || len(hist) != 2 || hist[0].Status != "" {
		t.Fatalf("bob's history with alice: %+v, %v", hist, err)
	}
}

// A delivered receipt also comes when the recipient gets the message by a
// replay, after connecting later.
func TestDeliveredByReplay(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice := dial(t, n.WS(), "alice", withEvents)
	bob := dial(t, n.WS(), "bob")
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "first"}); err != nil {
		t.Fatal(err)
	}
	first := next(t, bob)
	nextEvent(t, alice)
	bob.Close()
	// Until the server has seen the close, a message may still be written
	// to (and counted as delivered on) the closing connection.
	waitFor(t, 5*time.Second, "bob's connection gone", func() bool { return n.Hub.Connections("bob") == 0 })
	ack, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "while away"})
	if err != nil {
		t.Fatal(err)
	}
	quietEvents(t, alice, 100*time.Millisecond)
	bob2 := dial(t, n.WS(), "bob", func(o *client.Options) { o.Since = first.Seq })
	if m := next(t, bob2); m.ID != ack.Msg {
		t.Fatalf("got %s", m.Frame)
	}
	if e := nextEvent(t, alice); e != (client.Receipt{Status: client.StatusDelivered, By: "bob", Msg: ack.Msg}) {
		t.Fatalf("got %#v", e)
	}
}

func TestPresenceAndWatch(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice := dial(t, n.WS(), "alice", withEvents)

	ps, err := alice.Presence(ctx(t), "bob", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps["bob"].Online || !ps["bob"].LastSeen.IsZero() || !ps["alice"].Online {
		t.Fatalf("presence %+v", ps)
	}

	if err := alice.Watch(ctx(t), "bob"); err != nil {
		t.Fatal(err)
	}
	if p := nextPresence(t, alice, "bob", false); !p.LastSeen.IsZero() {
		t.Fatalf("never seen bob: %+v", p)
	}
	bob := dial(t, n.WS(), "bob")
	nextPresence(t, alice, "bob", true)
	bob2 := dial(t, n.WS(), "bob") // a second device is not a change
	bob2.Close()
	quietEvents(t, alice, 150*time.Millisecond)
	before := time.Now().Add(-time.Second)
	bob.Close()
	p := nextPresence(t, alice, "bob", false)
	if p.LastSeen.Before(before) || p.LastSeen.After(time.Now().Add(time.Second)) {
		t.Fatalf("lastSeen %v, want about now", p.LastSeen)
	}
	ps, err = alice.Presence(ctx(t), "bob")
	if err != nil || ps["bob"].Online || !ps["bob"].LastSeen.Equal(p.LastSeen) {
		t.Fatalf("presence %+v %v, push said %v", ps, err, p.LastSeen)
	}

	if err := alice.Unwatch(ctx(t), "bob"); err != nil {
		t.Fatal(err)
	}
	dial(t, n.WS(), "bob").Close()
	quietEvents(t, alice, 150*time.Millisecond)

	// Too many users for one presence frame.
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	_, err = alice.Presence(ctx(t), many...)
	wantCode(t, err, "bad_request")
}

func TestWatchLimit(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice := dial(t, n.WS(), "alice")
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	wantCode(t, alice.Watch(ctx(t), many...), "too_large")
}

// Watches end with the connection on the server; the client watches again
// after it reconnects, and the server tells the current state again.
func TestRewatchAfterRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice := dial(t, url, "alice", withEvents)
	if err := alice.Watch(ctx(t), "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	nextPresence(t, alice, "bob", false)
	nextPresence(t, alice, "carol", false)
	if err := alice.Unwatch(ctx(t), "carol"); err != nil {
		t.Fatal(err)
	}
	n.stop()
	startFixed(t, dir, addr)
	// The state again after the rewatch, for bob only.
	nextPresence(t, alice, "bob", false)
	dial(t, url, "carol")
	bob := dial(t, url, "bob")
	nextPresence(t, alice, "bob", true)
	bob.Close()
	nextPresence(t, alice, "bob", false)
	quietEvents(t, alice, 150*time.Millisecond) // nothing of carol
}

// A Watch made while the client is reconnecting is sent on the next
// connection.
func TestWatchWhileDown(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice := dial(t, url, "alice", withEvents)
	n.stop()
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- alice.Watch(wctx, "bob")
	}()
	startFixed(t, dir, addr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nextPresence(t, alice, "bob", false)
	dial(t, url, "bob")
	nextPresence(t, alice, "bob", true)
}

func TestExpired(t *testing.T) {
	n := testnode.StartWith(t, "", secret, apiKey, func(c *courier.Config) { c.Retention = 24 * time.Hour })
	alice := dial(t, n.WS(), "alice")
	for i := 1; i <= 4; i++ {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Store.Expire(ctx(t), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "5"}); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, n.WS(), "bob", withEvents, func(o *client.Options) { o.Since = 1 })
	if e := nextEvent(t, bob); e != (client.Expired{From: 2, To: 4}) {
		t.Fatalf("got %#v", e)
	}
	if m := next(t, bob); m.Seq != 5 || text(t, m) != "5" {
		t.Fatalf("got %s", m.Frame)
	}
	if bob.LastSeq() != 5 {
		t.Fatalf("last seq %d", bob.LastSeq())
	}
}

// Without Options.Events, events are dropped and never stall the client.
func TestEventsOff(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice := dial(t, n.WS(), "alice", func(o *client.Options) { o.Buffer = 2 })
	bob := dial(t, n.WS(), "bob")
	if err := alice.Watch(ctx(t), "bob", "carol", "dave"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		next(t, bob)
	}
	if _, err := alice.History(ctx(t), client.HistoryQuery{With: "bob"}); err != nil {
		t.Fatal(err)
	}
	quietEvents(t, alice, 0)
	alice.Close()
	if _, ok := <-alice.Events(); ok {
		t.Fatal("events open after Close")
	}
}

// The ack of a send is lost with its connection, after the server stored
// it and while others wrote to the sender. After the reconnect, the replay
// brings the messages in between and the sender's copy; the send is written
// again and its ack (a repeated key) may overtake the replay. The client
// delivers every message from the others once and not its own copy, and
// Send returns the ack of the stored message.
func TestLostAckAcrossReconnect(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	p := startProxy(t, n.URL[len("http://"):])
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			alice := dial(t, p.URL(), "alice")
			bob := dial(t, n.WS(), "bob")
			if _, err := bob.Send(ctx(t), "alice", "chat", map[string]string{"text": "before"}); err != nil {
				t.Fatal(err)
			}
			if m := next(t, alice); text(t, m) != "before" {
				t.Fatalf("got %s", m.Frame)
			}
			p.mute()
			for i := 1; i <= 2; i++ {
				if _, err := bob.Send(ctx(t), "alice", "chat", map[string]string{"text": fmt.Sprint("b", i)}); err != nil {
					t.Fatal(err)
				}
			}
			sent := make(chan client.Ack, 1)
			errs := make(chan error, 1)
			go func() {
				ack, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "mine"})
				if err != nil {
					errs <- err
					return
				}
				sent <- ack
			}()
			stored := next(t, bob) // stored; alice's ack is lost
			if text(t, stored) != "mine" {
				t.Fatalf("bob got %s", stored.Frame)
			}
			p.cut()
			var ack client.Ack
			select {
			case ack = <-sent:
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(10 * time.Second):
				t.Fatal("no ack within 10s")
			}
			if ack.Msg != stored.ID {
				t.Fatalf("ack %+v names another message than %s", ack, stored.ID)
			}
			for i := 1; i <= 2; i++ {
				if m := next(t, alice); text(t, m) != fmt.Sprint("b", i) || m.From != "bob" {
					t.Fatalf("got %s", m.Frame)
				}
			}
			quiet(t, alice, 150*time.Millisecond) // not its own copy
			if alice.LastSeq() != ack.Seq {
				t.Fatalf("last seq %d, ack %+v", alice.LastSeq(), ack)
			}
			if _, err := bob.Send(ctx(t), "alice", "chat", map[string]string{"text": "after"}); err != nil {
				t.Fatal(err)
			}
			if m := next(t, alice); text(t, m) != "after" || m.Seq != ack.Seq+1 {
				t.Fatalf("got %s", m.Frame)
			}
			alice.Close()
			bob.Close()
		})
	}
}
