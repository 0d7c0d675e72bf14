package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/client"
	"github.com/courier-im/courier/internal/testnode"
)

// waitFor polls cond until it holds, failing after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A server restarted on a fresh store, with the same secret, numbers the
// inbox from 1 again. The clients follow its head instead of dropping the
// new messages as seen, and so does a client whose Since is stale.
func TestResetStoreFollowsHead(t *testing.T) {
	addr := freeAddr(t)
	n := startFixed(t, t.TempDir(), addr)
	url := "ws://" + addr
	alice, bob := dial(t, url, "alice"), dial(t, url, "bob")
	for i := 1; i <= 3; i++ {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, bob); m.Seq != uint64(i) {
			t.Fatalf("got %s", m.Frame)
		}
	}
	if alice.LastSeq() != 3 || bob.LastSeq() != 3 {
		t.Fatalf("last seq alice %d bob %d", alice.LastSeq(), bob.LastSeq())
	}
	n.stop()
	n2 := startFixed(t, t.TempDir(), addr) // a wiped store
	waitFor(t, 10*time.Second, "both follow the new head (0)", func() bool {
		return alice.LastSeq() == 0 && bob.LastSeq() == 0 && alice.ConnID() != "" && bob.ConnID() != ""
	})
	ack, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "new"})
	if err != nil || ack.Seq != 1 {
		t.Fatalf("ack %+v err %v", ack, err)
	}
	if m := next(t, bob); m.Seq != 1 || text(t, m) != "new" {
		t.Fatalf("got %s", m.Frame)
	}
	if alice.LastSeq() != 1 || bob.LastSeq() != 1 {
		t.Fatalf("last seq alice %d bob %d", alice.LastSeq(), bob.LastSeq())
	}

	// Since from elsewhere (beyond the head): the client starts at the head.
	bob2 := dial(t, url, "bob", func(o *client.Options) { o.Since = 50 })
	waitFor(t, 10*time.Second, "a stale Since follows the head (1)", func() bool { return bob2.LastSeq() == 1 })
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "again"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{bob, bob2} {
		if m := next(t, c); m.Seq != 2 || text(t, m) != "again" {
			t.Fatalf("got %s", m.Frame)
		}
		quiet(t, c, 100*time.Millisecond)
	}
	n2.stop()
}

// fakeServer is a scripted courier server: each connection runs the next
// script (the last one again when they run out), with the since= it asked.
func fakeServer(t *testing.T, scripts ...func(ctx context.Context, ws *websocket.Conn, since string)) string {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		i := min(int(conns.Add(1))-1, len(scripts)-1)
		scripts[i](r.Context(), ws, r.URL.Query().Get("since"))
	}))
	t.Cleanup(srv.Close)
	return "ws" + srv.URL[len("http"):]
}

func write(ctx context.Context, ws *websocket.Conn, f string) {
	_ = ws.Write(ctx, websocket.MessageText, []byte(f))
}

func inboxMsg(seq int, txt string) string {
	return fmt.Sprintf(`{"type":"message","msg":"m%d","from":"alice","to":"bob","event":"chat","data":{"text":%q},"ts":"2026-11-23T14:01:50.909Z","seq":%d}`, seq, txt, seq)
}

// awaitHead reads client frames until the head request, and returns its id.
func awaitHead(ctx context.Context, ws *websocket.Conn) (string, bool) {
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return "", false
		}
		var f struct {
			Type, ID string
			Since    uint64
		}
		if json.Unmarshal(b, &f) == nil && f.Type == "resume" && f.Since > 1<<40 {
			return f.ID, true
		}
	}
}

func drain(ctx context.Context, ws *websocket.Conn) {
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
	}
}

