package main

// What users see when PostgreSQL or the broker goes away under a running
// node: the engines are reached through a proxy the test can take down.

import (
	"net/http"
	"testing"
	"time"

	"github.com/courier-im/courier/brokertest"
)

// PostgreSQL unreachable: durable sends get a clear internal error, never a
// false ack; volatile messages keep flowing; durable ones work again once it
// is back.
func TestStoreOutage(t *testing.T) {
	t.Parallel()
	db := freshDatabase(t)
	proxy := brokertest.NewProxy(t, "127.0.0.1:5432")
	dbURL := "postgres://postgres@" + proxy.Addr() + db[len("postgres://postgres@127.0.0.1:5432"):]
	node := startServe(t, "", environ(), "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--jwt-secret", "S", "--api-key", "K", "--store", dbURL)
	c := &testCluster{t: t, nodes: []*proc{node}, secret: "S", key: "K"}
	alice, bob := c.client(0, "alice"), c.client(0, "bob")

	alice.send(t, `{"type":"send","id":"1","to":"bob","data":"before"}`)
	if ack := alice.next(t, "ack"); ack["seq"] != 1.0 {
		t.Fatalf("ack %v", ack)
	}
	bob.next(t, "message")

	proxy.Down()
	alice.send(t, `{"type":"send","id":"2","to":"bob","data":"during"}`)
	if e := alice.next(t, "error"); e["id"] != "2" || e["code"] != "internal" {
		t.Fatalf("durable send without a store: %v, want an internal error", e)
	}
	alice.send(t, `{"type":"send","id":"3","to":"bob","event":"typing","volatile":true}`)
	if ack := alice.next(t, "ack"); ack["id"] != "3" {
		t.Fatalf("volatile ack %v", ack)
	}
	if m := bob.next(t, "message"); m["event"] != "typing" {
		t.Fatalf("bob got %v, want the volatile typing event", m)
	}
	if status, out := node.apiSend("K", `{"to":"bob","data":"api during"}`); status != http.StatusInternalServerError {
		t.Fatalf("/api/send without a store: %d %v, want 500", status, out)
	}

	proxy.Up()
	deadline := time.Now().Add(15 * time.Second)
	for i := 4; ; i++ {
		alice.send(t, `{"type":"send","id":"x","to":"bob","data":"after"}`)
		f, err := alice.wait("")
		if err != nil {
			t.Fatal(err)
		}
		if f["type"] == "ack" {
			if f["seq"] != 2.0 {
				t.Fatalf("first ack after the outage %v, want seq 2: nothing of the outage was stored", f)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("durable sends still fail 15 s after PostgreSQL came back: %v", f)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if m := bob.next(t, "message"); m["data"] != "after" || m["seq"] != 2.0 {
		t.Fatalf("bob got %v", m)
	}
}

// A node cut off from the broker keeps serving its own clients; messages
// from other nodes reach its clients once the broker is back, from the store.
func TestBrokerOutage(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			brokertest.Service(t, b.scheme, b.addr)
			db := freshDatabase(t)
			proxy := brokertest.NewProxy(t, b.addr)
			name := brokertest.Unique("outage")
			start := func(addr string) *proc {
				return startServe(t, "", environ(), "--addr", "127.0.0.1:0", "--data", t.TempDir(),
					"--jwt-secret", "S", "--api-key", "K", "--store", db,
					"--broker", b.scheme+"://"+addr, "--cluster-name", name)
			}
			c := &testCluster{t: t, nodes: []*proc{start(b.addr), start(proxy.Addr())}, secret: "S", key: "K"}
			alice, bob, carol := c.client(0, "alice"), c.client(1, "bob"), c.client(1, "carol")
			deadline := time.Now().Add(10 * time.Second)
			for c.connections(0, "bob") != 1 {
				if time.Now().After(deadline) {
					t.Fatal("node 0 never saw bob on node 1")
				}
				time.Sleep(50 * time.Millisecond)
			}

			proxy.Down()
			for i := range 3 {
				alice.send(t, `{"type":"send","id":"a","to":"bob","data":"while cut off"}`)
				if ack := alice.next(t, "ack"); ack["seq"] != float64(i+1) {
					t.Fatalf("ack %v", ack)
				}
			}
			// Node 1 still serves its own clients.
			carol.send(t, `{"type":"send","id":"c","to":"bob","event":"typing","volatile":true}`)
			carol.next(t, "ack")
			if m := bob.next(t, "message"); m["event"] != "typing" {
				t.Fatalf("bob got %v, want carol's local volatile message", m)
			}

			proxy.Up()
			// Back on the broker, bob's node reads what he missed from the
			// store: seqs 1..3, in order.
			for want := 1.0; want <= 3; want++ {
				m, err := bob.waitFor("message", 20*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if m["data"] != "while cut off" || m["seq"] != want {
					t.Fatalf("bob got %v, want seq %v", m, want)
				}
			}
		})
	}
}
