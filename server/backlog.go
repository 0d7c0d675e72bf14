package server

import (
	"runtime/debug"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// Where a frame is handled.
//
// nbio's poller reads a connection's frames and calls onMessage for each,
// on the poller's own goroutine (Server's executor runs nbio's jobs
// inline). A frame whose handling cannot block — a volatile send, a ping,
// a leave, the start of a resume, an error reply — is carried out right
// there: no hand-off to another goroutine, no wake-up of another thread,
// which on a loaded core is what a message's latency and much of its CPU
// went to (docs/benchmarks.md, "One event loop").
//
// A frame that may block — a durable send waits for room in the commit
// queue, a join on a cluster for the broker's subscription, a history or
// search for the store — would stall every connection of that poller. It
// goes to the link's backlog instead, and a worker handles it. Every frame
// of the connection that arrives while the backlog is not empty joins the
// backlog behind it, whatever its kind, so the connection's frames are
// still handled one at a time in the order they arrived. Once the worker
// has emptied the backlog, the poller handles the connection's frames
// again.
//
// A new connection starts with its backlog held: frames that arrive before
// its welcome (a browser may send from onopen, before the welcome) wait
// there until the welcome is out, so that nothing is handled before the
// connection is attached and no reply overtakes the welcome.

// mayBlock reports whether handling f may wait for the store, the commit
// queue or the broker.
func mayBlock(f *protocol.Frame) bool {
	switch f.Type {
	case protocol.TypeSend, protocol.TypePublish:
		return storable(f)
	case protocol.TypePing, protocol.TypeLeave, protocol.TypeResume:
		return false
	}
	return true
}

// storable reports whether f is a durable send or publish: a frame that
// blocks only while the commit queue is full (courier.Hub.TryPost).
func storable(f *protocol.Frame) bool {
	switch f.Type {
	case protocol.TypeSend:
		_, isConn := courier.ConnTarget(f.To)
		return !f.Volatile && !isConn
	case protocol.TypePublish:
		return !f.Volatile
	}
	return false
}

// later queues job behind the link's backlog when the backlog is held, or
// when block is set (then starting a worker on it); it reports whether it
// did. When it reports false the caller runs the job itself, now. Only the
// poller's goroutine (through onMessage) starts a hold, so a backlog seen
// empty stays empty until that goroutine queues again.
func (l *link) later(job func(), block bool) bool {
	if !block && !l.held.Load() {
		return false
	}
	l.jobMu.Lock()
	start := !l.held.Load()
	if start && !block {
		// Drained between the check and the lock.
		l.jobMu.Unlock()
		return false
	}
	l.jobs = append(l.jobs, job)
	l.held.Store(true)
	l.jobMu.Unlock()
	if start {
		l.srv.exec.run(l.drain)
	}
	return true
}

// full reports whether n more bytes of frames would take the backlog past
// MaxBacklog. Only the poller adds frames to it, so the answer does not
// turn false to true behind the poller's back.
func (l *link) full(n int) bool {
	return l.held.Load() && l.waiting.Load()+int64(n) > int64(l.srv.cfg.MaxBacklog)
}

// dropBacklog forgets the jobs that wait (the one a worker runs goes on).
// Called on the poller, before any close of the connection is queued.
func (l *link) dropBacklog() {
	l.jobMu.Lock()
	clear(l.jobs)
	l.jobs = l.jobs[:0]
	l.waiting.Store(0)
	l.jobMu.Unlock()
}

// release ends the hold a new connection starts with: what queued up
// meanwhile is handled by a worker, then frames by the poller again.
func (l *link) release() {
	l.jobMu.Lock()
	if len(l.jobs) == 0 {
		l.held.Store(false)
		l.jobMu.Unlock()
		return
	}
	l.jobMu.Unlock()
	l.srv.exec.run(l.drain)
}

// drain runs the backlog's jobs in order until it is empty, then lets the
// poller handle the connection's frames again.
func (l *link) drain() {
	for {
		l.jobMu.Lock()
		if len(l.jobs) == 0 {
			l.jobs = nil
			l.held.Store(false)
			l.jobMu.Unlock()
			return
		}
		job := l.jobs[0]
		l.jobs[0] = nil
		l.jobs = l.jobs[1:]
		l.jobMu.Unlock()
		l.run(job)
	}
}

// run runs one job of the backlog; a bug costs the job, not the worker.
func (l *link) run(job func()) {
	defer func() {
		if r := recover(); r != nil {
			l.srv.log.Error("frame handler panicked", "conn", l.conn.ID(), "user", l.conn.User(), "panic", r, "stack", string(debug.Stack()))
			l.fail(protocol.Errorf("", protocol.CodeInternal, "internal error"))
		}
	}()
	job()
}

// An earlyFrame is a frame read before serveWS gave its connection a link:
// nbio reads from the socket as soon as the handshake's response is
// written, and a client may send at once.
type earlyFrame struct {
	mt   websocket.MessageType
	data []byte
}

// early is what happened to a connection before it had a link.
type early struct {
	frames []earlyFrame
	closed bool // it closed before adopt
}

// keepEarly keeps a frame of a connection that has no link yet, for
// adopt; it reports false when the link has come meanwhile.
func (s *Server) keepEarly(ws *websocket.Conn, mt websocket.MessageType, data []byte) bool {
	s.earlyMu.Lock()
	if _, ok := ws.SessionWithLock().(*link); ok {
		s.earlyMu.Unlock()
		return false
	}
	e := s.earlyOf(ws)
	flood := len(e.frames) >= maxEarly
	if !flood {
		e.frames = append(e.frames, earlyFrame{mt: mt, data: append([]byte(nil), data...)})
	}
	s.earlyMu.Unlock()
	if flood {
		// Not dropped in silence: the client learns it went too far.
		_ = ws.WriteClose(1008, "too many frames before the welcome")
		_ = ws.Close()
	}
	return true
}

// maxEarly bounds the frames kept per connection before it has a link
// (microseconds after the handshake; a client that waits for its welcome
// sends none).
const maxEarly = 64

// earlyOf returns ws's entry in s.early, made when missing; s.earlyMu is held.
func (s *Server) earlyOf(ws *websocket.Conn) *early {
	if s.early == nil {
		s.early = make(map[*websocket.Conn]*early)
	}
	e := s.early[ws]
	if e == nil {
		e = &early{}
		s.early[ws] = e
	}
	return e
}

// closedEarly records that ws closed before it had a link, so that adopt
// does not attach a connection that is gone.
func (s *Server) closedEarly(ws *websocket.Conn) {
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	if _, ok := ws.SessionWithLock().(*link); !ok {
		s.earlyOf(ws).closed = true
	}
}

// adopt gives ws its link, whose backlog is held, and moves the frames read
// before it into that backlog. It reports false when ws closed meanwhile:
// no close handler will come for the link then.
func (s *Server) adopt(ws *websocket.Conn, l *link) bool {
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	e := s.early[ws]
	delete(s.early, ws)
	if e != nil && e.closed {
		return false
	}
	l.jobMu.Lock()
	l.held.Store(true)
	if e != nil {
		for _, f := range e.frames {
			l.jobs = append(l.jobs, func() { s.process(l, f.mt, f.data, true) })
		}
	}
	l.jobMu.Unlock()
	ws.SetSession(l)
	return true
}

// forgetEarly drops what was kept of ws, which will have no link.
func (s *Server) forgetEarly(ws *websocket.Conn) {
	s.earlyMu.Lock()
	delete(s.early, ws)
	s.earlyMu.Unlock()
}
