package load

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692) for the load generator's WebSocket client,
// as courier's server negotiates it: no context takeover in either
// direction, so every message is inflated or deflated on its own with
// pooled state, and a connection keeps no compressor between messages.

// minDeflate is the payload size from which the client compresses what it
// sends — the server's own threshold (server/deflate.go), so both sides
// pay for the same messages.
const minDeflate = 256

// checkDeflateResponse checks the server's Sec-WebSocket-Extensions
// answer against what the client offered.
func checkDeflateResponse(values []string, offered bool) error {
	var exts []string
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				exts = append(exts, e)
			}
		}
	}
	if !offered {
		if len(exts) > 0 {
			return fmt.Errorf("websocket handshake: the server enabled extensions nobody asked for: %q", exts)
		}
		return nil
	}
	if len(exts) != 1 {
		return fmt.Errorf("websocket handshake: the server did not accept permessage-deflate (extensions %q; is it running with --compress?)", exts)
	}
	params := strings.Split(exts[0], ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return fmt.Errorf("websocket handshake: unknown extension %q", exts[0])
	}
	noTakeover := false
	for _, p := range params[1:] {
		name, _, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "server_no_context_takeover":
			noTakeover = true
		case "client_no_context_takeover", "client_max_window_bits", "server_max_window_bits":
			// The client never keeps context, and with no server context
			// the window size does not matter to it.
		default:
			return fmt.Errorf("websocket handshake: unknown permessage-deflate parameter %q", p)
		}
	}
	if !noTakeover {
		// RFC 7692 7.1.1.1: a server that accepts the offer must repeat it.
		return errors.New("websocket handshake: permessage-deflate accepted without server_no_context_takeover")
	}
	return nil
}

// deflateTail ends every compressed message: the empty stored block that a
// sync flush writes and the sender drops (00 00 ff ff), then an empty
// final stored block, so that the reader sees the end of the stream.
var deflateTail = []byte{0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff}

// inflater is one pooled decompressor with its output buffer.
type inflater struct {
	r   io.ReadCloser // a flate reader, reset per message
	src twoSlices
	out []byte
}

var inflaters = sync.Pool{New: func() any { return &inflater{r: flate.NewReader(nil)} }}

// inflate returns the message compressed in p, at most limit bytes; the
// result is valid until put.
func (z *inflater) inflate(p []byte, limit int) ([]byte, error) {
	z.src = twoSlices{a: p, b: deflateTail}
	if err := z.r.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, err
	}
	out := z.out[:0]
	if cap(out) < 2*len(p)+64 {
		out = make([]byte, 0, max(2*len(p)+64, 1024))
	}
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, errors.New("websocket: inflated message too large")
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := z.r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("websocket: inflate: %w", err)
		}
	}
	if len(out) > limit {
		return nil, errors.New("websocket: inflated message too large")
	}
	z.out = out
	return out, nil
}

// put returns z to the pool, dropping an output buffer grown large.
func (z *inflater) put() {
	if cap(z.out) > 64<<10 {
		z.out = nil
	}
	z.src = twoSlices{}
	inflaters.Put(z)
}

// twoSlices reads a, then b. It is an io.ByteReader, so that flate reads
// from it directly instead of through a bufio.Reader of its own.
type twoSlices struct{ a, b []byte }

func (t *twoSlices) Read(p []byte) (int, error) {
	if len(t.a) == 0 {
		t.a, t.b = t.b, nil
		if len(t.a) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, t.a)
	t.a = t.a[n:]
	return n, nil
}

func (t *twoSlices) ReadByte() (byte, error) {
	if len(t.a) == 0 {
		t.a, t.b = t.b, nil
		if len(t.a) == 0 {
			return 0, io.EOF
		}
	}
	c := t.a[0]
	t.a = t.a[1:]
	return c, nil
}

// deflater is one pooled compressor at the server's level (BestSpeed),
// writing into its own appendWriter.
type deflater struct {
	w  *flate.Writer
	aw appendWriter
}

var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.aw, flate.BestSpeed)
	return d
}}

// appendWriter appends what is written to it.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// appendDeflated appends p compressed as one permessage-deflate message
// (without the 00 00 ff ff tail) and reports whether that is smaller than
// p; when it is not, the message should go out plain.
func appendDeflated(dst, p []byte) ([]byte, bool) {
	start := len(dst)
	d := deflaters.Get().(*deflater)
	d.aw.b = dst
	d.w.Reset(&d.aw)
	_, _ = d.w.Write(p)
	_ = d.w.Flush()
	out := d.aw.b
	d.aw.b = nil
	deflaters.Put(d)
	if n := len(out); n-start >= 4 && out[n-4] == 0 && out[n-3] == 0 && out[n-2] == 0xff && out[n-1] == 0xff {
		out = out[:n-4]
	}
	return out, len(out)-start < len(p)
}
