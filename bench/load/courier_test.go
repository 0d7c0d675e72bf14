package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/server"
)

const (
	courierTestSecret = "bench-secret"
	courierTestAPIKey = "bench-api-key"
)

// startCourierNode runs a real courier node (SQLite store in a temp dir,
// hub, WebSocket server, HTTP listener on loopback), as cmd/courier wires
// it, and returns its ws:// base URL. The per-connection frame rate limit
// is off unless tweak sets one.
func startCourierNode(t testing.TB, tweak ...func(*server.Config)) string {
	t.Helper()
	noLimit := func(c *server.Config) { c.RateLimit = -1 }
	return testnode.Start(t, "", courierTestSecret, courierTestAPIKey, append([]func(*server.Config){noLimit}, tweak...)...).WS()
}

func newCourierDriver(t testing.TB, base string) *Courier {
	t.Helper()
	d, err := NewCourier(base, []byte(courierTestSecret), courierTestAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// runScenario runs cfg against a fresh node and logs the JSON result.
func runScenario(t *testing.T, cfg Config, tweak ...func(*server.Config)) *Result {
	t.Helper()
	base := startCourierNode(t, tweak...)
	d := newCourierDriver(t, base)
	cfg.Driver, cfg.MetricsURL, cfg.PID = d, d.MetricsURL(), os.Getpid()
	if testing.Verbose() {
		cfg.Log = testLog{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	line, _ := json.Marshal(res)
	t.Logf("%s", line)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestIdle(t *testing.T) {
	r := runScenario(t, Config{Scenario: "idle", Conns: 300, Settle: 300 * time.Millisecond}).IdleResult
	if r.Connected != 300 || r.DialErrors != 0 || r.Dropped != 0 {
		t.Fatalf("connected %d, dial errors %d, dropped %d", r.Connected, r.DialErrors, r.Dropped)
	}
	if r.ServerConnsGauge == nil || *r.ServerConnsGauge != 300 {
		t.Errorf("courier_connections = %v, want 300", r.ServerConnsGauge)
	}
	if r.ServerGoroutinesA == nil || *r.ServerGoroutinesA <= 0 {
		t.Errorf("go_goroutines not scraped: %v", r.ServerGoroutinesA)
	}
	if r.ServerRSSAfterKiB <= 0 || r.GenRSSAfterKiB <= 0 || r.ConnectsPerS <= 0 {
		t.Errorf("RSS %d / %d KiB, %g connects/s", r.ServerRSSAfterKiB, r.GenRSSAfterKiB, r.ConnectsPerS)
	}
}

// checkFlow asserts a dm or room run lost nothing and measured something.
func checkFlow(t *testing.T, r *FlowResult, fanout int64) {
	t.Helper()
	if r.Sent == 0 || r.Acked != r.Sent || r.AckErrors != 0 || r.SendErrors != 0 || r.Unacked != 0 {
		t.Errorf("sent %d, acked %d, ack errors %d, send errors %d, unacked %d", r.Sent, r.Acked, r.AckErrors, r.SendErrors, r.Unacked)
	}
	if r.Expected != r.Acked*fanout || r.Delivered != r.Expected || r.Lost != 0 || r.Extra != 0 {
		t.Errorf("expected %d, delivered %d, lost %d, extra %d", r.Expected, r.Delivered, r.Lost, r.Extra)
	}
	if r.SeqErrors != 0 || r.Dropped != 0 {
		t.Errorf("seq errors %d, dropped %d", r.SeqErrors, r.Dropped)
	}
	if r.LatP50ms <= 0 || r.LatP99ms < r.LatP50ms || r.LatP999ms < r.LatP99ms || r.LatMaxms < r.LatP999ms {
		t.Errorf("latency p50 %g p99 %g p99.9 %g max %g", r.LatP50ms, r.LatP99ms, r.LatP999ms, r.LatMaxms)
	}
	if r.DeliveredPS <= 0 || r.ServerCPUs <= 0 || r.PerServerCPU <= 0 || r.GenCPUs <= 0 || r.GenUsPerMsg <= 0 {
		t.Errorf("delivered/s %g, server CPU %g, per CPU %g, generator CPU %g, µs/msg %g", r.DeliveredPS, r.ServerCPUs, r.PerServerCPU, r.GenCPUs, r.GenUsPerMsg)
	}
}

func TestDMDurableWindow(t *testing.T) {
	r := runScenario(t, Config{Scenario: "dm", Users: 20, Durable: true, Window: 4, Duration: time.Second}).FlowResult
	checkFlow(t, r, 1)
	if r.Mode != "window" {
		t.Errorf("mode %q", r.Mode)
	}
}

func TestDMVolatileRate(t *testing.T) {
	r := runScenario(t, Config{Scenario: "dm", Users: 20, Rate: 400, Duration: time.Second, Size: 200}).FlowResult
	checkFlow(t, r, 1)
	if r.Mode != "rate" || r.Sent < 300 || r.Sent > 440 {
		t.Errorf("rate mode sent %d in 1s at 400/s", r.Sent)
	}
}

func TestRoom(t *testing.T) {
	for _, durable := range []bool{false, true} {
		r := runScenario(t, Config{Scenario: "room", Rooms: 3, Members: 5, Durable: durable, Window: 4, Duration: time.Second}).FlowResult
		checkFlow(t, r, 4)
	}
}

func TestRoomRate(t *testing.T) {
	r := runScenario(t, Config{Scenario: "room", Rooms: 2, Members: 4, Rate: 100, Duration: time.Second}).FlowResult
	checkFlow(t, r, 3)
	if r.Sent < 150 || r.Sent > 220 {
		t.Errorf("2 rooms at 100/s sent %d in 1s", r.Sent)
	}
}

func TestReconnect(t *testing.T) {
	r := runScenario(t, Config{Scenario: "reconnect", Clients: 30, Backlog: 5, Down: 7}).ReconnectResult
	if !r.Verified || r.Expected != 30*12 || r.Received != r.Expected || r.CaughtUp != 30 {
		t.Fatalf("not verified: %+v", r)
	}
	if r.CatchupS <= 0 || r.ReconnectS <= 0 {
		t.Errorf("catch-up %gs, reconnect %gs", r.CatchupS, r.ReconnectS)
	}
}

func TestScenarioErrors(t *testing.T) {
	d := newCourierDriver(t, "ws://127.0.0.1:1")
	for _, cfg := range []Config{
		{Scenario: "nope"},
		{Scenario: "dm", Users: 1, Duration: time.Second},
		{Scenario: "room", Rooms: 1, Members: 1, Duration: time.Second},
		{Scenario: "idle"},
	} {
		cfg.Driver = d
		if res, err := Run(context.Background(), cfg); err == nil || res.Error == "" {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestCourierDriver exercises the driver on its own: payloads that need
// escaping and long ones (16-bit length), acks with seqs, joins, a
// refused token and a server-side close.
func TestCourierDriver(t *testing.T) {
	base := startCourierNode(t)
	d := newCourierDriver(t, base)
	ctx := context.Background()
	type got struct {
		payload string
		seq     uint64
	}
	msgs := make(chan got, 16)
	acks := make(chan uint64, 16)
	closed := make(chan error, 1)
	bob, err := d.Dial(ctx, "bob", 0, Handler{
		Message: func(p []byte, seq uint64) { msgs <- got{string(p), seq} },
		Closed:  func(err error) { closed <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := d.Dial(ctx, "alice", 0, Handler{Ack: func(ok bool, seq uint64) {
		if ok {
			acks <- seq
		} else {
			acks <- 0
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	long := strings.Repeat("é€", 3000) // > 125 bytes and not ASCII
	for i, p := range []string{`quote " and \ backslash` + "\n", long, "plain"} {
		if err := alice.Send("bob", []byte(p), true); err != nil {
			t.Fatal(err)
		}
		select {
		case seq := <-acks:
			if seq != uint64(i+1) {
				t.Errorf("ack seq %d, want %d", seq, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no ack")
		}
		select {
		case m := <-msgs:
			if m.payload != p || m.seq != uint64(i+1) {
				t.Errorf("got %.40q seq %d, want %.40q seq %d", m.payload, m.seq, p, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
	}
	// Volatile messages carry no seq.
	if err := alice.Send("bob", []byte("v"), false); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; m.payload != "v" || m.seq != 0 {
		t.Errorf("volatile: %+v", m)
	}
	if seq := <-acks; seq != 0 {
		t.Errorf("volatile ack seq %d", seq)
	}
	if err := alice.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish("lobby", []byte("room!"), true); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; m.payload != "room!" || m.seq != 1 {
		t.Errorf("room message %+v", m)
	}
	if seq := <-acks; seq != 1 {
		t.Errorf("publish ack seq %d", seq)
	}
	// An API send and a since= replay.
	seq, err := d.APISend(ctx, "bob", []byte("from the API"))
	if err != nil || seq != 4 {
		t.Fatalf("APISend: seq %d, %v", seq, err)
	}
	if m := <-msgs; m.payload != "from the API" || m.seq != 4 {
		t.Errorf("API message %+v", m)
	}
	replay := make(chan uint64, 8)
	bob2, err := d.Dial(ctx, "bob", 2, Handler{Message: func(_ []byte, seq uint64) { replay <- seq }})
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	for want := uint64(3); want <= 4; want++ {
		select {
		case s := <-replay:
			if s != want {
				t.Errorf("replayed seq %d, want %d", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no replay")
		}
	}
	// The server closes bob's connections: Closed gets the close code.
	req, _ := http.NewRequest(http.MethodPost, "http"+strings.TrimPrefix(base, "ws")+"/api/disconnect", bytes.NewReader([]byte(`{"user":"bob"}`)))
	req.Header.Set("Authorization", "Bearer "+courierTestAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-closed:
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Errorf("Closed(%v), want close code 4001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bob not closed")
	}
	if err := bob.Send("alice", []byte("x"), true); err == nil {
		t.Error("Send on a closed connection succeeded")
	}
	// A token signed with another secret is refused before the upgrade.
	bad, err := NewCourier(base, []byte("wrong"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Dial(ctx, "eve", 0, Handler{}); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("bad token: %v", err)
	}
}

// TestManyWriters sends from many goroutines on one connection at once.
func TestManyWriters(t *testing.T) {
	base := startCourierNode(t)
	d := newCourierDriver(t, base)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan struct{})
	const n = 8 * 50
	rx, err := d.Dial(ctx, "rx", 0, Handler{Message: func(p []byte, _ uint64) {
		mu.Lock()
		seen[string(p)] = true
		if len(seen) == n {
			close(done)
		}
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := d.Dial(ctx, "tx", 0, Handler{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				p := []byte(strings.Repeat(string(rune('a'+g)), 1+i*7))
				if err := tx.Send("rx", p, false); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("got %d of %d distinct messages", len(seen), n)
	}
}

func TestFindListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, err := FindListener(ln.Addr().(*net.TCPAddr).Port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("FindListener = %d, %v; want %d", pid, err, os.Getpid())
	}
	if cpu, err := CPUSeconds(pid); err != nil || cpu <= 0 {
		t.Errorf("CPUSeconds = %g, %v", cpu, err)
	}
	if rss, err := RSSKiB(pid); err != nil || rss <= 0 {
		t.Errorf("RSSKiB = %d, %v", rss, err)
	}
	if NoFileLimit(pid) == 0 {
		t.Error("NoFileLimit = 0")
	}
}

func TestParseMetrics(t *testing.T) {
	in := "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_goroutines_x 7\ncourier_connections 1e+06\nother{a=\"b\"} 3\n"
	m := parseMetrics(strings.NewReader(in), []string{"go_goroutines", "courier_connections", "missing"})
	if m["go_goroutines"] != 42 || m["courier_connections"] != 1e6 || len(m) != 2 {
		t.Fatalf("%v", m)
	}
}

// TestCourierEncodings runs the driver in every encoding, with and without
// permessage-deflate, against a real node that offers it: payloads that
// JSON escapes, long ones (compressed both ways), acks with seqs, volatile
// messages, joins and publishes.
func TestCourierEncodings(t *testing.T) {
	base := startCourierNode(t, func(c *server.Config) { c.Compression = true })
	ctx := context.Background()
	long := strings.Repeat("é€ compressible ", 400)
	for _, enc := range []string{EncodingJSON, EncodingMsgpack} {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compress=%v", enc, compress), func(t *testing.T) {
				d := newCourierDriver(t, base)
				d.Encoding, d.Compress = enc, compress
				pre := fmt.Sprintf("%s-%v-", enc, compress)
				type got struct {
					payload string
					seq     uint64
				}
				msgs := make(chan got, 16)
				acks := make(chan uint64, 16)
				bob, err := d.Dial(ctx, pre+"bob", 0, Handler{Message: func(p []byte, seq uint64) { msgs <- got{string(p), seq} }})
				if err != nil {
					t.Fatal(err)
				}
				defer bob.Close()
				alice, err := d.Dial(ctx, pre+"alice", 0, Handler{Ack: func(ok bool, seq uint64) {
					if !ok {
						seq = 1 << 63
					}
					acks <- seq
				}})
				if err != nil {
					t.Fatal(err)
				}
				defer alice.Close()
				next := func(what string) got {
					t.Helper()
					select {
					case m := <-msgs:
						return m
					case <-time.After(5 * time.Second):
						t.Fatalf("%s: no message", what)
						return got{}
					}
				}
				ack := func(want uint64) {
					t.Helper()
					select {
					case seq := <-acks:
						if seq != want {
							t.Errorf("ack seq %d, want %d", seq, want)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("no ack")
					}
				}
				for i, p := range []string{`quote " and \ backslash` + "\n", long, "plain"} {
					if err := alice.Send(pre+"bob", []byte(p), true); err != nil {
						t.Fatal(err)
					}
					ack(uint64(i + 1))
					if m := next("send"); m.payload != p || m.seq != uint64(i+1) {
						t.Errorf("got %.40q seq %d, want %.40q seq %d", m.payload, m.seq, p, i+1)
					}
				}
				if err := alice.Send(pre+"bob", []byte("v"), false); err != nil {
					t.Fatal(err)
				}
				if m := next("volatile"); m.payload != "v" || m.seq != 0 {
					t.Errorf("volatile: %+v", m)
				}
				ack(0)
				for _, c := range []Client{alice, bob} {
					if err := c.Join(ctx, pre+"lobby"); err != nil {
						t.Fatal(err)
					}
				}
				if err := alice.Publish(pre+"lobby", []byte(long), true); err != nil {
					t.Fatal(err)
				}
				if m := next("publish"); m.payload != long || m.seq != 1 {
					t.Errorf("room message %.40q seq %d", m.payload, m.seq)
				}
				ack(1)
				w := d.Wire()
				if w.Encoding != enc || w.Compress != compress || w.InBytes == 0 || w.OutBytes == 0 || w.ConnsPerURL != nil {
					t.Errorf("Wire() = %+v", w)
				}
				// Two long payloads went out: compressed, they take far less
				// than their plain size.
				if raw := int64(2 * len(long)); compress != (w.OutBytes < raw) {
					t.Errorf("compress %v: %d bytes written for %d bytes of long payloads", compress, w.OutBytes, raw)
				}
			})
		}
	}
}

// TestCourierNoDeflate: --compress against a server that does not offer
// it fails the dial instead of measuring plain frames.
func TestCourierNoDeflate(t *testing.T) {
	d := newCourierDriver(t, startCourierNode(t))
	d.Compress = true
	_, err := d.Dial(context.Background(), "bob", 0, Handler{})
	if err == nil || !strings.Contains(err.Error(), "permessage-deflate") {
		t.Fatalf("dial: %v", err)
	}
	d.Compress, d.Encoding = false, EncodingMsgpack
	c, err := d.Dial(context.Background(), "bob", 0, Handler{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestCourierCluster spreads connections over two nodes in turn and adds
// up what /metrics says of them.
func TestCourierCluster(t *testing.T) {
	a, b := startCourierNode(t), startCourierNode(t)
	d := newCourierDriver(t, a+", "+b)
	cfg := Config{Driver: d, Scenario: "idle", Conns: 40, Settle: 100 * time.Millisecond, MetricsURLs: d.MetricsURLs(), PIDs: []int{os.Getpid()}}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ConnsPerURL; got[a] != 20 || got[b] != 20 || len(got) != 2 {
		t.Errorf("connections per URL %v, want 20 each", got)
	}
	if r := res.IdleResult; r.ServerConnsGauge == nil || *r.ServerConnsGauge != 40 {
		t.Errorf("courier_connections added up to %v, want 40", r.ServerConnsGauge)
	}
	if res.ServerPID != os.Getpid() {
		t.Errorf("server_pid %d", res.ServerPID)
	}
}
