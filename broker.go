package courier

// A Broker carries packets between the nodes of a cluster, by topic. It is
// what lets any node serve any user: a node subscribes to the topics of the
// users, rooms and connections it holds, and a message published to a topic
// reaches only the nodes subscribed to it (interest-based routing).
//
// Topics are strings of up to 512 bytes of any content (user ids and room
// names may hold spaces, dots or wildcards); a Broker encodes them as its
// engine requires. Payloads are opaque bytes.
//
// Implementations: package nats and package redis between processes, and
// package inprocess between hubs of one process. A single node needs no
// Broker at all (Config.Broker nil). Implementations must be safe for
// concurrent use.
type Broker interface {
	// Start connects the broker to this node and begins passing every packet
	// received on a subscribed topic to r. It is called once, before any
	// other method.
	Start(r Receiver) error

	// Subscribe adds this node's interest in topic. It returns once the
	// engine will route packets published afterwards, by any node, on topic
	// to this node. Subscribing twice to a topic is the same as once.
	Subscribe(topic string) error

	// Unsubscribe removes this node's interest in topic; packets already
	// on their way may still arrive.
	Unsubscribe(topic string) error

	// Publish sends payload to every node subscribed to topic, this node
	// included when it is subscribed. It may return before the packet has
	// left (publishes are batched); packets one node publishes on one topic
	// arrive in the order published. The broker does not retain payload
	// after Publish returns.
	Publish(topic string, payload []byte) error

	// Close disconnects; no Receive call runs after it returns.
	Close() error
}

// A Receiver takes what a Broker receives. Its methods are called from the
// broker's goroutines and must not block for long.
type Receiver interface {
	// Receive is called for each packet, in order per publishing node and
	// topic. payload is only valid during the call.
	Receive(topic string, payload []byte)

	// Reconnected is called when the broker's connection came back after a
	// loss, with every subscription restored: packets published meanwhile
	// may have been lost, so the node catches up from the store.
	Reconnected()
}
