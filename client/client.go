// Package client is a Go client for courier's WebSocket protocol
// (docs/protocol.md).
//
// A Client keeps one connection to a courier server and reconnects by itself
// when it breaks: it backs off exponentially with jitter, resumes with
// since= the last inbox seq it delivered (so no stored message is lost or
// delivered twice across a reconnect), joins its rooms again and sends again
// every durable send that was not acknowledged, with its idempotency key.
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:9000", client.Options{Token: tok})
//	if err != nil { ... }
//	defer c.Close()
//	ack, err := c.Send(ctx, "bob", "chat", map[string]string{"text": "hi"})
//	for m := range c.Messages() { ... }
package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	// head as it stands when it connects.
	Since uint64

	// MinBackoff and MaxBackoff bound the jittered exponential wait between
	// reconnection attempts (defaults 200ms and 10s).
	MinBackoff, MaxBackoff time.Duration

	// Buffer is the capacity of the Messages channel (default 256). While
	// the channel is full the client stops reading from the connection.
	Buffer int

	// HTTPHeader is added to the WebSocket handshake request.
	HTTPHeader http.Header
}

// A Message is a message frame received from the server.
type Message struct {
	ID    string          `json:"msg"`            // the message id
	From  string          `json:"from"`           // the authenticated sender or a server API label
	To    string          `json:"to"`             // the recipient user, or "conn:<id>"
	Room  string          `json:"room,omitempty"` // the room of a room message
	Event string          `json:"event"`          // the event name
	Data  json.RawMessage `json:"data"`           // the payload as sent
	TS    time.Time       `json:"ts"`             // when the server accepted the message
	Seq   uint64          `json:"seq,omitempty"`  // the inbox seq (room seq for room messages); 0 when volatile

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
	// again safely (volatile send, publish, join, leave) when the
	// connection broke before its reply.
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

// A SendOption changes how Send sends a message.
type SendOption func(*sendOpts)

type sendOpts struct {
	volatile bool
	key      string
}

// Volatile makes a send live only: not stored, not replayed, not sent again
// after a reconnect.
func Volatile() SendOption { return func(o *sendOpts) { o.volatile = true } }

// Key sets the idempotency key of a durable send. Without it, Send makes up
// a random one, so that a send repeated after a reconnect is stored once.
func Key(k string) SendOption { return func(o *sendOpts) { o.key = k } }

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
	err     error // why the client stopped, once done is closed
}

// A request waits for its reply.
type request struct {
	order  uint64
	frame  []byte
	resend bool // durable send: written again after a reconnect
	reply  chan reply
	room   string // for join: the room to remember once acked
}

type reply struct {
	ack Ack
	err error
}

// frame is any frame from the server.
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
	c := &Client{
		url: u, opts: opts, token: opts.Token, lastSeq: opts.Since, known: opts.Since > 0,
		closing: make(chan struct{}), done: make(chan struct{}),
		msgs: make(chan Message, opts.Buffer), ready: make(chan struct{}),
		pending: map[string]*request{}, rooms: map[string]bool{},
	}
	ws, w, err := c.dial(ctx, opts.TokenFunc != nil)
	if err != nil {
		return nil, err
	}
	c.user = w.user
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if opts.Since == 0 {
		// Learn the inbox head, so that a reconnect before any message
		// resumes from it rather than missing what came meanwhile.
		b := []byte(`{"type":"resume","id":"` + headID + `","since":4611686018427387904}`)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			cancel()
			ws.CloseNow()
			return nil, fmt.Errorf("courier: write: %w", err)
		}
	}
	c.setConn(ws, w.conn)
	go c.run(rctx, ws)
	return c, nil
}

// headID is the id of the resume frame that asks for the inbox head.
const headID = "head"

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
	} else {
		if o.key == "" {
			o.key = newKey()
		}
	}
	if o.key != "" {
		f["key"] = o.key
	}
	return c.do(ctx, f, !o.volatile, "")
}

// Publish sends a message to every other connection that joined room. The
// client must have joined it. The ack's Seq is the room's seq. A publish is
// not sent again after a reconnect: it fails with ErrConnectionLost.
func (c *Client) Publish(ctx context.Context, room, event string, data any) (Ack, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Ack{}, fmt.Errorf("courier: marshal data: %w", err)
	}
	return c.do(ctx, map[string]any{"type": "publish", "room": room, "event": event, "data": json.RawMessage(raw)}, false, "")
}

