package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listener is a running `courier listen` process.
type listener struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, a line each
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (l *listener) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.Write(b)
}

func (l *listener) log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.String()
}

// startListen runs `courier listen args...` and waits until it says it listens.
func startListen(t *testing.T, env []string, args ...string) *listener {
	t.Helper()
	l := &listener{lines: make(chan string, 100), done: make(chan struct{})}
	l.cmd = exec.Command(bin, append([]string{"listen"}, args...)...)
	l.cmd.Env, l.cmd.Stderr = env, l
	out, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		_ = l.cmd.Process.Kill()
		<-l.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.log(), "listening as") {
		if time.Now().After(deadline) {
			t.Fatalf("courier listen did not start:\n%s", l.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l
}

// next returns the next stdout line as a frame.
func (l *listener) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case s := <-l.lines:
		var f map[string]any
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			t.Fatalf("courier listen printed %q: %v", s, err)
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatalf("courier listen printed nothing within 10s; stderr:\n%s", l.log())
	}
	return nil
}

func TestSendAndListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data", dir, "--jwt-secret", "S", "--api-key", "K"}
	s := startServe(t, "", environ(), args...)
	url := "ws://" + s.addr
	alice, bob := mint(t, "S", "alice"), mint(t, "S", "bob")
	l := startListen(t, environ(), "--url", url, "--token", bob)

	r := runCmd(t, "", environ(), "send", "--url", url, "--token", alice, "--to", "bob", "--event", "chat", `{"text":"hi"}`)
	if r.code != 0 {
		t.Fatalf("courier send: %+v", r)
	}
	var ack map[string]any
	if err := json.Unmarshal([]byte(oneLine(t, "send stdout", r.stdout)), &ack); err != nil || ack["seq"] != 1.0 || ack["msg"] == "" {
		t.Fatalf("ack %q: %v", r.stdout, err)
	}
	f := l.next(t)
	if f["type"] != "message" || f["from"] != "alice" || f["event"] != "chat" || f["seq"] != 1.0 || f["msg"] != ack["msg"] {
		t.Fatalf("listen printed %v", f)
	}

	// From the environment, volatile, data before the flags.
	env := environ("COURIER_URL="+url, "COURIER_TOKEN="+alice)
	if r := runCmd(t, "", env, "send", `{"typing":true}`, "--to", "bob", "--volatile"); r.code != 0 || strings.Contains(r.stdout, "seq") {
		t.Fatalf("volatile send: %+v", r)
	}
	if f := l.next(t); f["event"] != "message" || f["seq"] != nil {
		t.Fatalf("listen printed %v", f)
	}

	// The server restarts on the same port and data; listen reconnects and
	// gets what was sent meanwhile, once, in order.
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	args[1] = s.addr
	s = startServe(t, "", environ(), args...)
	for i := 2; i <= 3; i++ {
		if r := runCmd(t, "", env, "send", "--to", "bob", "--key", fmt.Sprint("k", i), fmt.Sprintf(`{"n":%d}`, i)); r.code != 0 {
			t.Fatalf("send %d: %+v", i, r)
		}
	}
	for i := 2; i <= 3; i++ {
		if f := l.next(t); f["seq"] != float64(i) {
			t.Fatalf("after the restart, message %d: %v", i, f)
		}
	}
	// The same key again is stored once.
	if r := runCmd(t, "", env, "send", "--to", "bob", "--key", "k3", `{"n":3}`); r.code != 0 || !strings.Contains(r.stdout, `"seq":3`) {
		t.Fatalf("repeated key: %+v", r)
	}
	select {
	case s := <-l.lines:
		t.Fatalf("listen printed a duplicate: %s", s)
	case <-time.After(200 * time.Millisecond):
	}

	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("courier listen did not exit on SIGTERM")
	}
	if l.err != nil {
		t.Fatalf("courier listen exited with %v; stderr:\n%s", l.err, l.log())
	}
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	s := startServe(t, "", environ(), "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--jwt-secret", "S", "--api-key", "K")
	url := "ws://" + s.addr
	alice := mint(t, "S", "alice")
	for _, c := range []struct {
		name string
		code int
		want string
		args []string
	}{
		{"refused", 1, "connection refused", []string{"--url", "ws://" + freePort(t), "--token", alice, "--to", "bob", "{}"}},
		{"401", 1, "401", []string{"--url", url, "--token", mint(t, "other", "alice"), "--to", "bob", "{}"}},
		{"bad JSON", 2, "not valid JSON", []string{"--url", url, "--token", alice, "--to", "bob", `{"text":`}},
		{"no data", 2, "missing", []string{"--url", url, "--token", alice, "--to", "bob"}},
		{"no to", 2, "--to", []string{"--url", url, "--token", alice, "{}"}},
		{"no token", 2, "--token", []string{"--url", url, "--to", "bob", "{}"}},
		{"two args", 2, "unexpected argument", []string{"--url", url, "--token", alice, "--to", "bob", "{}", "{}"}},
		{"error frame", 1, "not_found", []string{"--url", url, "--token", alice, "--to", "conn:nope", "{}"}},
	} {
		r := runCmd(t, "", environ(), append([]string{"send"}, c.args...)...)
		if r.code != c.code || r.stdout != "" {
			t.Errorf("%s: exit %d, want %d; stdout %q stderr %q", c.name, r.code, c.code, r.stdout, r.stderr)
			continue
		}
		if line := oneLine(t, c.name, r.stderr); !strings.HasPrefix(line, "courier send: ") || !strings.Contains(line, c.want) {
			t.Errorf("%s: stderr %q, want %q", c.name, line, c.want)
		}
	}
	r := runCmd(t, "", environ(), "listen", "--url", url, "--token", "bad")
	if r.code != 1 || !strings.Contains(oneLine(t, "listen 401", r.stderr), "401") {
		t.Errorf("listen with a bad token: %+v", r)
	}
}
