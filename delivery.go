package courier

import (
	"context"
	"sync/atomic"
	"time"
)

// A Delivery is one message on its way to the connections of one user (or one
// room): every connection that receives it gets the same value, so the
// transport encodes it once and writes the same bytes to all of them.
type Delivery struct {
	Message
	// Durable is set for a stored message, whose Seq the connection's inbox
	// order is checked against.
	Durable bool
	// Notice, when set, makes this a notice (a receipt, a presence change)
	// rather than a message; Message is then empty.
	Notice *Notice

	frames [NumEncodings]atomic.Pointer[[]byte]
}

// NumEncodings is how many wire encodings a Delivery can cache at once.
const NumEncodings = 4

// A Notice is a server frame that is not a message.
type Notice struct {
	Kind NoticeKind
	By   string // receipts: the user who received or read the message
	Msg  string // receipts: the message id
	// Presence: whose state changed, and to what.
	User     string
	Online   bool
	LastSeen time.Time // zero when the user was never seen leaving
	// Expired: the seqs First..Last of the user's inbox were deleted by
	// retention and cannot be replayed.
	First, Last uint64
}

// NoticeKind tells notices apart.
type NoticeKind byte

// Kinds of notices.
const (
	NoticeDelivered NoticeKind = 1 + iota // receipt: a message reached a recipient's connection
	NoticeRead                            // receipt: the recipient read up to a message
	NoticePresence                        // a watched user came online or went offline
	NoticeExpired                         // a replay starts past messages retention deleted
)

// Encoded returns the delivery as encoded by encode, calling encode at most
// about once per slot however many connections ask. slot names the
// transport's encoding (0 ≤ slot < NumEncodings).
func (d *Delivery) Encoded(slot int, encode func(*Delivery) []byte) []byte {
	if p := d.frames[slot].Load(); p != nil {
		return *p
	}
	b := encode(d)
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
