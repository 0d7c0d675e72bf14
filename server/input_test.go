package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier/server"
)

func TestBadFramesGetErrorsAndHarmNothing(t *testing.T) {
	n := start(t, "")
	alice, bob := n.dial("alice"), n.dial("bob")
	cases := []struct {
		frame, id, code string
	}{
		{`{`, "", "bad_request"},
		{`not json`, "", "bad_request"},
		{`[1,2]`, "", "bad_request"},
		{`"send"`, "", "bad_request"},
		{`{}`, "", "bad_request"},
		{`{"id":"a1"}`, "a1", "bad_request"},
		{`{"type":"fly","id":"a2"}`, "a2", "bad_request"},
		{`{"type":"fly","id":7}`, "", "bad_request"},
		{`{"type":"send","id":"a3"}`, "a3", "bad_request"},
		{`{"type":"send","id":"a4","to":5}`, "a4", "bad_request"},
		{`{"type":"send","id":"a5","to":""}`, "a5", "bad_request"},
		{`{"type":"send","id":"a6","to":"` + strings.Repeat("b", 129) + `"}`, "a6", "bad_request"},
		{`{"type":"send","id":"a7","to":"bad\u0007id"}`, "a7", "bad_request"},
		{`{"type":"send","id":"a8","to":"bob","volatile":"yes"}`, "a8", "bad_request"},
		{`{"type":"send","id":"a9","to":"bob","data":}`, "a9", "bad_request"},
		{`{"type":"join","id":"b1"}`, "b1", "bad_request"},
		{`{"type":"join","id":"b2","room":""}`, "b2", "bad_request"},
		{`{"type":"publish","id":"b3","room":"nowhere"}`, "b3", "forbidden"},
		{`{"type":"resume","id":"b4"}`, "b4", "bad_request"},
		{`{"type":"resume","id":"b5","since":-1}`, "b5", "bad_request"},
		{`{"type":"resume","id":"b6","since":"1"}`, "b6", "bad_request"},
		{`{"type":"send","id":"b7","to":"bob","key":"` + strings.Repeat("k", 300) + `"}`, "b7", "bad_request"},
	}
	for _, c := range cases {
		alice.send(c.frame)
		e := alice.expect("error")
		if e["code"] != c.code || e["message"] == "" {
			t.Errorf("%.60s: error %v, want code %s", c.frame, e, c.code)
		}
		if id, _ := e["id"].(string); id != c.id {
			t.Errorf("%.60s: error id %q, want %q", c.frame, id, c.id)
		}
	}
	// A binary message is refused the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := alice.ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"send","to":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	if e := alice.expect("error"); e["code"] != "bad_request" {
		t.Fatalf("binary: %v", e)
	}
	// Nothing reached bob, and both connections still work.
	bob.quiet(100 * time.Millisecond)
	alice.send(`{"type":"send","id":"ok","to":"bob","data":"still here"}`)
	alice.expect("ack")
	if m := bob.expect("message"); m["data"] != "still here" || num(t, m, "seq") != 1 {
		t.Fatalf("after bad frames: %v", m)
	}
}

func TestOversizedMessageCloses1009(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.MaxMessage = 1024 })
	alice, bob := n.dial("alice"), n.dial("bob")
	alice.send(`{"type":"send","to":"bob","data":"` + strings.Repeat("x", 2000) + `"}`)
	if code := alice.closeCode(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// Just under the limit is fine, and bob was not affected.
	a2 := n.dial("alice")
	a2.send(`{"type":"send","id":"1","to":"bob","data":"` + strings.Repeat("x", 900) + `"}`)
	a2.expect("ack")
	if m := bob.expect("message"); len(m["data"].(string)) != 900 {
		t.Fatalf("bob: %v", m)
	}
}

