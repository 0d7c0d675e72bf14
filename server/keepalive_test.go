package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
)

// A peer that stops answering pings is found and removed; one that
// answers stays.
func TestDeadConnectionsAreRemoved(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.PingInterval = 300 * time.Millisecond })
	alive := n.dial("alice") // its read loop answers pings
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dead, _, err := websocket.Dial(ctx, n.wsURL("bob"), nil) // never reads, so never pongs
	if err != nil {
		t.Fatal(err)
	}
	defer dead.CloseNow()
	waitFor(t, func() bool { return n.hub.Connections("bob") == 0 })
	if n.hub.Connections("alice") != 1 {
		t.Fatal("a live connection was removed")
	}
	alive.send(`{"type":"ping","id":"p"}`)
	if f := alive.expect("pong"); f["id"] != "p" {
		t.Fatalf("pong: %v", f)
	}
}

func TestExpiredTokenClosesWith4003(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.PingInterval = 200 * time.Millisecond })
	tok, err := jwt.Mint([]byte(testSecret), "alice", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.url, "http")+"/ws?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for {
		if _, _, err = ws.Read(ctx); err != nil {
			break
		}
	}
	if code := websocket.CloseStatus(err); code != server.CloseTokenExpired {
		t.Fatalf("close code %d (%v), want 4003", code, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTokensNeverLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := start(t, "", func(c *server.Config) { c.Logger = log })
	a := n.dial("alice")
	a.send(`{"type":"send","id":"1","to":"bob"}`)
	a.expect("ack")
	a.send(`{"type":"bogus"}`)
	a.expect("error")
	bad := token(t, "mallory") + "x"
	n.api("GET", "/ws?token="+bad, "", nil)
	a.close()
	n.stop()
	for _, secret := range []string{token(t, "alice"), bad, testAPIKey} {
		if len(secret) > 20 {
			secret = secret[len(secret)-20:] // the signature part
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret appears in the logs:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "level=") {
		t.Fatal("the test captured no logs at all")
	}
}

// Frames count as signs of life as much as pongs do: a client that sends
// but never reads (so never answers a ping) stays connected.
func TestSendingKeepsAConnectionAlive(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.PingInterval = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, n.wsURL("carol"), nil) // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	waitFor(t, func() bool { return n.hub.Connections("carol") == 1 })
	for range 12 { // 1.2 s: four intervals, past the 2.5-3 of silence that close
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"send","to":"dave","volatile":true}`)); err != nil {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n.hub.Connections("carol") != 1 {
		t.Fatal("a connection that kept sending was closed as silent")
	}
	// Once it falls silent it goes.
	waitFor(t, func() bool { return n.hub.Connections("carol") == 0 })
}
