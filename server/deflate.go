package server

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/courier-im/courier"
)

// permessage-deflate (RFC 7692) as negotiated here: no context takeover in
// either direction, so each message is compressed on its own — and the
// compressed frame of a message is the same for every connection that
// receives it, encoded once like the plain one.

// minDeflate is the payload size below which compressing costs more than it
// saves; smaller messages go out plain, which the extension allows.
const minDeflate = 256

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// deflateFrame returns payload as a compressed text frame (RSV1 set), or as
// a plain one when compression does not pay.
func deflateFrame(payload []byte) []byte {
	if len(payload) < minDeflate {
		return frame(payload)
	}
	var buf bytes.Buffer
	buf.Grow(len(payload) / 2)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(payload)
	_ = w.Flush()
	deflaters.Put(w)
	out := buf.Bytes()
	// A sync flush ends with an empty stored block, 00 00 ff ff, which the
	// extension says to drop.
	out = bytes.TrimSuffix(out, []byte{0, 0, 0xff, 0xff})
	if len(out) >= len(payload) {
		return frame(payload)
	}
	return appendFrame(make([]byte, 0, len(out)+10), 0x81|0x40, out)
}

// encodeMessageDeflate is encodeMessage for connections that negotiated
// permessage-deflate.
func encodeMessageDeflate(d *courier.Delivery) []byte {
	buf := bufPool.Get().(*[]byte)
	payload := appendDeliveryJSON((*buf)[:0], d)
	f := deflateFrame(payload)
	*buf = payload
	bufPool.Put(buf)
	return f
}
