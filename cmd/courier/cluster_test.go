package main

// Multi-node tests: three courier processes sharing a real PostgreSQL and a
// real broker (NATS, then Redis), users spread across them.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier/brokertest"
)

var brokers = []struct{ name, addr, scheme string }{
	{"nats", "127.0.0.1:4222", "nats"},
	{"redis", "127.0.0.1:6379", "redis"},
}

// freshDatabase creates an empty PostgreSQL database for one test and drops
// it afterwards; it returns its URL.
func freshDatabase(t *testing.T) string {
	t.Helper()
	brokertest.Service(t, "PostgreSQL", "127.0.0.1:5432")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	name := strings.ReplaceAll(brokertest.Unique("courier_cmd"), "-", "_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = admin.Close(ctx)
	})
	return "postgres://postgres@127.0.0.1:5432/" + name + "?sslmode=disable"
}

type testCluster struct {
	t      *testing.T
	nodes  []*proc
	secret string
	key    string
}

// startCluster starts n nodes on broker b and one fresh database.
func startCluster(t *testing.T, n int, scheme, addr string) *testCluster {
	t.Helper()
	brokertest.Service(t, scheme, addr)
	db := freshDatabase(t)
	c := &testCluster{t: t, secret: "S", key: "K"}
	name := brokertest.Unique("cmdtest")
	for range n {
		c.nodes = append(c.nodes, startServe(t, "", environ(), "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--jwt-secret", c.secret, "--api-key", c.key, "--store", db,
			"--broker", scheme+"://"+addr, "--cluster-name", name))
	}
	// Wait until every node answers presence for the whole cluster: a
	// connection on the last node must count on the first.
	ws := c.dial(n-1, "probe", "")
	deadline := time.Now().Add(10 * time.Second)
	for c.connections(0, "probe") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not find each other within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	return c
}

// client is a WebSocket client of one user that reads every frame into a
// channel.
type client struct {
	ws     *websocket.Conn
	conn   string
	frames chan map[string]any
	err    error // why reading ended, once frames is closed
	// skipped keeps the frames a wait passed over, for a later wait of
	// their type (used by one goroutine at a time).
	skipped []map[string]any
}

func (c *testCluster) dial(node int, user, query string) *websocket.Conn {
	c.t.Helper()
	return c.nodes[node].dial("token=" + mint(c.t, c.secret, user) + query)
}

func (c *testCluster) client(node int, user string) *client {
	c.t.Helper()
	ws := c.dial(node, user, "")
	f := read(c.t, ws)
	if f["type"] != "welcome" {
		c.t.Fatalf("first frame %v", f)
	}
	cl := &client{ws: ws, conn: f["conn"].(string), frames: make(chan map[string]any, 1024)}
	go func() {
		defer close(cl.frames)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				cl.err = err
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				cl.frames <- m
			}
		}
	}()
	return cl
}

func (cl *client) send(t *testing.T, frame string) {
	t.Helper()
	if err := cl.write(frame); err != nil {
		t.Fatal(err)
	}
}

func (cl *client) write(frame string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.ws.Write(ctx, websocket.MessageText, []byte(frame))
}

// next returns the next frame of type typ, within 15 s: generous, because
// a loaded CI machine (load average 7 seen) can take seconds, and a passing
// test never waits for it.
func (cl *client) next(t *testing.T, typ string) map[string]any {
	t.Helper()
	f, err := cl.wait(typ)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wait is next for goroutines other than the test's; typ "" takes any frame.
func (cl *client) wait(typ string) (map[string]any, error) {
	return cl.waitFor(typ, 15*time.Second)
}

func (cl *client) waitFor(typ string, d time.Duration) (map[string]any, error) {
	for i, f := range cl.skipped {
		if typ == "" || f["type"] == typ {
			cl.skipped = append(cl.skipped[:i], cl.skipped[i+1:]...)
			return f, nil
		}
	}
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-cl.frames:
			if !ok {
				return nil, fmt.Errorf("connection closed while waiting for a %s frame: %v", typ, cl.err)
			}
			if typ == "" || f["type"] == typ {
				return f, nil
			}
			cl.skipped = append(cl.skipped, f)
		case <-timeout:
			return nil, fmt.Errorf("no %s frame within %v", typ, d)
		}
	}
}

// quiet checks that no frame arrives for a moment.
func (cl *client) quiet(t *testing.T) {
	t.Helper()
	if len(cl.skipped) > 0 {
		t.Fatalf("unexpected frames %v", cl.skipped)
	}
	select {
	case f := <-cl.frames:
		t.Fatalf("unexpected frame %v", f)
	case <-time.After(150 * time.Millisecond):
	}
}

