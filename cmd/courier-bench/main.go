// Command courier-bench is courier's load generator: it runs one scenario
// (idle, dm, room or reconnect) against a courier server or the Socket.IO
// peer on this machine, prints a human summary on stderr and exactly one
// JSON line with the results on stdout.
//
//	courier-bench --url ws://127.0.0.1:8080 --secret S --scenario dm --users 1000 --duration 10s
//
// Every run is bounded: by its own flags (counts, --duration, --settle,
// --drain) and by --timeout, after which it gives up. It only connects to
// loopback addresses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lesismal/nbio/logging"

	"github.com/courier-im/courier/bench/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Upper bounds on counts, so that a typo cannot start a runaway run.
const (
	maxConns   = 1_000_000
	maxUsers   = 200_000
	maxBacklog = 100_000
)

type options struct {
	target, url, secret, apiKey, scenario string
	cpuProfile                            string
	pid, dialConc, sources                int
	quiet                                 bool
	timeout, waitQuiet                    time.Duration
	cfg                                   load.Config
}

func flags(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("courier-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.target, "target", "courier", "server kind: courier or socketio")
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080", "server base URL (loopback only)")
	fs.StringVar(&o.secret, "secret", os.Getenv("COURIER_JWT_SECRET"), "courier: JWT secret to mint tokens with (default $COURIER_JWT_SECRET)")
	fs.StringVar(&o.apiKey, "api-key", os.Getenv("COURIER_API_KEY"), "courier: server API key, for reconnect (default $COURIER_API_KEY)")
	fs.StringVar(&o.scenario, "scenario", "", "idle, dm, room or reconnect")
	fs.IntVar(&o.pid, "pid", 0, "server pid for /proc measurements; 0: the process listening on the URL's port")
	fs.IntVar(&o.dialConc, "dial-concurrency", 64, "connects in flight at once")
	fs.IntVar(&o.sources, "sources", 0, "local addresses 127.0.0.10… to dial from; 0: one per 10000 idle connections")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.DurationVar(&o.waitQuiet, "wait-quiet", 0, "first wait up to this long for a second in which the machine is less than 0.25 cores busy")
	c := &o.cfg
	fs.IntVar(&c.Conns, "conns", 1000, "idle: connections")
	fs.DurationVar(&c.Settle, "settle", 5*time.Second, "idle: wait after the last connect before measuring")
	fs.IntVar(&c.Users, "users", 100, "dm: users, one connection each")
	fs.IntVar(&c.Rooms, "rooms", 10, "room: rooms")
	fs.IntVar(&c.Members, "members", 100, "room: members per room (one publishes)")
	fs.BoolVar(&c.Durable, "durable", false, "dm, room: durable (stored) messages instead of volatile ones")
	fs.Float64Var(&c.Rate, "rate", 0, "dm: total messages/s; room: messages/s per room; 0: windowed, as fast as acks allow")
	fs.IntVar(&c.Window, "window", 0, "dm, room: messages in flight per sender (default 8; in rate mode a cap, default 256)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "dm, room: how long to send")
	fs.IntVar(&c.Size, "size", 64, "dm, room, reconnect: payload bytes (at least 20)")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "dm, room: how long to wait for the last acks and deliveries")
	fs.IntVar(&c.Clients, "clients", 1000, "reconnect: clients")
	fs.IntVar(&c.Backlog, "backlog", 10, "reconnect: messages per client while connected")
	fs.IntVar(&c.Down, "down", 0, "reconnect: messages per client while disconnected (default --backlog)")
	return fs, o
}

func run(args []string, stdout, stderr io.Writer) int {
	fs, o := flags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "courier-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(stderr, "courier-bench:", err)
		return 2
	}
	// nbio logs to stdout by default; stdout is for the JSON line only.
	logging.Output = stderr
	logging.SetLevel(logging.LevelWarn)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A last resort if something ignores ctx.
	watchdog := time.AfterFunc(o.timeout+30*time.Second, func() {
		fmt.Fprintln(stderr, "courier-bench: watchdog: still running after --timeout, exiting")
		os.Exit(3)
	})
	defer watchdog.Stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "courier-bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "courier-bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if o.waitQuiet > 0 {
		waitQuiet(ctx, o.waitQuiet, stderr)
	}
	res, err := o.execute(ctx, stderr)
	if res != nil {
		summary(stderr, res)
		line, jerr := json.Marshal(res)
		if jerr != nil {
			fmt.Fprintln(stderr, "courier-bench:", jerr)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", line)
	}
	if err != nil {
		fmt.Fprintln(stderr, "courier-bench:", err)
		return 1
	}
	return 0
}

func (o *options) check() error {
	switch o.scenario {
	case "idle", "dm", "room", "reconnect":
	case "":
		return errors.New("--scenario is required (idle, dm, room or reconnect)")
	default:
		return fmt.Errorf("--scenario %q: want idle, dm, room or reconnect", o.scenario)
	}
	switch o.target {
	case "courier":
		if o.secret == "" {
			return errors.New("--secret (or COURIER_JWT_SECRET) is required for --target courier")
		}
		if o.scenario == "reconnect" && o.apiKey == "" {
			return errors.New("--api-key (or COURIER_API_KEY) is required for the reconnect scenario")
		}
	case "socketio":
		if o.scenario == "reconnect" {
			return errors.New("the reconnect scenario needs a server with a stored inbox: --target courier")
		}
	default:
		return fmt.Errorf("--target %q: want courier or socketio", o.target)
	}
	u, err := url.Parse(o.url)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url %q: want ws://HOST:PORT", o.url)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--url %q: only loopback servers are allowed", o.url)
	}
	c := &o.cfg
	switch {
	case c.Conns < 1 || c.Conns > maxConns:
		return fmt.Errorf("--conns must be 1..%d", maxConns)
	case c.Users < 2 || c.Users > maxUsers, c.Clients < 1 || c.Clients > maxUsers:
		return fmt.Errorf("--users must be 2..%d and --clients 1..%d", maxUsers, maxUsers)
	case c.Rooms < 1 || c.Members < 2 || c.Rooms*c.Members > maxUsers:
		return fmt.Errorf("--rooms × --members must be at most %d, with at least 2 members", maxUsers)
	case c.Backlog < 1 || c.Backlog > maxBacklog || c.Down < 0 || c.Down > maxBacklog:
		return fmt.Errorf("--backlog must be 1..%d and --down 0..%d", maxBacklog, maxBacklog)
	case c.Duration <= 0 || c.Duration > time.Hour || c.Settle < 0 || c.Settle > time.Hour || c.Drain > 10*time.Minute:
		return errors.New("--duration and --settle must be at most 1h, --drain at most 10m")
	case c.Size > 60000:
		return errors.New("--size must be at most 60000")
	case c.Rate < 0 || c.Window < 0:
		return errors.New("--rate and --window must not be negative")
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

func (o *options) execute(ctx context.Context, stderr io.Writer) (*load.Result, error) {
	cfg := o.cfg
	cfg.Scenario = o.scenario
	cfg.DialConcurrency = o.dialConc
	if !o.quiet {
		cfg.Log = stderr
	}
	u, _ := url.Parse(o.url)
	cfg.PID = o.pid
	if cfg.PID == 0 {
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			return nil, fmt.Errorf("--url %q has no port to find the server by; give --pid", o.url)
		}
		if cfg.PID, err = load.FindListener(port); err != nil {
			fmt.Fprintf(stderr, "courier-bench: %v; no server measurements from /proc (give --pid)\n", err)
		}
	}
	n := o.sources
	// One source address per 10000 connections: past that, the kernel's
	// search for a free ephemeral port slows connecting down (2500/s
	// instead of 4500/s at 19800 connections), and past about 28000 the
	// ports run out.
	if n == 0 && cfg.Scenario == "idle" && cfg.Conns > 10000 {
		n = (cfg.Conns + 9999) / 10000
	}
	var sources []net.IP
	var perSource int
	if n > 0 {
		sources = load.LoopbackSources(n)
		conns := map[string]int{"idle": cfg.Conns, "dm": cfg.Users, "room": cfg.Rooms * cfg.Members, "reconnect": cfg.Clients}[cfg.Scenario]
		perSource = (conns + n - 1) / n
	}
	switch o.target {
	case "courier":
		d, err := load.NewCourier(o.url, []byte(o.secret), o.apiKey)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		d.Sources, d.PerSource = sources, perSource
		cfg.Driver = d
		cfg.MetricsURL = d.MetricsURL()
	case "socketio":
		d, err := load.NewSocketIO(o.url)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		d.Sources, d.PerSource = sources, perSource
		cfg.Driver = d
	}
	return load.Run(ctx, cfg)
}

// waitQuiet waits, up to limit, for a second in which the machine's cores
// are less than 0.25 busy in total, so that a run does not share the CPU
// with leftovers of another.
func waitQuiet(ctx context.Context, limit time.Duration, stderr io.Writer) {
	deadline := time.Now().Add(limit)
	for {
		b0 := load.MachineBusy()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		busy := load.MachineBusy() - b0
		if busy < 0.25 {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "courier-bench: the machine is still %.2f cores busy after --wait-quiet %s; running anyway\n", busy, limit)
			return
		}
	}
}

