package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	Driver   Driver
	Scenario string // idle, dm, room or reconnect

	// PID is the server's process id for /proc measurements (RSS, CPU);
	// 0 measures nothing there.
	PID int
	// PIDs are the process ids of every node of a cluster, whose RSS and
	// CPU are added up; when set, PID is ignored.
	PIDs []int
	// MetricsURL is the server's Prometheus endpoint (goroutines,
	// connections); empty when it has none.
	MetricsURL string
	// MetricsURLs are every node's endpoints, whose samples are added up;
	// when set, MetricsURL is ignored.
	MetricsURLs []string
	// Log gets progress lines; nil discards them.
	Log io.Writer
	// Prefix starts every user and room name (default: random per run, so
	// runs against one store never share an inbox).
	Prefix string
	// DialConcurrency is how many connects run at once (default 64).
	DialConcurrency int
	// Sending, when set, is called in the dm and room scenarios as the
	// measured sending starts (to profile the server over that time).
	Sending func()

	// idle
	Conns  int           // connections to open
	Settle time.Duration // wait after the last connect before measuring (default 5s)

	// dm and room
	Users    int     // dm: users, one connection each
	Rooms    int     // room: rooms
	Members  int     // room: members per room, one connection each; member 0 publishes
	Durable  bool    // stored messages (courier) instead of volatile ones
	Rate     float64 // messages per second in total (dm) or per room (room); 0: as fast as Window allows
	Window   int     // messages in flight per sender (default 8; a cap of 256 in rate mode)
	Duration time.Duration
	Size     int           // payload bytes (default 64, at least 20)
	Fill     string        // what pads a payload after its time stamp: FillX (default), FillText or FillRandom
	Drain    time.Duration // how long to wait for the last acks and deliveries (default 5s)

	// reconnect
	Clients int // clients, one user each
	Backlog int // messages per client sent while connected (default 10)
	Down    int // messages per client sent while disconnected (default Backlog)
}

// APISender is a Driver that can also send through the server's API, as
// an application backend does (courier: POST /api/send). The reconnect
// scenario needs it.
type APISender interface {
	APISend(ctx context.Context, user string, payload []byte) (seq uint64, err error)
}

// Result is what a run measured; it is written as one JSON line. Only the
// part of the scenario that ran is present.
type Result struct {
	Target   string `json:"target"`
	Scenario string `json:"scenario"`
	// Encoding and Compress are what the connections negotiated (courier:
	// "json" or "msgpack", permessage-deflate or not).
	Encoding string `json:"encoding,omitempty"`
	Compress bool   `json:"compress,omitempty"`
	// One of these is set; its fields follow Compress in the JSON.
	*IdleResult      `json:"-"`
	*FlowResult      `json:"-"`
	*ReconnectResult `json:"-"`
	ServerPID        int `json:"server_pid,omitempty"`
	GoMaxProc        int `json:"gen_gomaxprocs"`
	// ServerPIDs and ConnsPerURL are set for a cluster: the nodes whose
	// CPU and memory were added up, and how many connections each got.
	ServerPIDs  []int            `json:"server_pids,omitempty"`
	ConnsPerURL map[string]int64 `json:"conns_per_url,omitempty"`
	Error       string           `json:"error,omitempty"`
}

// MarshalJSON writes one flat object: target and scenario, the scenario's
// fields, then the rest.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	head, err := json.Marshal((*plain)(r))
	if err != nil {
		return nil, err
	}
	var part any
	switch {
	case r.IdleResult != nil:
		part = r.IdleResult
	case r.FlowResult != nil:
		part = r.FlowResult
	case r.ReconnectResult != nil:
		part = r.ReconnectResult
	default:
		return head, nil
	}
	body, err := json.Marshal(part)
	if err != nil {
		return nil, err
	}
	// head is {"target":…,"scenario":…,REST}: put body's fields after scenario.
	i := bytes.Index(head, []byte(`,"server_pid"`))
	if i < 0 {
		i = bytes.Index(head, []byte(`,"gen_gomaxprocs"`))
	}
	if len(body) <= 2 || i < 0 {
		return head, nil
	}
	out := make([]byte, 0, len(head)+len(body))
	out = append(out, head[:i]...)
	out = append(append(out, ','), body[1:len(body)-1]...)
	return append(out, head[i:]...), nil
}

