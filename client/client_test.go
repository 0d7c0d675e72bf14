package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/client"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
)

const (
	secret = "client-test-secret"
	apiKey = "client-test-key"
)

func mint(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := jwt.Mint([]byte(secret), user, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dial(t testing.TB, url, user string, opts ...func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{Token: mint(t, user, time.Hour), MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// next returns c's next message, failing after 5 s.
func next(t testing.TB, c *client.Client) client.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("%s: messages closed: %v", c.User(), c.Err())
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no message within 5s", c.User())
	}
	panic("unreachable")
}

// quiet fails when c gets a message within d.
func quiet(t testing.TB, c *client.Client, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("%s: unexpected message %s", c.User(), m.Frame)
	case <-time.After(d):
	}
}

func text(t testing.TB, m client.Message) string {
	t.Helper()
	var d struct{ Text string }
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("data %s: %v", m.Data, err)
	}
	return d.Text
}

func TestSendReceiveMultiDevice(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, alice2 := dial(t, n.WS(), "alice"), dial(t, n.WS(), "alice")
	bob, bob2 := dial(t, n.WS(), "bob"), dial(t, n.WS(), "bob")
	if alice.User() != "alice" || alice.ConnID() == "" {
		t.Fatalf("user %q conn %q", alice.User(), alice.ConnID())
	}

	ack, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "hi bob"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Msg == "" || ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	for _, c := range []*client.Client{bob, bob2, alice2} {
		m := next(t, c)
		if m.ID != ack.Msg || m.From != "alice" || m.To != "bob" || m.Event != "chat" || m.Seq != 1 || text(t, m) != "hi bob" {
			t.Fatalf("%s got %s", c.User(), m.Frame)
		}
	}
	quiet(t, alice, 100*time.Millisecond) // the sender's connection gets the ack instead
	if alice.LastSeq() != 1 || bob.LastSeq() != 1 {
		t.Fatalf("last seq alice %d bob %d", alice.LastSeq(), bob.LastSeq())
	}

	var e *client.Error
	if _, err := alice.Send(ctx(t), "conn:nope", "x", nil); !errors.As(err, &e) || e.Code != "not_found" {
		t.Fatalf("send to unknown conn: %v", err)
	}
}

func TestVolatile(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob")
	ack, err := alice.Send(ctx(t), "bob", "typing", true, client.Volatile())
	if err != nil || ack.Msg == "" || ack.Seq != 0 {
		t.Fatalf("ack %+v err %v", ack, err)
	}
	m := next(t, bob)
	if m.Event != "typing" || m.Seq != 0 || string(m.Data) != "true" {
		t.Fatalf("got %s", m.Frame)
	}
	later := dial(t, n.WS(), "bob", func(o *client.Options) { o.Since = 0 })
	quiet(t, later, 100*time.Millisecond)
}

func TestIdempotentKey(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob")
	a1, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "once"}, client.Key("k1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "once"}, client.Key("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if a1 != a2 {
		t.Fatalf("acks differ: %+v %+v", a1, a2)
	}
	if m := next(t, bob); m.ID != a1.Msg {
		t.Fatalf("got %s", m.Frame)
	}
	quiet(t, bob, 150*time.Millisecond)
}

