// Package server serves courier over HTTP: the WebSocket endpoint /ws, the
// server API under /api/ for application backends, /healthz, /metrics, and in
// development mode /dev/token and the demo page.
//
// WebSocket connections are read by an event-driven poller
// (github.com/lesismal/nbio), so an idle connection costs no goroutine and no
// read buffer. A Server's Handler can be mounted on any net/http server.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/courier-im/courier"
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Hub routes and stores messages. Required.
	Hub *courier.Hub
	// Auth verifies connection tokens. Required.
	Auth courier.Authenticator
	// APIKey guards the server API. Required unless the API is unwanted:
	// an empty key answers every API call with 401.
	APIKey string
	// DevToken, when set, enables GET /dev/token?user=NAME, which mints a
	// token with it (development mode only).
	DevToken func(user string) (string, error)
	// DemoPage, when set, is served at / (development mode).
	DemoPage http.Handler

	// MaxMessage is the largest WebSocket message and API body, in bytes
	// (default 65536). A larger WebSocket message closes the connection
	// with code 1009; a larger API body gets 413.
	MaxMessage int
	// MaxQueue is the most bytes a connection may have waiting to be sent
	// (default 1 MiB); a client that falls further behind is disconnected
	// with close code 1008 and resumes from the store.
	MaxQueue int
	// MaxBacklog is the most bytes of one connection's frames that may wait
	// behind a frame that blocks (a durable send, a history or search
	// read), in the order they came (default 4 MiB); a client that sends
	// more before they are handled is closed with code 1008, and the frames
	// that waited are dropped unanswered.
	MaxBacklog int
	// MaxConns caps live WebSocket connections on this node (default
	// 200000); past it, upgrades get HTTP 503.
	MaxConns int
	// RateLimit is how many frames per second a connection may send
	// (default 1000), RateBurst how many at once (default 2000); frames
	// beyond it get a rate_limited error and are dropped. Negative
	// RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// Compression offers permessage-deflate (RFC 7692, no context
	// takeover) to clients that ask for it. Off by default: it trades CPU
	// for bandwidth (docs/benchmarks.md has the cost).
	Compression bool
	// PingInterval is how often the server pings each connection (default
	// 25s); a connection silent (no frame, ping or pong) for 2.5 to 3
	// intervals is closed.
	PingInterval time.Duration
	// Pollers is how many event loops read the connections (default: one
	// per P but one, GOMAXPROCS-1, at least 1). Each handles its
	// connections' frames itself and blocks in epoll_wait holding a P; the
	// P left over runs the writers, the store's commits and the garbage
	// collector (docs/benchmarks.md, "One event loop").
	Pollers int

	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics records the server's measurements (give the hub the same
	// value); NewMetrics(nil) when nil.
	Metrics *Metrics
}

func (c *Config) defaults() error {
	if c.Hub == nil || c.Auth == nil {
		return errors.New("server: Config needs Hub and Auth")
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 64 << 10
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 1 << 20
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = 4 << 20
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 200000
	}
	if c.RateLimit == 0 {
		c.RateLimit = 1000
	}
	if c.RateBurst <= 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.Pollers <= 0 {
		c.Pollers = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// A Server serves one hub over HTTP and WebSocket.
type Server struct {
	cfg      Config
	hub      *courier.Hub
	log      *slog.Logger
	engine   *nbhttp.Engine
	exec     *executor
	started  time.Time // when the poller was started
	upgrader *websocket.Upgrader
	metrics  *Metrics
	mux      *http.ServeMux
	conns    atomic.Int64
	stop     chan struct{}
	flushers []*flusher
	earlyMu  sync.Mutex                 // guards early
	early    map[*websocket.Conn]*early // connections upgraded but not yet given a link
	nextFl   atomic.Uint32
	workers  sync.WaitGroup // the pinger and the flushers
	ready    atomic.Bool
}

// New returns a Server and starts its poller. Call Close to stop it.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, hub: cfg.Hub, log: cfg.Logger, stop: make(chan struct{})}
	s.metrics = cfg.Metrics
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	setNBIOLogger(s.log)
	s.exec = newExecutor()
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		ServerExecutor:          inline,
		NPoller:                 cfg.Pollers,
		ReleaseWebsocketPayload: true,
		ReadBufferSize:          16 << 10,
	})
	// Every link counts what the kernel took, to bound its queue.
	s.engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if ws, ok := c.Session().(*websocket.Conn); ok {
			if l, ok := ws.Session().(*link); ok {
				l.onWritten(n)
			}
		}
	})
	if err := s.engine.Start(); err != nil {
		s.exec.close()
		return nil, fmt.Errorf("start poller: %w", err)
	}
	s.started = time.Now()
	s.upgrader = s.newUpgrader()
	s.mux = s.routes()
	for range max(1, runtime.GOMAXPROCS(0)) {
		f := newFlusher()
		s.flushers = append(s.flushers, f)
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			f.run(s.stop)
		}()
	}
	s.workers.Add(1)
	go s.pinger()
	s.ready.Store(true)
	return s, nil
}

// inline is nbio's executor: a connection's jobs (its frames, its close) run
// on the poller that read them, which hands the ones that may block to a
// worker itself (backlog.go).
func inline(f func()) { f() }

// Handler returns the server's HTTP handler, to mount on any net/http server.
func (s *Server) Handler() http.Handler { return s.mux }

// Shutdown closes every WebSocket connection with close code 1012 (service
// restart) and waits, until ctx ends, for them to go.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.hub.CloseAll(courier.CloseServiceRestart, "server shutting down")
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Close stops the poller and the pinger; connections still open are cut.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.workers.Wait()
	// nbio's pollers clear their stop flag when their loop begins: a Stop
	// that comes first is lost, and Stop then waits forever on a poller
	// spinning on its wake-up event. Give a poller started just now time to
	// get going (only servers closed right after they start ever wait).
	time.Sleep(time.Until(s.started.Add(100 * time.Millisecond)))
	s.engine.Stop()
	s.exec.close()
	return nil
}

// pinger pings every connection each PingInterval, so that browsers (which
// never ping) keep their connection alive, and closes the connections it
// has not heard from in 2.5 to 3 intervals (dead peers, and clients that
// never answer); it also closes connections whose token has expired. It
// looks every half interval.
func (s *Server) pinger() {
	defer s.workers.Done()
	t := time.NewTicker(s.cfg.PingInterval / 2)
	defer t.Stop()
	ping := []byte{0x89, 0}
	for tick := 1; ; tick++ {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.hub.Range(func(c *courier.Conn) bool {
				l := c.Link().(*link)
				if exp := c.Identity().Expires; !exp.IsZero() && now.After(exp) {
					l.Close(CloseTokenExpired, "token expired")
					return true
				}
				if l.heard.Swap(false) {
					l.silent = 0
				} else if l.silent++; l.silent >= silentLooks {
					s.log.Debug("closing a silent connection", c.LogAttrs()...)
					_ = l.ws.Close()
					return true
				}
				if tick%2 == 0 {
					l.write(ping)
				}
				return true
			})
		}
	}
}

// silentLooks is how many half-interval looks in a row must find nothing
// heard from a connection before the pinger closes it: the silence then
// lasted at least 2.5 intervals.
const silentLooks = 6

// CloseTokenExpired is the close code of a connection whose token expired.
const CloseTokenExpired = 4003
