// Command courier-bench is courier's load generator: it runs one scenario
// (idle, dm, room or reconnect) against a courier server or the Socket.IO
// peer on this machine, prints a human summary on stderr and exactly one
// JSON line with the results on stdout.
//
//	courier-bench --url ws://127.0.0.1:8080 --secret S --scenario dm --users 1000 --duration 10s
//
// Against courier it speaks JSON or MessagePack (--encoding), with or
// without permessage-deflate (--compress), to one node or, with a
// comma-separated --url, to the nodes of a cluster in turn.
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
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
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
	cpuProfile, encoding                  string
	serverPprof, serverProfile            string
	pids                                  pidList
	dialConc, sources                     int
	quiet, compress                       bool
	timeout, waitQuiet                    time.Duration
	cfg                                   load.Config
}

// pidList is a comma-separated list of process ids.
type pidList []int

func (p *pidList) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p *pidList) Set(v string) error {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a process id", f)
		}
		if n > 0 {
			out = append(out, n)
		}
	}
	*p = out
	return nil
}

func flags(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("courier-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.target, "target", "courier", "server kind: courier or socketio")
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080", "server base URL (loopback only); courier: a comma-separated list of a cluster's nodes, which get the connections in turn")
	fs.StringVar(&o.secret, "secret", os.Getenv("COURIER_JWT_SECRET"), "courier: JWT secret to mint tokens with (default $COURIER_JWT_SECRET)")
	fs.StringVar(&o.apiKey, "api-key", os.Getenv("COURIER_API_KEY"), "courier: server API key, for reconnect (default $COURIER_API_KEY)")
	fs.StringVar(&o.scenario, "scenario", "", "idle, dm, room or reconnect")
	fs.Var(&o.pids, "server-pid", "server pid for /proc measurements (CPU, RSS), or a comma-separated list for a cluster, added up; none: the processes listening on the URLs' ports")
	fs.Var(&o.pids, "pid", "same as --server-pid")
	fs.StringVar(&o.encoding, "encoding", load.EncodingJSON, "courier: frame encoding, json or msgpack (the courier.msgpack subprotocol)")
	fs.BoolVar(&o.compress, "compress", false, "courier: negotiate permessage-deflate (the server must run with --compress); inflate what arrives, compress sends of 256 bytes or more")
	fs.IntVar(&o.dialConc, "dial-concurrency", 64, "connects in flight at once")
	fs.IntVar(&o.sources, "sources", 0, "local addresses 127.0.0.10… to dial from; 0: one per 10000 idle connections")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	fs.StringVar(&o.serverPprof, "server-pprof", "", "dm, room: HOST:PORT of the server's --pprof-addr, to take its CPU profile while the messages flow (--server-profile)")
	fs.StringVar(&o.serverProfile, "server-profile", "", "dm, room: write the server's CPU profile over the sending time (--duration) to this file; needs --server-pprof")
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
	fs.StringVar(&c.Fill, "fill", load.FillX, "what pads a payload after its time stamp: x (compresses to nearly nothing), text (English words) or random (letters and digits)")
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
	var profiled chan error
	if o.serverProfile != "" {
		profiled = make(chan error, 1)
		o.cfg.Sending = func() {
			go func() { profiled <- serverProfile(ctx, o.serverPprof, o.cfg.Duration, o.serverProfile) }()
		}
	}
	res, err := o.execute(ctx, stderr)
	if profiled != nil {
		select {
		case perr := <-profiled:
			if perr != nil {
				fmt.Fprintln(stderr, "courier-bench: server profile:", perr)
			} else {
				fmt.Fprintln(stderr, "courier-bench: server CPU profile in", o.serverProfile)
			}
		case <-ctx.Done():
		}
	}
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
		if o.encoding != load.EncodingJSON || o.compress {
			return errors.New("--encoding and --compress are courier options")
		}
	default:
		return fmt.Errorf("--target %q: want courier or socketio", o.target)
	}
	switch o.encoding {
	case load.EncodingJSON, load.EncodingMsgpack:
	default:
		return fmt.Errorf("--encoding %q: want json or msgpack", o.encoding)
	}
	urls := load.SplitURLs(o.url)
	if len(urls) == 0 {
		return fmt.Errorf("--url %q: want ws://HOST:PORT", o.url)
	}
	if len(urls) > 1 && o.target != "courier" {
		return errors.New("--url: a list of nodes needs --target courier")
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--url %q: want ws://HOST:PORT", s)
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--url %q: only loopback servers are allowed", s)
		}
	}
	c := &o.cfg
	switch c.Fill {
	case load.FillX, load.FillText, load.FillRandom:
	default:
		return fmt.Errorf("--fill %q: want x, text or random", c.Fill)
	}
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
	case (o.serverPprof == "") != (o.serverProfile == ""):
		return errors.New("--server-pprof and --server-profile go together")
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
	cfg.PIDs = o.pids
	if len(cfg.PIDs) == 0 {
		for _, s := range load.SplitURLs(o.url) {
			u, _ := url.Parse(s)
			port, err := strconv.Atoi(u.Port())
			if err != nil {
				return nil, fmt.Errorf("--url %q has no port to find the server by; give --server-pid", s)
			}
			pid, err := load.FindListener(port)
			if err != nil {
				fmt.Fprintf(stderr, "courier-bench: %v; no server measurements from /proc (give --server-pid)\n", err)
				cfg.PIDs = nil
				break
			}
			if !slices.Contains(cfg.PIDs, pid) {
				cfg.PIDs = append(cfg.PIDs, pid)
			}
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
		d.Encoding, d.Compress = o.encoding, o.compress
		cfg.Driver = d
		cfg.MetricsURLs = d.MetricsURLs()
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

// serverProfile saves the server's CPU profile over the next d (whole
// seconds, at least one) from its pprof endpoint at addr.
func serverProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(int(d.Seconds()), 1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", req.URL, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
	if r.Encoding != "" {
		fmt.Fprintf(&b, ", %s", r.Encoding)
	}
	if r.Compress {
		b.WriteString(", permessage-deflate")
	}
	switch {
	case r.ServerPID > 0:
		fmt.Fprintf(&b, " (server pid %d)", r.ServerPID)
	case len(r.ServerPIDs) > 0:
		fmt.Fprintf(&b, " (server pids %v, added up)", r.ServerPIDs)
	}
	b.WriteString("\n")
	if len(r.ConnsPerURL) > 0 {
		b.WriteString("connections  ")
		for _, u := range slices.Sorted(maps.Keys(r.ConnsPerURL)) {
			fmt.Fprintf(&b, " %s: %d", u, r.ConnsPerURL[u])
		}
		b.WriteString("\n")
	}
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
		if f.Late > 0 {
			fmt.Fprintf(&b, "generator     fell behind its schedule: %d sends dropped (%.1f%%); it, not the server, limited this run\n", f.Late, 100*float64(f.Late)/float64(f.Late+f.Sent))
		}
		fmt.Fprintf(&b, "deliveries    %d of %d expected, lost %d, extra %d, seq errors %d, dropped conns %d\n", f.Delivered, f.Expected, f.Lost, f.Extra, f.SeqErrors, f.Dropped)
		fmt.Fprintf(&b, "throughput    %.0f deliveries/s over %.2fs\n", f.DeliveredPS, f.ElapsedS)
		fmt.Fprintf(&b, "latency ms    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", f.LatP50ms, f.LatP90ms, f.LatP99ms, f.LatP999ms, f.LatMaxms)
		fmt.Fprintf(&b, "server CPU    %.2fs: %.0f deliveries per CPU-second\n", f.ServerCPUs, f.PerServerCPU)
		fmt.Fprintf(&b, "generator CPU %.2fs: %.2f µs per delivery\n", f.GenCPUs, f.GenUsPerMsg)
		fmt.Fprintf(&b, "other CPU     %.2f cores busy with something else\n", f.OtherCores)
		if f.WireIn > 0 {
			fmt.Fprintf(&b, "wire bytes    %d in (%.1f per delivery), %d out\n", f.WireIn, f.WireInPerDelivery, f.WireOut)
		}
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
