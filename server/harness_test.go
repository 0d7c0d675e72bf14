package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
)

const (
	testSecret = "test-secret"
	testAPIKey = "test-api-key"
)

// node is a real courier server on a loopback port, with the test's
// helpers for talking to it.
type node struct {
	*testnode.Node
	t   testing.TB
	url string // http://127.0.0.1:PORT
	hub *courier.Hub
}

// start runs a node on dir (a new temp dir when empty); tweak adjusts its
// config.
func start(t testing.TB, dir string, tweak ...func(*server.Config)) *node {
	t.Helper()
	n := testnode.Start(t, dir, testSecret, testAPIKey, tweak...)
	return &node{Node: n, t: t, url: n.URL, hub: n.Hub}
}

// stop shuts the node down as SIGTERM does.
func (n *node) stop() { n.Stop() }

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := jwt.Mint([]byte(testSecret), user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a real WebSocket client of a node.
type client struct {
	t      testing.TB
	user   string
	conn   string // connection id from the welcome frame
	ws     *websocket.Conn
	frames chan map[string]any
	raw    chan []byte
	closed chan struct{}
	err    error // why the read loop ended, once closed is closed
	cancel context.CancelFunc
	// receipts keeps receipt frames; without it the read loop drops them.
	receipts atomic.Bool
}

// withReceipts makes c keep the receipt frames it gets from now on.
func (c *client) withReceipts() *client {
	c.receipts.Store(true)
	return c
}

// dial connects user with extra query parameters (such as "since=0") and
// reads the welcome frame.
func (n *node) dial(user string, query ...string) *client {
	n.t.Helper()
	c := n.dialRaw(user, query...)
	w := c.next()
	if w["type"] != "welcome" || w["user"] != user || w["conn"] == "" {
		n.t.Fatalf("first frame is not a welcome for %s: %v", user, w)
	}
	c.conn = w["conn"].(string)
	return c
}

func (n *node) wsURL(user string, query ...string) string {
	q := url.Values{"token": {token(n.t, user)}}
	for _, kv := range query {
		k, v, _ := strings.Cut(kv, "=")
		q.Set(k, v)
	}
	return "ws" + strings.TrimPrefix(n.url, "http") + "/ws?" + q.Encode()
}

func (n *node) dialRaw(user string, query ...string) *client {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, n.wsURL(user, query...), nil)
	if err != nil {
		cancel()
		n.t.Fatalf("dial %s: %v", user, err)
	}
	ws.SetReadLimit(1 << 22)
	c := &client{t: n.t, user: user, ws: ws, frames: make(chan map[string]any, 4096), raw: make(chan []byte, 4096), closed: make(chan struct{}), cancel: cancel}
	go c.read(ctx)
	n.t.Cleanup(func() { c.close() })
	return c
}

func (c *client) read(ctx context.Context) {
	defer close(c.closed)
	for {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			c.err = err
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.err = fmt.Errorf("server sent invalid JSON %q: %w", b, err)
			return
		}
		if m["type"] == "receipt" && !c.receipts.Load() {
			continue // most tests are about other frames
		}
		c.raw <- b
		c.frames <- m
	}
}

func (c *client) close() {
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	c.cancel()
}

// send writes v as one JSON text message.
func (c *client) send(v any) {
	c.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		if s, isStr := v.(string); isStr {
			b = []byte(s)
		} else {
			var err error
			if b, err = json.Marshal(v); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.user, err)
	}
}

// next returns the next frame, failing after 5 s.
func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		<-c.raw
		return m
	case <-c.closed:
		select {
		case m := <-c.frames:
			<-c.raw
			return m
		default:
		}
		c.t.Fatalf("%s: connection ended while waiting for a frame: %v", c.user, c.err)
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: no frame within 5s", c.user)
	}
	return nil
}

// expect returns the next frame and checks its type.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("%s: want a %s frame, got %v", c.user, typ, m)
	}
	return m
}

// quiet checks that no frame arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.frames:
		c.t.Fatalf("%s: want no frame, got %v", c.user, m)
	case <-time.After(d):
	}
}

// closeCode waits for the server to close the connection and returns the
// close code.
func (c *client) closeCode() websocket.StatusCode {
	c.t.Helper()
	for {
		select {
		case <-c.frames:
			<-c.raw
			continue
		case <-c.closed:
			return websocket.CloseStatus(c.err)
		case <-time.After(10 * time.Second):
			c.t.Fatalf("%s: connection not closed within 10s", c.user)
		}
	}
}

// api calls the server API; it returns the status and the decoded body.
func (n *node) api(method, path, key string, body any) (int, map[string]any) {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, n.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

// num reads a JSON number field as uint64.
func num(t testing.TB, m map[string]any, k string) uint64 {
	t.Helper()
	f, ok := m[k].(float64)
	if !ok {
		t.Fatalf("field %q missing or not a number in %v", k, m)
	}
	return uint64(f)
}
