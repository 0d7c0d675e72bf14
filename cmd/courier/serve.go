package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
	"github.com/courier-im/courier/web"
	"github.com/courier-im/courier/webhook"
)

type serveConfig struct {
	addr, data, jwtSecret, apiKey, logLevel, pprofAddr string
	store, broker, clusterName, sqliteSync             string
	webhook                                            webhook.Config
	hub                                                courier.Config
	dev                                                bool
	srv                                                server.Config
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveConfig) {
	c := &serveConfig{}
	fs := flag.NewFlagSet("courier serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port)")
	fs.StringVar(&c.data, "data", "./courier-data", "directory for the embedded SQLite store; created when missing")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "HS256 secret that signs client tokens (required unless --dev)")
	fs.StringVar(&c.apiKey, "api-key", "", "key the server API requires as a Bearer token (required unless --dev)")
	fs.BoolVar(&c.dev, "dev", false, "development mode: made-up secrets, /dev/token, the demo page")
	fs.IntVar(&c.srv.MaxMessage, "max-message", 64<<10, "largest WebSocket message or API body in bytes; larger messages close the connection with 1009")
	fs.IntVar(&c.srv.MaxQueue, "max-queue", 1<<20, "bytes a connection may have waiting to be sent before it is closed as a slow consumer (1008)")
	fs.IntVar(&c.srv.MaxBacklog, "max-backlog", 4<<20, "bytes of one connection's frames that may wait behind a slow one (a durable send, a history read); more close it with 1008")
	fs.IntVar(&c.srv.MaxConns, "max-conns", 200000, "most WebSocket connections on this node; more get HTTP 503")
	fs.Float64Var(&c.srv.RateLimit, "rate", 1000, "frames per second a connection may send (negative: no limit)")
	fs.IntVar(&c.srv.RateBurst, "rate-burst", 2000, "frames a connection may send at once above --rate")
	fs.DurationVar(&c.srv.PingInterval, "ping-interval", 25*time.Second, "how often connections are pinged; a connection silent for 2.5 to 3 intervals is closed")
	fs.IntVar(&c.srv.Pollers, "pollers", 0, "event loops that read and handle connections (0: GOMAXPROCS-1, at least 1)")
	fs.BoolVar(&c.srv.Compression, "compress", false, "offer permessage-deflate to clients that ask (costs CPU; see docs/benchmarks.md)")
	fs.StringVar(&c.store, "store", "", "shared store for a cluster: postgres://USER@HOST:PORT/DB (default: SQLite in --data)")
	fs.StringVar(&c.sqliteSync, "sqlite-sync", "full", "durability of the embedded SQLite store's commits: full (fsync at each commit: survives power loss) or normal (survives a crash of the process, not of the OS)")
	fs.StringVar(&c.broker, "broker", "", "broker joining the nodes of a cluster: nats://HOST:PORT or redis://HOST:PORT (default: a single node)")
	fs.StringVar(&c.clusterName, "cluster-name", "courier", "name of the cluster on the broker; nodes with the same broker and name form one cluster")
	fs.IntVar(&c.hub.MaxBatch, "max-batch", courier.DefaultMaxBatch, "most durable messages one store commit takes")
	fs.IntVar(&c.hub.MaxStoreQueue, "max-store-queue", courier.DefaultMaxStoreQueue, "bytes of durable messages that may wait for, or be in, a store commit; more wait for room")
	fs.IntVar(&c.hub.MaxWatches, "max-watches", courier.DefaultMaxWatches, "users one connection may watch for presence changes")
	fs.BoolVar(&c.hub.RoomsRequireClaim, "rooms-require-claim", false, "refuse every room to tokens without a rooms claim (by default they may join any room)")
	fs.DurationVar(&c.hub.Retention, "retention", 0, "delete messages older than this (at least 24h, e.g. 720h); 0 keeps them forever")
	fs.StringVar(&c.webhook.URL, "webhook-url", "", "POST offline_message notifications here when a user with no live connection gets a durable message")
	fs.StringVar(&c.webhook.Secret, "webhook-secret", "", "HMAC-SHA256 key of the webhook's X-Courier-Signature header (prefer COURIER_WEBHOOK_SECRET)")
	fs.IntVar(&c.webhook.Queue, "webhook-queue", webhook.DefaultQueue, "webhook notifications waiting to be sent; more are dropped and counted")
	fs.IntVar(&c.webhook.MaxAttempts, "webhook-attempts", webhook.DefaultMaxAttempts, "tries per webhook notification, the first included")
	fs.DurationVar(&c.webhook.Timeout, "webhook-timeout", webhook.DefaultTimeout, "time limit of one webhook request")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs, c
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs, c := serveFlags(stderr)
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintf(stderr, "courier serve: --log-level %q: want debug, info, warn or error\n", c.logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := runServer(c, log, stdout); err != nil {
		fmt.Fprintln(stderr, "courier serve:", err)
		return 1
	}
	return 0
}

