package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/courier-im/courier/protocol"
)

// A client on the courier.msgpack subprotocol talks to JSON clients.
func TestMessagePackSubprotocol(t *testing.T) {
	n := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, n.wsURL("alice"), &websocket.DialOptions{Subprotocols: []string{protocol.SubprotocolMsgpack}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != protocol.SubprotocolMsgpack {
		t.Fatalf("subprotocol %q", got)
	}
	var receipts []map[string]any
	read := func() map[string]any {
		t.Helper()
		for {
			mt, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if mt != websocket.MessageBinary {
				t.Fatalf("frame type %v, want binary", mt)
			}
			var m map[string]any
			if err := msgpack.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["type"] != "receipt" {
				return m
			}
			receipts = append(receipts, m) // checked below
		}
	}
	write := func(v any) {
		t.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	if w := read(); w["type"] != "welcome" || w["user"] != "alice" {
		t.Fatalf("welcome %v", w)
	}
	bob := n.dial("bob")
	write(map[string]any{"type": "send", "id": "1", "to": "bob", "event": "chat", "data": map[string]any{"n": 42, "pi": 3.5, "s": "hé", "l": []any{true, nil}}})
	if a := read(); a["type"] != "ack" || a["id"] != "1" || fmtNum(a["seq"]) != "1" {
		t.Fatalf("ack %v (%T)", a, a["seq"])
	}
	m := bob.expect("message")
	d := m["data"].(map[string]any)
	if d["n"] != float64(42) || d["pi"] != 3.5 || d["s"] != "hé" || len(d["l"].([]any)) != 2 {
		t.Fatalf("JSON side got %v", m)
	}
	bob.send(`{"type":"send","id":"2","to":"alice","data":{"big":12345678901,"f":0.25}}`)
	bob.expect("ack")
	got := read()
	// The delivered receipt of message 1 comes when the store has marked
	// it, before or after bob's reply: if it came, it decodes as one.
	for _, r := range receipts {
		if r["status"] != "delivered" || r["by"] != "bob" || r["msg"] == "" {
			t.Fatalf("receipt in MessagePack %v", r)
		}
	}
	gd := got["data"].(map[string]any)
	if got["type"] != "message" || got["from"] != "bob" || gd["f"] != 0.25 {
		t.Fatalf("msgpack side got %v", got)
	}
	switch v := gd["big"].(type) {
	case int64, uint64:
		if v != int64(12345678901) && v != uint64(12345678901) {
			t.Fatalf("integer came through as %v", v)
		}
	default:
		t.Fatalf("integer came through as %T %v", v, v)
	}
	// Bad input: a text frame, and MessagePack with a non-string key.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if e := read(); e["type"] != "error" || e["code"] != "bad_request" {
		t.Fatalf("text on msgpack: %v", e)
	}
	write(map[int]any{1: "x"})
	if e := read(); e["type"] != "error" || e["code"] != "bad_request" {
		t.Fatalf("int key: %v", e)
	}
	write(map[string]any{"type": "ping", "id": "p"})
	if p := read(); p["type"] != "pong" || p["id"] != "p" {
		t.Fatalf("pong %v", p)
	}
}

func fmtNum(v any) string { return fmt.Sprint(v) }
