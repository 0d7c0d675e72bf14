package courier_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/inprocess"
	"github.com/courier-im/courier/sqlite"
)

// inbox is a Link that keeps every message it is given.
type inbox struct {
	mu     sync.Mutex
	msgs   []courier.Message
	notes  []courier.Notice
	closed int
}

func (b *inbox) Deliver(d *courier.Delivery) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.Notice != nil {
		b.notes = append(b.notes, *d.Notice)
		return
	}
	b.msgs = append(b.msgs, d.Message)
}
func (b *inbox) Drained(context.Context) error { return nil }
func (b *inbox) Close(code int, _ string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = code
}

func (b *inbox) got() []courier.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]courier.Message(nil), b.msgs...)
}

func (b *inbox) wait(t *testing.T, n int) []courier.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d messages %v, want %d", len(b.got()), b.got(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return b.got()
}

// seqRun checks that msgs carry seqs from..to in order, with nothing else.
func seqRun(t *testing.T, msgs []courier.Message, from, to uint64) {
	t.Helper()
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	checkRun(t, seqs, from, to)
}

// cluster is n hubs joined by an in-process broker network, sharing one store.
type testCluster struct {
	hubs    []*courier.Hub
	brokers []*inprocess.Broker
	store   *sqlite.Store
}

func newCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	net := inprocess.NewNetwork()
	tc := &testCluster{store: store}
	for range n {
		b := net.Broker()
		h, err := courier.NewHub(courier.Config{Store: store, Broker: b})
		if err != nil {
			t.Fatal(err)
		}
		tc.hubs = append(tc.hubs, h)
		tc.brokers = append(tc.brokers, b)
	}
	t.Cleanup(func() {
		for i, h := range tc.hubs {
			_ = h.Close()
			_ = tc.brokers[i].Close()
		}
		_ = store.Close()
	})
	// Every node knows every other before the test starts.
	deadline := time.Now().Add(5 * time.Second)
	for _, h := range tc.hubs {
		for h.ClusterStats().Nodes < n {
			if time.Now().After(deadline) {
				t.Fatalf("node %s sees %d nodes", h.Node(), h.ClusterStats().Nodes)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return tc
}

func (tc *testCluster) connect(node int, user string) (*courier.Conn, *inbox) {
	b := &inbox{}
	c := tc.hubs[node].NewConn(courier.Identity{User: user}, b)
	tc.hubs[node].Attach(c, nil, nil)
	return c, b
}

// A direct message reaches every device of the recipient and the sender's
// other devices, whichever nodes they are on; a node without the recipient
// receives nothing for it.
func TestClusterDirect(t *testing.T) {
	tc := newCluster(t, 3)
	a1, _ := tc.connect(0, "alice")
	_, a2 := tc.connect(2, "alice")
	_, b1 := tc.connect(1, "bob")
	_, b2 := tc.connect(2, "bob")
	_, carol := tc.connect(0, "carol")

	var acks []courier.Receipt
	var mu sync.Mutex
	for i := range 20 {
		done := make(chan struct{})
		tc.hubs[0].Post(courier.Outgoing{From: "alice", To: "bob", Data: []byte(fmt.Sprint(i)), Origin: a1}, func(r courier.Receipt, err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			acks = append(acks, r)
			mu.Unlock()
			close(done)
		})
		<-done
	}
	seqRun(t, b1.wait(t, 20), 1, 20)
	seqRun(t, b2.wait(t, 20), 1, 20)
	seqRun(t, a2.wait(t, 20), 1, 20)
	for i, r := range acks {
		if r.Seq != uint64(i+1) {
			t.Fatalf("ack %d has seq %d", i, r.Seq)
		}
	}
	if m := b1.got()[3]; m.From != "alice" || m.To != "bob" || string(m.Data) != "3" {
		t.Fatalf("message 4 arrived as %+v", m)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(carol.got()); n != 0 {
		t.Fatalf("carol got %d messages", n)
	}
	// Node 1 holds only bob: it received bob's 20 and none of the sender
	// copies for alice.
	st := tc.hubs[1].ClusterStats()
	if st.Received != 20 || st.Unrouted != 0 || st.Delivered != 20 {
		t.Fatalf("node 1 counters %+v, want 20 received, 20 delivered, 0 unrouted", st)
	}
}

// A node with no connection of the recipient receives nothing for it, and
// stops receiving once its last connection of a user leaves.
func TestClusterInterestRouting(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	c, b := tc.connect(1, "bob")
	if _, err := tc.hubs[0].Send(ctx, courier.Outgoing{From: "x", Label: true, To: "bob"}); err != nil {
		t.Fatal(err)
	}
	b.wait(t, 1)
	tc.hubs[1].Detach(c)
	deadline := time.Now().Add(5 * time.Second)
	for tc.hubs[1].ClusterStats().Topics != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node 1 still subscribed to %d topics", tc.hubs[1].ClusterStats().Topics)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for range 10 {
		if _, err := tc.hubs[0].Send(ctx, courier.Outgoing{From: "x", Label: true, To: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if st := tc.hubs[1].ClusterStats(); st.Received != 1 {
		t.Fatalf("node 1 received %d message packets, want only the one before bob left", st.Received)
	}
	if st := tc.hubs[2].ClusterStats(); st.Received != 0 {
		t.Fatalf("node 2, which never held bob, received %d message packets", st.Received)
	}
}

// Many senders on every node write to one user at once: every device of the
// user, on every node, sees the inbox gap-free and in order.
func TestClusterOrderUnderConcurrency(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	var boxes []*inbox
	for n := range 3 {
		_, b := tc.connect(n, "bob")
		boxes = append(boxes, b)
	}
	var wg sync.WaitGroup
	const per = 100
	for n := range 3 {
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					if _, err := tc.hubs[n].Send(ctx, courier.Outgoing{From: fmt.Sprintf("s%d%d", n, s), To: "bob"}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, b := range boxes {
		seqRun(t, b.wait(t, 12*per), 1, 12*per)
	}
	time.Sleep(20 * time.Millisecond)
	for _, b := range boxes {
		seqRun(t, b.got(), 1, 12*per)
	}
}

// conn: targets reach the one node that holds the connection; an unknown
// connection, on a live node or on no node at all, is not_found.
func TestClusterConnTarget(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	bc, b := tc.connect(2, "bob")
	r, err := tc.hubs[0].Send(ctx, courier.Outgoing{From: "x", Label: true, To: courier.ConnPrefix + bc.ID(), Event: "ping"})
	if err != nil || r.Delivered != 1 {
		t.Fatalf("send to a connection on another node: %+v, %v", r, err)
	}
	if m := b.wait(t, 1)[0]; m.Event != "ping" || m.Seq != 0 {
		t.Fatalf("got %+v", m)
	}
	if st := tc.hubs[1].ClusterStats(); st.Received != 0 {
		t.Fatalf("node 1 received %d message packets for a connection on node 2", st.Received)
	}
	for _, id := range []string{tc.hubs[2].Node() + "nosuchconnection", "zzzzzzzznosuchnode"} {
		_, err := tc.hubs[0].Send(ctx, courier.Outgoing{From: "x", Label: true, To: courier.ConnPrefix + id})
		if !errors.Is(err, courier.ErrNotFound) {
			t.Fatalf("send to conn:%s: %v, want not found", id, err)
		}
	}
}

// A room's members on every node get its messages; the server API's count
// of deliveries includes every node.
func TestClusterRoomsAndCounts(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	var boxes []*inbox
	var pub *courier.Conn
	for n := range 3 {
		c, b := tc.connect(n, fmt.Sprint("member", n))
		if err := tc.hubs[n].Join(c, "lobby"); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			pub = c
		}
		boxes = append(boxes, b)
	}
	done := make(chan courier.Receipt, 1)
	tc.hubs[0].Post(courier.Outgoing{From: "member0", Room: "lobby", Data: []byte(`"hi"`), Origin: pub}, func(r courier.Receipt, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- r
	})
	if r := <-done; r.Seq != 1 {
		t.Fatalf("room ack %+v", r)
	}
	for _, b := range boxes[1:] {
		if m := b.wait(t, 1)[0]; m.Room != "lobby" || m.Seq != 1 || string(m.Data) != `"hi"` {
			t.Fatalf("member got %+v", m)
		}
	}
	r, err := tc.hubs[1].Send(ctx, courier.Outgoing{From: "system", Label: true, Room: "lobby"})
	if err != nil || r.Delivered != 3 {
		t.Fatalf("API publish: %+v, %v; want 3 delivered", r, err)
	}
	tc.connect(0, "dave")
	tc.connect(1, "dave")
	tc.connect(1, "dave")
	r, err = tc.hubs[2].Send(ctx, courier.Outgoing{From: "system", Label: true, To: "dave"})
	if err != nil || r.Delivered != 3 || r.Seq != 1 {
		t.Fatalf("API send from a node holding none of dave's connections: %+v, %v; want 3 delivered", r, err)
	}
	r, err = tc.hubs[2].Send(ctx, courier.Outgoing{From: "system", Label: true, To: "dave", Volatile: true})
	if err != nil || r.Delivered != 3 {
		t.Fatalf("volatile API send: %+v, %v; want 3 delivered", r, err)
	}
}

// Presence and disconnect answer for the whole cluster on every node.
func TestClusterPresenceAndDisconnect(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	_, b0 := tc.connect(0, "bob")
	_, b1 := tc.connect(1, "bob")
	for _, h := range tc.hubs {
		p, err := h.Presence(ctx, "bob")
		if err != nil || p.Connections != 2 {
			t.Fatalf("node %s: presence %+v, %v; want 2 connections", h.Node(), p, err)
		}
	}
	if n := tc.hubs[2].Disconnect(ctx, "bob", courier.CloseDisconnected, "bye"); n != 2 {
		t.Fatalf("disconnect from node 2 closed %d, want 2", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b0.mu.Lock()
		c0 := b0.closed
		b0.mu.Unlock()
		b1.mu.Lock()
		c1 := b1.closed
		b1.mu.Unlock()
		if c0 == courier.CloseDisconnected && c1 == courier.CloseDisconnected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("close codes %d, %d", c0, c1)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// While a node is cut off from the broker its connections miss live
// messages; when it comes back they catch up from the store, in order.
func TestClusterBrokerOutageCatchUp(t *testing.T) {
	tc := newCluster(t, 2)
	ctx := context.Background()
	_, b := tc.connect(1, "bob")
	send := func() {
		if _, err := tc.hubs[0].Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	send()
	b.wait(t, 1)
	tc.brokers[1].SetDown(true)
	for range 5 {
		send()
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(b.got()); n != 1 {
		t.Fatalf("a cut-off node delivered %d messages", n)
	}
	tc.brokers[1].SetDown(false)
	seqRun(t, b.wait(t, 6), 1, 6)
	send()
	seqRun(t, b.wait(t, 7), 1, 7)
}

// A node that dies without a word stops counting at once (it no longer
// answers within the ask timeout) and is forgotten after the node TTL: its
// users go offline everywhere else.
func TestClusterDeadNodeGoesOffline(t *testing.T) {
	tc := newCluster(t, 2)
	ctx := context.Background()
	tc.connect(1, "bob")
	if p, _ := tc.hubs[0].Presence(ctx, "bob"); p.Connections != 1 {
		t.Fatalf("presence %+v before the crash", p)
	}
	tc.brokers[1].SetDown(true) // node 1 falls silent, as if killed
	start := time.Now()
	for {
		p, err := tc.hubs[0].Presence(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if p.Connections == 0 {
			break
		}
		if time.Since(start) > 6*time.Second {
			t.Fatalf("bob still online %v after node 1 fell silent", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tc.hubs[0].ClusterStats().Nodes != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node 0 never forgot the silent node")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What a node publishes while its broker connection is down is lost on the
// way; when the connection comes back, the recipients' nodes are told to
// catch up from the store.
func TestClusterPublisherOutage(t *testing.T) {
	tc := newCluster(t, 2)
	_, b := tc.connect(1, "bob")
	tc.brokers[0].SetDown(true)
	for range 3 {
		// Not Send: its presence question would wait for the cut-off answer.
		done := make(chan error, 1)
		tc.hubs[0].Post(courier.Outgoing{From: "alice", To: "bob"}, func(_ courier.Receipt, err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(b.got()); n != 0 {
		t.Fatalf("bob got %d messages through a cut-off publisher", n)
	}
	tc.brokers[0].SetDown(false)
	seqRun(t, b.wait(t, 3), 1, 3)
}

// Receipts reach the sender's connections on another node, once.
func TestClusterReceipts(t *testing.T) {
	tc := newCluster(t, 3)
	ctx := context.Background()
	ac, a := tc.connect(0, "alice")
	_, b1 := tc.connect(1, "bob")
	_, b2 := tc.connect(2, "bob")
	done := make(chan error, 1)
	tc.hubs[0].Post(courier.Outgoing{From: "alice", To: "bob", Origin: ac}, func(_ courier.Receipt, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b1.wait(t, 1)
	b2.wait(t, 1)
	n := a.waitNotices(t, 1)
	if n[0].Kind != courier.NoticeDelivered || n[0].By != "bob" {
		t.Fatalf("notice %+v", n[0])
	}
	if err := tc.hubs[2].MarkRead(ctx, "bob", "alice", 1); err != nil {
		t.Fatal(err)
	}
	n = a.waitNotices(t, 2)
	if n[1].Kind != courier.NoticeRead || n[1].By != "bob" || len(n) != 2 {
		t.Fatalf("notices %+v", n)
	}
}

// A connection that sends gets its ack in place of its own message, even
// when a gap makes it replay from the store the very message it sent.
func TestClusterSenderGetsAckNotCopy(t *testing.T) {
	tc := newCluster(t, 2)
	ac, a := tc.connect(0, "alice")
	bc, b := tc.connect(1, "bob")
	const n = 300
	var wg sync.WaitGroup
	for _, side := range []struct {
		hub  *courier.Hub
		conn *courier.Conn
		to   string
	}{{tc.hubs[0], ac, "bob"}, {tc.hubs[1], bc, "alice"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				done := make(chan error, 1)
				side.hub.Post(courier.Outgoing{From: side.conn.User(), To: side.to, Origin: side.conn}, func(_ courier.Receipt, err error) { done <- err })
				if err := <-done; err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, x := range []struct {
		box  *inbox
		user string
	}{{a, "alice"}, {b, "bob"}} {
		msgs := x.box.wait(t, n)
		time.Sleep(50 * time.Millisecond)
		msgs = x.box.got()
		for _, m := range msgs {
			if m.From == x.user {
				t.Fatalf("%s's sending connection got its own message %s back (seq %d)", x.user, m.ID, m.Seq)
			}
		}
		if len(msgs) != n {
			t.Fatalf("%s got %d messages, want %d", x.user, len(msgs), n)
		}
	}
}

// A message stored once Attach has called back (when the transport greets
// the client) reaches the connection live, on one node and across nodes,
// however soon after it is sent.
func TestSentOnceAttachedArrives(t *testing.T) {
	for _, nodes := range []int{1, 2} {
		t.Run(fmt.Sprint(nodes, " nodes"), func(t *testing.T) {
			var hubs []*courier.Hub
			if nodes == 1 {
				hub, _ := newHub(t)
				hubs = []*courier.Hub{hub}
			} else {
				hubs = newCluster(t, nodes).hubs
			}
			from, to := hubs[0], hubs[len(hubs)-1]
			if _, err := from.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob"}); err != nil {
				t.Fatal(err) // seq 1: before the connection, not for it
			}
			for i := range 20 {
				b := &inbox{}
				c := to.NewConn(courier.Identity{User: "bob"}, b)
				to.Attach(c, nil, func() {
					if _, err := from.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob", Data: []byte(fmt.Sprint(i))}); err != nil {
						t.Error(err)
					}
				})
				if m := b.wait(t, 1)[0]; m.Seq != uint64(i+2) || string(m.Data) != fmt.Sprint(i) {
					t.Fatalf("connection %d got %+v", i, m)
				}
				c.Close(1000, "")
				to.Detach(c)
			}
		})
	}
}