// runServer runs the server until SIGTERM or SIGINT.
func runServer(c *serveConfig, log *slog.Logger, stdout io.Writer) error {
	// Check the secrets before anything is created on disk.
	if !c.dev && c.jwtSecret == "" {
		return errors.New("--jwt-secret (or COURIER_JWT_SECRET) is required; use --dev to try courier without one")
	}
	if !c.dev && c.apiKey == "" {
		return errors.New("--api-key (or COURIER_API_KEY) is required; use --dev to try courier without one")
	}
	if err := checkEngines(c); err != nil {
		return err
	}
	if (c.webhook.URL == "") != (c.webhook.Secret == "") {
		return errors.New("--webhook-url and --webhook-secret (or COURIER_WEBHOOK_SECRET) go together")
	}
	if c.hub.Retention < 0 || (c.hub.Retention > 0 && c.hub.Retention < 24*time.Hour) {
		// Idempotency keys go with their messages, and the contract
		// remembers them for at least 24 hours.
		return errors.New("--retention must be 0 (forever) or at least 24h: idempotency keys are kept as long as their messages, and at least 24 hours")
	}
	var notifier *webhook.Notifier
	if c.webhook.URL != "" {
		c.webhook.Logger = log
		var err error
		if notifier, err = webhook.New(c.webhook); err != nil {
			return err
		}
		c.hub.Offline = func(user string, m courier.Message) { notifier.Notify(user, m) }
	}
	// Catch the signals from the start: a SIGTERM during startup then
	// shuts down cleanly once the server runs instead of killing it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if c.dev {
		if err := devSecrets(c, log); err != nil {
			return err
		}
	}
	raiseFileLimit(c.srv.MaxConns, log)
	if runtime.GOMAXPROCS(0) < 2 {
		// nbio's pollers block in epoll_wait holding their P; with only
		// one P, every other goroutine then waits for the runtime to take
		// it back (up to 10-20 ms). A second P costs nothing on one core,
		// and the server then runs one poller (server.Config.Pollers).
		runtime.GOMAXPROCS(2)
	}
	store, err := openStore(c, log)
	if err != nil {
		return err
	}
	defer store.Close()
	broker, err := openBroker(c, log)
	if err != nil {
		return err
	}
	if broker != nil {
		defer broker.Close()
	}

	metrics := server.NewMetrics(nil)
	if notifier != nil {
		metrics.Webhook(notifier.Stats)
	}
	c.hub.Store, c.hub.Logger, c.hub.Metrics, c.hub.Broker = store, log, metrics, broker
	hub, err := courier.NewHub(c.hub)
	if err != nil {
		return err
	}
	secret := []byte(c.jwtSecret)
	c.srv.Hub, c.srv.Auth, c.srv.APIKey, c.srv.Logger, c.srv.Metrics = hub, jwt.New(secret), c.apiKey, log, metrics
	if c.dev {
		c.srv.DevToken = func(user string) (string, error) { return jwt.Mint(secret, user, 24*time.Hour, nil) }
		c.srv.DemoPage = web.Handler()
	}
	srv, err := server.New(c.srv)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if c.pprofAddr != "" {
		stopPprof, err := servePprof(c.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	log.Info("listening on "+ln.Addr().String(), "data", c.data, "dev", c.dev, "node", hub.Node(), "store", redact(c.store), "broker", redact(c.broker))

	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	// Stop accepting, close the clients with 1012, store what was accepted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("connections did not all close in time", "err", err)
	}
	if err := hub.Close(); err != nil {
		return fmt.Errorf("stop hub: %w", err)
	}
	if notifier != nil {
		// After the hub: messages stored during the shutdown still notify.
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := notifier.Close(wctx); err != nil {
			log.Warn("webhook notifications left unsent", "err", err)
		}
		wcancel()
	}
	if broker != nil {
		if err := broker.Close(); err != nil {
			log.Warn("close broker", "err", err)
		}
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// devSecrets makes up the secrets --dev lacks, keeping them in the data
// directory so that tokens stay valid across restarts.
func devSecrets(c *serveConfig, log *slog.Logger) error {
	for _, s := range []struct {
		val  *string
		file string
		flag string
	}{{&c.jwtSecret, "dev-jwt-secret", "--jwt-secret"}, {&c.apiKey, "dev-api-key", "--api-key"}} {
		if *s.val != "" {
			continue
		}
		path := filepath.Join(c.data, s.file)
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			*s.val = strings.TrimSpace(string(b))
		} else {
			var r [24]byte
			_, _ = rand.Read(r[:])
			*s.val = hex.EncodeToString(r[:])
			if err := os.WriteFile(path, []byte(*s.val+"\n"), 0o600); err != nil {
				return fmt.Errorf("keep dev secret: %w", err)
			}
		}
		log.Warn("development mode: made-up "+s.flag+"; do not use --dev in production", "file", path)
	}
	return nil
}
