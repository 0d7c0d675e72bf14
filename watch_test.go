package courier_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// notices returns the presence notices b has been given.
func (b *inbox) notices() []courier.Notice {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]courier.Notice(nil), b.notes...)
}

func (b *inbox) waitNotices(t *testing.T, n int) []courier.Notice {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.notices()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got notices %+v, want %d", b.notices(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return b.notices()
}

// A watcher on one node is told when a user comes online on another node
// and when the user's last connection, wherever it is, closes.
func TestWatchAcrossNodes(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	wc, w := tc.connect(0, "watcher")
	now, err := tc.hubs[0].Watch(ctx, wc, []string{"bob"})
	if err != nil || len(now) != 1 || now[0].Online || !now[0].LastSeen.IsZero() {
		t.Fatalf("initial state %+v, %v; want offline, never seen", now, err)
	}
	b1, _ := tc.connect(1, "bob")
	if n := w.waitNotices(t, 1)[0]; n.User != "bob" || !n.Online {
		t.Fatalf("notice %+v, want bob online", n)
	}
	b2, _ := tc.connect(2, "bob") // a second device: no change to tell
	tc.hubs[1].Detach(b1)         // one of two devices left: still online
	time.Sleep(50 * time.Millisecond)
	if n := len(w.notices()); n != 1 {
		t.Fatalf("%d notices, want only the first: %+v", n, w.notices())
	}
	before := courier.Now()
	tc.hubs[2].Detach(b2)
	n := w.waitNotices(t, 2)[1]
	if n.Online || n.LastSeen.Before(before) {
		t.Fatalf("notice %+v, want offline with lastSeen ≥ %v", n, before)
	}
	// Node 2 records lastSeen in the shared store moments after the close.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		p, err := tc.hubs[1].Presence(ctx, "bob")
		if err != nil || p.Connections != 0 {
			t.Fatalf("presence on node 1 %+v, %v", p, err)
		}
		if !p.LastSeen.Before(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1 still reads lastSeen %v, before bob's last close at ≥ %v", p.LastSeen, before)
		}
	}
	tc.hubs[0].Unwatch(wc, []string{"bob"})
	tc.connect(1, "bob")
	time.Sleep(50 * time.Millisecond)
	if n := len(w.notices()); n != 2 {
		t.Fatalf("notices after unwatch: %+v", w.notices())
	}
}

// A user whose node dies goes offline for its watchers.
func TestWatchDeadNode(t *testing.T) {
	tc := newCluster(t, 2)
	ctx := context.Background()
	tc.connect(1, "bob")
	wc, w := tc.connect(0, "watcher")
	now, err := tc.hubs[0].Watch(ctx, wc, []string{"bob"})
	if err != nil || !now[0].Online {
		t.Fatalf("initial %+v, %v; want online", now, err)
	}
	tc.brokers[1].SetDown(true)
	deadline := time.Now().Add(6 * time.Second)
	for {
		if ns := w.notices(); len(ns) == 1 && !ns[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notices %+v, want bob offline once his node fell silent", w.notices())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Watches are bounded per connection and end with it.
func TestWatchLimit(t *testing.T) {
	hub, _ := newHubWith(t, courier.Config{MaxWatches: 2})
	ctx := context.Background()
	b := &inbox{}
	c := hub.NewConn(courier.Identity{User: "w"}, b)
	hub.Attach(c, nil, nil)
	if _, err := hub.Watch(ctx, c, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Watch(ctx, c, []string{"a", "c"}); !errors.Is(err, courier.ErrTooLarge) {
		t.Fatalf("a third watch: %v, want too large", err)
	}
	if _, err := hub.Watch(ctx, c, []string{"b", "a"}); err != nil {
		t.Fatalf("watching again what is watched: %v", err)
	}
	if _, err := hub.Watch(ctx, c, []string{"bad\x00user"}); !errors.Is(err, courier.ErrBadRequest) {
		t.Fatalf("invalid user: %v", err)
	}
	hub.Detach(c)
	if n := hub.Watching(c); n != 0 {
		t.Fatalf("a closed connection still watches %d users", n)
	}
}
