package main

import (
	"fmt"
	"testing"
	"time"
)

// Conversation features work whichever nodes the two sides are on:
// presence watch, delivered and read receipts, history, search and
// conversations read through another node.
func TestClusterConversations(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, 3, b.scheme, b.addr)
			alice := c.client(0, "alice")
			alice.send(t, `{"type":"watch","id":"w","users":["bob"]}`)
			alice.next(t, "ack")
			if p := alice.next(t, "presence"); p["online"] != false {
				t.Fatalf("bob's state %v", p)
			}
			bob := c.client(1, "bob")
			if p := alice.next(t, "presence"); p["user"] != "bob" || p["online"] != true {
				t.Fatalf("push %v, want bob online", p)
			}
			for i := range 3 {
				alice.send(t, fmt.Sprintf(`{"type":"send","id":"%d","to":"bob","data":{"text":"pizza %d"}}`, i, i))
				alice.next(t, "ack")
			}
			for range 3 {
				bob.next(t, "message")
			}
			for range 3 {
				if r := alice.next(t, "receipt"); r["status"] != "delivered" || r["by"] != "bob" {
					t.Fatalf("receipt %v", r)
				}
			}
			// Bob's second device on a third node: no second receipt.
			bob2 := c.nodes[2].dial("token=" + mint(t, c.secret, "bob") + "&since=0")
			welcome(t, bob2, "bob")
			for range 3 {
				read(t, bob2)
			}
			bob.send(t, `{"type":"read","id":"r","with":"alice","seq":3}`)
			bob.next(t, "ack")
			if r := alice.next(t, "receipt"); r["status"] != "read" || r["by"] != "bob" {
				t.Fatalf("read receipt %v (a second delivered receipt?)", r)
			}
			// Reading through another node: bob's third device, on node 2.
			bob3 := c.client(2, "bob")
			bob3.send(t, `{"type":"history","id":"h","with":"alice","limit":2}`)
			if h := bob3.next(t, "history"); len(h["messages"].([]any)) != 2 {
				t.Fatalf("history %v", h)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				bob3.send(t, `{"type":"search","id":"s","q":"pizza"}`)
				if h := bob3.next(t, "history"); len(h["messages"].([]any)) == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("search on another node did not find the 3 messages")
				}
				time.Sleep(100 * time.Millisecond)
			}
			bob3.send(t, `{"type":"conversations","id":"c"}`)
			cs := bob3.next(t, "conversations")["conversations"].([]any)
			if len(cs) != 1 || cs[0].(map[string]any)["unread"] != 0.0 {
				t.Fatalf("conversations %v", cs)
			}
			_ = bob.ws.CloseNow()
			_ = bob3.ws.CloseNow()
			_ = bob2.CloseNow()
			if p := alice.next(t, "presence"); p["online"] != false || p["lastSeen"] == nil {
				t.Fatalf("push %v, want bob offline with lastSeen", p)
			}
		})
	}
}
