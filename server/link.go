package server

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// A link is one WebSocket connection under a courier.Conn. Reads are
// event-driven (nbio's poller calls the session), so an idle link has no
// goroutine and no buffer: only this struct and the socket.
//
// Writes go straight to the non-blocking socket: a frame is one Write, and
// nbio keeps whatever the kernel does not take yet. handed and written count
// bytes given to the socket and bytes it has sent; their difference is the
// outbound queue, bounded by Config.MaxQueue.
type link struct {
	srv  *Server
	ws   *websocket.Conn
	raw  net.Conn // the nbio connection beneath ws; frames are written to it whole
	conn *courier.Conn

	handed  atomic.Int64
	written atomic.Int64
	closing atomic.Bool
	waiting atomic.Bool   // a replay waits in Drained
	wake    chan struct{} // made on the first Drained; signalled as the queue drains

	mu     sync.Mutex // guards rate
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
func encodeMessage(m *courier.Message) []byte {
	buf := bufPool.Get().(*[]byte)
	payload := protocol.AppendMessage((*buf)[:0], m)
	f := frame(payload)
	*buf = payload
	bufPool.Put(buf)
	return f
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Deliver implements courier.Link.
func (l *link) Deliver(d *courier.Delivery) {
	l.write(d.Encoded(0, encodeMessage))
}

// reply writes a frame built by build into a pooled buffer.
func (l *link) reply(build func([]byte) []byte) {
	buf := bufPool.Get().(*[]byte)
	payload := build((*buf)[:0])
	out := appendFrame(make([]byte, 0, len(payload)+4), 0x81, payload)
	*buf = payload
	bufPool.Put(buf)
	l.write(out)
}

// write hands one whole frame to the socket, or closes a link whose queue
// has grown past the limit.
func (l *link) write(f []byte) {
	if l.closing.Load() {
		return
	}
	if l.handed.Add(int64(len(f)))-l.written.Load() > int64(l.srv.cfg.MaxQueue) {
		l.srv.metrics.slowConsumers.Inc()
		l.Close(courier.CloseSlowConsumer, "slow consumer: resume to catch up")
		return
	}
	if _, err := l.raw.Write(f); err != nil {
		l.closing.Store(true)
	}
}

// onWritten is called by nbio's poller with the bytes the kernel took.
func (l *link) onWritten(n int) {
	l.written.Add(int64(n))
	if l.waiting.Load() && l.backlog() < lowWater {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

func (l *link) backlog() int64 { return l.handed.Load() - l.written.Load() }

// lowWater is the backlog under which a replay adds its next message.
const lowWater = 64 << 10

// Drained implements courier.Link.
func (l *link) Drained() error {
	for {
		if l.closing.Load() {
			return courier.ErrClosed
		}
		if l.backlog() < lowWater {
			return nil
		}
		l.mu.Lock()
		if l.wake == nil {
			l.wake = make(chan struct{}, 1)
		}
		wake := l.wake
		l.mu.Unlock()
		l.waiting.Store(true)
		if l.backlog() >= lowWater {
			select {
			case <-wake:
			case <-time.After(time.Second):
				// A safety net: recheck even if a wake-up raced past.
			}
		}
		l.waiting.Store(false)
	}
}

// Close implements courier.Link: it sends a close frame and closes the
// socket once the frame had a moment to leave. It never calls back into the
// hub; the session's close handler detaches the connection.
func (l *link) Close(code int, reason string) {
	if !l.closing.CompareAndSwap(false, true) {
		return
	}
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, uint16(code))
	payload = append(payload, reason...)
	_, _ = l.raw.Write(appendFrame(nil, 0x88, payload))
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
