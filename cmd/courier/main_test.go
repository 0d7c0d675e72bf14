package main

// The commands as a user runs them: token, serve from flags, env and --dev.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courier-im/courier/jwt"
)

func TestCommands(t *testing.T) {
	t.Parallel()
	env := environ()
	if r := runCmd(t, "", env, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "courier ") {
		t.Errorf("courier version: %+v", r)
	}
	if r := runCmd(t, "", env); r.code == 0 || !strings.Contains(r.stderr, "courier serve") {
		t.Errorf("courier without a command: %+v", r)
	}
	if r := runCmd(t, "", env, "help"); r.code != 0 || !strings.Contains(r.stdout, "courier token") {
		t.Errorf("courier help: %+v", r)
	}
	if r := runCmd(t, "", env, "bogus"); r.code == 0 || !strings.Contains(r.stderr, `"bogus"`) {
		t.Errorf("courier bogus: %+v", r)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	env := environ()
	before := time.Now()
	r := runCmd(t, "", env, "token", "--secret", "S", "--user", "alice", "--ttl", "1h")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("courier token: %+v", r)
	}
	if !strings.HasSuffix(r.stdout, "\n") || len(lines(r.stdout)) != 1 {
		t.Fatalf("courier token printed %q, want one line", r.stdout)
	}
	id, err := jwt.New([]byte("S")).Authenticate(context.Background(), strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("the printed token does not authenticate: %v", err)
	}
	if id.User != "alice" || id.Rooms != nil {
		t.Errorf("identity = %+v, want alice with no rooms claim", id)
	}
	if d := id.Expires.Sub(before.Add(time.Hour)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("token expires at %v, want about an hour from %v", id.Expires, before)
	}
	if _, err := jwt.New([]byte("T")).Authenticate(context.Background(), strings.TrimSpace(r.stdout)); err == nil {
		t.Error("the token authenticates with another secret")
	}

	// Default ttl 24h, the rooms claim, --flag=value.
	r = runCmd(t, "", env, "token", "--secret=S", "--user=bob", "--rooms", "lobby,team-*")
	if r.code != 0 {
		t.Fatalf("courier token --rooms: %+v", r)
	}
	id, err = jwt.New([]byte("S")).Authenticate(context.Background(), strings.TrimSpace(r.stdout))
	if err != nil || id.User != "bob" || strings.Join(id.Rooms, "|") != "lobby|team-*" {
		t.Fatalf("identity = %+v, %v", id, err)
	}
	if d := time.Until(id.Expires) - 24*time.Hour; d < -time.Minute || d > time.Minute {
		t.Errorf("default ttl: expires %v", id.Expires)
	}

	// The secret may come from COURIER_JWT_SECRET.
	r = runCmd(t, "", environ("COURIER_JWT_SECRET=E"), "token", "--user", "carol")
	if r.code != 0 {
		t.Fatalf("courier token with COURIER_JWT_SECRET: %+v", r)
	}
	if id, err := jwt.New([]byte("E")).Authenticate(context.Background(), strings.TrimSpace(r.stdout)); err != nil || id.User != "carol" {
		t.Errorf("token with COURIER_JWT_SECRET: %+v, %v", id, err)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	env := environ()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no user", []string{"token", "--secret", "S"}, "--user"},
		{"no secret", []string{"token", "--user", "alice"}, "--secret"},
		{"invalid user", []string{"token", "--secret", "S", "--user", strings.Repeat("x", 129)}, "user"},
		{"zero ttl", []string{"token", "--secret", "S", "--user", "alice", "--ttl", "0s"}, "--ttl"},
		{"stray argument", []string{"token", "--secret", "S", "--user", "alice", "extra"}, "extra"},
	} {
		r := runCmd(t, "", env, tt.args...)
		if r.code == 0 {
			t.Errorf("%s: exit 0, stdout %q", tt.name, r.stdout)
			continue
		}
		if r.stdout != "" {
			t.Errorf("%s: printed %q on stdout", tt.name, r.stdout)
		}
		if l := oneLine(t, tt.name, r.stderr); !strings.Contains(l, tt.want) {
			t.Errorf("%s: stderr %q does not mention %s", tt.name, l, tt.want)
		}
	}
}

func TestServeStartupErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no jwt secret", environ(), []string{"--api-key", "K"}, "--jwt-secret"},
		{"empty jwt secret", environ("COURIER_JWT_SECRET="), []string{"--api-key", "K"}, "--jwt-secret"},
		{"no api key", environ(), []string{"--jwt-secret", "S"}, "--api-key"},
		{"no api key, jwt secret from env", environ("COURIER_JWT_SECRET=S"), nil, "--api-key"},
		{"no secrets at all", environ(), nil, "required"},
		{"bad env value", environ("COURIER_MAX_MESSAGE=lots"), []string{"--jwt-secret", "S", "--api-key", "K"}, "COURIER_MAX_MESSAGE"},
		{"bad log level", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--log-level", "loud"}, "--log-level"},
		{"stray argument", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "now"}, "now"},
		{"broker without a shared store", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--broker", "nats://127.0.0.1:4222"}, "--store"},
		{"unknown broker", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--store", "postgres://x@127.0.0.1/db", "--broker", "kafka://k:9092"}, "--broker"},
		{"retention under a day", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--retention", "1h"}, "--retention"},
		{"webhook url without secret", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--webhook-url", "http://127.0.0.1:1/hook"}, "--webhook"},
		{"unknown sqlite sync", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--sqlite-sync", "off"}, "--sqlite-sync"},
		{"unknown store", environ(), []string{"--jwt-secret", "S", "--api-key", "K", "--store", "mysql://x@127.0.0.1/db"}, "--store"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, tt.args...)
		r := runCmd(t, dir, tt.env, args...)
		if r.code == 0 {
			t.Errorf("%s: exit 0\nstderr:\n%s", tt.name, r.stderr)
			continue
		}
		if l := oneLine(t, tt.name, r.stderr); !strings.Contains(l, tt.want) {
			t.Errorf("%s: stderr %q does not mention %s", tt.name, l, tt.want)
		}
	}
	// A startup error leaves nothing behind.
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed starts created %s: %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "courier-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed starts created ./courier-data: %v", err)
	}
}

func TestServeHelp(t *testing.T) {
	t.Parallel()
	r := runCmd(t, "", environ(), "serve", "--help")
	if r.code != 0 {
		t.Fatalf("courier serve --help: exit %d\n%s", r.code, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, f := range []string{"addr", "data", "jwt-secret", "api-key", "dev", "max-message", "log-level"} {
		if !strings.Contains(out, "-"+f+" ") && !strings.Contains(out, "-"+f+"\n") {
			t.Errorf("courier serve --help does not list --%s:\n%s", f, out)
		}
	}
}

// TestServe runs a server from flags, checks its HTTP surface, stops it
// with SIGTERM while a client is connected, and restarts it on the same
// data to read back a message sent before the stop.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "not", "yet", "there")
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--jwt-secret", "S", "--api-key", "K"}
	s := startServe(t, dir, environ(), args...)

	if host, port, err := net.SplitHostPort(s.addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("listening on %q, want 127.0.0.1 with a real port", s.addr)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("--data %s was not created: %v", data, err)
	}
	if status, body := s.get("/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz = %d %q", status, body)
	}
	if status, body := s.get("/metrics"); status != http.StatusOK || !strings.Contains(body, "courier_connections") {
		t.Errorf("GET /metrics = %d, courier_connections missing:\n%.500s", status, body)
	}
	if status, body := s.get("/dev/token?user=x"); status != http.StatusNotFound {
		t.Errorf("GET /dev/token without --dev = %d %q, want 404", status, body)
	}
	// Authentication at the door.
	if st := s.dialStatus("", nil); st != http.StatusUnauthorized {
		t.Errorf("/ws without a token: HTTP %d, want 401", st)
	}
	if st := s.dialStatus("token="+mint(t, "wrong", "bob"), nil); st != http.StatusUnauthorized {
		t.Errorf("/ws with a token of another secret: HTTP %d, want 401", st)
	}
	if st := s.dialStatus("", http.Header{"Authorization": {"Bearer " + mint(t, "S", "bob")}}); st != http.StatusSwitchingProtocols {
		t.Errorf("/ws with a bearer header: HTTP %d, want 101", st)
	}
	if status, _ := s.apiSend("wrong", `{"to":"bob"}`); status != http.StatusUnauthorized {
		t.Errorf("POST /api/send with a wrong key: %d, want 401", status)
	}

	// A connected client, and a message stored for bob.
	bob := s.dial("token=" + url.QueryEscape(mint(t, "S", "bob")))
	welcome(t, bob, "bob")
	status, sent := s.apiSend("K", `{"to":"bob","event":"notice","data":{"text":"before the restart"}}`)
	if status != http.StatusOK || sent["msg"] == nil || sent["seq"] != 1.0 {
		t.Fatalf("POST /api/send = %d %v, want 200 with msg and seq 1", status, sent)
	}
	if f := read(t, bob); f["type"] != "message" || f["msg"] != sent["msg"] {
		t.Fatalf("live frame = %v, want the message %v", f, sent["msg"])
	}

	// SIGTERM: the client is closed with 1012, the process exits 0.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := bob.Read(ctx)
		if err == nil {
			t.Logf("frame during shutdown: %s", b)
			continue
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusServiceRestart {
			t.Errorf("client closed with %v (code %d), want 1012", err, code)
		}
		break
	}
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\nstderr:\n%s", code, s.log())
	}

	// Restart on the same data: the message is still there.
	s2 := startServe(t, dir, environ(), args...)
	bob2 := s2.dial("token=" + url.QueryEscape(mint(t, "S", "bob")) + "&since=0")
	welcome(t, bob2, "bob")
	f := read(t, bob2)
	want := map[string]any{"type": "message", "msg": sent["msg"], "from": "system", "to": "bob", "event": "notice", "seq": 1.0,
		"data": map[string]any{"text": "before the restart"}}
	for k, v := range want {
		if fmt.Sprint(f[k]) != fmt.Sprint(v) {
			t.Errorf("replayed frame %v: %s = %v, want %v", f, k, f[k], v)
		}
	}
	if ts, _ := f["ts"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(ts) {
		t.Errorf("ts = %q", f["ts"])
	}
	if code := s2.stop(); code != 0 {
		t.Errorf("second exit code = %d", code)
	}
}

// TestServeEnv starts a server from COURIER_* variables only.
func TestServeEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freePort(t)
	data := filepath.Join(dir, "env-data")
	s := startServe(t, dir, environ("COURIER_JWT_SECRET=env-secret", "COURIER_API_KEY=env-key", "COURIER_ADDR="+addr, "COURIER_DATA="+data))
	if s.addr != addr {
		t.Errorf("listening on %s, want COURIER_ADDR %s", s.addr, addr)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("COURIER_DATA %s was not created: %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "courier-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the default ./courier-data was used: %v", err)
	}
	if st := s.dialStatus("token="+mint(t, "other", "alice"), nil); st != http.StatusUnauthorized {
		t.Errorf("token of another secret: HTTP %d, want 401", st)
	}
	ws := s.dial("token=" + url.QueryEscape(mint(t, "env-secret", "alice")))
	welcome(t, ws, "alice")
	if status, out := s.apiSend("env-key", `{"to":"alice","data":1}`); status != http.StatusOK {
		t.Errorf("POST /api/send with COURIER_API_KEY = %d %v", status, out)
	}
	if status, _ := s.apiSend("K", `{"to":"alice","data":1}`); status != http.StatusUnauthorized {
		t.Errorf("POST /api/send with another key = %d, want 401", status)
	}
	if status, _ := s.get("/api/presence?user=alice", "Authorization", "Bearer env-key"); status != http.StatusOK {
		t.Errorf("GET /api/presence = %d", status)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
}

// TestServeFlagsWinOverEnv: a flag given on the command line beats its
// variable.
func TestServeFlagsWinOverEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir, environ("COURIER_JWT_SECRET=env-secret", "COURIER_API_KEY=env-key", "COURIER_ADDR=256.0.0.1:1"),
		"--addr", "127.0.0.1:0", "--api-key", "flag-key", "--data", filepath.Join(dir, "d"))
	if status, _ := s.apiSend("flag-key", `{"to":"alice"}`); status != http.StatusOK {
		t.Errorf("--api-key: %d", status)
	}
	if status, _ := s.apiSend("env-key", `{"to":"alice"}`); status != http.StatusUnauthorized {
		t.Errorf("COURIER_API_KEY beat --api-key: %d", status)
	}
}

