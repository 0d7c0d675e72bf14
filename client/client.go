// Package client is a Go client for courier's WebSocket protocol
// (docs/protocol.md).
//
// A Client keeps one connection to a courier server and reconnects by itself
// when it breaks: it backs off exponentially with jitter, resumes with
// since= the last inbox seq it delivered (so no stored message is lost or
// delivered twice across a reconnect), joins its rooms again, watches its
// watched users again and sends again every durable send that was not
// acknowledged, with its idempotency key.
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:9000", client.Options{Token: tok})
//	if err != nil { ... }
//	defer c.Close()
//	ack, err := c.Send(ctx, "bob", "chat", map[string]string{"text": "hi"})
//	for m := range c.Messages() { ... }
//
// # Requests
//
// Every request method (Send, Publish, Join, History, Presence, ...) waits
// for the server's reply and returns the server's error frame as an *Error
// with its Code. Matching replies to requests, reading and writing happen on
// the client's own goroutines; the methods may be called from any goroutine.
//
// # Requests and the connection
//
// Every request that can safely be repeated is sent again on the next
// connection when the connection breaks before its reply, and the caller
// just waits longer (bound it with ctx): durable sends and publishes (with
// their idempotency key, made up when not given, so they are stored once),
// Join and Leave (after the client has joined its rooms again), and History,
// Search, Presence, Conversations, Read, Watch and Unwatch. Made while the
// client is reconnecting, they are queued and sent on the next connection.
// Only volatile sends and publishes, which could be delivered twice, fail
// with ErrConnectionLost when their connection breaks before the ack; new
// ones wait for the next connection.
//
// # Events
//
// With Options.Events, receipts (a message of this user was delivered or
// read), presence changes of watched users and expired notices (a replay
// started past messages that retention deleted) arrive on Events, in the
// order the server sent them. Like Messages, the Events channel holds
// Options.Buffer items; while it is full the client stops reading from the
// connection, so nothing is dropped and the server's own slow-consumer limit
// applies. Without Options.Events these frames are discarded and Events
// gets nothing.
//
// After a reconnect the client watches its watched users again, and the
// server tells the current state of each of them again: a PresenceChange
// may repeat the state already known, and covers any change missed while
// disconnected.
//
// # Dead connections
//
// A connection can die without a close (a NAT or proxy that forgets it, a
// network that changes): writes still succeed and nothing arrives. When
// nothing (no frame, and no WebSocket ping or pong) has been received for
// Options.Heartbeat (25s), the client sends a WebSocket ping; when no
// answer comes within Options.HeartbeatTimeout (10s), it closes the
// connection and reconnects as after any other break, so nothing is lost
// or delivered twice. A WebSocket ping rather than the protocol's ping
// frame: the server's WebSocket layer answers it, so it is no request and
// no frame of the server's rate limit, and the server's own pings count as
// a sign of life too. Time during which the client waits for the
// application to read Messages or Events is not silence.
//
// # A reset store
//
// After every welcome the client asks the server for its inbox head (a
// resume beyond the head, which the server acks with the head). A head
// below LastSeq means that the server's store was wiped, or that
// Options.Since came from another deployment: the client then follows the
// server's head, and LastSeq moves back to it, rather than dropping every
// new message as one it has already seen. A head above what the client has
// received cannot come from this version of the server, which acks only
// what it gave the connection; an older one could count a message stored
// while it answered and never send it. The client then asks for the
// messages after LastSeq again.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configure a Client. The zero value of every field but Token or
// TokenFunc is a usable default.
type Options struct {
	// Token is the JWT the client authenticates with. It is used when
	// TokenFunc is nil.
	Token string

	// TokenFunc, when not nil, is called for a token before the first
	// connection and again whenever the server refuses the current one
	// (HTTP 401) or closes the connection because it expired (close code
	// 4003).
	TokenFunc func(ctx context.Context) (string, error)

	// Since is the inbox seq the client has already seen: the first
	// connection replays every stored message with a greater seq. Zero
	// means no replay of older messages: the client starts at the inbox
	// head as it stands when it connects (the welcome's seq: a reconnection
	// before any message arrived resumes from there). A Since beyond the server's
	// inbox head (its store was reset, or Since comes from another
	// deployment) is not trusted: the client follows the server's head,
	// and LastSeq moves back to it.
	Since uint64

	// MinBackoff and MaxBackoff bound the jittered exponential wait between
	// reconnection attempts (defaults 200ms and 10s).
	MinBackoff, MaxBackoff time.Duration

	// Buffer is the capacity of the Messages channel and of the Events
	// channel (default 256 each). While either is full the client stops
	// reading from the connection.
	Buffer int

	// Events turns on the Events channel: receipts, presence changes of
	// watched users and expired notices are delivered on it. When false,
	// they are discarded, so that a program that never reads Events does
	// not stall.
	Events bool

	// HTTPHeader is added to the WebSocket handshake request.
	HTTPHeader http.Header

	// Heartbeat is how long the connection may stay silent (no frame,
	// ping or pong received) before the client pings the server (default
	// 25s; negative turns the heartbeat off). HeartbeatTimeout is how long
	// it then waits for an answer (default 10s) before it takes the
	// connection for dead and reconnects, as after any other break. Time
	// during which the client waits for the application to read Messages
	// or Events does not count as silence.
	Heartbeat, HeartbeatTimeout time.Duration
}

