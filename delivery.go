package courier

import (
	"context"
	"sync/atomic"
)

// A Delivery is one message on its way to the connections of one user (or one
// room): every connection that receives it gets the same value, so the
// transport encodes it once and writes the same bytes to all of them.
type Delivery struct {
	Message
	// Durable is set for a stored message, whose Seq the connection's inbox
	// order is checked against.
	Durable bool

	frames [NumEncodings]atomic.Pointer[[]byte]
}

// NumEncodings is how many wire encodings a Delivery can cache at once.
const NumEncodings = 4

// Encoded returns the delivery as encoded by encode, calling encode at most
// about once per slot however many connections ask. slot names the
// transport's encoding (0 ≤ slot < NumEncodings).
func (d *Delivery) Encoded(slot int, encode func(*Message) []byte) []byte {
	if p := d.frames[slot].Load(); p != nil {
		return *p
	}
	b := encode(&d.Message)
	// A racing encoder may win; either result is the same bytes.
	d.frames[slot].CompareAndSwap(nil, &b)
	return *d.frames[slot].Load()
}

// A Link is the transport under a Conn: a WebSocket in package server.
// Its methods must not block on the network.
type Link interface {
	// Deliver queues d for writing. A link whose queue overflows closes
	// itself as a slow consumer; nothing durable is lost, since the client
	// resumes from the store.
	Deliver(d *Delivery)
	// Drained blocks until the link's outbound queue is short enough to add
	// more replayed messages; it returns an error when the link closes or
	// ctx ends.
	Drained(ctx context.Context) error
	// Close closes the connection with a WebSocket close code.
	Close(code int, reason string)
}

// Link returns the transport under the connection.
func (c *Conn) Link() Link { return c.link }
