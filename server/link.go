package server

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// A link is one WebSocket connection under a courier.Conn. Reads are
// event-driven (nbio's poller calls the session), so an idle link has no
// goroutine and no buffer: only this struct and the socket.
//
// Outgoing frames wait in the link's queue and are handed to the
// non-blocking socket in batches (one write for all that queued up) while
// the socket's own backlog — bytes nbio holds because the kernel would not
// take them yet — stays under lowWater. So a client that falls behind grows
// the link's queue, not nbio's buffer, and when the queue passes
// Config.MaxQueue the link drops it and sends a close frame that reaches the
// client after at most lowWater bytes.
type link struct {
	srv  *Server
	ws   *websocket.Conn
	raw  *nbio.Conn // beneath ws; frames are written to it whole
	conn *courier.Conn
	// flusher writes this link's queue; links are spread over flushers.
	flusher *flusher
	// deflate is set when the client negotiated permessage-deflate,
	// msgpack when it chose the courier.msgpack subprotocol.
	deflate, msgpack bool

	handed   atomic.Int64 // bytes given to raw
	written  atomic.Int64 // bytes the kernel took, from nbio's callback
	queued   atomic.Int64 // bytes in queue
	flushing atomic.Bool  // one flusher at a time
	closing  atomic.Bool
	waiters  atomic.Int32 // replays waiting in Drained
	heard    atomic.Bool  // a frame, ping or pong came since the pinger last looked
	silent   uint8        // the pinger's looks in a row that found heard unset (only the pinger touches it)

	// The backlog of frames a worker handles (backlog.go): held while it
	// has jobs or a worker works through them.
	held    atomic.Bool
	waiting atomic.Int64 // bytes of the frames in jobs
	jobMu   sync.Mutex
	jobs    []func()

	mu     sync.Mutex // guards queue, wake, tokens, last
	queue  [][]byte
	qbuf   *[][]byte     // queue's array, from queuePool: a busy link reuses it, an idle one holds none
	wake   chan struct{} // made on the first Drained; signalled as the queue drains
	tokens float64
	last   time.Time
}

// frame returns payload as one unmasked WebSocket text frame.
func frame(payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), 0x81, payload)
}

