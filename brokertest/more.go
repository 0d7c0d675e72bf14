package brokertest

import (
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// RunIsolated checks that two clusters sharing one engine, told apart by
// their configuration (a prefix), do not see each other's packets: one
// and other make nodes of different clusters.
func RunIsolated(t *testing.T, one, other NewNode) {
	t.Run("Isolated", func(t *testing.T) {
		a, b := start(t, one, "one"), start(t, other, "other")
		a.subscribe("room")
		b.subscribe("room")
		a.publish("room", []byte("one"))
		b.publish("room", []byte("other"))
		a.waitFor("room", "one")
		b.waitFor("room", "other")
		time.Sleep(quiet)
		if got := a.payloads("room"); len(got) != 1 {
			t.Errorf("a node received %q: packets of another cluster", got)
		}
		if got := b.payloads("room"); len(got) != 1 {
			t.Errorf("a node received %q: packets of another cluster", got)
		}
	})
}

// RunSilent checks that a broker replaces a connection that stops
// answering without closing, as a dead peer or a dropped NAT entry leaves
// it: newNode returns an unstarted broker that connects through the proxy
// it returns and notices silence within half of silence; the proxy holds
// every byte for that long, then the broker must report Reconnected and
// deliver again.
func RunSilent(t *testing.T, silence time.Duration, newNode NewNode, newProxied func(t *testing.T) (courier.Broker, *Proxy)) {
	t.Run("Silent", func(t *testing.T) {
		other := start(t, newNode, "other")
		b, proxy := newProxied(t)
		n := startBroker(t, b, "silent")
		n.subscribe("to silent")
		proxy.Freeze()
		time.Sleep(silence)
		proxy.Unfreeze()
		n.waitReconnects(1)
		other.publish("to silent", []byte("after"))
		n.waitFor("to silent", "after")
	})
}

// RunOverflow checks a broker whose receive buffer overflows: newSmall
// makes a node whose buffer holds well under 1,000 packets of 10 bytes.
// Its Receiver is held while another node publishes that many; once it is
// let go, the broker must call Reconnected, after what it dropped, so that
// the node catches up. check, when not nil, then looks at the node's
// broker, for an engine's own counters.
func RunOverflow(t *testing.T, newNode, newSmall NewNode, check func(t *testing.T, b courier.Broker)) {
	t.Run("Overflow", func(t *testing.T) {
		pub := start(t, newNode, "publisher")
		b := newSmall(t)
		held := make(chan struct{})
		rec := newRecorder()
		rec.react = func(string, []byte) { <-held }
		n := startWith(t, b, "small", rec)
		n.subscribe("flood")
		for range 1000 {
			pub.publish("flood", []byte("0123456789"))
		}
		time.Sleep(quiet) // the packets reach the node and overflow its buffer
		close(held)
		n.waitReconnects(1)
		if got := n.count("flood"); got >= 1000 {
			t.Errorf("all %d packets arrived: the buffer did not overflow", got)
		}
		if check != nil {
			check(t, b)
		}
	})
}

// A ChanReceiver is a courier.Receiver for an implementation's own tests:
// it sends every payload on Payloads and closes Reconnects at the first
// Reconnected.
type ChanReceiver struct {
	// Payloads has room for 65536 payloads; one more is dropped.
	Payloads chan string
	// Reconnects is closed by the first Reconnected call.
	Reconnects chan struct{}
	once       sync.Once
}

// NewChanReceiver returns an empty ChanReceiver.
func NewChanReceiver() *ChanReceiver {
	return &ChanReceiver{Payloads: make(chan string, 1<<16), Reconnects: make(chan struct{})}
}

// Receive implements courier.Receiver.
func (r *ChanReceiver) Receive(_ string, payload []byte) {
	select {
	case r.Payloads <- string(payload):
	default:
	}
}

// Reconnected implements courier.Receiver.
func (r *ChanReceiver) Reconnected() { r.once.Do(func() { close(r.Reconnects) }) }
