package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SocketIO drives the reference Socket.IO peer (bench/peers/socketio): one
// Socket.IO v5 / Engine.IO v4 session per Client over the same WebSocket
// client as the courier driver (wsclient.go: nbio poller, no goroutine per
// connection), so both targets pay the same client-side transport costs.
// It emits the peer's events "dm", "join" and "publish", each with an ack
// id, and reports its "message" deliveries. Dial's since argument is
// ignored: the peer stores nothing.
//
// As with the courier driver, a Message payload points into the read
// buffer and is valid only during the call.
type SocketIO struct {
	addr string // host:port

	// Sources are local addresses to dial from, PerSource connections
	// each in turn (see LoopbackSources); none binds nothing.
	Sources   []net.IP
	PerSource int
	// DialTimeout bounds one connect and Socket.IO handshake (default 30s).
	DialTimeout time.Duration

	poller *wsPoller
	dials  atomic.Uint64
}

// socketIOPath is the Engine.IO v4 endpoint, WebSocket transport only.
const socketIOPath = "/socket.io/?EIO=4&transport=websocket"

// NewSocketIO returns a driver for the Socket.IO peer at base (ws://host:port,
// http://host:port or host:port). Close stops its poller.
func NewSocketIO(base string) (*SocketIO, error) {
	host, err := hostPort("socketio", base)
	if err != nil {
		return nil, err
	}
	p, err := newWSPoller()
	if err != nil {
		return nil, err
	}
	return &SocketIO{addr: host, poller: p}, nil
}

// Name implements Driver.
func (d *SocketIO) Name() string { return "socketio" }

// Wire implements WireReporter.
func (d *SocketIO) Wire() Wire {
	var w Wire
	w.InBytes, w.OutBytes = d.poller.wireBytes()
	return w
}

// Close stops the driver's poller, closing every connection it still has.
func (d *SocketIO) Close() error {
	d.poller.stop()
	return nil
}

// Dial implements Driver: it opens the Engine.IO session, connects the
// default namespace with auth {"user": user} and returns once the server
// has confirmed it ("40{…}").
func (d *SocketIO) Dial(ctx context.Context, user string, _ uint64, h Handler) (Client, error) {
	var local net.IP
	if len(d.Sources) > 0 {
		per := uint64(max(d.PerSource, 1))
		local = d.Sources[(d.dials.Add(1)-1)/per%uint64(len(d.Sources))]
	}
	timeout := d.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &sioClient{h: h, user: user, connected: make(chan struct{}), done: make(chan struct{})}
	ws, err := wsDial(ctx, d.poller, sourceDialer(local, timeout), d.addr, socketIOPath, wsOptions{}, c.onText, c.onClose)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	c.ws.Store(ws)
	if c.opened.Load() { // the open packet came with the handshake response
		c.connect()
	}
	select {
	case <-c.connected:
		c.live.Store(true)
		if c.ended.Load() { // ended between "40" and here: onClose may have seen live false
			c.reportClosed(c.endErr)
		}
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("dial %s: %v", user, c.endErr)
	case <-ctx.Done():
		c.fail(ctx.Err())
		return nil, fmt.Errorf("dial %s: no Socket.IO connect: %w", user, ctx.Err())
	}
}

// sioClient is one Socket.IO connection.
type sioClient struct {
	ws   atomic.Pointer[wsConn] // set once wsDial returns
	h    Handler
	user string

	opened      atomic.Bool // the Engine.IO open packet has arrived
	connectOnce sync.Once   // sends the namespace CONNECT
	connected   chan struct{}
	isConnected atomic.Bool   // connected is closed
	live        atomic.Bool   // Dial returned the client: Closed is due
	ended       atomic.Bool   // onClose ran
	done        chan struct{} // closed when the connection has ended
	endErr      error         // why, once done is closed
	closedOnce  sync.Once     // reports Closed

	nextID atomic.Uint64 // ack ids, per connection as in socket.io-client

	jmu     sync.Mutex
	refused error                    // the server's CONNECT_ERROR, if any
	joins   map[uint64]chan struct{} // pending Join acks by ack id
	njoins  atomic.Int32             // len(joins), read without jmu on every ack

	closing atomic.Bool
}

var (
	errSIODisconnect = errors.New("socketio: disconnected by the server")
	errSIOClosed     = errors.New("socketio: connection closed")
)

// reportClosed calls h.Closed once, if set.
func (c *sioClient) reportClosed(err error) {
	c.closedOnce.Do(func() {
		if c.h.Closed != nil {
			c.h.Closed(err)
		}
	})
}

// connect sends the namespace CONNECT `40{"user":…}`, once.
func (c *sioClient) connect() {
	c.connectOnce.Do(func() {
		ws := c.ws.Load()
		err := ws.writeBuilt(0x1, func(b []byte) []byte {
			b = append(b, `40{"user":`...)
			return append(appendJSONText(b, c.user), '}')
		})
		if err != nil {
			ws.fail(err)
		}
	})
}

func (c *sioClient) fail(err error) {
	if ws := c.ws.Load(); ws != nil {
		ws.fail(err)
	}
}

var sioPong = []byte("3")