// appendFrame appends a final frame with opcode op (0x81 text, 0x82 binary,
// 0x88 close, 0x89 ping) carrying payload.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, op, byte(n))
	case n <= 0xffff:
		b = append(b, op, 126, byte(n>>8), byte(n))
	default:
		b = append(b, op, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// encodeMessage is the encoder a Delivery caches: the whole frame, so every
// receiving connection writes the same bytes.
func encodeMessage(d *courier.Delivery) []byte {
	buf := bufPool.Get().(*[]byte)
	payload := appendDeliveryJSON((*buf)[:0], d)
	f := frame(payload)
	*buf = payload
	bufPool.Put(buf)
	return f
}

var appendDeliveryJSON = protocol.AppendDelivery

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Encodings of a Delivery, as slots of its cache: each connection takes the
// one it negotiated, and all connections that share it share its bytes.
const (
	slotJSON = iota
	slotJSONDeflate
	slotMsgpack
	slotMsgpackDeflate
)

// Deliver implements courier.Link.
func (l *link) Deliver(d *courier.Delivery) {
	switch {
	case l.msgpack && l.deflate:
		l.write(d.Encoded(slotMsgpackDeflate, encodeMessageMsgpackDeflate))
	case l.msgpack:
		l.write(d.Encoded(slotMsgpack, encodeMessageMsgpack))
	case l.deflate:
		l.write(d.Encoded(slotJSONDeflate, encodeMessageDeflate))
	default:
		l.write(d.Encoded(slotJSON, encodeMessage))
	}
}

// reply writes a frame built by build into a pooled buffer, in the
// connection's encoding.
func (l *link) reply(build func([]byte) []byte) {
	buf := bufPool.Get().(*[]byte)
	payload := build((*buf)[:0])
	var out []byte
	if l.msgpack {
		out = msgpackFrame(payload, false)
	} else {
		out = appendFrame(make([]byte, 0, len(payload)+4), 0x81, payload)
	}
	*buf = payload
	bufPool.Put(buf)
	l.write(out)
}

// lowWater is the socket backlog under which the link hands it more frames,
// and the queue under which a replay adds its next message.
const lowWater = 64 << 10

func (l *link) backlog() int64 { return l.handed.Load() - l.written.Load() }

// write queues one whole frame and flushes unless the socket is backed up.
// A link whose queue passes MaxQueue is closed as a slow consumer.
func (l *link) write(f []byte) {
	l.mu.Lock()
	if l.closing.Load() {
		l.mu.Unlock()
		return
	}
	if l.queued.Add(int64(len(f))) > int64(l.srv.cfg.MaxQueue) {
		l.mu.Unlock()
		l.srv.metrics.slowConsumers.Inc()
		l.Close(courier.CloseSlowConsumer, "slow consumer: resume to catch up")
		return
	}
	if l.queue == nil {
		l.qbuf = queuePool.Get().(*[][]byte)
		l.queue = (*l.qbuf)[:0]
	}
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	l.kick()
}

// queuePool holds queue arrays between a link's flushes: one array per
// burst of frames would be an allocation per message under load.
var queuePool = sync.Pool{New: func() any { q := make([][]byte, 0, 8); return &q }}

// putQueue returns a flushed queue's array to queuePool, emptied so that
// it keeps no frame alive.
func putQueue(qb *[][]byte, q [][]byte) {
	if qb == nil || cap(q) > 1024 {
		return
	}
	clear(q)
	*qb = q[:0]
	queuePool.Put(qb)
}

// kick hands the link to its flusher when there is something to send, the
// socket has room and no flush is pending. Frames queued before the flusher
// gets to it leave in the same write: under load a connection's acks and
// messages share system calls.
func (l *link) kick() {
	if l.queued.Load() > 0 && l.backlog() < lowWater && l.flushing.CompareAndSwap(false, true) {
		l.flusher.add(l)
	}
}

// flush hands queued frames to the socket until the queue is empty or the
// socket backs up. Only the holder of l.flushing runs it (the flusher), so
// frames leave in queue order; it writes outside l.mu because nbio reports
// written bytes synchronously from inside Write.
func (l *link) flush() {
	for {
		l.mu.Lock()
		batch := l.queue
		if len(batch) == 0 || l.backlog() >= lowWater {
			l.flushing.Store(false)
			l.mu.Unlock()
			l.signal()
			// A write or a drain may have come between the check and the
			// release, and found the flag still taken.
			if l.queued.Load() > 0 && l.backlog() < lowWater && l.flushing.CompareAndSwap(false, true) {
				continue
			}
			return
		}
		qb := l.qbuf
		l.queue, l.qbuf = nil, nil
		n := 0
		for _, f := range batch {
			n += len(f)
		}
		l.queued.Add(-int64(n))
		l.mu.Unlock()
		l.handed.Add(int64(n))
		_, err := l.writeBatch(batch)
		putQueue(qb, batch)
		if err != nil {
			l.closing.Store(true)
			l.flushing.Store(false)
			l.signal()
			return
		}
	}
}

// writeBatch writes frames with one system call. It
// copies them into one buffer rather than use nbio's Writev, which in
// v1.6.8 drops the buffers after a partial write (and all of them on
// EAGAIN); the copy costs far less than the system calls it saves.
func (l *link) writeBatch(frames [][]byte) (int, error) {
	if len(frames) == 1 {
		return l.raw.Write(frames[0])
	}
	bp := batchPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, f := range frames {
		buf = append(buf, f...)
	}
	written, err := l.raw.Write(buf)
	if cap(buf) <= maxPooledBatch {
		*bp = buf
		batchPool.Put(bp)
	}
	return written, err
}

// maxPooledBatch is the largest batch buffer kept for reuse.
const maxPooledBatch = 256 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// onWritten is called by nbio's poller with the bytes the kernel took.
func (l *link) onWritten(n int) {
	l.written.Add(int64(n))
	l.kick()
	l.signal()
}

// signal wakes a replay waiting in Drained.
func (l *link) signal() {
	if l.waiters.Load() == 0 {
		return
	}
	l.mu.Lock()
	w := l.wake
	l.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Drained implements courier.Link.
func (l *link) Drained(ctx context.Context) error {
	if l.queued.Load()+l.backlog() < lowWater && !l.closing.Load() {
		return nil
	}
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	for {
		if l.closing.Load() {
			return courier.ErrClosed
		}
		if l.queued.Load()+l.backlog() < lowWater {
			return nil
		}
		l.mu.Lock()
		if l.wake == nil {
			l.wake = make(chan struct{}, 1)
		}
		w := l.wake
		l.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			// A safety net against a wake-up that raced past.
		}
	}
}

// Close implements courier.Link: it sends a close frame after what is
// queued (instead of it, for a slow consumer) and closes the socket once the frame had a moment to leave. It
// never calls back into the hub; the session's close handler detaches the
// connection.
func (l *link) Close(code int, reason string) {
	l.closeWith(code, reason, code == courier.CloseSlowConsumer)
}

// closeWith is Close, dropping what is queued first when drop is set.
func (l *link) closeWith(code int, reason string, drop bool) {
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, uint16(code))
	payload = append(payload, reason...)
	f := appendFrame(nil, 0x88, payload)
	l.mu.Lock()
	if l.closing.Swap(true) {
		l.mu.Unlock()
		return
	}
	if drop {
		// What is queued is stored; the client resumes to get it.
		clear(l.queue)
		l.queue = l.queue[:0]
		l.queued.Store(0)
	}
	l.queue = append(l.queue, f)
	l.queued.Add(int64(len(f)))
	l.mu.Unlock()
	l.kick()
	// The client answers with its own close frame and nbio then closes the
	// socket; a client that does not is cut off after the grace period.
	time.AfterFunc(closeGrace, func() { _ = l.ws.Close() })
}

// closeGrace is how long a closing client has to answer the close frame.
const closeGrace = 2 * time.Second

// allow takes one token from the link's rate limiter.
func (l *link) allow(now time.Time) bool {
	rate, burst := l.srv.cfg.RateLimit, float64(l.srv.cfg.RateBurst)
	if rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = burst
	} else {
		l.tokens = min(burst, l.tokens+now.Sub(l.last).Seconds()*rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
