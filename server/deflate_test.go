package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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
		if _, b, err := ws.Read(ctx); err != nil || !strings.Contains(string(b), `"type":"welcome"`) {
			t.Fatalf("first frame %q, %v; want the welcome", b, err)
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

// The server really compresses what it sends to a client that negotiated
// permessage-deflate: the frame of a large message has RSV1 set.
func TestDeflateCompressesDeliveries(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.Compression = true })
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n", token(t, "bob"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// The welcome first: once bob has it, a message to him reaches him live.
	if b0, size := readFrameHeader(t, br); b0&0x40 != 0 || size > 1000 {
		t.Fatalf("first frame: header %#x, %d bytes; want the welcome", b0, size)
	}
	alice := n.dial("alice")
	alice.send(`{"type":"send","id":"1","to":"bob","data":"` + strings.Repeat("compressible text ", 500) + `"}`)
	alice.expect("ack")
	b0, size := readFrameHeader(t, br)
	if b0&0x40 == 0 {
		t.Fatalf("a %d-byte message frame went out uncompressed", size)
	}
	if size > 2000 {
		t.Fatalf("compressed frame of %d bytes for 9,000 compressible bytes", size)
	}
}

// readFrameHeader reads one unmasked server frame from br and returns its
// first header byte and payload size, discarding the payload.
func readFrameHeader(t *testing.T, br *bufio.Reader) (byte, int) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	size := int(h[1] & 0x7f)
	switch size {
	case 126:
		var ext [2]byte
		_, _ = io.ReadFull(br, ext[:])
		size = int(ext[0])<<8 | int(ext[1])
	case 127:
		var ext [8]byte
		_, _ = io.ReadFull(br, ext[:])
		size = int(ext[6])<<8 | int(ext[7]) // small enough here
	}
	if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
		t.Fatal(err)
	}
	return h[0], size
}
