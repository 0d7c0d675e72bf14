package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lesismal/nbio"
)

// The load generator's WebSocket client is deliberately small: the
// handshake is written and read on a blocking socket, then the socket is
// handed to an nbio poller (epoll), so an open connection costs no
// goroutine and no read buffer of its own; frames are parsed from the
// poller's shared buffer and written with one write syscall each. It
// speaks only what courier's server sends: unfragmented or fragmented
// text or binary messages, ping, pong and close; and, when asked,
// permessage-deflate without context takeover (RFC 7692), the only kind
// courier's server offers (deflate.go).

// wsMaxMessage bounds one incoming message.
const wsMaxMessage = 16 << 20

// CloseError is how a connection ended when the server sent a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed by the server: %d %s", e.Code, e.Reason)
}

// wsPoller is the nbio engine that reads every connection of one driver.
type wsPoller struct {
	engine  *nbio.Engine
	started time.Time
	// rx and tx count the bytes read from and written to the sockets
	// after their handshakes: WebSocket frames as they cross the wire
	// (compressed, when negotiated), without TCP/IP headers.
	rx, tx atomic.Int64
}

func newWSPoller() (*wsPoller, error) {
	e := nbio.NewEngine(nbio.Config{
		Name:           "courier-bench",
		NPoller:        min(runtime.GOMAXPROCS(0), 4),
		ReadBufferSize: 64 << 10,
	})
	p := &wsPoller{engine: e}
	e.OnData(func(c *nbio.Conn, data []byte) {
		p.rx.Add(int64(len(data)))
		if w, ok := wsConns.Load(c); ok {
			w.(*wsConn).feed(data)
		}
	})
	e.OnClose(func(c *nbio.Conn, err error) {
		if w, ok := wsConns.LoadAndDelete(c); ok {
			w.(*wsConn).ended(err)
		}
	})
	if err := e.Start(); err != nil {
		return nil, err
	}
	p.started = time.Now()
	return p, nil
}

// wireBytes returns the bytes read and written so far.
func (p *wsPoller) wireBytes() (in, out int64) { return p.rx.Load(), p.tx.Load() }

// stop stops the poller, closing its connections. nbio's poller goroutine
// clears its shutdown flag when it starts running, so a Stop that comes
// before that is lost and Stop waits forever; a poller stopped right after
// it started is given time to get going first.
func (p *wsPoller) stop() {
	time.Sleep(time.Until(p.started.Add(100 * time.Millisecond)))
	p.engine.Stop()
}

// wsConns maps each live *nbio.Conn to its *wsConn. nbio's Conn.Session
// would do, but nbio marks it go:norace, so the race detector would not
// see that a wsConn is set up before the poller uses it.
var wsConns sync.Map

// wsOptions are what a connection asks for in its handshake.
type wsOptions struct {
	// Subprotocol, when set, is offered in Sec-WebSocket-Protocol and
	// must be the one the server picks.
	Subprotocol string
	// Deflate offers permessage-deflate with no context takeover either
	// way; the server must accept it.
	Deflate bool
}

// wsConn is one client WebSocket connection.
type wsConn struct {
	nc *nbio.Conn
	p  *wsPoller

	// onMsg gets each text or binary message (inflated when it came
	// compressed); it runs on the poller (or, for bytes that came with the
	// handshake, on the dialing goroutine) and the slice is valid only
	// during the call.
	onMsg   func(msg []byte)
	onClose func(err error)
	// deflate: permessage-deflate was negotiated.
	deflate bool

	rmu     sync.Mutex // held by feed; Dial holds it until the conn is set up
	pending []byte     // an incomplete frame carried to the next read
	frag    []byte     // a fragmented message being assembled
	inFrag  bool
	fragZ   bool  // ... whose first frame had RSV1 set (compressed)
	closeBy error // the server's close frame, if any

	wmu   sync.Mutex
	wbuf  []byte
	zbuf  []byte // a compressed outgoing frame
	maskx uint32 // xorshift state for mask keys

	closed atomic.Bool
	once   sync.Once
}

// wsDial opens a WebSocket to addr (host:port) for path (with query),
// binding to local when not nil, and hands it to p. onMsg and onClose
// must be set before any message can arrive, so they are arguments.
func wsDial(ctx context.Context, p *wsPoller, d *net.Dialer, addr, path string, opt wsOptions, onMsg func([]byte), onClose func(error)) (*wsConn, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := make([]byte, 0, 256+len(path))
	req = append(req, "GET "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, addr...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, k...)
	if opt.Subprotocol != "" {
		req = append(append(req, "\r\nSec-WebSocket-Protocol: "...), opt.Subprotocol...)
	}
	if opt.Deflate {
		req = append(req, "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"...)
	}
	req = append(req, "\r\n\r\n"...)
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		return nil, err
	}
	rest, err := wsHandshake(conn, k, opt)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})

	w := &wsConn{p: p, onMsg: onMsg, onClose: onClose, deflate: opt.Deflate, maskx: uint32(time.Now().UnixNano()) | 1}
	nc, err := nbio.NBConn(conn) // dups the socket and closes conn
	if err != nil {
		conn.Close()
		return nil, err
	}
	w.nc = nc
	// Bytes that came with the handshake go first: the poller's reads
	// wait on rmu until they are handled.
	w.rmu.Lock()
	wsConns.Store(nc, w)
	if _, err := p.engine.AddConn(nc); err != nil {
		wsConns.Delete(nc)
		w.rmu.Unlock()
		return nil, err
	}
	if len(rest) > 0 {
		w.feedLocked(rest)
	}
	w.rmu.Unlock()
	return w, nil
}

