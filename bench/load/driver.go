// Package load is courier's load generator: scenarios (idle, dm, room,
// reconnect) run against a server through a Driver, so the same scenario
// measures courier and its peers (Socket.IO) side by side.
package load

import (
	"context"
	"time"
)

// A Driver speaks one server's protocol.
type Driver interface {
	// Name is the target's name in reports ("courier", "socketio").
	Name() string
	// Dial connects user; with since > 0 (courier only) the server first
	// replays user's stored messages after that seq. h's callbacks run on
	// the connection's reader and must not block.
	Dial(ctx context.Context, user string, since uint64, h Handler) (Client, error)
}

// Handler receives what a Client's server sends.
type Handler struct {
	// Message is called with the payload of each message delivered to the
	// user (direct or room), exactly as the sender passed it, and its inbox
	// seq (0 when volatile or the server has none). payload may point into
	// the driver's read buffer: it is valid only during the call.
	Message func(payload []byte, seq uint64)
	// Ack is called when the server acknowledges one of this client's
	// sends or publishes (in order); ok is false for an error reply; seq is
	// the sent message's inbox seq (courier durable sends).
	Ack func(ok bool, seq uint64)
	// Closed is called once when the connection ends.
	Closed func(err error)
}

// A Client is one simulated user's connection.
type Client interface {
	// Send sends payload to user to. durable asks for a stored message
	// where the server distinguishes (courier); peers without storage
	// ignore it. It returns once the frame is written, not when acked.
	Send(to string, payload []byte, durable bool) error
	// Join joins room and returns once the server confirms.
	Join(ctx context.Context, room string) error
	// Publish sends payload to every other member of room.
	Publish(room string, payload []byte, durable bool) error
	// Close closes the connection.
	Close() error
}

// Stamp returns an ASCII payload of size bytes (at least 20: 19 digits of
// Unix nanoseconds and a dot, then padding) carrying the current time, for
// latency measurement on the receiving side. Drivers carry it as a JSON
// string, so it holds no character that JSON would escape.
func Stamp(size int) []byte {
	size = max(size, 20)
	b := make([]byte, size)
	n := time.Now().UnixNano()
	for i := 18; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	b[19] = '.'
	for i := 20; i < size; i++ {
		b[i] = 'x'
	}
	return b
}

// Stamped returns the time a Stamp payload carries, and false if p is not
// one.
func Stamped(p []byte) (time.Time, bool) {
	if len(p) < 20 || p[19] != '.' {
		return time.Time{}, false
	}
	var n int64
	for _, c := range p[:19] {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		n = n*10 + int64(c-'0')
	}
	return time.Unix(0, n), true
}
