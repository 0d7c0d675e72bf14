package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/server"
)

// startNode runs a courier node in this process and returns its ws:// URL.
func startNode(t *testing.T) string {
	t.Helper()
	return testnode.Start(t, "", "s3", "k3").WS()
}

// bench runs the command and returns its exit code, its one JSON line
// decoded and its stderr.
func bench(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	if stdout.Len() == 0 {
		return code, nil, stderr.String()
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout has %d lines, want one JSON line:\n%s", len(lines), stdout.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, lines[0])
	}
	t.Logf("%s", lines[0])
	return code, m, stderr.String()
}

func TestScenarios(t *testing.T) {
	url := startNode(t)
	for _, tc := range []struct {
		args  []string
		check func(map[string]any) bool
	}{
		{[]string{"--scenario", "idle", "--conns", "50", "--settle", "100ms"},
			func(m map[string]any) bool { return m["connected"] == 50.0 && m["server_connections"] == 50.0 }},
		{[]string{"--scenario", "dm", "--users", "10", "--durable", "--duration", "500ms", "--window", "2"},
			func(m map[string]any) bool {
				return m["sent"].(float64) > 0 && m["delivered"] == m["sent"] && m["lost"] == 0.0 && m["lat_p50_ms"].(float64) > 0
			}},
		{[]string{"--scenario", "room", "--rooms", "2", "--members", "3", "--rate", "50", "--duration", "500ms"},
			func(m map[string]any) bool { return m["delivered"] == 2*m["acked"].(float64) && m["lost"] == 0.0 }},
		{[]string{"--scenario", "reconnect", "--clients", "10", "--backlog", "3", "--api-key", "k3"},
			func(m map[string]any) bool { return m["verified"] == true && m["received"] == 60.0 }},
	} {
		args := append([]string{"--url", url, "--secret", "s3", "--quiet"}, tc.args...)
		code, m, stderr := bench(t, args...)
		if code != 0 || m == nil || m["target"] != "courier" || m["error"] != nil || !tc.check(m) {
			t.Errorf("%v: exit %d, %v\n%s", tc.args, code, m, stderr)
		}
		// The server is this process, found by its port.
		if m != nil && m["server_pid"] == nil {
			t.Errorf("%v: no server_pid", tc.args)
		}
		if !strings.Contains(stderr, "== courier "+tc.args[1]) {
			t.Errorf("no summary on stderr:\n%s", stderr)
		}
	}
}

// TestScenariosMsgpackDeflate runs every scenario in MessagePack with
// permessage-deflate against a node that offers it, with payloads large
// enough to be compressed.
func TestScenariosMsgpackDeflate(t *testing.T) {
	url := testnode.Start(t, "", "s3", "k3", func(c *server.Config) { c.Compression = true }).WS()
	for _, tc := range []struct {
		args  []string
		check func(map[string]any) bool
	}{
		{[]string{"--scenario", "idle", "--conns", "20", "--settle", "100ms"},
			func(m map[string]any) bool { return m["connected"] == 20.0 }},
		{[]string{"--scenario", "dm", "--users", "10", "--durable", "--duration", "500ms", "--window", "2"},
			func(m map[string]any) bool {
				return m["sent"].(float64) > 0 && m["delivered"] == m["sent"] && m["lost"] == 0.0 && m["seq_errors"] == 0.0 &&
					m["wire_in_bytes_per_delivery"].(float64) > 0
			}},
		{[]string{"--scenario", "room", "--rooms", "2", "--members", "3", "--rate", "50", "--duration", "500ms"},
			func(m map[string]any) bool { return m["delivered"] == 2*m["acked"].(float64) && m["lost"] == 0.0 }},
		{[]string{"--scenario", "reconnect", "--clients", "10", "--backlog", "3", "--api-key", "k3"},
			func(m map[string]any) bool { return m["verified"] == true && m["received"] == 60.0 }},
	} {
		args := append([]string{"--url", url, "--secret", "s3", "--quiet", "--encoding", "msgpack", "--compress", "--size", "700", "--fill", "text"}, tc.args...)
		code, m, stderr := bench(t, args...)
		if code != 0 || m == nil || m["encoding"] != "msgpack" || m["compress"] != true || m["error"] != nil || !tc.check(m) {
			t.Errorf("%v: exit %d, %v\n%s", tc.args, code, m, stderr)
		}
		if !strings.Contains(stderr, "== courier "+tc.args[1]+", msgpack, permessage-deflate") {
			t.Errorf("no summary on stderr:\n%s", stderr)
		}
	}
}