// wsHandshake reads the server's handshake response and checks that it
// granted what opt asked for; it returns the bytes read past it.
func wsHandshake(conn net.Conn, key string, opt wsOptions) ([]byte, error) {
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= 16<<10 {
				return nil, errors.New("websocket handshake: response header too large")
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head, rest := buf[:i+4], buf[i+4:]
			resp, perr := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
			if perr != nil {
				return nil, fmt.Errorf("websocket handshake: %w", perr)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				// Show the error body the server sent (courier's JSON error).
				body := rest
				if cl, _ := strconv.Atoi(resp.Header.Get("Content-Length")); cl > len(body) && cl < 4096 {
					more := make([]byte, cl-len(body))
					m, _ := io.ReadFull(conn, more)
					body = append(body, more[:m]...)
				}
				return nil, fmt.Errorf("websocket handshake: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
			}
			h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
				return nil, errors.New("websocket handshake: bad Sec-WebSocket-Accept")
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != opt.Subprotocol {
				return nil, fmt.Errorf("websocket handshake: asked for subprotocol %q, the server chose %q", opt.Subprotocol, got)
			}
			if err := checkDeflateResponse(resp.Header.Values("Sec-WebSocket-Extensions"), opt.Deflate); err != nil {
				return nil, err
			}
			return rest, nil
		}
		if err != nil {
			return nil, fmt.Errorf("websocket handshake: %w", err)
		}
	}
}

func (w *wsConn) feed(data []byte) {
	w.rmu.Lock()
	w.feedLocked(data)
	w.rmu.Unlock()
}

// feedLocked parses the frames in data, after any carried-over bytes.
func (w *wsConn) feedLocked(data []byte) {
	if len(w.pending) > 0 {
		w.pending = append(w.pending, data...)
		data = w.pending
	}
	for len(data) > 0 && !w.closed.Load() {
		n := w.frame(data)
		if n == 0 {
			break
		}
		if n < 0 {
			return
		}
		data = data[n:]
	}
	if len(data) == 0 {
		if cap(w.pending) > 64<<10 {
			w.pending = nil
		} else {
			w.pending = w.pending[:0]
		}
		return
	}
	// Keep the incomplete frame; copy handles data aliasing pending.
	if len(w.pending) > 0 && &data[0] == &w.pending[len(w.pending)-len(data)] {
		n := copy(w.pending, data)
		w.pending = w.pending[:n]
	} else {
		w.pending = append(w.pending[:0], data...)
	}
}

// frame handles the frame at the start of b and returns its length, 0 if
// b holds only part of it, or -1 when the connection is being closed.
func (w *wsConn) frame(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	fin, op, rsv1 := b[0]&0x80 != 0, b[0]&0x0f, b[0]&0x40 != 0
	if rsv1 && (!w.deflate || op == 0 || op >= 0x8) {
		w.fail(errors.New("websocket: RSV1 set without permessage-deflate"))
		return -1
	}
	masked := b[1]&0x80 != 0
	n, h := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0
		}
		n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0
		}
		n, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > wsMaxMessage {
		w.fail(fmt.Errorf("websocket: frame of %d bytes", n))
		return -1
	}
	if masked {
		h += 4
	}
	if uint64(len(b)) < uint64(h)+n {
		return 0
	}
	p := b[h : uint64(h)+n]
	if masked {
		wsMask(p, binary.LittleEndian.Uint32(b[h-4:]))
	}
	switch op {
	case 0x0, 0x1, 0x2: // continuation, text, binary
		switch {
		case op != 0 && fin && !w.inFrag:
			if !w.message(p, rsv1) {
				return -1
			}
		case op != 0 && !w.inFrag:
			w.inFrag, w.fragZ = true, rsv1
			w.frag = append(w.frag[:0], p...)
		case op == 0 && w.inFrag:
			if len(w.frag)+len(p) > wsMaxMessage {
				w.fail(errors.New("websocket: message too large"))
				return -1
			}
			w.frag = append(w.frag, p...)
			if fin {
				w.inFrag = false
				ok := w.message(w.frag, w.fragZ)
				w.frag = nil
				if !ok {
					return -1
				}
			}
		default:
			w.fail(errors.New("websocket: bad fragmentation"))
			return -1
		}
	case 0x8: // close: answer with the same code, then hang up
		ce := &CloseError{Code: 1005}
		if len(p) >= 2 {
			ce.Code = int(binary.BigEndian.Uint16(p))
			ce.Reason = string(p[2:])
		}
		w.closeBy = ce
		var code [2]byte
		binary.BigEndian.PutUint16(code[:], uint16(ce.Code))
		if ce.Code == 1005 {
			_ = w.write(0x8, nil)
		} else {
			_ = w.write(0x8, code[:])
		}
		w.closed.Store(true)
		_ = w.nc.Close()
		return -1
	case 0x9: // ping
		_ = w.write(0xA, p)
	case 0xA: // pong
	default:
		w.fail(fmt.Errorf("websocket: unknown opcode %d", op))
		return -1
	}
	return h + int(n)
}