// Messages at or below LastSeq that come before the head ack (a reset
// store's new messages) wait for it and are then delivered in order; if
// the connection breaks first, the client resumes from before them.
func TestResetStoreMessagesBeforeHead(t *testing.T) {
	sinces := make(chan string, 8)
	url := fakeServer(t,
		func(ctx context.Context, ws *websocket.Conn, since string) {
			sinces <- since
			write(ctx, ws, `{"type":"welcome","user":"bob","conn":"c1"}`)
			write(ctx, ws, inboxMsg(1, "a"))
			write(ctx, ws, inboxMsg(2, "b"))
			id, ok := awaitHead(ctx, ws)
			if !ok {
				return
			}
			write(ctx, ws, `{"type":"ack","id":"`+id+`","seq":2}`)
			write(ctx, ws, inboxMsg(3, "c"))
			write(ctx, ws, inboxMsg(4, "d"))
			ws.Close(websocket.StatusGoingAway, "")
		},
		func(ctx context.Context, ws *websocket.Conn, since string) {
			sinces <- since
			write(ctx, ws, `{"type":"welcome","user":"bob","conn":"c2"}`)
			write(ctx, ws, inboxMsg(5, "e"))
			write(ctx, ws, inboxMsg(6, "f"))
			awaitHead(ctx, ws)
			ws.Close(websocket.StatusGoingAway, "") // the head ack never comes
		},
		func(ctx context.Context, ws *websocket.Conn, since string) {
			// A second reset, and the connection breaks before the head
			// ack: the next one resumes from before message 1.
			sinces <- since
			write(ctx, ws, `{"type":"welcome","user":"bob","conn":"c3"}`)
			write(ctx, ws, inboxMsg(1, "g"))
			awaitHead(ctx, ws)
			ws.Close(websocket.StatusGoingAway, "")
		},
		func(ctx context.Context, ws *websocket.Conn, since string) {
			sinces <- since
			write(ctx, ws, `{"type":"welcome","user":"bob","conn":"c4"}`)
			write(ctx, ws, inboxMsg(1, "g"))
			write(ctx, ws, inboxMsg(2, "h"))
			id, ok := awaitHead(ctx, ws)
			if !ok {
				return
			}
			write(ctx, ws, `{"type":"ack","id":"`+id+`","seq":2}`)
			drain(ctx, ws)
		},
	)
	bob := dial(t, url, "bob", func(o *client.Options) { o.Since = 5 })
	for _, want := range []string{"a", "b", "c", "d", "e", "f"} {
		if m := next(t, bob); text(t, m) != want {
			t.Fatalf("want %s, got %s", want, m.Frame)
		}
	}
	// The third connection resumes after 6; its message 1 waits for the
	// head ack, which does not come. The fourth resumes after 0.
	for _, want := range []string{"g", "h"} {
		if m := next(t, bob); text(t, m) != want {
			t.Fatalf("want %s, got %s", want, m.Frame)
		}
	}
	quiet(t, bob, 100*time.Millisecond)
	if bob.LastSeq() != 2 {
		t.Fatalf("last seq %d", bob.LastSeq())
	}
	for i, want := range []string{"5", "4", "6", "0"} {
		if got := <-sinces; got != want {
			t.Fatalf("connection %d: since=%s, want %s", i+1, got, want)
		}
	}
}