// TestClusterURLs: a comma-separated --url spreads the connections over
// the nodes and reports how many each got; the server pids found for
// both listeners (this process) count once.
func TestClusterURLs(t *testing.T) {
	a, b := startNode(t), startNode(t)
	code, m, stderr := bench(t, "--url", a+","+b, "--secret", "s3", "--quiet", "--scenario", "idle", "--conns", "30", "--settle", "100ms")
	if code != 0 || m == nil {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	per, _ := m["conns_per_url"].(map[string]any)
	if per[a] != 15.0 || per[b] != 15.0 || m["server_connections"] != 30.0 || m["server_pid"] == nil {
		t.Errorf("conns_per_url %v, server_connections %v, server_pid %v", per, m["server_connections"], m["server_pid"])
	}
	if !strings.Contains(stderr, "connections   "+a+": 15 "+b+": 15") && !strings.Contains(stderr, "connections   "+b+": 15 "+a+": 15") {
		t.Errorf("no per-URL line:\n%s", stderr)
	}
	// One URL: no per-URL report, as before.
	if _, m, _ := bench(t, "--url", a, "--secret", "s3", "--quiet", "--scenario", "idle", "--conns", "3", "--settle", "10ms"); m == nil || m["conns_per_url"] != nil || m["server_pids"] != nil {
		t.Errorf("single URL: %v", m)
	}
	// Explicit pids, added up (the same process twice counts twice). The
	// two test nodes share no broker, so dms across them are lost: a short
	// drain.
	pid := strconv.Itoa(os.Getpid())
	if _, m, _ := bench(t, "--url", a+","+b, "--server-pid", pid+","+pid, "--secret", "s3", "--quiet", "--scenario", "dm", "--users", "4", "--duration", "200ms", "--drain", "100ms"); m == nil || len(m["server_pids"].([]any)) != 2 {
		t.Errorf("--server-pid list: %v", m)
	}
}

// TestServerProfile: --server-pprof/--server-profile save the server's
// CPU profile over the sending time.
func TestServerProfile(t *testing.T) {
	url := startNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	out := filepath.Join(t.TempDir(), "server.prof")
	code, m, stderr := bench(t, "--url", url, "--secret", "s3", "--quiet", "--scenario", "dm", "--users", "4", "--duration", "1s",
		"--server-pprof", ln.Addr().String(), "--server-profile", out)
	if code != 0 || m == nil {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 || !strings.Contains(stderr, "server CPU profile in") {
		t.Fatalf("profile: %v %v\n%s", fi, err, stderr)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--scenario", "chat"},
		{"--scenario", "dm"}, // no secret
		{"--scenario", "dm", "--secret", "s", "--url", "ws://10.1.2.3:80"},
		{"--scenario", "dm", "--secret", "s", "--url", "ws://example.com:80"},
		{"--scenario", "idle", "--secret", "s", "--conns", "0"},
		{"--scenario", "idle", "--secret", "s", "--conns", "2000000"},
		{"--scenario", "dm", "--secret", "s", "--users", "1"},
		{"--scenario", "reconnect", "--secret", "s"}, // no API key
		{"--scenario", "reconnect", "--target", "socketio"},
		{"--scenario", "dm", "--secret", "s", "--duration", "0s"},
		{"--scenario", "dm", "--target", "nats"},
		{"--scenario", "dm", "--secret", "s", "stray"},
		{"--scenario", "dm", "--secret", "s", "--encoding", "protobuf"},
		{"--scenario", "dm", "--target", "socketio", "--encoding", "msgpack"},
		{"--scenario", "dm", "--target", "socketio", "--compress"},
		{"--scenario", "dm", "--target", "socketio", "--url", "ws://127.0.0.1:1,ws://127.0.0.1:2"},
		{"--scenario", "dm", "--secret", "s", "--url", "ws://127.0.0.1:1,ws://10.0.0.1:2"},
		{"--scenario", "dm", "--secret", "s", "--url", " , "},
		{"--scenario", "dm", "--secret", "s", "--fill", "zeros"},
		{"--scenario", "dm", "--secret", "s", "--server-pid", "12,x"},
		{"--scenario", "dm", "--secret", "s", "--server-pprof", "127.0.0.1:1"},
	} {
		if code, m, _ := bench(t, args...); code != 2 || m != nil {
			t.Errorf("%v: exit %d, output %v; want 2 and nothing on stdout", args, code, m)
		}
	}
}

// TestNoServer: a failed run still prints its JSON line, with the error.
func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, m, _ := bench(t, "--url", "ws://"+addr, "--secret", "s", "--scenario", "dm", "--users", "2", "--duration", "100ms", "--quiet")
	if code != 1 || m == nil || m["error"] == nil {
		t.Fatalf("exit %d, %v", code, m)
	}
}
