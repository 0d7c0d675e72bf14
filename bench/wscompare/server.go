package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"
	nblog "github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/lxzan/gws"
)

// serverStats is what the child prints (as "STATS <json>") after each
// SIGUSR1, once it has run runtime.GC and debug.FreeOSMemory.
type serverStats struct {
	Goroutines int    `json:"goroutines"`
	Conns      int64  `json:"conns"` // open WebSocket connections as seen by the server
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
}

// openConns counts upgraded, not yet closed connections.
var openConns atomic.Int64

// runServer is the child process: it serves WebSocket echo on a loopback
// port for one library, prints "LISTEN <addr>", and answers SIGUSR1 with
// "STATS <json>". It exits when stdin closes (the parent went away), on
// SIGTERM, or after maxLife.
func runServer(lib string, maxLife time.Duration) {
	var out sync.Mutex
	emit := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}

	go func() { // parent gone -> exit
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	time.AfterFunc(maxLife, func() {
		fmt.Fprintln(os.Stderr, "server: max-life reached, exiting")
		os.Exit(0)
	})

	// nbio logs to stdout by default; stdout is our protocol channel.
	nblog.SetLogger(stderrLogger{})
	addr, err := startLib(lib)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	emit("LISTEN %s", addr)
	for s := range sig {
		if s != syscall.SIGUSR1 {
			os.Exit(0)
		}
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := serverStats{
			Goroutines: runtime.NumGoroutine(),
			Conns:      openConns.Load(),
			HeapInuse:  ms.HeapInuse,
			StackInuse: ms.StackInuse,
			Sys:        ms.Sys,
		}
		b, _ := json.Marshal(st)
		emit("STATS %s", b)
	}
}

// startLib starts the server for lib on 127.0.0.1 and returns its address.
func startLib(lib string) (string, error) {
	switch lib {
	case "nbio":
		return startNbioEngine()
	case "nbio-std":
		return startNbioStd()
	case "gws":
		return serveStd(gwsHandler())
	case "coder":
		return serveStd(coderHandler())
	case "gorilla":
		return serveStd(gorillaHandler(&gorilla.Upgrader{}))
	case "gorilla-lean":
		return serveStd(gorillaLeanHandler(&gorilla.Upgrader{WriteBufferPool: &sync.Pool{}}))
	case "gobwas":
		return serveStd(gobwasHandler())
	}
	return "", fmt.Errorf("unknown lib %q", lib)
}

// serveStd serves h at /ws with a standard net/http server on a free
// loopback port.
func serveStd(h http.HandlerFunc) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), nil
}

// nbioUpgrader is shared by both nbio variants: echo every message back.
// KeepaliveTime is set to 0 (no read deadline) because the other libraries
// have none by default and nbio's default (120 s) would drop idle clients.
func nbioUpgrader() *nbws.Upgrader {
	u := nbws.NewUpgrader()
	u.KeepaliveTime = 0
	u.OnOpen(func(c *nbws.Conn) { openConns.Add(1) })
	u.OnClose(func(c *nbws.Conn, err error) { openConns.Add(-1) })
	u.OnMessage(func(c *nbws.Conn, mt nbws.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})
	return u
}

// startNbioEngine: nbhttp.Engine (epoll) accepts, parses HTTP and serves the
// upgraded connections; no goroutine per connection.
func startNbioEngine() (string, error) {
	u := nbioUpgrader()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if _, err := u.Upgrade(w, r, nil); err != nil {
			return
		}
	})
	addrCh := make(chan string, 1)
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{"127.0.0.1:0"},
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				addrCh <- ln.Addr().String()
			}
			return ln, err
		},
	})
	if err := engine.Start(); err != nil {
		return "", err
	}
	select {
	case a := <-addrCh:
		return a, nil
	case <-time.After(5 * time.Second):
		return "", fmt.Errorf("nbio: listener address not reported")
	}
}

// startNbioStd: a standard net/http server does the handshake, then
// UpgradeAndTransferConnToPoller dups the socket fd into an nbio poller
// (engine without listeners) and closes the std conn, so the handler
// goroutine can return.
func startNbioStd() (string, error) {
	engine := nbhttp.NewEngine(nbhttp.Config{ReleaseWebsocketPayload: true})
	if err := engine.Start(); err != nil {
		return "", err
	}
	u := nbioUpgrader()
	u.Engine = engine
	return serveStd(func(w http.ResponseWriter, r *http.Request) {
		if _, err := u.UpgradeAndTransferConnToPoller(w, r, nil); err != nil {
			return
		}
	})
}

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnOpen(*gws.Conn)         { openConns.Add(1) }
func (gwsEcho) OnClose(*gws.Conn, error) { openConns.Add(-1) }
func (gwsEcho) OnMessage(s *gws.Conn, m *gws.Message) {
	_ = s.WriteMessage(m.Opcode, m.Bytes())
	m.Close()
}

// gwsHandler follows the gws README: Upgrade, then go ReadLoop().
func gwsHandler() http.HandlerFunc {
	up := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{})
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go s.ReadLoop()
	}
}

// coderHandler follows the coder/websocket echo example: the handler
// goroutine keeps reading.
func coderHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, nil)
		if err != nil {
			return
		}
		openConns.Add(1)
		defer openConns.Add(-1)
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}
}

// gorillaHandler follows the gorilla echo example.
func gorillaHandler(up *gorilla.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		openConns.Add(1)
		defer openConns.Add(-1)
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}
}

// gorillaLeanHandler is gorilla tuned for idle memory: a WriteBufferPool
// (write buffer only held while writing) and the read loop in a new
// goroutine, so that the handler returns and net/http's per-request state
// (conn, response writer, request) can be collected.
func gorillaLeanHandler(up *gorilla.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		openConns.Add(1)
		go func() {
			defer openConns.Add(-1)
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(mt, msg); err != nil {
					return
				}
			}
		}()
	}
}

// gobwasHandler follows the gobwas/ws README "lazy" example: UpgradeHTTP,
// then one goroutine per connection using wsutil helpers.
func gobwasHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		openConns.Add(1)
		go func() {
			defer openConns.Add(-1)
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
					return
				}
			}
		}()
	}
}

// parseStatsLine decodes a "STATS <json>" line.
func parseStatsLine(line string) (serverStats, bool) {
	var st serverStats
	const p = "STATS "
	if len(line) < len(p) || line[:len(p)] != p {
		return st, false
	}
	if err := json.Unmarshal([]byte(line[len(p):]), &st); err != nil {
		return st, false
	}
	return st, true
}

// stderrLogger sends nbio's log lines to stderr (Info and above).
type stderrLogger struct{}

func (stderrLogger) Debug(string, ...any) {}
func (stderrLogger) Info(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "nbio INFO "+format+"\n", v...)
}
func (stderrLogger) Warn(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "nbio WARN "+format+"\n", v...)
}
func (stderrLogger) Error(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "nbio ERROR "+format+"\n", v...)
}