// A head ack above LastSeq says the server passed on messages that never
// came (a server can swallow a message stored while it answers the head
// request): the client asks for them again and delivers them, and the
// live ones that overtook them, in seq order, once.
func TestHeadGapFilled(t *testing.T) {
	fills := make(chan string, 4)
	url := fakeServer(t, func(ctx context.Context, ws *websocket.Conn, since string) {
		write(ctx, ws, `{"type":"welcome","user":"bob","conn":"c1"}`)
		id, ok := awaitHead(ctx, ws)
		if !ok {
			return
		}
		write(ctx, ws, `{"type":"ack","id":"`+id+`","seq":7}`) // 6 and 7 never came
		write(ctx, ws, inboxMsg(8, "8"))                       // live, before the fill is read
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var f struct {
				Type, ID string
				Since    uint64
			}
			if json.Unmarshal(b, &f) == nil && f.Type == "resume" && f.Since < 1<<40 {
				fills <- fmt.Sprint(f.Since)
				for s := f.Since + 1; s <= 8; s++ {
					write(ctx, ws, inboxMsg(int(s), fmt.Sprint(s)))
				}
				write(ctx, ws, `{"type":"ack","id":"`+f.ID+`","seq":8}`)
				write(ctx, ws, inboxMsg(9, "9"))
				drain(ctx, ws)
				return
			}
		}
	})
	bob := dial(t, url, "bob", func(o *client.Options) { o.Since = 5 })
	for s := 6; s <= 9; s++ {
		if m := next(t, bob); m.Seq != uint64(s) || text(t, m) != fmt.Sprint(s) {
			t.Fatalf("want %d, got %s", s, m.Frame)
		}
	}
	quiet(t, bob, 100*time.Millisecond)
	if got := <-fills; got != "5" {
		t.Fatalf("fill since=%s, want 5", got)
	}
	if bob.LastSeq() != 9 {
		t.Fatalf("last seq %d", bob.LastSeq())
	}
}

// A connection that stops carrying anything, without closing, is noticed
// by the heartbeat: the client reconnects and receives the message sent
// meanwhile, once.
func TestHeartbeatFrozenConnection(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	p := startProxy(t, n.URL[len("http://"):])
	bob := dial(t, p.URL(), "bob", func(o *client.Options) {
		o.Heartbeat, o.HeartbeatTimeout = 100*time.Millisecond, 300*time.Millisecond
	})
	alice := dial(t, n.WS(), "alice")
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "before"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); text(t, m) != "before" {
		t.Fatalf("got %s", m.Frame)
	}
	first := bob.ConnID()
	p.freeze()
	frozen := time.Now()
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "during"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a new connection", func() bool {
		id := bob.ConnID()
		return id != "" && id != first
	})
	took := time.Since(frozen)
	t.Logf("reconnected %v after the freeze", took.Round(time.Millisecond))
	if took > 3*time.Second { // 100ms + 300ms, with a lot of room for slow machines
		t.Fatalf("the frozen connection was noticed only after %v", took)
	}
	if m := next(t, bob); m.Seq != 2 || text(t, m) != "during" {
		t.Fatalf("got %s", m.Frame)
	}
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "after"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Seq != 3 || text(t, m) != "after" {
		t.Fatalf("got %s", m.Frame)
	}
	quiet(t, bob, 300*time.Millisecond)
	if got := p.pairs.Load(); got != 2 {
		t.Fatalf("%d connections through the proxy, want 2", got)
	}
}

// With traffic flowing, while idle (the pings are answered) and while the
// application does not read Messages for longer than Heartbeat plus
// HeartbeatTimeout, the heartbeat does not break the connection.
func TestHeartbeatNoSpuriousReconnect(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	p := startProxy(t, n.URL[len("http://"):])
	const every, timeout = 50 * time.Millisecond, 500 * time.Millisecond
	bob := dial(t, p.URL(), "bob", func(o *client.Options) {
		o.Heartbeat, o.HeartbeatTimeout, o.Buffer = every, timeout, 1
	})
	alice := dial(t, n.WS(), "alice")
	first := bob.ConnID()
	seq := uint64(0)
	send := func(txt string) {
		t.Helper()
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": txt}); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(txt string) {
		t.Helper()
		seq++
		if m := next(t, bob); m.Seq != seq || text(t, m) != txt {
			t.Fatalf("want %d %s, got %s", seq, txt, m.Frame)
		}
	}

	// Traffic: a message every 20 ms for half a second.
	for i := 0; i < 25; i++ {
		send(fmt.Sprint("t", i))
		recv(fmt.Sprint("t", i))
		time.Sleep(20 * time.Millisecond)
	}
	// Idle for 20 heartbeats.
	quiet(t, bob, 20*every)
	// Stalled: Messages (capacity 1) is full and the client waits to hand
	// over the next one for three times Heartbeat plus HeartbeatTimeout.
	for i := 0; i < 4; i++ {
		send(fmt.Sprint("s", i))
	}
	time.Sleep(3 * (every + timeout))
	for i := 0; i < 4; i++ {
		recv(fmt.Sprint("s", i))
	}
	send("end")
	recv("end")
	if id := bob.ConnID(); id != first {
		t.Fatalf("connection changed from %s to %s", first, id)
	}
	if got := p.pairs.Load(); got != 1 {
		t.Fatalf("%d connections through the proxy, want 1", got)
	}
}

