// Package brokertest is the conformance suite for courier.Broker
// implementations: interest-based routing (a packet reaches every subscribed
// node, the publisher included, and no other), Subscribe effective on return,
// order per publisher and topic under a burst, Unsubscribe, idempotent
// Subscribe, topics of any content that never collide, payloads from empty to
// 1 MiB, payload reuse after Publish, a Receiver that calls its broker,
// Close, and recovery after the broker's connection is cut. Call it from an implementation's test:
//
//	func TestBroker(t *testing.T) {
//		addr := brokertest.Service(t, "nats", "127.0.0.1:4222")
//		prefix := brokertest.Unique("courier-test")
//		brokertest.Run(t, func(t *testing.T) courier.Broker {
//			b, err := nats.New("nats://"+addr, nats.Options{Prefix: prefix})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// RunReconnect adds the part where a node's connection is cut: a node whose
// engine is reached over the network connects through a Proxy the test can
// sever; package inprocess uses its SetDown instead. RunSilent (a
// connection that stops answering without closing), RunOverflow (a full
// receive buffer) and RunIsolated (clusters sharing one engine) cover what
// only some implementations have.
//
// The package also holds what those tests share: Service (skip, or fail in
// CI, when the engine is unreachable), Unique (a prefix per test run, so
// runs sharing one server do not see each other), ChanReceiver and
// Benchmark.
package brokertest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

const (
	// waitTimeout bounds every wait for a packet that must arrive; generous
	// for a loaded 2-core CI machine running the race detector.
	waitTimeout = 20 * time.Second
	// quiet is how long the suite waits before it concludes that a packet
	// that must not arrive did not.
	quiet = 300 * time.Millisecond
)

// A NewNode returns an unstarted Broker for a new node of the cluster under
// test, every call a new node of the same cluster, and registers its Close
// with t.Cleanup. Close must tolerate being called again after the suite
// closed the broker itself.
type NewNode func(t *testing.T) courier.Broker

// Run runs the suite, every part but the cut connection (see RunReconnect),
// against the nodes newNode makes; it returns when the tests are done.
func Run(t *testing.T, newNode NewNode) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewNode)
	}{
		{"Routing", testRouting},
		{"SubscribeEffective", testSubscribeEffective},
		{"Order", testOrder},
		{"Unsubscribe", testUnsubscribe},
		{"SubscribeTwice", testSubscribeTwice},
		{"Topics", testTopics},
		{"Payloads", testPayloads},
		{"PayloadReuse", testPayloadReuse},
		{"Reentrant", testReentrant},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newNode) })
	}
}

// A node is a started broker and what it received.
type node struct {
	t    *testing.T
	name string
	b    courier.Broker
	rec  *recorder
}

// start makes and starts a node.
func start(t *testing.T, newNode NewNode, name string) *node {
	t.Helper()
	return startBroker(t, newNode(t), name)
}

func startBroker(t *testing.T, b courier.Broker, name string) *node {
	t.Helper()
	return startWith(t, b, name, newRecorder())
}

func startWith(t *testing.T, b courier.Broker, name string, rec *recorder) *node {
	t.Helper()
	n := &node{t: t, name: name, b: b, rec: rec}
	if err := b.Start(n.rec); err != nil {
		t.Fatalf("%s: Start: %v", name, err)
	}
	return n
}

func (n *node) subscribe(topics ...string) {
	n.t.Helper()
	for _, topic := range topics {
		if err := n.b.Subscribe(topic); err != nil {
			n.t.Fatalf("%s: Subscribe(%q): %v", n.name, short(topic), err)
		}
	}
}

func (n *node) unsubscribe(topic string) {
	n.t.Helper()
	if err := n.b.Unsubscribe(topic); err != nil {
		n.t.Fatalf("%s: Unsubscribe(%q): %v", n.name, short(topic), err)
	}
}

func (n *node) publish(topic string, payload []byte) {
	n.t.Helper()
	if err := n.b.Publish(topic, payload); err != nil {
		n.t.Fatalf("%s: Publish(%q, %d bytes): %v", n.name, short(topic), len(payload), err)
	}
}

// waitFor waits until n received a packet on topic with payload.
func (n *node) waitFor(topic, payload string) {
	n.t.Helper()
	n.rec.wait(n.t, fmt.Sprintf("%s to receive %q on %q", n.name, short(payload), short(topic)), func() bool {
		for _, p := range n.rec.packets {
			if p.topic == topic && string(p.payload) == payload {
				return true
			}
		}
		return false
	})
}

// waitCount waits until n received at least want packets on topic.
func (n *node) waitCount(topic string, want int) {
	n.t.Helper()
	n.rec.wait(n.t, fmt.Sprintf("%s to receive %d packets on %q", n.name, want, short(topic)), func() bool {
		return n.rec.countLocked(topic) >= want
	})
}

// payloads returns the payloads n received on topic, in order.
func (n *node) payloads(topic string) []string {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	var out []string
	for _, p := range n.rec.packets {
		if p.topic == topic {
			out = append(out, string(p.payload))
		}
	}
	return out
}

// count returns how many packets n received on topic.
func (n *node) count(topic string) int {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	return n.rec.countLocked(topic)
}

// total returns how many packets n received on any topic.
func (n *node) total() int {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	return len(n.rec.packets)
}

type packet struct {
	topic   string
	payload []byte
}

// A recorder is the Receiver of a node under test: it keeps a copy of every
// packet and counts Reconnected calls, and the calls made after the node was
// closed.
type recorder struct {
	mu         sync.Mutex
	packets    []packet
	reconnects int
	changed    chan struct{} // signalled after every change

	react     func(topic string, payload []byte) // called by Receive; set before Start
	first     chan struct{}                      // closed by the first Receive
	firstOnce sync.Once
	closed    atomic.Bool  // set once the broker's Close returned
	late      atomic.Int64 // calls seen after closed
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}, 1), first: make(chan struct{})}
}

// Receive implements courier.Receiver.
func (r *recorder) Receive(topic string, payload []byte) {
	if r.closed.Load() {
		r.late.Add(1)
	}
	r.firstOnce.Do(func() { close(r.first) })
	if r.react != nil {
		r.react(topic, payload)
	}
	r.mu.Lock()
	r.packets = append(r.packets, packet{topic: topic, payload: append([]byte(nil), payload...)})
	r.mu.Unlock()
	r.signal()
}

// Reconnected implements courier.Receiver.
func (r *recorder) Reconnected() {
	if r.closed.Load() {
		r.late.Add(1)
	}
	r.mu.Lock()
	r.reconnects++
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) countLocked(topic string) int {
	n := 0
	for _, p := range r.packets {
		if p.topic == topic {
			n++
		}
	}
	return n
}

// wait waits until cond, called with r.mu held, holds; it fails t after
// waitTimeout.
func (r *recorder) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
	}
}

// short abbreviates a long topic or payload for a message.
func short(s string) string {
	if len(s) <= 40 {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:32], len(s))
}