// onText handles one Engine.IO packet, on the poller (or, for bytes that
// came with the WebSocket handshake, on the dialing goroutine before
// c.ws is set).
func (c *sioClient) onText(p []byte) {
	if len(p) == 0 {
		return
	}
	switch p[0] {
	case '4': // message: a Socket.IO packet follows
	case '2': // ping: in Engine.IO v4 the server pings and the client pongs
		if ws := c.ws.Load(); ws != nil {
			_ = ws.write(0x1, sioPong)
		}
		return
	case '0': // open {"sid","upgrades","pingInterval","pingTimeout","maxPayload"}
		if c.opened.CompareAndSwap(false, true) && c.ws.Load() != nil {
			c.connect()
		}
		return
	case '1': // close
		c.fail(errSIODisconnect)
		return
	default: // pong, noop, upgrade: nothing to do
		return
	}
	if len(p) < 2 {
		return
	}
	switch p[1] {
	case '2': // EVENT 42["message","…"]
		if payload, ok := sioMessage(p[2:]); ok && c.h.Message != nil {
			c.h.Message(payload, 0)
		}
	case '3': // ACK 43<id>[…]
		id, rest, ok := sioAckID(p[2:])
		if !ok {
			return
		}
		if c.njoins.Load() > 0 && c.ackJoin(id) {
			return
		}
		if c.h.Ack != nil {
			c.h.Ack(len(rest) > 0 && rest[0] == '[', 0)
		}
	case '0': // CONNECT 40{"sid":…}
		if c.isConnected.CompareAndSwap(false, true) {
			close(c.connected)
		}
	case '4': // CONNECT_ERROR 44{"message":…}
		err := fmt.Errorf("socketio: connect refused: %s", p[2:])
		c.jmu.Lock()
		c.refused = err
		c.jmu.Unlock()
		c.fail(err)
	case '1': // DISCONNECT
		c.fail(errSIODisconnect)
	}
}

// onClose runs once when the connection has ended.
func (c *sioClient) onClose(err error) {
	c.jmu.Lock()
	clear(c.joins)
	c.njoins.Store(0)
	if c.refused != nil {
		err = c.refused
	}
	c.jmu.Unlock()
	if err == nil {
		err = errSIOClosed
	}
	if c.closing.Load() {
		err = nil
	}
	c.endErr = err
	c.ended.Store(true)
	close(c.done)
	if c.live.Load() {
		c.reportClosed(err)
	}
}

// sioMessage extracts the payload of a `["message","…"]` event (the bytes
// after "42"). The fast path returns an escape-free string in place; an
// escaped string, a namespace or ack id prefix, or extra arguments take
// encoding/json.
func sioMessage(b []byte) ([]byte, bool) {
	const head = `["message","`
	if len(b) >= len(head)+2 && string(b[:len(head)]) == head && b[len(b)-1] == ']' && b[len(b)-2] == '"' {
		s := b[len(head) : len(b)-2]
		clean := true
		for _, ch := range s {
			if ch == '"' || ch == '\\' {
				clean = false
				break
			}
		}
		if clean {
			return s, true
		}
	}
	if i := strings.IndexByte(string(b), '['); i > 0 {
		b = b[i:]
	}
	var args []json.RawMessage
	if json.Unmarshal(b, &args) != nil || len(args) < 2 {
		return nil, false
	}
	var name, s string
	if json.Unmarshal(args[0], &name) != nil || name != "message" || json.Unmarshal(args[1], &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// sioAckID parses the decimal ack id at the start of b (the bytes after
// "43") and returns what follows it.
func sioAckID(b []byte) (uint64, []byte, bool) {
	var id uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		id = id*10 + uint64(b[i]-'0')
	}
	return id, b[i:], i > 0
}

func (c *sioClient) ackJoin(id uint64) bool {
	c.jmu.Lock()
	ch, ok := c.joins[id]
	if ok {
		delete(c.joins, id)
		c.njoins.Store(int32(len(c.joins)))
	}
	c.jmu.Unlock()
	if ok {
		close(ch)
	}
	return ok
}

// emit writes `42<id>["<event>","<arg>",…]` with the next ack id.
func (c *sioClient) emit(id uint64, event, arg string, payload []byte, withPayload bool) error {
	return c.ws.Load().writeBuilt(0x1, func(b []byte) []byte {
		b = strconv.AppendUint(append(b, '4', '2'), id, 10)
		b = append(append(append(b, `["`...), event...), `",`...)
		b = appendJSONText(b, arg)
		if withPayload {
			b = appendJSONText(append(b, ','), payload)
		}
		return append(b, ']')
	})
}

// Send implements Client: emit("dm", to, payload, ack).
func (c *sioClient) Send(to string, payload []byte, _ bool) error {
	return c.emit(c.nextID.Add(1)-1, "dm", to, payload, true)
}

// Publish implements Client: emit("publish", room, payload, ack).
func (c *sioClient) Publish(room string, payload []byte, _ bool) error {
	return c.emit(c.nextID.Add(1)-1, "publish", room, payload, true)
}

// Join implements Client: emit("join", room, ack) and wait for the ack.
func (c *sioClient) Join(ctx context.Context, room string) error {
	id := c.nextID.Add(1) - 1
	ch := make(chan struct{})
	c.jmu.Lock()
	if c.joins == nil {
		c.joins = map[uint64]chan struct{}{}
	}
	c.joins[id] = ch
	c.njoins.Store(int32(len(c.joins)))
	c.jmu.Unlock()
	if err := c.emit(id, "join", room, nil, false); err != nil {
		c.ackJoin(id)
		return err
	}
	select {
	case <-ch:
		return nil
	case <-c.done:
		return fmt.Errorf("join %s: %w", room, errSIOClosed)
	case <-ctx.Done():
		c.ackJoin(id)
		return ctx.Err()
	}
}

// Close implements Client: like the courier driver's, it drops the TCP
// connection (no DISCONNECT packet, no closing handshake), as a client
// that loses its network would.
func (c *sioClient) Close() error {
	c.closing.Store(true)
	if err := c.ws.Load().close(); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "closed") {
		return err
	}
	return nil
}