// IdleResult is the idle scenario's part of a Result.
type IdleResult struct {
	Conns              int      `json:"conns"`
	Connected          int      `json:"connected"`
	DialErrors         int      `json:"dial_errors"`
	FirstDialError     string   `json:"first_dial_error,omitempty"`
	ConnectS           float64  `json:"connect_s"`
	ConnectsPerS       float64  `json:"connects_per_s"`
	SettleS            float64  `json:"settle_s"`
	Dropped            int64    `json:"dropped"`
	ServerRSSBeforeKiB int64    `json:"server_rss_before_kib"`
	ServerRSSAfterKiB  int64    `json:"server_rss_after_kib"`
	ServerKiBPerConn   float64  `json:"server_kib_per_conn"`
	ServerGoroutinesB  *float64 `json:"server_goroutines_before,omitempty"`
	ServerGoroutinesA  *float64 `json:"server_goroutines_after,omitempty"`
	ServerHeapKiBConn  *float64 `json:"server_heap_kib_per_conn,omitempty"`
	ServerConnsGauge   *float64 `json:"server_connections,omitempty"`
	ServerNoFile       uint64   `json:"server_rlimit_nofile,omitempty"`
	GenRSSBeforeKiB    int64    `json:"gen_rss_before_kib"`
	GenRSSAfterKiB     int64    `json:"gen_rss_after_kib"`
	GenKiBPerConn      float64  `json:"gen_kib_per_conn"`
	GenNoFile          uint64   `json:"gen_rlimit_nofile"`
}

// FlowResult is the dm and room scenarios' part of a Result.
type FlowResult struct {
	Users      int     `json:"users,omitempty"`
	Rooms      int     `json:"rooms,omitempty"`
	Members    int     `json:"members,omitempty"`
	Durable    bool    `json:"durable"`
	Mode       string  `json:"mode"` // "window" or "rate"
	Rate       float64 `json:"rate,omitempty"`
	Window     int     `json:"window"`
	Size       int     `json:"size"`
	DurationS  float64 `json:"duration_s"`
	Sent       int64   `json:"sent"`
	Acked      int64   `json:"acked"`
	AckErrors  int64   `json:"ack_errors"`
	Unacked    int64   `json:"unacked"`
	SendErrors int64   `json:"send_errors"`
	Skipped    int64   `json:"skipped,omitempty"` // rate mode: sends due while the sender's window was full
	// Late counts, in rate mode, the sends the generator dropped because it
	// was more than 100 ms behind its schedule: anything but 0 means the
	// generator, not the server, limited the run.
	Late         int64   `json:"late,omitempty"`
	Expected     int64   `json:"expected"` // deliveries the acked messages owe
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	Extra        int64   `json:"extra"` // deliveries beyond Expected
	SeqErrors    int64   `json:"seq_errors"`
	Dropped      int64   `json:"dropped_conns"`
	ElapsedS     float64 `json:"elapsed_s"`
	DeliveredPS  float64 `json:"delivered_per_s"`
	LatP50ms     float64 `json:"lat_p50_ms"`
	LatP90ms     float64 `json:"lat_p90_ms"`
	LatP99ms     float64 `json:"lat_p99_ms"`
	LatP999ms    float64 `json:"lat_p999_ms"` // sees stalls too short or rare for p99
	LatMaxms     float64 `json:"lat_max_ms"`
	ServerCPUs   float64 `json:"server_cpu_s"`
	PerServerCPU float64 `json:"deliveries_per_server_cpu_s"`
	GenCPUs      float64 `json:"gen_cpu_s"`
	GenUsPerMsg  float64 `json:"gen_cpu_us_per_delivery"`
	// WireIn and WireOut are the WebSocket bytes the generator read and
	// wrote from the start of sending to the end of the drain;
	// WireInPerDelivery divides WireIn by the deliveries (acks and
	// other frames included).
	WireIn            int64   `json:"wire_in_bytes,omitempty"`
	WireOut           int64   `json:"wire_out_bytes,omitempty"`
	WireInPerDelivery float64 `json:"wire_in_bytes_per_delivery,omitempty"`
	// OtherCores is the CPU that neither the server nor the load generator
	// used during the run, in cores: anything well above 0 means the
	// numbers are disturbed by other load on the machine.
	OtherCores float64 `json:"other_cpu_cores"`
}

// ReconnectResult is the reconnect scenario's part of a Result.
type ReconnectResult struct {
	Clients      int     `json:"clients"`
	Backlog      int     `json:"backlog"`
	Down         int     `json:"down"`
	APISends     int64   `json:"api_sends"`
	APIErrors    int64   `json:"api_errors"`
	APISendPS    float64 `json:"api_sends_per_s"`
	ReconnectS   float64 `json:"reconnect_s"` // until every client has dialed again
	CatchupS     float64 `json:"catchup_s"`   // until every client has every message
	CaughtUp     int64   `json:"caught_up"`
	Received     int64   `json:"received"`
	Expected     int64   `json:"expected"`
	Gaps         int64   `json:"gaps"`
	Dups         int64   `json:"dups"`
	Missing      int64   `json:"missing"`
	DialErrors   int     `json:"dial_errors"`
	Verified     bool    `json:"verified"`
	ServerCPUs   float64 `json:"server_cpu_s"`
	ReplayPerCPU float64 `json:"replayed_per_server_cpu_s"`
	GenCPUs      float64 `json:"gen_cpu_s"`
}

