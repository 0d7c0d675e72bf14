// Package inprocess connects the hubs of one process as if they were nodes
// of a cluster: a Network stands in for NATS or Redis. It serves tests and
// programs that run several hubs side by side; a single hub needs no broker.
//
// Delivery follows the courier.Broker contract: each node receives on its own
// goroutine, in publish order per publisher and topic, and only the topics it
// subscribed to. A node can be cut off and brought back (SetDown) to exercise
// what a real broker outage does.
package inprocess

import (
	"errors"
	"sync"

	"github.com/courier-im/courier"
)

// ErrClosed is returned by a Broker used after Close.
var ErrClosed = errors.New("inprocess: broker closed")

// A Network is a set of brokers that reach one another.
type Network struct {
	mu    sync.RWMutex
	nodes []*Broker
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{} }

// Broker returns a new node's broker on n.
func (n *Network) Broker() *Broker {
	b := &Broker{net: n, topics: make(map[string]struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	n.mu.Lock()
	n.nodes = append(n.nodes, b)
	n.mu.Unlock()
	return b
}

type packet struct {
	topic   string
	payload []byte
}

// A Broker is one node's link to a Network. It implements courier.Broker.
type Broker struct {
	net *Network

	mu       sync.Mutex
	topics   map[string]struct{}
	queue    []packet
	down     bool
	closed   bool
	started  bool
	received int

	wake chan struct{}
	done chan struct{}
	r    courier.Receiver
}

var _ courier.Broker = (*Broker)(nil)

// Start begins passing received packets to r on the broker's goroutine.
func (b *Broker) Start(r courier.Receiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return errors.New("inprocess: broker started twice")
	}
	b.started, b.r = true, r
	go b.run()
	return nil
}

// run is the broker's receiving goroutine; it ends with Close.
func (b *Broker) run() {
	defer close(b.done)
	var batch []packet
	for range b.wake {
		b.mu.Lock()
		batch, b.queue = b.queue, batch[:0]
		b.mu.Unlock()
		for _, p := range batch {
			b.r.Receive(p.topic, p.payload)
		}
		clear(batch)
	}
}

// Subscribe adds interest in topic; it takes effect at once.
func (b *Broker) Subscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.topics[topic] = struct{}{}
	return nil
}

// Unsubscribe removes interest in topic.
func (b *Broker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.topics, topic)
	return nil
}

// Publish hands a copy of payload to every node subscribed to topic. While
// this node is down, what it publishes is lost, as on a broken connection.
func (b *Broker) Publish(topic string, payload []byte) error {
	b.mu.Lock()
	down, closed := b.down, b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if down {
		return nil
	}
	p := packet{topic: topic, payload: append([]byte(nil), payload...)}
	b.net.mu.RLock()
	defer b.net.mu.RUnlock()
	for _, n := range b.net.nodes {
		n.push(p)
	}
	return nil
}

func (b *Broker) push(p packet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[p.topic]; !ok || b.down || b.closed || !b.started {
		return
	}
	b.received++
	b.queue = append(b.queue, p)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Received returns how many packets this node has received.
func (b *Broker) Received() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received
}

// SetDown cuts the node off the network (true) or brings it back (false).
// While down it neither sends nor receives; coming back it keeps its
// subscriptions and reports Reconnected, as a real broker client does.
func (b *Broker) SetDown(down bool) {
	b.mu.Lock()
	was := b.down
	b.down = down
	r, started := b.r, b.started
	b.mu.Unlock()
	if was && !down && started {
		r.Reconnected()
	}
}

// Close stops the broker and waits for its goroutine.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	if started {
		close(b.wake)
	}
	b.mu.Unlock()
	b.net.mu.Lock()
	for i, n := range b.net.nodes {
		if n == b {
			b.net.nodes = append(b.net.nodes[:i], b.net.nodes[i+1:]...)
			break
		}
	}
	b.net.mu.Unlock()
	if started {
		<-b.done
	}
	return nil
}