func (c *testCluster) connections(node int, user string) int {
	c.t.Helper()
	status, body := c.nodes[node].get("/api/presence?user="+user, "Authorization", "Bearer "+c.key)
	var p struct{ Connections int }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil {
		c.t.Fatalf("presence on node %d: %d %s", node, status, body)
	}
	return p.Connections
}

var receivedRE = regexp.MustCompile(`(?m)^courier_broker_messages_received_total (\d+)`)

// received reads a node's count of message packets from other nodes.
func (c *testCluster) received(node int) int {
	c.t.Helper()
	_, body := c.nodes[node].get("/metrics")
	m := receivedRE.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no courier_broker_messages_received_total in /metrics of node %d", node)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestClusterProcesses(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, 3, b.scheme, b.addr)

			// Direct, multi-device across nodes, with the sender's other device.
			a0, a2 := c.client(0, "alice"), c.client(2, "alice")
			b1, b2 := c.client(1, "bob"), c.client(2, "bob")
			a0.send(t, `{"type":"send","id":"1","to":"bob","event":"chat","data":{"text":"hi"}}`)
			if ack := a0.next(t, "ack"); ack["id"] != "1" || ack["seq"] != 1.0 {
				t.Fatalf("ack %v", ack)
			}
			for _, cl := range []*client{b1, b2, a2} {
				m := cl.next(t, "message")
				if m["from"] != "alice" || m["to"] != "bob" || m["seq"] != 1.0 || m["data"].(map[string]any)["text"] != "hi" {
					t.Fatalf("got %v", m)
				}
			}

			// A conn: target reaches the one connection, on its node.
			a0.send(t, fmt.Sprintf(`{"type":"send","id":"2","to":"conn:%s","event":"ring"}`, b1.conn))
			a0.next(t, "ack")
			if m := b1.next(t, "message"); m["event"] != "ring" {
				t.Fatalf("got %v", m)
			}
			b2.quiet(t)
			a0.send(t, fmt.Sprintf(`{"type":"send","id":"3","to":"conn:%s","event":"ring"}`, b1.conn[:8]+"nosuchconnection"))
			if e := a0.next(t, "error"); e["code"] != "not_found" {
				t.Fatalf("unknown conn: %v", e)
			}

			// A room spanning nodes.
			carol, dave := c.client(0, "carol"), c.client(2, "dave")
			carol.send(t, `{"type":"join","id":"j","room":"lobby"}`)
			carol.next(t, "ack")
			dave.send(t, `{"type":"join","id":"j","room":"lobby"}`)
			dave.next(t, "ack")
			carol.send(t, `{"type":"publish","id":"p","room":"lobby","data":"hello room"}`)
			if ack := carol.next(t, "ack"); ack["seq"] != 1.0 {
				t.Fatalf("publish ack %v", ack)
			}
			if m := dave.next(t, "message"); m["room"] != "lobby" || m["data"] != "hello room" || m["seq"] != 1.0 {
				t.Fatalf("dave got %v", m)
			}

			// Presence is the same on every node.
			for n := range c.nodes {
				if got := c.connections(n, "bob"); got != 2 {
					t.Fatalf("node %d counts %d connections of bob, want 2", n, got)
				}
			}

			// The server API on a node holding none of erin's connections;
			// the nodes without erin receive nothing for her.
			erin := c.client(1, "erin")
			before0, before2 := c.received(0), c.received(2)
			status, out := c.nodes[2].apiSend(c.key, `{"to":"erin","event":"notice","data":1}`)
			if status != http.StatusOK || out["delivered"] != 1.0 || out["seq"] != 1.0 {
				t.Fatalf("/api/send on node 2: %d %v", status, out)
			}
			if m := erin.next(t, "message"); m["event"] != "notice" || m["from"] != "system" {
				t.Fatalf("erin got %v", m)
			}
			if d0, d2 := c.received(0)-before0, c.received(2)-before2; d0 != 0 || d2 != 0 {
				t.Fatalf("nodes 0 and 2 hold no connection of erin but received %d and %d packets", d0, d2)
			}

			// Disconnect from a node that holds none of bob's connections.
			req, _ := http.NewRequest("POST", "http://"+c.nodes[0].addr+"/api/disconnect", strings.NewReader(`{"user":"bob"}`))
			req.Header.Set("Authorization", "Bearer "+c.key)
			if status, body := c.nodes[0].do(req); status != http.StatusOK || !strings.Contains(body, `"disconnected":2`) {
				t.Fatalf("/api/disconnect: %d %s", status, body)
			}
			for _, cl := range []*client{b1, b2} {
				for range cl.frames {
				}
				if code := websocket.CloseStatus(cl.err); code != 4001 {
					t.Fatalf("bob's connection ended with %v, want close code 4001", cl.err)
				}
			}
		})
	}
}