// A Message is a message frame received from the server, or one message of
// a History, Search or Conversations reply.
type Message struct {
	ID    string          `json:"msg"`            // the message id
	From  string          `json:"from"`           // the authenticated sender or a server API label
	To    string          `json:"to"`             // the recipient user, or "conn:<id>"
	Room  string          `json:"room,omitempty"` // the room of a room message
	Event string          `json:"event"`          // the event name
	Data  json.RawMessage `json:"data"`           // the payload as sent
	TS    time.Time       `json:"ts"`             // when the server accepted the message
	Seq   uint64          `json:"seq,omitempty"`  // the inbox seq (room seq for room messages); 0 when volatile
	// Status is set in History and in a conversation's Last, on direct
	// messages this user sent: StatusSent, StatusDelivered or StatusRead,
	// as the receipts stand when the server answered. Empty elsewhere.
	Status string `json:"status,omitempty"`

	// Frame is the frame exactly as the server sent it.
	Frame json.RawMessage `json:"-"`
}

// An Ack is the server's acknowledgement of a send or publish.
type Ack struct {
	Msg string `json:"msg"` // the message id
	// Seq is the message's place in the sender's inbox (for a durable
	// send) or in the room (for a publish); 0 for volatile messages.
	Seq uint64 `json:"seq,omitempty"`
}

// An Error is an error frame the server answered a request with.
type Error struct {
	Code    string // bad_request, forbidden, not_found, too_large, rate_limited, internal
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return "courier: " + e.Code + ": " + e.Message }

var (
	// ErrClosed is returned by requests on a Client that was closed.
	ErrClosed = errors.New("courier: client closed")
	// ErrConnectionLost is returned by a request that cannot be sent
	// again safely (a volatile send or publish) when the connection broke
	// before its reply.
	ErrConnectionLost = errors.New("courier: connection lost before the reply")
	// ErrUnauthorized is returned when the server refuses the token with
	// HTTP 401 and no fresh one can be had.
	ErrUnauthorized = errors.New("courier: unauthorized (HTTP 401): bad or expired token")
)

// A CloseError is why the server closed the connection for good (code 4001,
// disconnected by the server's API).
type CloseError struct {
	Code   websocket.StatusCode
	Reason string
}

// Error implements the error interface.
func (e *CloseError) Error() string {
	return fmt.Sprintf("courier: connection closed by the server: %d %s", int(e.Code), e.Reason)
}