// Join joins room; the client joins it again on every reconnect until Leave.
func (c *Client) Join(ctx context.Context, room string) error {
	_, err := c.do(ctx, map[string]any{"type": "join", "room": room}, false, room)
	return err
}

// Leave leaves room.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.mu.Lock()
	delete(c.rooms, room)
	c.mu.Unlock()
	_, err := c.do(ctx, map[string]any{"type": "leave", "room": room}, false, "")
	return err
}

// do sends frame f with a fresh id and waits for its reply.
func (c *Client) do(ctx context.Context, f map[string]any, resend bool, joinRoom string) (Ack, error) {
	select {
	case <-c.closing:
		return Ack{}, ErrClosed
	default:
	}
	r := &request{resend: resend, reply: make(chan reply, 1), room: joinRoom}
	for {
		c.mu.Lock()
		if c.conn != nil || resend {
			break
		}
		ready := c.ready
		c.mu.Unlock()
		// Not resendable: wait for a connection to write it on.
		select {
		case <-ready:
		case <-c.done:
			return Ack{}, c.stoppedErr()
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		}
	}
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	r.order = c.nextID
	f["id"] = id
	r.frame, _ = json.Marshal(f)
	c.pending[id] = r
	ws := c.conn
	c.mu.Unlock()
	if ws != nil {
		if err := ws.Write(ctx, websocket.MessageText, r.frame); err != nil && !resend {
			c.drop(id)
			if ctx.Err() != nil {
				return Ack{}, ctx.Err()
			}
			return Ack{}, ErrConnectionLost
		}
	}
	select {
	case rep := <-r.reply:
		return rep.ack, rep.err
	case <-ctx.Done():
		c.drop(id)
		return Ack{}, ctx.Err()
	case <-c.done:
		c.drop(id)
		select {
		case rep := <-r.reply:
			return rep.ack, rep.err
		default:
		}
		return Ack{}, c.stoppedErr()
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

// dial opens one connection with since= the last delivered seq and reads
// the welcome frame. fresh asks TokenFunc for a token first; a 401 asks it
// once more.
func (c *Client) dial(ctx context.Context, fresh bool) (*websocket.Conn, welcome, error) {
	for attempt := 0; ; attempt++ {
		if fresh && c.opts.TokenFunc != nil {
			t, err := c.opts.TokenFunc(ctx)
			if err != nil {
				return nil, welcome{}, fmt.Errorf("courier: token: %w", err)
			}
			c.mu.Lock()
			c.token = t
			c.mu.Unlock()
		}
		c.mu.Lock()
		tok, since, known := c.token, c.lastSeq, c.known
		c.mu.Unlock()
		u := c.url
		if known {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + "since=" + strconv.FormatUint(since, 10)
		}
		h := http.Header{}
		for k, v := range c.opts.HTTPHeader {
			h[k] = v
		}
		h.Set("Authorization", "Bearer "+tok)
		ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusUnauthorized {
				if c.opts.TokenFunc != nil && attempt == 0 {
					fresh = true
					continue
				}
				return nil, welcome{}, ErrUnauthorized
			}
			return nil, welcome{}, fmt.Errorf("courier: dial %s: %w", c.url, err)
		}
		ws.SetReadLimit(1 << 24)
		_, b, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return nil, welcome{}, fmt.Errorf("courier: read welcome: %w", err)
		}
		var w frame
		if json.Unmarshal(b, &w) != nil || w.Type != "welcome" {
			ws.CloseNow()
			return nil, welcome{}, fmt.Errorf("courier: first frame is not a welcome: %.200s", b)
		}
		return ws, welcome{user: w.User, conn: w.Conn}, nil
	}
}

// setConn makes ws the current connection and returns the durable sends to
// write again on it, oldest first.
func (c *Client) setConn(ws *websocket.Conn, connID string) []*request {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.connID = ws, connID
	close(c.ready)
	var again []*request
	for _, r := range c.pending {
		if r.resend {
			again = append(again, r)
		}
	}
	sort.Slice(again, func(i, j int) bool { return again[i].order < again[j].order })
	return again
}

