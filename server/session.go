package server

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

func (s *Server) newUpgrader() *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.Engine = s.engine
	u.CheckOrigin = func(*http.Request) bool { return true } // tokens, not cookies, authenticate
	u.MessageLengthLimit = s.cfg.MaxMessage
	// No keepalive deadline (nbio's default is 120s): nbio would reset a
	// timer of the connection on every message; the pinger finds silent
	// connections instead (heard).
	u.KeepaliveTime = 0
	u.SetPingHandler(func(ws *websocket.Conn, data string) {
		if l, ok := ws.SessionWithLock().(*link); ok {
			l.heard.Store(true)
			l.write(appendFrame(nil, 0x8a, []byte(data)))
			return
		}
		_ = ws.WriteMessage(websocket.PongMessage, []byte(data))
	})
	u.SetPongHandler(func(ws *websocket.Conn, _ string) {
		if l, ok := ws.SessionWithLock().(*link); ok {
			l.heard.Store(true)
		}
	})
	u.EnableCompression(s.cfg.Compression)
	u.Subprotocols = []string{protocol.SubprotocolJSON, protocol.SubprotocolMsgpack}
	u.OnMessage(s.onMessage)
	u.OnClose(s.onClose)
	u.SetCloseHandler(func(ws *websocket.Conn, code int, _ string) {
		// Answer a client's close unless we started the closing handshake.
		if l, ok := ws.Session().(*link); ok && !l.closing.CompareAndSwap(false, true) {
			return
		}
		if code == 1005 {
			_ = ws.WriteMessage(websocket.CloseMessage, nil)
			return
		}
		_ = ws.WriteClose(code, "")
	})
	return u
}

// token returns the bearer token of a WebSocket or API request.
func token(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// serveWS authenticates and upgrades GET /ws.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	tok := token(r)
	if tok == "" {
		writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "missing token")
		return
	}
	id, err := s.cfg.Auth.Authenticate(r.Context(), tok)
	if err != nil {
		writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, err.Error())
		return
	}
	var since *uint64
	if v := r.URL.Query().Get("since"); v != "" {
		n, ok := parseUint(v)
		if !ok {
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "since must be a non-negative integer")
			return
		}
		since = &n
	}
	if s.conns.Add(1) > int64(s.cfg.MaxConns) {
		s.conns.Add(-1)
		s.metrics.rejected.Inc()
		writeError(w, http.StatusServiceUnavailable, "unavailable", "connection limit reached")
		return
	}
	ws, err := s.upgrader.UpgradeAndTransferConnToPoller(w, r, nil)
	if err != nil {
		s.conns.Add(-1)
		s.log.Debug("upgrade failed", "err", err)
		return
	}
	raw, ok := ws.Conn.(*nbio.Conn)
	if !ok {
		s.forgetEarly(ws)
		s.conns.Add(-1)
		s.log.Error("upgrade: connection not handed to the poller", "type", fmt.Sprintf("%T", ws.Conn))
		_ = ws.Close()
		return
	}
	l := &link{srv: s, ws: ws, raw: raw, flusher: s.flushers[s.nextFl.Add(1)%uint32(len(s.flushers))], deflate: s.cfg.Compression && offersDeflate(r), msgpack: ws.Subprotocol() == protocol.SubprotocolMsgpack}
	l.conn = s.hub.NewConn(id, l)
	if hook := testHookUpgraded.Load(); hook != nil {
		(*hook)()
	}
	// Frames that arrive from here on wait in the held backlog until the
	// welcome is out (backlog.go).
	if !s.adopt(ws, l) {
		s.conns.Add(-1) // closed already
		return
	}
	// The welcome goes out once the connection is attached: a client that
	// has it gets every message stored after it.
	s.hub.Attach(l.conn, since, func() {
		head, ok := l.conn.Head()
		l.reply(func(b []byte) []byte { return protocol.AppendWelcome(b, id.User, l.conn.ID(), head, ok) })
	})
	l.release()
}

// testHookUpgraded, when set by a test, runs between the upgrade and the
// connection's link: frames and closes that come then take the early path.
var testHookUpgraded atomic.Pointer[func()]

// offersDeflate reports whether the client offered permessage-deflate, which
// the upgrader then accepted (it accepts any offer when compression is on).
// nbio's CompressionEnabled says whether the last message read was
// compressed, not whether the connection negotiated it.
func offersDeflate(r *http.Request) bool {
	for _, h := range r.Header.Values("Sec-Websocket-Extensions") {
		for _, ext := range strings.Split(h, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.TrimSpace(name) == "permessage-deflate" {
				return true
			}
		}
	}
	return false
}

