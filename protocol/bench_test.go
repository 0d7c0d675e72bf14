package protocol_test

import (
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

var sendFrame = []byte(`{"type":"send","id":"12345","to":"user-417","event":"chat","data":"1732370000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)

func BenchmarkDecodeSend(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.Decode(sendFrame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	m := &courier.Message{ID: "06h0hdmbe8fjmr7b207m0nenj0", From: "user-1", To: "user-417", Event: "chat",
		Data: []byte(`"1732370000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"`), Time: time.Now(), Seq: 12345}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendMessage(buf[:0], m)
	}
}