// A Client is a connection to a courier server that reconnects by itself.
// Its methods may be called from any goroutine.
type Client struct {
	url  string
	opts Options

	user string // from the first welcome frame

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when run has returned
	msgs      chan Message
	events    chan Event
	cancel    context.CancelFunc

	mu      sync.Mutex
	conn    *websocket.Conn // nil while reconnecting
	connID  string
	ready   chan struct{} // closed when conn becomes non-nil; replaced when it breaks
	token   string
	lastSeq uint64
	known   bool // lastSeq is a real inbox position: reconnects send since=lastSeq
	nextID  uint64
	pending map[string]*request
	rooms   map[string]bool
	watched map[string]bool
	err     error // why the client stopped, once done is closed

	// Inbox bookkeeping (inbox.go).
	await    uint8           // awaitHead, awaitFill: the reply the connection waits for
	headHold []Message       // inbox messages held until that reply
	ahead    map[uint64]bool // seqs of own durable sends acked beyond lastSeq+1
	holding  bool            // message frames are held in hold
	hold     []Message
	holdFor  map[string]bool // ids of the sends written again whose acks are awaited
	own      map[string]bool // message ids those acks named

	// Liveness of the current connection (heartbeat.go).
	rx      atomic.Int64 // when a frame, ping or pong was last received (UnixNano)
	stalled atomic.Bool  // the read loop waits for the application to take a message or event
}

// frame is any frame from the server, as far as the client routes it.
type frame struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	User    string `json:"user"`
	Conn    string `json:"conn"`
	Msg     string `json:"msg"`
	Seq     uint64 `json:"seq"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Dial connects to the courier server at url (ws://host:port, with or
// without the /ws path; http:// and https:// are accepted too) and returns
// once the server has welcomed the connection. A failure of this first
// connection is returned: Dial does not retry. ctx bounds only the dial.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := wsURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Token == "" && opts.TokenFunc == nil {
		return nil, errors.New("courier: no Token or TokenFunc")
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 25 * time.Second
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = 10 * time.Second
	}
	c := &Client{
		url: u, opts: opts, token: opts.Token, lastSeq: opts.Since, known: opts.Since > 0,
		closing: make(chan struct{}), done: make(chan struct{}),
		msgs: make(chan Message, opts.Buffer), events: make(chan Event, opts.Buffer),
		ready:   make(chan struct{}),
		pending: map[string]*request{}, rooms: map[string]bool{}, watched: map[string]bool{},
		ahead: map[uint64]bool{}, holdFor: map[string]bool{}, own: map[string]bool{},
	}
	ws, w, err := c.dial(ctx, opts.TokenFunc != nil)
	if err != nil {
		return nil, err
	}
	c.user = w.user
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := ws.Write(ctx, websocket.MessageText, headFrame); err != nil {
		cancel()
		ws.CloseNow()
		return nil, fmt.Errorf("courier: write: %w", err)
	}
	c.setConn(ws, w.conn)
	go c.run(rctx, ws)
	return c, nil
}

// headID is the id of the resume frame that asks for the inbox head.
const headID = "head"

// headFrame asks for the inbox head: a resume beyond it replays nothing
// and is acked with the head (protocol.md, "since beyond the inbox head").
// It is the first frame on every connection (see Client.headAck).
var headFrame = []byte(`{"type":"resume","id":"` + headID + `","since":4611686018427387904}`)

// fillID is the id of the resume frame that fills a gap the head ack
// revealed (see Client.headAck).
const fillID = "fill"

// welcome is what the welcome frame says.
type welcome struct{ user, conn string }

func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("courier: bad url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("courier: bad url %q: want ws://host:port", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("courier: bad url %q: no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

// User returns the user id the server authenticated the client as.
func (c *Client) User() string { return c.user }

// ConnID returns the id of the current connection ("" while reconnecting).
func (c *Client) ConnID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connID
}

// LastSeq returns the highest inbox seq the client has delivered on
// Messages or seen acknowledged; pass it as Options.Since to resume later.
// It never runs ahead of Messages. It includes a message the application
// has just received, except when the client had to wait for room on
// Messages to deliver it: then it may lag that message by a moment.
func (c *Client) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// Messages returns the channel of incoming message frames: direct messages
// (durable ones in inbox seq order, each once), room messages and volatile
// ones. It is closed when the client stops, after Close or a fatal error
// (see Err). Read it: while it is full, the client reads nothing else.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Done returns a channel closed when the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped: nil while it runs, ErrClosed after
// Close, or the error that ended it (ErrUnauthorized, a *CloseError).
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection, stops reconnecting and waits until every
// goroutine of the client has returned. Requests still waiting fail with
// ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.mu.Lock()
		ws := c.conn
		c.mu.Unlock()
		if ws != nil {
			_ = ws.Close(websocket.StatusNormalClosure, "")
		}
		c.cancel()
	})
	<-c.done
	return nil
}