func parseUint(v string) (uint64, bool) {
	if v == "" || len(v) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func (s *Server) onClose(ws *websocket.Conn, _ error) {
	l, ok := ws.SessionWithLock().(*link)
	if !ok {
		s.closedEarly(ws)
		return
	}
	l.closing.Store(true)
	// The connection leaves after the frames it sent before it closed.
	detach := func() {
		// The slot frees first: once the hub no longer counts the
		// connection, the limit must not count it either.
		s.conns.Add(-1)
		s.hub.Detach(l.conn)
	}
	if !l.later(detach, false) {
		detach()
	}
}

// onMessage handles one client frame. nbio calls it on the poller, one
// frame at a time per connection, in the order the frames arrived; it
// handles the frame there or queues it in the link's backlog (backlog.go).
func (s *Server) onMessage(ws *websocket.Conn, mt websocket.MessageType, data []byte) {
	l, ok := ws.SessionWithLock().(*link)
	if !ok {
		if s.keepEarly(ws, mt, data) {
			return
		}
		l = ws.SessionWithLock().(*link)
	}
	s.process(l, mt, data, false)
}

// process handles a frame of l now, or queues it behind l's backlog; the
// backlog's own worker (owner) handles it now in any case.
func (s *Server) process(l *link, mt websocket.MessageType, data []byte, owner bool) {
	if l.closing.Load() {
		return
	}
	l.heard.Store(true)
	if !owner && l.full(len(data)) {
		// The client sends faster than its frames can be handled. The
		// frames waiting were never handled and get no reply, as a client
		// expects of frames it has no reply for; the replies already made
		// go out before the close frame.
		l.dropBacklog()
		l.closeWith(courier.CloseSlowConsumer, "too many frames waiting", false)
		return
	}
	s.metrics.framesIn.Inc()
	defer func() {
		// A bug must cost one frame, not the server.
		if r := recover(); r != nil {
			s.log.Error("frame handler panicked", "conn", l.conn.ID(), "user", l.conn.User(), "panic", r, "stack", string(debug.Stack()))
			l.fail(protocol.Errorf("", protocol.CodeInternal, "internal error"))
		}
	}()
	// Every data message counts against the rate, whatever it holds: each
	// one that is refused still costs the server an error reply.
	if !l.allow(time.Now()) {
		l.failInOrder(owner, protocol.Errorf(l.frameID(mt, data), protocol.CodeRateLimited, "more than %g frames per second", s.cfg.RateLimit))
		return
	}
	switch {
	case l.msgpack && mt == websocket.BinaryMessage:
		js, err := protocol.MsgpackToJSON(data)
		if err != nil {
			l.failInOrder(owner, protocol.Errorf("", protocol.CodeBadRequest, "%v", err))
			return
		}
		data = js
	case l.msgpack:
		l.failInOrder(owner, protocol.Errorf("", protocol.CodeBadRequest, "courier.msgpack frames are binary messages"))
		return
	case mt != websocket.TextMessage:
		l.failInOrder(owner, protocol.Errorf("", protocol.CodeBadRequest, "frames are JSON text messages (or choose the courier.msgpack subprotocol)"))
		return
	}
	var f protocol.Frame
	if err := protocol.DecodeInto(data, &f); err != nil {
		l.failInOrder(owner, err)
		return
	}
	block := mayBlock(&f)
	if owner || !block && !l.held.Load() {
		s.handle(l, &f)
		return
	}
	// A durable send blocks only when the commit queue is full: with
	// nothing of this connection's waiting, try it here, and leave it to
	// the backlog only when it would wait. That saves waking a worker for
	// each durable send.
	if !l.held.Load() && storable(&f) && s.hub.TryPost(s.outgoing(l, &f)) {
		return
	}
	// The frame was decoded into copies (protocol.DecodeInto): it may wait
	// in the backlog after nbio has reused data.
	queued := new(protocol.Frame)
	*queued = f
	size := int64(len(data))
	l.waiting.Add(size)
	if !l.later(func() { l.waiting.Add(-size); s.handle(l, queued) }, block) {
		l.waiting.Add(-size)
		s.handle(l, queued)
	}
}

// failInOrder sends an error reply, after the backlog when there is one
// and the caller is not its owner.
func (l *link) failInOrder(owner bool, err error) {
	if owner || !l.later(func() { l.fail(err) }, false) {
		l.fail(err)
	}
}

// frameID digs the id out of a message of type mt that will not be
// processed, for the error reply ("" when it is no frame of this
// connection's encoding); it costs a decode only on that path.
func (l *link) frameID(mt websocket.MessageType, data []byte) string {
	switch {
	case l.msgpack && mt == websocket.BinaryMessage:
		js, err := protocol.MsgpackToJSON(data)
		if err != nil {
			return ""
		}
		data = js
	case l.msgpack || mt != websocket.TextMessage:
		return ""
	}
	if f, err := protocol.Decode(data); err == nil {
		return f.ID
	} else if pe, ok := err.(*protocol.Error); ok {
		return pe.ID
	}
	return ""
}

func (l *link) fail(err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		pe = &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}
	}
	l.srv.metrics.frameErrors.WithLabelValues(pe.Code).Inc()
	l.reply(func(b []byte) []byte { return protocol.AppendError(b, pe) })
}

