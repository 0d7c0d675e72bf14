package main

// The tests of this package build the courier binary once (TestMain) and
// run it as a real process; this file holds that harness.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier/jwt"
)

// bin is the courier binary under test, built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "courier-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "courier")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		// Same instrumentation as the test binary: reuses its build cache
		// and reports races inside the server process (exit code 66).
		args = append(args, "-race")
	}
	build := exec.Command(goTool(), append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build courier:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// environ is the test's environment without any COURIER_* variable, plus
// extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COURIER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// result is how a finished command went.
type result struct {
	code           int
	stdout, stderr string
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// runCmd runs courier with args in dir (a temp dir when empty) and the given
// environment, for at most 20 s.
func runCmd(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("courier %s: %v\nstderr:\n%s", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// proc is a running `courier serve` process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // host:port from the "listening on" line

	mu     sync.Mutex
	stderr bytes.Buffer
	listen chan string   // the address of the first "listening on" line
	done   chan struct{} // closed when the process exited
	err    error         // from Wait, once done is closed
}

var listenRE = regexp.MustCompile(`listening on ([^\s"]+)`)

// Write collects the process's stderr and spots the "listening on" line.
func (s *proc) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.stderr.Len()
	s.stderr.Write(b)
	// Look at whole lines only, from the start of the one b continues.
	all := s.stderr.Bytes()
	from := bytes.LastIndexByte(all[:start], '\n') + 1
	chunk := all[from:]
	if end := bytes.LastIndexByte(chunk, '\n'); end >= 0 {
		if m := listenRE.FindSubmatch(chunk[:end]); m != nil {
			select {
			case s.listen <- string(m[1]):
			default:
			}
		}
	}
	return len(b), nil
}

func (s *proc) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// startServe starts `courier serve args...` in dir with env and waits until it
// logs that it listens. The process is killed at the end of the test.
func startServe(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	s := launch(t, dir, env, args...)
	select {
	case s.addr = <-s.listen:
	case <-s.done:
		t.Fatalf("courier serve exited before listening: %v\nstderr:\n%s", s.err, s.log())
	case <-time.After(15 * time.Second):
		t.Fatalf("courier serve did not log \"listening on\" within 15s\nstderr:\n%s", s.log())
	}
	return s
}

func launch(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &proc{t: t, listen: make(chan string, 1), done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	s.cmd.Dir, s.cmd.Env = dir, env
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Errorf("courier serve (pid %d) did not die", s.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("courier serve %s stderr:\n%s", strings.Join(args, " "), s.log())
		}
	})
	return s
}

// stop sends SIGTERM and returns the exit code.
func (s *proc) stop() int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	return s.wait()
}

// wait waits up to 15 s for the process to exit and returns its exit code.
func (s *proc) wait() int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.t.Fatalf("courier serve did not exit within 15s\nstderr:\n%s", s.log())
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		s.t.Fatal(s.err)
	}
	return 0
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get returns the status and body of GET http://addr/path.
func (s *proc) get(path string, header ...string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.addr+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.do(req)
}

func (s *proc) do(req *http.Request) (int, string) {
	s.t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(b)
}

// apiSend posts a message through the server API.
func (s *proc) apiSend(key string, body string) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest("POST", "http://"+s.addr+"/api/send", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	status, b := s.do(req)
	var out map[string]any
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		s.t.Fatalf("POST /api/send answered %d %q: %v", status, b, err)
	}
	return status, out
}

// dial opens a WebSocket on /ws with query; it fails the test unless the
// upgrade succeeds.
func (s *proc) dial(query string) *websocket.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+s.addr+"/ws?"+query, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		s.t.Fatalf("dial /ws (HTTP %d): %v", status, err)
	}
	s.t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// dialStatus returns the HTTP status of a refused /ws upgrade, or 101.
func (s *proc) dialStatus(query string, header http.Header) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+s.addr+"/ws?"+query, &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		_ = ws.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		s.t.Fatalf("dial /ws: %v", err)
	}
	return resp.StatusCode
}

// read reads the next frame within 5 s.
func read(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame of type %v: %q", typ, b)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %q: %v", b, err)
	}
	return f
}

// welcome reads the first frame and checks it welcomes user.
func welcome(t *testing.T, ws *websocket.Conn, user string) {
	t.Helper()
	f := read(t, ws)
	if f["type"] != "welcome" || f["user"] != user || f["conn"] == nil || f["conn"] == "" {
		t.Fatalf("first frame = %v, want a welcome of %s", f, user)
	}
}

func mint(t *testing.T, secret, user string) string {
	t.Helper()
	tok, err := jwt.Mint([]byte(secret), user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// oneLine checks that out is exactly one non-empty line and returns it.
func oneLine(t *testing.T, what, out string) string {
	t.Helper()
	ls := lines(out)
	if len(ls) != 1 {
		t.Fatalf("%s: want one line on stderr, got %d:\n%s", what, len(ls), out)
	}
	return ls[0]
}