// Kill -9 one node under load: its clients reconnect to the others and
// resume; every acknowledged message reaches them exactly once, in order.
func TestClusterKillNode(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, 3, b.scheme, b.addr)
			const recipients, senders = 6, 4

			type received struct {
				mu   sync.Mutex
				seqs []uint64
				ids  map[string]bool
			}
			got := make([]*received, recipients)
			var readers sync.WaitGroup
			stopReading := make(chan struct{})
			for r := range recipients {
				got[r] = &received{ids: make(map[string]bool)}
				user := fmt.Sprint("rcpt", r)
				readers.Add(1)
				go func() {
					defer readers.Done()
					rec := got[r]
					node := 2 // everyone starts on the node that dies
					for attempt := 0; ; attempt++ {
						rec.mu.Lock()
						since := uint64(0)
						if len(rec.seqs) > 0 {
							since = rec.seqs[len(rec.seqs)-1]
						}
						rec.mu.Unlock()
						ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
						ws, _, err := websocket.Dial(ctx, "ws://"+c.nodes[node].addr+"/ws?token="+mint(t, c.secret, user)+"&since="+strconv.FormatUint(since, 10), nil)
						cancel()
						if err != nil {
							node = attempt % 2 // the survivors, alternately
							time.Sleep(50 * time.Millisecond)
							continue
						}
						readErr := make(chan error, 1)
						go func() {
							for {
								_, b, err := ws.Read(context.Background())
								if err != nil {
									readErr <- err
									return
								}
								var m struct {
									Type, Msg string
									Seq       uint64
								}
								if json.Unmarshal(b, &m) == nil && m.Type == "message" {
									rec.mu.Lock()
									rec.seqs = append(rec.seqs, m.Seq)
									rec.ids[m.Msg] = true
									rec.mu.Unlock()
								}
							}
						}()
						select {
						case <-stopReading:
							_ = ws.CloseNow()
							<-readErr
							return
						case <-readErr:
							_ = ws.CloseNow()
							node = attempt % 2
						}
					}
				}()
			}
			// Everyone connected before the load starts.
			deadline := time.Now().Add(10 * time.Second)
			for r := 0; r < recipients; r++ {
				for c.connections(0, fmt.Sprint("rcpt", r)) != 1 {
					if time.Now().After(deadline) {
						t.Fatal("recipients did not connect")
					}
					time.Sleep(20 * time.Millisecond)
				}
			}

			// Senders on the surviving nodes, each waiting for its acks.
			acked := make([]map[string]bool, recipients)
			for r := range acked {
				acked[r] = make(map[string]bool)
			}
			var ackMu sync.Mutex
			stopSending := make(chan struct{})
			var sending sync.WaitGroup
			for s := range senders {
				cl := c.client(s%2, fmt.Sprint("sender", s))
				sending.Add(1)
				go func() {
					defer sending.Done()
					for i := 0; ; i++ {
						select {
						case <-stopSending:
							return
						default:
						}
						r := rand.IntN(recipients)
						if err := cl.write(fmt.Sprintf(`{"type":"send","id":"%d","to":"rcpt%d","data":%d}`, i, r, i)); err != nil {
							t.Error(err)
							return
						}
						ack, err := cl.wait("ack")
						if err != nil {
							t.Error(err)
							return
						}
						ackMu.Lock()
						acked[r][ack["msg"].(string)] = true
						ackMu.Unlock()
						time.Sleep(2 * time.Millisecond)
					}
				}()
			}
			time.Sleep(700 * time.Millisecond)
			c.nodes[2].cmd.Process.Kill() // SIGKILL: no goodbye, no flush
			time.Sleep(1500 * time.Millisecond)
			close(stopSending)
			sending.Wait()

			// Every acked message reaches its recipient once, in seq order.
			total := 0
			for r := range recipients {
				ackMu.Lock()
				want := acked[r]
				ackMu.Unlock()
				total += len(want)
				deadline := time.Now().Add(15 * time.Second)
				for {
					got[r].mu.Lock()
					missing := 0
					for id := range want {
						if !got[r].ids[id] {
							missing++
						}
					}
					got[r].mu.Unlock()
					if missing == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("rcpt%d misses %d of %d acknowledged messages", r, missing, len(want))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			close(stopReading)
			readers.Wait()
			for r := range recipients {
				seqs := got[r].seqs
				for i, s := range seqs {
					if s != uint64(i+1) {
						t.Fatalf("rcpt%d received seqs %v: not 1..%d without gap or duplicate", r, seqs, len(seqs))
					}
				}
			}
			if total < 100 {
				t.Fatalf("only %d messages acknowledged: the load was too light to mean anything", total)
			}
			t.Logf("%d acknowledged messages to %d recipients, all received once and in order across a kill -9", total, recipients)
		})
	}
}