// message passes one whole message on, inflating it first when it came
// compressed; false means the connection failed.
func (w *wsConn) message(p []byte, compressed bool) bool {
	if !compressed {
		w.onMsg(p)
		return true
	}
	z := inflaters.Get().(*inflater)
	out, err := z.inflate(p, wsMaxMessage)
	if err != nil {
		inflaters.Put(z)
		w.fail(err)
		return false
	}
	w.onMsg(out)
	z.put()
	return true
}

func (w *wsConn) fail(err error) {
	w.closed.Store(true)
	_ = w.nc.CloseWithError(err)
}

// ended runs once the poller has closed the socket.
func (w *wsConn) ended(err error) {
	w.closed.Store(true)
	w.once.Do(func() {
		w.rmu.Lock()
		if w.closeBy != nil {
			err = w.closeBy
		}
		w.rmu.Unlock()
		if w.onClose != nil {
			w.onClose(err)
		}
	})
}

// write sends one frame with payload p.
func (w *wsConn) write(op byte, p []byte) error {
	return w.writeBuilt(op, func(b []byte) []byte { return append(b, p...) })
}

// wsHeadRoom is the most a client frame header takes: 2 + 8 + 4 (mask).
const wsHeadRoom = 14

// writeBuilt sends one frame whose payload build appends; the frame is
// masked in place and written with one call.
func (w *wsConn) writeBuilt(op byte, build func([]byte) []byte) error {
	if w.closed.Load() {
		return net.ErrClosed
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	b := append(w.wbuf[:0], make([]byte, wsHeadRoom)...)
	b = build(b)
	w.wbuf = b
	if w.deflate && op < 0x8 && len(b)-wsHeadRoom >= minDeflate {
		// Compressed like the server compresses: each message on its own,
		// and only when it is large enough to gain.
		z := append(w.zbuf[:0], make([]byte, wsHeadRoom)...)
		if z, ok := appendDeflated(z, b[wsHeadRoom:]); ok {
			w.zbuf = z
			b = z
			op |= 0x40 // RSV1
		}
	}
	n := len(b) - wsHeadRoom
	x := w.maskx // xorshift32: mask keys need not be secret here
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	w.maskx = x
	var hl int
	switch {
	case n < 126:
		hl = 6
		b[wsHeadRoom-5] = 0x80 | byte(n)
	case n < 1<<16:
		hl = 8
		b[wsHeadRoom-7] = 0x80 | 126
		binary.BigEndian.PutUint16(b[wsHeadRoom-6:], uint16(n))
	default:
		hl = 14
		b[wsHeadRoom-13] = 0x80 | 127
		binary.BigEndian.PutUint64(b[wsHeadRoom-12:], uint64(n))
	}
	b[wsHeadRoom-hl] = 0x80 | op
	binary.LittleEndian.PutUint32(b[wsHeadRoom-4:], x)
	wsMask(b[wsHeadRoom:], x)
	w.p.tx.Add(int64(len(b) - wsHeadRoom + hl))
	_, err := w.nc.Write(b[wsHeadRoom-hl:]) // copies what the kernel does not take
	return err
}

// wsMask XORs p with the 4-byte key k (little-endian as on the wire).
func wsMask(p []byte, k uint32) {
	k8 := uint64(k) | uint64(k)<<32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k8)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= byte(k >> (8 * (i & 3)))
	}
}

func (w *wsConn) close() error {
	w.closed.Store(true)
	return w.nc.Close()
}

// sourceDialer returns a dialer bound to local (port chosen at connect
// time, IP_BIND_ADDRESS_NO_PORT, so that ports in TIME_WAIT to other
// destinations stay usable); nil local binds nothing.
func sourceDialer(local net.IP, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if local == nil {
		return d
	}
	d.LocalAddr = &net.TCPAddr{IP: local}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			const ipBindAddressNoPort = 24 // linux/in.h
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
		})
		return errors.Join(err, serr)
	}
	return d
}
