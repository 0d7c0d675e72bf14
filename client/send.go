package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// A SendOption changes how Send or Publish sends a message.
type SendOption func(*sendOpts)

type sendOpts struct {
	volatile bool
	key      string
}

// Volatile makes a send or publish live only: not stored, not replayed,
// not sent again after a reconnect.
func Volatile() SendOption { return func(o *sendOpts) { o.volatile = true } }

// Key sets the idempotency key of a durable send or publish. Without it,
// Send and Publish make up a random one, so that a message sent again after
// a reconnect is stored once.
func Key(k string) SendOption { return func(o *sendOpts) { o.key = k } }

// A request waits for its reply.
type request struct {
	order   uint64
	frame   []byte
	resend  bool     // written again after a reconnect
	inbox   bool     // a durable send: the ack's seq is an inbox seq
	written bool     // written on a connection (which may have stored it)
	room    string   // join: the room to remember once acked
	watch   []string // watch: the users to remember once acked
	reply   chan reply
}

// A reply is the answer to one request.
type reply struct {
	ack Ack
	raw []byte // the reply frame (history, presence, conversations)
	err error
}

// Send sends a message to user to (or to "conn:<id>", one connection) with
// the event name and data (marshalled with encoding/json; a
// json.RawMessage is sent as is). A durable send (the default) is given an
// idempotency key when it has none and is sent again after a reconnect
// until it is acknowledged, so it is stored once. Send returns the ack, or
// the server's error frame as an *Error.
func (c *Client) Send(ctx context.Context, to, event string, data any, opts ...SendOption) (Ack, error) {
	var o sendOpts
	for _, f := range opts {
		f(&o)
	}
	if strings.HasPrefix(to, "conn:") {
		o.volatile = true
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Ack{}, fmt.Errorf("courier: marshal data: %w", err)
	}
	f := map[string]any{"type": "send", "to": to, "event": event, "data": json.RawMessage(raw)}
	if o.volatile {
		f["volatile"] = true
	} else if o.key == "" {
		o.key = newKey()
	}
	if o.key != "" {
		f["key"] = o.key
	}
	rep, err := c.do(ctx, f, &request{resend: !o.volatile, inbox: !o.volatile})
	return rep.ack, err
}

// Publish sends a message to every other connection that joined room. The
// client must have joined it (the server answers forbidden otherwise). The
// ack's Seq is the room's seq. Like a durable Send, a durable publish is
// given an idempotency key when it has none and is sent again after a
// reconnect (once the client has joined its rooms again) until it is
// acknowledged, so it is stored once. With Volatile, the message is live
// only, the ack has no Seq, and a broken connection fails it with
// ErrConnectionLost.
func (c *Client) Publish(ctx context.Context, room, event string, data any, opts ...SendOption) (Ack, error) {
	var o sendOpts
	for _, f := range opts {
		f(&o)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Ack{}, fmt.Errorf("courier: marshal data: %w", err)
	}
	f := map[string]any{"type": "publish", "room": room, "event": event, "data": json.RawMessage(raw)}
	if o.volatile {
		f["volatile"] = true
	} else {
		if o.key == "" {
			o.key = newKey()
		}
		f["key"] = o.key
	}
	rep, err := c.do(ctx, f, &request{resend: !o.volatile})
	return rep.ack, err
}

// Join joins room; the client joins it again on every reconnect until Leave.
// A room the token may not join gets an *Error with Code "forbidden".
func (c *Client) Join(ctx context.Context, room string) error {
	_, err := c.do(ctx, map[string]any{"type": "join", "room": room}, &request{resend: true, room: room})
	return err
}

// Leave leaves room. Leaving a room not joined is not an error.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
	_, err := c.do(ctx, map[string]any{"type": "leave", "room": room}, &request{resend: true})
	return err
}

// writeTimeout bounds one write of a request. A connection that cannot
// take a frame for that long is closed, and the client reconnects.
const writeTimeout = 10 * time.Second

// do sends frame f with a fresh id as request r and waits for its reply.
func (c *Client) do(ctx context.Context, f map[string]any, r *request) (reply, error) {
	select {
	case <-c.closing:
		return reply{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return reply{}, err
	}
	r.reply = make(chan reply, 1)
	for {
		c.mu.Lock()
		if c.conn != nil || r.resend {
			break
		}
		ready := c.ready
		c.mu.Unlock()
		// Not resendable: wait for a connection to write it on.
		select {
		case <-ready:
		case <-c.done:
			return reply{}, c.stoppedErr()
		case <-ctx.Done():
			return reply{}, ctx.Err()
		}
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	r.order = c.nextID
	f["id"] = id
	r.frame, _ = json.Marshal(f)
	c.pending[id] = r
	ws := c.conn
	r.written = ws != nil
	c.mu.Unlock()
	if ws != nil {
		// Not the caller's ctx: coder/websocket closes the connection when
		// a write's context ends, and the connection is shared.
		wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := ws.Write(wctx, websocket.MessageText, r.frame)
		cancel()
		if err != nil && !r.resend {
			c.drop(id)
			if ctx.Err() != nil {
				return reply{}, ctx.Err()
			}
			return reply{}, ErrConnectionLost
		}
	}
	select {
	case rep := <-r.reply:
		return rep, rep.err
	case <-ctx.Done():
		c.drop(id)
		return reply{}, ctx.Err()
	case <-c.done:
		c.drop(id)
		select {
		case rep := <-r.reply:
			return rep, rep.err
		default:
		}
		return reply{}, c.stoppedErr()
	}
}

func (c *Client) drop(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) stoppedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}

func newKey() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return "go-" + hex.EncodeToString(b[:])
}