// Run runs cfg's scenario. The Result is filled as far as the run got,
// also when it returns an error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.PIDs) == 0 && cfg.PID > 0 {
		cfg.PIDs = []int{cfg.PID}
	}
	if len(cfg.MetricsURLs) == 0 && cfg.MetricsURL != "" {
		cfg.MetricsURLs = []string{cfg.MetricsURL}
	}
	res := &Result{Scenario: cfg.Scenario, GoMaxProc: runtime.GOMAXPROCS(0)}
	if len(cfg.PIDs) == 1 {
		res.ServerPID = cfg.PIDs[0]
	} else {
		res.ServerPIDs = cfg.PIDs
	}
	if cfg.Driver == nil {
		return res, errors.New("load: Config.Driver is nil")
	}
	res.Target = cfg.Driver.Name()
	if wr, ok := cfg.Driver.(WireReporter); ok {
		defer func() {
			w := wr.Wire()
			res.Encoding, res.Compress, res.ConnsPerURL = w.Encoding, w.Compress, w.ConnsPerURL
		}()
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Prefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Prefix = "b" + hex.EncodeToString(b[:]) + "-"
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = 64
	}
	cfg.Size = max(cfg.Size, 20)
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	var err error
	switch cfg.Scenario {
	case "idle":
		res.IdleResult = &IdleResult{}
		err = runIdle(ctx, &cfg, res.IdleResult)
	case "dm", "room":
		res.FlowResult = &FlowResult{}
		err = runFlow(ctx, &cfg, res.FlowResult)
	case "reconnect":
		res.ReconnectResult = &ReconnectResult{}
		err = runReconnect(ctx, &cfg, res.ReconnectResult)
	default:
		err = fmt.Errorf("load: unknown scenario %q (want idle, dm, room or reconnect)", cfg.Scenario)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

func logf(cfg *Config, format string, a ...any) {
	fmt.Fprintf(cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
}

// dialAll connects n users (name(i)) with cfg.DialConcurrency dials at a
// time; a failed dial leaves a nil Client. ok, when not nil, counts the
// connections made.
func dialAll(ctx context.Context, cfg *Config, n int, name func(int) string, since func(int) uint64, handler func(int) Handler, ok *atomic.Int64) (clients []Client, errs int, first error) {
	clients = make([]Client, n)
	// Give up after a few failures: on loopback they mean a limit (file
	// descriptors, ports, the server's --max-conns), and each may cost a
	// timeout.
	maxErrs := max(10, n/1000)
	var next atomic.Int64
	var mu sync.Mutex
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(cfg.DialConcurrency, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || failed.Load() {
					return
				}
				var s uint64
				if since != nil {
					s = since(i)
				}
				c, err := cfg.Driver.Dial(ctx, name(i), s, handler(i))
				if err != nil {
					mu.Lock()
					errs++
					if first == nil {
						first = err
					}
					if errs >= maxErrs {
						failed.Store(true)
					}
					mu.Unlock()
					continue
				}
				clients[i] = c
				if ok != nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil && first == nil {
		first = ctx.Err()
	}
	// Count the connects never tried as failed.
	errs = n
	for _, c := range clients {
		if c != nil {
			errs--
		}
	}
	return clients, errs, first
}

func closeAll(clients []Client) {
	var wg sync.WaitGroup
	const par = 16
	for k := range par {
		wg.Go(func() {
			for i := k; i < len(clients); i += par {
				if clients[i] != nil {
					_ = clients[i].Close()
				}
			}
		})
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitFor polls cond every tick until it holds, the timeout passes or ctx
// ends; it reports whether cond held.
func waitFor(ctx context.Context, timeout, tick time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || sleepCtx(ctx, tick) != nil {
			return cond()
		}
	}
	return true
}

// genRSS returns this process's RSS after a GC that returns free memory
// to the OS, so that it counts what is live.
func genRSS() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	kib, _ := RSSKiB(0)
	return kib
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// putStamp renews the time in b, a payload made by Stamp, without
// allocating.
func putStamp(b []byte) {
	n := time.Now().UnixNano()
	for i := 18; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}