func TestRooms(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob, carol := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob"), dial(t, n.WS(), "carol")
	var e *client.Error
	if _, err := alice.Publish(ctx(t), "lobby", "chat", "x"); !errors.As(err, &e) || e.Code != "forbidden" {
		t.Fatalf("publish before join: %v", err)
	}
	for _, c := range []*client.Client{alice, bob} {
		if err := c.Join(ctx(t), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := alice.Publish(ctx(t), "lobby", "chat", map[string]string{"text": "hello room"})
	if err != nil || ack.Seq != 1 {
		t.Fatalf("ack %+v err %v", ack, err)
	}
	m := next(t, bob)
	if m.Room != "lobby" || m.Seq != 1 || text(t, m) != "hello room" {
		t.Fatalf("got %s", m.Frame)
	}
	quiet(t, carol, 100*time.Millisecond)
	if err := bob.Leave(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Publish(ctx(t), "lobby", "chat", "again"); err != nil {
		t.Fatal(err)
	}
	quiet(t, bob, 100*time.Millisecond)
	if bob.LastSeq() != 0 {
		t.Fatalf("room seq counted as inbox seq: %d", bob.LastSeq())
	}
}

// fixedNode serves a node on a fixed address, so that it can be restarted
// on the same port and data directory.
type fixedNode struct {
	*testnode.Node
	hs *http.Server
}

func startFixed(t *testing.T, dir, addr string, tweak ...func(*server.Config)) *fixedNode {
	t.Helper()
	n := testnode.Start(t, dir, secret, apiKey, tweak...)
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener may take a moment to let go
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &fixedNode{Node: n, hs: &http.Server{Handler: n.Srv.Handler()}}
	go func() { _ = f.hs.Serve(ln) }()
	t.Cleanup(f.stop)
	return f
}

func (f *fixedNode) stop() {
	_ = f.hs.Close()
	f.Node.Stop()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestReconnectAfterRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice, bob := dial(t, url, "alice"), dial(t, url, "bob")
	if err := bob.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	const before, during, after = 5, 5, 5
	for i := 1; i <= before; i++ {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	n.stop()

	// Durable sends while the server is down wait and go out after the
	// reconnect, each stored once.
	var wg sync.WaitGroup
	errs := make(chan error, during)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := before + 1; i <= before+during; i++ {
			if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
				errs <- err
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	n2 := startFixed(t, dir, addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := before + during + 1; i <= before+during+after; i++ {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for want := 1; want <= before+during+after; want++ {
		m := next(t, bob)
		if m.Seq != uint64(want) || text(t, m) != fmt.Sprint(want) {
			t.Fatalf("message %d: got %s", want, m.Frame)
		}
	}
	quiet(t, bob, 150*time.Millisecond)

	// bob is in the lobby again on the new server.
	carol := dial(t, url, "carol")
	if err := carol.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Publish(ctx(t), "lobby", "chat", map[string]string{"text": "back"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Room != "lobby" || text(t, m) != "back" {
		t.Fatalf("got %s", m.Frame)
	}
	n2.stop()
}

func TestTokenRefreshAfterExpiry(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey, func(c *server.Config) { c.PingInterval = 100 * time.Millisecond })
	var calls atomic.Int32
	bob := dial(t, n.WS(), "bob", func(o *client.Options) {
		o.Token = ""
		o.TokenFunc = func(context.Context) (string, error) {
			switch calls.Add(1) {
			case 1:
				return mint(t, "bob", -time.Minute), nil // refused with 401
			case 2:
				return mint(t, "bob", time.Second), nil // closed with 4003 in a second
			}
			return mint(t, "bob", time.Hour), nil
		}
	})
	alice := dial(t, n.WS(), "alice")
	if calls.Load() != 2 {
		t.Fatalf("TokenFunc called %d times after a 401, want 2", calls.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if calls.Load() != 3 {
		t.Fatalf("TokenFunc called %d times, want 3 after the token expired", calls.Load())
	}
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "still here"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); text(t, m) != "still here" || m.Seq != 1 {
		t.Fatalf("got %s", m.Frame)
	}
}

func TestUnauthorizedAndRefused(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	_, err := client.Dial(ctx(t), n.WS(), client.Options{Token: mint(t, "bob", -time.Minute)})
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("expired token: %v", err)
	}
	_, err = client.Dial(ctx(t), "ws://"+freeAddr(t), client.Options{Token: "x"})
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

func TestCloseStops(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	c := dial(t, n.WS(), "bob")
	c.Close()
	if _, ok := <-c.Messages(); ok {
		t.Fatal("messages open after Close")
	}
	if !errors.Is(c.Err(), client.ErrClosed) {
		t.Fatalf("Err %v", c.Err())
	}
	if _, err := c.Send(ctx(t), "alice", "x", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	c.Close()
}

func TestReconnectBeforeAnyMessage(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice := dial(t, url, "alice")
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "old"}); err != nil {
		t.Fatal(err)
	}
	// bob starts without Since: no replay of the old message, but what comes
	// while he is disconnected reaches him after the reconnect.
	bob := dial(t, url, "bob", func(o *client.Options) { o.MinBackoff = 400 * time.Millisecond })
	quiet(t, bob, 100*time.Millisecond)
	n.stop()
	n2 := startFixed(t, dir, addr)
	if _, err := n2.Hub.Send(ctx(t), courier.Outgoing{From: "system", Label: true, To: "bob", Event: "chat", Data: []byte(`{"text":"new"}`)}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Seq != 2 || text(t, m) != "new" {
		t.Fatalf("got %s", m.Frame)
	}
	quiet(t, bob, 100*time.Millisecond)
}

func TestReconnectWithEmptyInbox(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	bob := dial(t, url, "bob", func(o *client.Options) { o.MinBackoff = 400 * time.Millisecond })
	time.Sleep(100 * time.Millisecond) // the head (0) is known
	n.stop()
	n2 := startFixed(t, dir, addr)
	if _, err := n2.Hub.Send(ctx(t), courier.Outgoing{From: "system", Label: true, To: "bob", Event: "chat", Data: []byte(`{"text":"first"}`)}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Seq != 1 || text(t, m) != "first" {
		t.Fatalf("got %s", m.Frame)
	}
}
