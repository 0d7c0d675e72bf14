package server

import (
	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// msgpackFrame converts a JSON frame payload into a binary MessagePack frame,
// compressed when deflate. Server frames are built as JSON, so conversion
// cannot fail on them; if it ever did, the frame says so rather than vanish.
func msgpackFrame(jsonPayload []byte, deflate bool) []byte {
	mp, err := protocol.JSONToMsgpack(jsonPayload)
	if err != nil {
		mp, _ = protocol.JSONToMsgpack(protocol.AppendError(nil, &protocol.Error{Code: protocol.CodeInternal, Message: "frame could not be encoded"}))
	}
	if deflate {
		f := deflateFrame(mp)
		f[0] = f[0]&^0x0f | 0x02 // binary, keeping FIN and RSV1
		return f
	}
	return appendFrame(make([]byte, 0, len(mp)+10), 0x82, mp)
}

func encodeMessageMsgpack(m *courier.Message) []byte {
	return msgpackFrame(appendMessageJSON(nil, m), false)
}

func encodeMessageMsgpackDeflate(m *courier.Message) []byte {
	return msgpackFrame(appendMessageJSON(nil, m), true)
}
