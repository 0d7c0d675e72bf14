// Package testnode starts a real courier node for tests: a SQLite store in a
// directory, a hub, the WebSocket server and an HTTP listener on a free
// loopback port — wired as cmd/courier wires them; and GatedStore, a store
// whose calls a test can hold.
package testnode

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
	"github.com/courier-im/courier/sqlite"
)

// A Node is a running courier node.
type Node struct {
	URL   string // http://127.0.0.1:PORT
	Dir   string // the store's directory
	Store *sqlite.Store
	Hub   *courier.Hub
	Srv   *server.Server

	hs   *http.Server
	once sync.Once
}

// Start runs a node with the JWT secret and API key on dir (a new temporary
// directory when empty); tweak adjusts the server's config. The node stops
// when the test ends.
func Start(t testing.TB, dir, secret, apiKey string, tweak ...func(*server.Config)) *Node {
	t.Helper()
	return StartWith(t, dir, secret, apiKey, nil, tweak...)
}

// StartWith is Start with hub, when not nil, adjusting the hub's config.
func StartWith(t testing.TB, dir, secret, apiKey string, hub func(*courier.Config), tweak ...func(*server.Config)) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	metrics := server.NewMetrics(nil)
	hcfg := courier.Config{Store: store, Logger: log, Metrics: metrics}
	if hub != nil {
		hub(&hcfg)
	}
	h, err := courier.NewHub(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Hub: h, Auth: jwt.New([]byte(secret)), APIKey: apiKey, Logger: log, Metrics: metrics}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{URL: "http://" + ln.Addr().String(), Dir: dir, Store: store, Hub: h, Srv: srv, hs: &http.Server{Handler: srv.Handler()}}
	go func() { _ = n.hs.Serve(ln) }()
	t.Cleanup(n.Stop)
	return n
}

// WS returns the node's ws:// base URL.
func (n *Node) WS() string { return "ws" + n.URL[len("http"):] }

// Stop shuts the node down as SIGTERM does: stop accepting, close clients
// with 1012, store what was accepted.
func (n *Node) Stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.hs.Shutdown(ctx)
		_ = n.Srv.Shutdown(ctx)
		_ = n.Hub.Close()
		_ = n.Srv.Close()
		_ = n.Store.Close()
	})
}