// summary writes the human-readable part of a result.
func summary(w io.Writer, r *load.Result) {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s %s", r.Target, r.Scenario)
	if r.ServerPID > 0 {
		fmt.Fprintf(&b, " (server pid %d)", r.ServerPID)
	}
	b.WriteString("\n")
	if i := r.IdleResult; i != nil {
		fmt.Fprintf(&b, "connections   %d of %d in %.2fs (%.0f/s), %d dial errors, %d dropped while idle\n", i.Connected, i.Conns, i.ConnectS, i.ConnectsPerS, i.DialErrors, i.Dropped)
		fmt.Fprintf(&b, "server RSS    %d → %d KiB: %.2f KiB per connection", i.ServerRSSBeforeKiB, i.ServerRSSAfterKiB, i.ServerKiBPerConn)
		if i.ServerHeapKiBConn != nil {
			fmt.Fprintf(&b, " (Go heap %.2f KiB)", *i.ServerHeapKiBConn)
		}
		b.WriteString("\n")
		if i.ServerGoroutinesB != nil && i.ServerGoroutinesA != nil {
			fmt.Fprintf(&b, "goroutines    %.0f → %.0f\n", *i.ServerGoroutinesB, *i.ServerGoroutinesA)
		}
		fmt.Fprintf(&b, "generator RSS %d → %d KiB: %.2f KiB per connection\n", i.GenRSSBeforeKiB, i.GenRSSAfterKiB, i.GenKiBPerConn)
	}
	if f := r.FlowResult; f != nil {
		kind := "volatile"
		if f.Durable {
			kind = "durable"
		}
		fmt.Fprintf(&b, "load          %s, %s mode (rate %g, window %d), %d-byte payloads, %.1fs\n", kind, f.Mode, f.Rate, f.Window, f.Size, f.DurationS)
		fmt.Fprintf(&b, "messages      sent %d, acked %d, ack errors %d, unacked %d, send errors %d, skipped %d\n", f.Sent, f.Acked, f.AckErrors, f.Unacked, f.SendErrors, f.Skipped)
		fmt.Fprintf(&b, "deliveries    %d of %d expected, lost %d, extra %d, seq errors %d, dropped conns %d\n", f.Delivered, f.Expected, f.Lost, f.Extra, f.SeqErrors, f.Dropped)
		fmt.Fprintf(&b, "throughput    %.0f deliveries/s over %.2fs\n", f.DeliveredPS, f.ElapsedS)
		fmt.Fprintf(&b, "latency ms    p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", f.LatP50ms, f.LatP90ms, f.LatP99ms, f.LatMaxms)
		fmt.Fprintf(&b, "server CPU    %.2fs: %.0f deliveries per CPU-second\n", f.ServerCPUs, f.PerServerCPU)
		fmt.Fprintf(&b, "generator CPU %.2fs: %.2f µs per delivery\n", f.GenCPUs, f.GenUsPerMsg)
		fmt.Fprintf(&b, "other CPU     %.2f cores busy with something else\n", f.OtherCores)
	}
	if c := r.ReconnectResult; c != nil {
		fmt.Fprintf(&b, "clients       %d, backlog %d + %d while down (%d API sends, %d errors, %.0f/s)\n", c.Clients, c.Backlog, c.Down, c.APISends, c.APIErrors, c.APISendPS)
		fmt.Fprintf(&b, "reconnect     all dialed in %.3fs, all caught up in %.3fs (%d/%d)\n", c.ReconnectS, c.CatchupS, c.CaughtUp, c.Clients)
		fmt.Fprintf(&b, "check         received %d of %d, gaps %d, dups %d, missing %d: verified %v\n", c.Received, c.Expected, c.Gaps, c.Dups, c.Missing, c.Verified)
		fmt.Fprintf(&b, "CPU           server %.2fs, generator %.2fs\n", c.ServerCPUs, c.GenCPUs)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "error         %s\n", r.Error)
	}
	_, _ = io.WriteString(w, b.String())
}
