package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier/server"
)

func TestPermessageDeflate(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		n := start(t, "", func(c *server.Config) { c.Compression = enabled })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ws, resp, err := websocket.Dial(ctx, n.wsURL("bob"), &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		if err != nil {
			t.Fatal(err)
		}
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if strings.Contains(ext, "permessage-deflate") != enabled {
			t.Fatalf("compression %v: extensions %q", enabled, ext)
		}
		plain := n.dial("bob")
		alice := n.dial("alice")
		big := strings.Repeat("compressible text ", 500)
		alice.send(`{"type":"send","id":"1","to":"bob","data":"` + big + `"}`)
		alice.expect("ack")
		if m := plain.expect("message"); m["data"] != big {
			t.Fatalf("plain client got %d bytes", len(m["data"].(string)))
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `"type":"message"`) {
				if !strings.Contains(string(b), big) {
					t.Fatalf("compressing client got %.100s", b)
				}
				break
			}
		}
		// And the client's own compressed frames are read.
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"send","id":"2","to":"alice","data":"`+big+`"}`)); err != nil {
			t.Fatal(err)
		}
		if m := alice.expect("message"); m["data"] != big {
			t.Fatal("compressed frame from the client was not read")
		}
		ws.CloseNow()
		cancel()
	}
}