func (l *link) ack(a protocol.Ack) {
	l.reply(func(b []byte) []byte { return protocol.AppendAck(b, a) })
}

// protocolError maps a hub error to an error frame.
func protocolError(id string, err error) *protocol.Error {
	code := protocol.CodeInternal
	msg := err.Error()
	switch {
	case errors.Is(err, courier.ErrBadRequest):
		code = protocol.CodeBadRequest
	case errors.Is(err, courier.ErrForbidden):
		code = protocol.CodeForbidden
	case errors.Is(err, courier.ErrNotFound):
		code = protocol.CodeNotFound
	case errors.Is(err, courier.ErrTooLarge):
		code = protocol.CodeTooLarge
	case errors.Is(err, courier.ErrRateLimit):
		code = protocol.CodeRateLimited
	default:
		// Store and other internal failures: say what failed, not how.
		msg = "the message could not be stored; it was not sent"
		if errors.Is(err, courier.ErrClosed) {
			msg = "server shutting down"
		}
	}
	return &protocol.Error{ID: id, Code: code, Message: msg}
}

// outgoing returns the message of a send or publish frame and what to do
// with its receipt.
func (s *Server) outgoing(l *link, f *protocol.Frame) (courier.Outgoing, func(courier.Receipt, error)) {
	c := l.conn
	o := courier.Outgoing{From: c.User(), Event: f.Event, Data: f.Data, Volatile: f.Volatile, Key: f.Key, Origin: c}
	if f.Type == protocol.TypeSend {
		o.To = f.To
	} else {
		o.Room = f.Room
	}
	id := f.ID
	return o, func(r courier.Receipt, err error) {
		if err != nil {
			if !errors.Is(err, courier.ErrBadRequest) && !errors.Is(err, courier.ErrForbidden) && !errors.Is(err, courier.ErrNotFound) {
				s.log.Warn("send failed", "conn", c.ID(), "user", c.User(), "err", err)
			}
			l.fail(protocolError(id, err))
			return
		}
		l.ack(protocol.Ack{ID: id, Msg: r.ID, Seq: r.Seq})
	}
}

// handle carries out one decoded frame.
func (s *Server) handle(l *link, f *protocol.Frame) {
	c := l.conn
	switch f.Type {
	case protocol.TypeSend, protocol.TypePublish:
		s.hub.Post(s.outgoing(l, f))
	case protocol.TypeJoin:
		if err := s.hub.Join(c, f.Room); err != nil {
			l.fail(protocolError(f.ID, err))
			return
		}
		l.ack(protocol.Ack{ID: f.ID})
	case protocol.TypeLeave:
		_ = s.hub.Leave(c, f.Room)
		l.ack(protocol.Ack{ID: f.ID})
	case protocol.TypeResume:
		id := f.ID
		c.Resume(*f.Since, func(latest uint64, err error) {
			if err != nil {
				l.fail(protocolError(id, err))
				return
			}
			l.ack(protocol.Ack{ID: id, Seq: latest, HasSeq: true})
		})
	case protocol.TypePing:
		id := f.ID
		l.reply(func(b []byte) []byte {
			b = append(b, `{"type":"pong"`...)
			if id != "" {
				b = append(b, `,"id":`...)
				b = protocol.AppendString(b, id)
			}
			return append(b, '}')
		})
	default:
		if !s.handleQuery(l, f) {
			l.fail(protocol.Errorf(f.ID, protocol.CodeBadRequest, "%s is not available on this server", f.Type))
		}
	}
}