func TestRateLimit(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	alice, bob := n.dial("alice"), n.dial("bob")
	for i := 0; i < 8; i++ {
		alice.send(fmt.Sprintf(`{"type":"send","id":"%d","to":"bob","volatile":true}`, i))
	}
	acks, limited := 0, 0
	for i := 0; i < 8; i++ {
		switch f := alice.next(); {
		case f["type"] == "ack":
			acks++
		case f["type"] == "error" && f["code"] == "rate_limited" && f["id"] != nil:
			limited++
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if acks != 5 || limited != 3 {
		t.Fatalf("acks %d limited %d, want 5 and 3", acks, limited)
	}
	for i := 0; i < 5; i++ {
		bob.expect("message")
	}
	bob.quiet(100 * time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the bucket refills
	alice.send(`{"type":"send","id":"late","to":"bob","volatile":true}`)
	alice.expect("ack")

	// Frames the connection refuses count too: each still costs a reply.
	carol := n.dial("carol")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 8 {
		if err := carol.ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping","id":"b"}`)); err != nil {
			t.Fatal(err)
		}
	}
	bad, limited := 0, 0
	for range 8 {
		switch f := carol.next(); f["code"] {
		case "bad_request":
			bad++
		case "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	if bad != 5 || limited != 3 {
		t.Fatalf("binary frames on a JSON connection: %d bad_request, %d rate_limited; want 5 and 3", bad, limited)
	}
}

func TestConnectionLimit(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.MaxConns = 2 })
	a := n.dial("alice")
	n.dial("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, n.wsURL("carol"), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("third connection: %v %v", err, resp)
	}
	a.close()
	waitFor(t, func() bool { return n.hub.ConnCount() == 1 })
	n.dial("carol")
}

func TestSlowConsumerIsClosedAndLosesNothing(t *testing.T) {
	n := start(t, "", func(c *server.Config) { c.MaxQueue = 256 << 10; c.RateLimit = -1 })
	alice := n.dial("alice")
	// bob connects with a raw client that never reads.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A small receive buffer keeps the kernel from absorbing the backlog.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	ws, _, err := websocket.Dial(ctx, n.wsURL("bob"), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	// bob reads, but slowly.
	codec := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				codec <- websocket.CloseStatus(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	payload := strings.Repeat("p", 50000)
	const total = 200 // 10 MB: beyond the socket buffers and the queue
	for i := 1; i <= total; i++ {
		alice.send(fmt.Sprintf(`{"type":"send","id":"%d","to":"bob","data":"%s"}`, i, payload))
	}
	for i := 1; i <= total; i++ {
		alice.expect("ack")
	}
	select {
	case code := <-codec:
		if code != websocket.StatusPolicyViolation {
			t.Fatalf("slow consumer close code %d, want 1008", code)
		}
	case <-ctx.Done():
		t.Fatal("slow consumer not closed")
	}
	waitFor(t, func() bool { return n.hub.Connections("bob") == 0 })
	// Resuming gets every message, in order.
	bob := n.dial("bob", "since=0")
	bob.ws.SetReadLimit(1 << 20)
	for i := 1; i <= total; i++ {
		if m := bob.expect("message"); num(t, m, "seq") != uint64(i) {
			t.Fatalf("resume %d: %v", i, m)
		}
	}
}

func TestShutdownClosesWith1012(t *testing.T) {
	n := start(t, "")
	a, b := n.dial("alice"), n.dial("bob")
	n.stop()
	for _, c := range []*client{a, b} {
		if code := c.closeCode(); code != websocket.StatusServiceRestart {
			t.Fatalf("close code %d, want 1012", code)
		}
	}
}

// TestConcurrentSendersGapFree checks the seq guarantee under load: many
// senders on many connections, one recipient with several devices, one of
// which keeps resuming.
func TestConcurrentSendersGapFree(t *testing.T) {
	n := start(t, "")
	const senders, each = 8, 40
	devices := []*client{n.dial("zed"), n.dial("zed")}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		c := n.dial(fmt.Sprintf("s%d", s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c.send(fmt.Sprintf(`{"type":"send","id":"%d","to":"zed","data":%d}`, i, i))
			}
		}()
	}
	// A third device resumes from 0 while messages flow.
	late := n.dial("zed", "since=0")
	devices = append(devices, late)
	wg.Wait()
	for _, d := range devices {
		var last uint64
		seen := 0
		for seen < senders*each {
			m := d.expect("message")
			s := num(t, m, "seq")
			if last != 0 && s != last+1 {
				t.Fatalf("device %s: seq %d after %d", d.conn, s, last)
			}
			last = s
			seen++
			if d == late && seen == 1 && s != 1 {
				t.Fatalf("resumed device started at %d", s)
			}
		}
		if d == late && last != senders*each {
			t.Fatalf("resumed device ended at %d", last)
		}
		d.quiet(50 * time.Millisecond)
	}
}