// run owns the connection: it reads until the connection breaks, then
// reconnects with backoff, until Close or a fatal error.
func (c *Client) run(ctx context.Context, ws *websocket.Conn) {
	var bg sync.WaitGroup // writers of rejoins and resends, one per connection
	defer func() {
		bg.Wait()
		c.mu.Lock()
		if c.err == nil {
			c.err = ErrClosed
		}
		err := c.err
		for id, r := range c.pending {
			r.reply <- reply{err: err}
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.msgs)
		close(c.done)
	}()
	fresh := false
	for {
		err := c.read(ctx, ws)
		bg.Wait()
		select {
		case <-c.closing:
			return // Close closes the connection
		default:
		}
		code := websocket.CloseStatus(err)
		c.lost()
		if ctx.Err() != nil {
			return
		}
		if code == 4001 {
			c.fail(&CloseError{Code: code, Reason: "disconnected by the server"})
			return
		}
		fresh = code == 4003
		var connID welcome
		ws, connID, err = c.reconnect(ctx, fresh)
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		// Rooms first, then the unacknowledged sends: the server handles a
		// connection's frames in order.
		c.mu.Lock()
		var rooms []string
		for r := range c.rooms {
			rooms = append(rooms, r)
		}
		c.mu.Unlock()
		again := c.setConnAfter(ctx, ws, connID.conn, rooms)
		bg.Add(1)
		go func(ws *websocket.Conn) {
			defer bg.Done()
			for _, r := range again {
				if ws.Write(ctx, websocket.MessageText, r.frame) != nil {
					return
				}
			}
		}(ws)
	}
}

// setConnAfter writes the joins of rooms on ws, then makes it current.
func (c *Client) setConnAfter(ctx context.Context, ws *websocket.Conn, connID string, rooms []string) []*request {
	sort.Strings(rooms)
	for _, r := range rooms {
		b, _ := json.Marshal(map[string]string{"type": "join", "id": "rejoin", "room": r})
		if ws.Write(ctx, websocket.MessageText, b) != nil {
			break
		}
	}
	return c.setConn(ws, connID)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// lost forgets the broken connection and fails the requests that cannot be
// sent again.
func (c *Client) lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.CloseNow()
	}
	c.conn, c.connID = nil, ""
	c.ready = make(chan struct{})
	for id, r := range c.pending {
		if !r.resend {
			r.reply <- reply{err: ErrConnectionLost}
			delete(c.pending, id)
		}
	}
}

// reconnect dials with jittered exponential backoff until it connects, the
// client is closed, or the server refuses the token for good.
func (c *Client) reconnect(ctx context.Context, fresh bool) (*websocket.Conn, welcome, error) {
	d := c.opts.MinBackoff
	for {
		wait := d/2 + rand.N(d/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, welcome{}, ctx.Err()
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, w, err := c.dial(dctx, fresh)
		cancel()
		if err == nil {
			return ws, w, nil
		}
		if errors.Is(err, ErrUnauthorized) && c.opts.TokenFunc == nil {
			return nil, welcome{}, err
		}
		fresh = errors.Is(err, ErrUnauthorized)
		if d *= 2; d > c.opts.MaxBackoff {
			d = c.opts.MaxBackoff
		}
	}
}

// read reads frames from ws until it fails.
func (c *Client) read(ctx context.Context, ws *websocket.Conn) error {
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case "message":
			var m Message
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			m.Frame = append(json.RawMessage(nil), b...)
			inbox := m.Room == "" && m.Seq > 0
			if inbox {
				c.mu.Lock()
				seen := m.Seq <= c.lastSeq
				c.mu.Unlock()
				if seen {
					continue // already delivered before a reconnect
				}
			}
			select {
			case c.msgs <- m:
			case <-c.closing:
				return ErrClosed
			case <-ctx.Done():
				return ctx.Err()
			}
			if inbox {
				c.mu.Lock()
				c.lastSeq, c.known = m.Seq, true
				c.mu.Unlock()
			}
		case "ack", "error":
			c.mu.Lock()
			if f.ID == headID && f.Type == "ack" {
				c.lastSeq, c.known = max(c.lastSeq, f.Seq), true
			}
			r := c.pending[f.ID]
			delete(c.pending, f.ID)
			if r == nil {
				c.mu.Unlock()
				continue
			}
			var rep reply
			if f.Type == "error" {
				rep.err = &Error{Code: f.Code, Message: f.Message}
			} else {
				rep.ack = Ack{Msg: f.Msg, Seq: f.Seq}
				if r.resend && f.Seq > 0 {
					c.lastSeq, c.known = max(c.lastSeq, f.Seq), true
				}
				if r.room != "" {
					c.rooms[r.room] = true
				}
			}
			c.mu.Unlock()
			r.reply <- rep
		}
	}
}
