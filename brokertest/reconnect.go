package brokertest

import (
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// A Link is what lies between a node and its engine, which a test can take
// down and bring back. A *Proxy is one; package inprocess wraps SetDown.
type Link interface {
	// Down severs the node's connections and refuses new ones until Up.
	Down()
	// Up lets the node connect again.
	Up()
}

// A NewLinkedNode returns an unstarted Broker for a new node of the cluster
// under test, like NewNode, and the Link between that node and its engine.
type NewLinkedNode func(t *testing.T) (courier.Broker, Link)

// RunReconnect runs the part of the suite that cuts a node's connection:
// while the link is down the node's packets may be lost; once it is up
// again the broker reconnects by itself, calls Reconnected with every
// subscription restored (a packet published right after Reconnected
// arrives), a Subscribe made during the outage takes effect, and the same
// holds for a second, short cut. newNode makes the other nodes, newLinked
// the node whose link is cut.
func RunReconnect(t *testing.T, newNode NewNode, newLinked NewLinkedNode) {
	t.Run("Reconnect", func(t *testing.T) { testReconnect(t, newNode, newLinked) })
}

func testReconnect(t *testing.T, newNode NewNode, newLinked NewLinkedNode) {
	other := start(t, newNode, "other")
	b, link := newLinked(t)
	cut := startBroker(t, b, "cut")
	cut.subscribe("to cut")
	other.subscribe("to other")
	exchange := func(round string) {
		t.Helper()
		other.publish("to cut", []byte(round))
		cut.waitFor("to cut", round)
		cut.publish("to other", []byte(round))
		other.waitFor("to other", round)
	}
	exchange("before")

	link.Down()
	time.Sleep(quiet) // long enough for the broker to notice and retry
	// Packets sent while the link is down may be lost, but sending them
	// must neither fail on the side that is up nor block on either side.
	other.publish("to cut", []byte("lost"))
	returned := make(chan error, 1)
	go func() { returned <- b.Publish("to other", []byte("lost")) }()
	select {
	case <-returned: // an error is allowed: the connection is down
	case <-time.After(waitTimeout):
		t.Fatal("Publish blocked while the link was down")
	}
	// A Subscribe during the outage may fail or wait for the connection; the
	// interest must be restored once the node is back either way.
	subscribed := make(chan error, 1)
	go func() { subscribed <- b.Subscribe("during outage") }()
	time.Sleep(quiet)
	if cut.rec.reconnectCount() != 0 {
		t.Fatal("Reconnected was called while the link was down")
	}

	link.Up()
	cut.waitReconnects(1)
	exchange("after reconnect") // right after Reconnected: subscriptions restored
	select {
	case err := <-subscribed:
		if err != nil {
			t.Logf("Subscribe during the outage returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Subscribe made during the outage did not return after reconnecting")
	}
	other.publish("during outage", []byte("x"))
	cut.waitFor("during outage", "x")

	// A short cut: down and at once up again.
	link.Down()
	link.Up()
	cut.waitReconnects(2)
	exchange("after second reconnect")
}

func (r *recorder) reconnectCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// waitReconnects waits until n's Reconnected was called want times.
func (n *node) waitReconnects(want int) {
	n.t.Helper()
	n.rec.wait(n.t, n.name+" to report Reconnected", func() bool { return n.rec.reconnects >= want })
}