// Reconnections while messages keep coming: every message arrives once, in
// seq order. (Each connection asks for the inbox head while messages are
// being stored: a gap the server leaves there is filled.)
func TestNoLossAcrossReconnectsUnderTraffic(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	p := startProxy(t, n.URL[len("http://"):])
	bob := dial(t, p.URL(), "bob")
	stop := make(chan struct{})
	sent := make(chan uint64, 1)
	go func() { // the sender: about one message a millisecond until stop
		var k uint64
		defer func() { sent <- k }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			out := courier.Outgoing{From: "system", Label: true, To: "bob", Event: "x", Data: []byte(`{"text":"x"}`)}
			if _, err := n.Hub.Send(context.Background(), out); err == nil {
				k++
			}
		}
	}()
	cuts := make(chan struct{})
	go func() { // the network: 30 cuts, 50 ms apart
		defer close(cuts)
		for i := 0; i < 30; i++ {
			select {
			case <-time.After(50 * time.Millisecond):
				p.cut()
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	t.Cleanup(func() { halt(); <-cuts })
	var last, total uint64
	recv := func(m client.Message) {
		if m.Seq != last+1 {
			t.Fatalf("seq %d after %d", m.Seq, last)
		}
		last = m.Seq
	}
	for stopped := false; !stopped; {
		select {
		case m := <-bob.Messages():
			recv(m)
		case <-cuts:
			halt()
			total, stopped = <-sent, true
		}
	}
	for last < total {
		recv(next(t, bob))
	}
	quiet(t, bob, 100*time.Millisecond)
	t.Logf("%d messages, %d connections", total, p.pairs.Load())
}

// A client dialled without Since whose first connection drops before the
// head ack (the reply to its first frame) reconnects with since= the head
// its welcome named, so it misses nothing stored meanwhile; with a server
// whose welcome names none it still reconnects without since. The peer is
// a scripted WebSocket server: a real one answers the head request too
// soon to drop the connection in between.
func TestReconnectFromTheWelcomeSeq(t *testing.T) {
	for _, tt := range []struct {
		welcome, since string
	}{
		{`{"type":"welcome","user":"bob","conn":"c","seq":7}`, "7"},
		{`{"type":"welcome","user":"bob","conn":"c","seq":0}`, "0"},
		{`{"type":"welcome","user":"bob","conn":"c"}`, ""},
	} {
		t.Run(tt.since, func(t *testing.T) {
			sinces := make(chan string, 4)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				sinces <- r.URL.Query().Get("since")
				_ = ws.Write(r.Context(), websocket.MessageText, []byte(tt.welcome))
				_, _, _ = ws.Read(r.Context()) // the head request, never answered
				ws.CloseNow()                  // dropped before the head ack
			}))
			defer srv.Close()
			c := dial(t, "ws"+srv.URL[len("http"):], "bob")
			defer c.Close()
			if s := <-sinces; s != "" {
				t.Fatalf("first connection with since=%q, want none", s)
			}
			select {
			case s := <-sinces:
				if s != tt.since {
					t.Fatalf("reconnected with since=%q, want %q", s, tt.since)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no reconnection")
			}
		})
	}
}
