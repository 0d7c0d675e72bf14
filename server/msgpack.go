package server

import (
	"encoding/binary"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// msgpackFrame converts a JSON frame payload into a binary MessagePack frame,
// compressed when deflate. Server frames are built as JSON, so conversion
// cannot fail on them; if it ever did, the frame says so rather than vanish.
func msgpackFrame(jsonPayload []byte, deflate bool) []byte {
	// The MessagePack form is appended after room for the largest frame
	// header, which then goes just before it: one buffer, no copy.
	const room = 10
	buf := make([]byte, room, room+len(jsonPayload)+16)
	out, err := protocol.AppendJSONToMsgpack(buf, jsonPayload)
	if err != nil {
		out, _ = protocol.AppendJSONToMsgpack(buf[:room], protocol.AppendError(nil, &protocol.Error{Code: protocol.CodeInternal, Message: "frame could not be encoded"}))
	}
	mp := out[room:]
	if deflate {
		f := deflateFrame(mp)
		f[0] = f[0]&^0x0f | 0x02 // binary, keeping FIN and RSV1
		return f
	}
	n := len(mp)
	switch {
	case n < 126:
		out[room-2], out[room-1] = 0x82, byte(n)
		return out[room-2:]
	case n <= 0xffff:
		out[room-4], out[room-3] = 0x82, 126
		binary.BigEndian.PutUint16(out[room-2:], uint16(n))
		return out[room-4:]
	default:
		out[0], out[1] = 0x82, 127
		binary.BigEndian.PutUint64(out[2:], uint64(n))
		return out
	}
}

func encodeMessageMsgpack(d *courier.Delivery) []byte {
	return msgpackFrame(appendDeliveryJSON(nil, d), false)
}

func encodeMessageMsgpackDeflate(d *courier.Delivery) []byte {
	return msgpackFrame(appendDeliveryJSON(nil, d), true)
}
