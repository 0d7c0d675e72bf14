package load

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sioNeedTool fails the test when COURIER_TEST_SERVICES=1 (CI) and the tool
// is missing, and skips it otherwise.
func sioNeedTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("COURIER_TEST_SERVICES") == "1" {
		t.Fatalf("%s is not on PATH: the Socket.IO peer (bench/peers/socketio) needs Node.js and npm (apt-get install nodejs npm)", name)
	}
	t.Skipf("%s is not on PATH; set COURIER_TEST_SERVICES=1 to make this a failure", name)
	return ""
}

// startSocketIOPeer runs bench/peers/socketio on a free loopback port
// and returns its address; the process is stopped in t.Cleanup.
func startSocketIOPeer(t *testing.T, extraArgs ...string) string {
	t.Helper()
	addr, _ := startSocketIOPeerStop(t, extraArgs...)
	return addr
}

// startSocketIOPeerStop is startSocketIOPeer that also returns a function
// stopping the peer early (SIGTERM, then the same checks as t.Cleanup).
func startSocketIOPeerStop(t *testing.T, extraArgs ...string) (string, func()) {
	t.Helper()
	node := sioNeedTool(t, "node")
	dir, err := filepath.Abs(filepath.Join("..", "peers", "socketio"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err != nil {
		npm := sioNeedTool(t, "npm")
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	cmd := exec.Command(node, append([]string{"server.js", "--port", "0"}, extraArgs...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("socket.io peer after SIGTERM: %v", err)
				}
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Errorf("socket.io peer did not exit within 5s of SIGTERM")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case a := <-addr:
		return a, stop
	case err := <-exited:
		exited <- err
		t.Fatalf("socket.io peer exited before listening: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("socket.io peer did not print its listening line within 20s")
	}
	return "", nil
}

// newSIODriver returns a driver for the peer at addr, closed in t.Cleanup.
func newSIODriver(t *testing.T, addr string) *SocketIO {
	t.Helper()
	d, err := NewSocketIO(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// sioRecorder is a Handler that records what one client receives.
type sioRecorder struct {
	mu     sync.Mutex
	msgs   []string
	acks   int
	closed chan error
	notify chan struct{}
}

func newSIORecorder() *sioRecorder {
	return &sioRecorder{closed: make(chan error, 1), notify: make(chan struct{}, 1)}
}

func (r *sioRecorder) handler() Handler {
	poke := func() {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return Handler{
		Message: func(p []byte, seq uint64) {
			r.mu.Lock()
			r.msgs = append(r.msgs, string(p))
			r.mu.Unlock()
			poke()
		},
		Ack: func(ok bool, seq uint64) {
			r.mu.Lock()
			if ok {
				r.acks++
			}
			r.mu.Unlock()
			poke()
		},
		Closed: func(err error) { r.closed <- err },
	}
}

func (r *sioRecorder) state() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...), r.acks
}

// waitFor waits until cond holds for the recorder's state.
func (r *sioRecorder) waitFor(t *testing.T, what string, cond func(msgs []string, acks int) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if cond(r.state()) {
			return
		}
		select {
		case <-r.notify:
		case <-deadline:
			msgs, acks := r.state()
			t.Fatalf("timed out waiting for %s: messages %q, acks %d", what, msgs, acks)
		}
	}
}

func TestSocketIODriver(t *testing.T) {
	addr := startSocketIOPeer(t)
	d := newSIODriver(t, addr)
	if d.Name() != "socketio" {
		t.Fatalf("Name() = %q", d.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	users := []string{"alice", "bob", "carol"}
	rec := map[string]*sioRecorder{}
	cli := map[string]Client{}
	for _, u := range users {
		rec[u] = newSIORecorder()
		c, err := d.Dial(ctx, u, 7, rec[u].handler()) // since is ignored
		if err != nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		cli[u] = c
	}

	// A direct message reaches exactly its recipient, and is acked.
	stamp := string(Stamp(64))
	if err := cli["alice"].Send("bob", []byte(stamp), true); err != nil {
		t.Fatal(err)
	}
	rec["bob"].waitFor(t, "bob's dm", func(m []string, _ int) bool { return len(m) == 1 })
	if m, _ := rec["bob"].state(); m[0] != stamp {
		t.Fatalf("bob got %q, want %q", m[0], stamp)
	}
	if _, ok := Stamped([]byte(stamp)); !ok {
		t.Fatal("Stamp payload not Stamped")
	}
	rec["alice"].waitFor(t, "alice's dm ack", func(_ []string, a int) bool { return a == 1 })

	// A payload that JSON must escape round-trips exactly (slow path).
	odd := "q\"uo\\te\nnl\ttab\x01 é ✓ </script>"
	if err := cli["carol"].Send("bob", []byte(odd), false); err != nil {
		t.Fatal(err)
	}
	rec["bob"].waitFor(t, "bob's escaped dm", func(m []string, _ int) bool { return len(m) == 2 })
	if m, _ := rec["bob"].state(); m[1] != odd {
		t.Fatalf("bob got %q, want %q", m[1], odd)
	}
	rec["carol"].waitFor(t, "carol's dm ack", func(_ []string, a int) bool { return a == 1 })

	// Rooms: everyone joins; a publish reaches the other members only.
	for _, u := range users {
		if err := cli[u].Join(ctx, "lobby"); err != nil {
			t.Fatalf("%s join: %v", u, err)
		}
	}
	if err := cli["carol"].Publish("lobby", []byte("hello room"), false); err != nil {
		t.Fatal(err)
	}
	rec["alice"].waitFor(t, "alice's room message", func(m []string, _ int) bool { return len(m) == 1 })
	rec["bob"].waitFor(t, "bob's room message", func(m []string, _ int) bool { return len(m) == 3 })
	rec["carol"].waitFor(t, "carol's publish ack", func(_ []string, a int) bool { return a == 2 })
	if m, _ := rec["alice"].state(); m[0] != "hello room" {
		t.Fatalf("alice got %q", m[0])
	}
	if m, _ := rec["bob"].state(); m[2] != "hello room" {
		t.Fatalf("bob got %q", m[2])
	}

	// A second connection of bob's: a dm reaches both (the user's room).
	bob2 := newSIORecorder()
	b2, err := d.Dial(ctx, "bob", 0, bob2.handler())
	if err != nil {
		t.Fatal(err)
	}
	if err := cli["alice"].Send("bob", []byte("both"), false); err != nil {
		t.Fatal(err)
	}
	bob2.waitFor(t, "bob's second connection", func(m []string, _ int) bool { return len(m) == 1 })
	rec["bob"].waitFor(t, "bob's first connection", func(m []string, _ int) bool { return len(m) == 4 })

	// Nothing else arrived anywhere (give stragglers a moment).
	time.Sleep(200 * time.Millisecond)
	for u, want := range map[string][2]int{"alice": {1, 2}, "bob": {4, 0}, "carol": {0, 2}} {
		if m, a := rec[u].state(); len(m) != want[0] || a != want[1] {
			t.Errorf("%s: messages %q acks %d, want %d messages %d acks", u, m, a, want[0], want[1])
		}
	}
	if m, a := bob2.state(); len(m) != 1 || a != 0 {
		t.Errorf("bob's second connection: messages %q acks %d", m, a)
	}

	// Close reports Closed(nil) once.
	for _, c := range []Client{cli["alice"], cli["bob"], cli["carol"], b2} {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	for _, r := range []*sioRecorder{rec["alice"], rec["bob"], rec["carol"], bob2} {
		select {
		case err := <-r.closed:
			if err != nil {
				t.Errorf("Closed(%v), want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Closed not called")
		}
	}
}

// TestSocketIOPing checks the client answers Engine.IO pings: with a
// 100 ms ping interval and 200 ms timeout, a mute client would be dropped
// well within the idle second.
func TestSocketIOPing(t *testing.T) {
	addr := startSocketIOPeer(t, "--ping-interval", "100", "--ping-timeout", "200")
	d := newSIODriver(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := newSIORecorder(), newSIORecorder()
	ca, err := d.Dial(ctx, "a", 0, a.handler())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := d.Dial(ctx, "b", 0, b.handler())
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	time.Sleep(time.Second)
	select {
	case err := <-a.closed:
		t.Fatalf("connection dropped while idle: %v", err)
	default:
	}
	if err := ca.Send("b", []byte("still here"), false); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, "dm after idle", func(m []string, _ int) bool { return len(m) == 1 && m[0] == "still here" })
}

// TestSocketIORefused checks a handshake without a user fails Dial.
func TestSocketIORefused(t *testing.T) {
	addr := startSocketIOPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := newSIODriver(t, "http://"+addr).Dial(ctx, "", 0, Handler{})
	if err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("Dial without user: %v, want the peer's refusal", err)
	}
}

// TestSocketIOServerGone checks Closed gets an error and Join and Send
// fail when the server goes away, and that Close still returns.
func TestSocketIOServerGone(t *testing.T) {
	addr, stop := startSocketIOPeerStop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := newSIORecorder()
	c, err := newSIODriver(t, "ws://"+addr).Dial(ctx, "x", 0, r.handler())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-r.closed:
		if err == nil {
			t.Fatal("Closed(nil) when the server went away")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Closed not called when the server went away")
	}
	if err := c.Join(ctx, "r"); err == nil {
		t.Fatal("Join after the server went away succeeded")
	}
	if err := c.Send("y", []byte("z"), false); err == nil {
		t.Fatal("Send after the server went away succeeded")
	}
	_ = c.Close()
}

func TestSocketIOWire(t *testing.T) {
	for _, bad := range []string{"https://127.0.0.1:1", "ws://127.0.0.1", "127.0.0.1"} {
		if d, err := NewSocketIO(bad); err == nil {
			d.Close()
			t.Errorf("NewSocketIO(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{
		`["message","abc"]`:           "abc",
		`["message",""]`:              "",
		`["message","a\"b"]`:          `a"b`,
		`["message","\u00e9\\"]`:      `é\`,
		`/chat,["message","ns"]`:      "ns",
		`5["message","with ack id"]`:  "with ack id",
		`["message","x","extra arg"]`: "x",
	} {
		got, ok := sioMessage([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("sioMessage(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{`["other","abc"]`, `["message"]`, `["message",5]`, `garbage`, ``} {
		if got, ok := sioMessage([]byte(in)); ok {
			t.Errorf("sioMessage(%s) = %q, want no message", in, got)
		}
	}
	if id, rest, ok := sioAckID([]byte("123[]")); !ok || id != 123 || string(rest) != "[]" {
		t.Errorf("sioAckID = %d %q %v", id, rest, ok)
	}
	if _, _, ok := sioAckID([]byte("[]")); ok {
		t.Error("sioAckID without digits ok")
	}
}