// TestServeDev runs --dev with the default data directory: made-up secrets
// kept across restarts, /dev/token and the demo page.
func TestServeDev(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir, environ(), "--dev", "--addr", "127.0.0.1:0")
	if !strings.Contains(s.log(), "development mode") {
		t.Errorf("--dev printed no warning:\n%s", s.log())
	}
	if fi, err := os.Stat(filepath.Join(dir, "courier-data")); err != nil || !fi.IsDir() {
		t.Errorf("./courier-data was not created: %v", err)
	}
	status, body := s.get("/dev/token?user=x")
	var tok struct {
		Token string `json:"token"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("GET /dev/token?user=x = %d %q, want {\"token\":...}", status, body)
	}
	ws := s.dial("token=" + url.QueryEscape(tok.Token))
	welcome(t, ws, "x")
	if status, _ := s.get("/dev/token"); status != http.StatusBadRequest {
		t.Errorf("GET /dev/token without a user = %d, want 400", status)
	}
	if status, _ := s.get("/"); status != http.StatusOK {
		t.Errorf("GET / (demo page) = %d", status)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}

	// The made-up secret is kept: the token still works after a restart.
	s2 := startServe(t, dir, environ(), "--dev", "--addr", "127.0.0.1:0")
	ws2 := s2.dial("token=" + url.QueryEscape(tok.Token))
	welcome(t, ws2, "x")
}

// --pprof-addr serves profiles on their own listener only.
func TestServePprof(t *testing.T) {
	t.Parallel()
	pp := freePort(t)
	s := startServe(t, "", environ(), "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--jwt-secret", "S", "--api-key", "K", "--pprof-addr", pp)
	resp, err := httpClient.Get("http://" + pp + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof: %d %.200s", resp.StatusCode, body)
	}
	if status, _ := s.get("/debug/pprof/"); status == http.StatusOK {
		t.Fatal("pprof is reachable on the public address")
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestTokenHelp(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(bin, "token", "--help")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-user") {
		t.Fatalf("token --help: %v\n%s", err, out)
	}
}
