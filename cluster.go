package courier

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster timing. A node announces itself every heartbeatEvery; one not
// heard from for nodeTTL is taken for dead, and its connections for gone.
const (
	heartbeatEvery = time.Second
	nodeTTL        = 3 * time.Second
	// askTimeout bounds how long a node waits for others to answer a
	// question (a presence count, a connection lookup).
	askTimeout = 500 * time.Millisecond
)

// Topics: a node subscribes to the users and rooms it holds connections of,
// to its own node topic (connection targets and answers), and to allTopic.
const allTopic = "all"

func userTopic(user string) string { return "u:" + user }
func roomTopic(room string) string { return "r:" + room }
func nodeTopic(node string) string { return "n:" + node }

// ClusterStats are a node's routing counters: what it published to the
// broker, what it received, and how many connections the received messages
// were handed to.
type ClusterStats struct {
	Node       string // this node's id
	Nodes      int    // live nodes known, this one included
	Topics     int    // broker topics subscribed for users and rooms
	Published  uint64 // packets published
	Received   uint64 // message packets received from other nodes
	Delivered  uint64 // connections those messages were handed to
	Unrouted   uint64 // message packets received for which no connection was here
	Reconnects uint64 // times the broker connection came back
}

// cluster is a hub's part in a cluster of nodes joined by a Broker.
type cluster struct {
	h      *Hub
	broker Broker
	node   string
	topics *interests

	mu      sync.Mutex
	members map[string]time.Time // other live nodes, by when last heard
	calls   map[uint64]*call
	nextReq uint64

	releaseMu sync.Mutex
	releases  []string // topics to unsubscribe from, off the hot path
	wake      chan struct{}
	catchUp   chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup

	published, received, delivered, unrouted, reconnects atomic.Uint64
	pending                                              unconfirmed

	bufs sync.Pool
}

func newCluster(h *Hub, b Broker) *cluster {
	cl := &cluster{
		h: h, broker: b, node: h.node,
		members: make(map[string]time.Time),
		calls:   make(map[uint64]*call),
		wake:    make(chan struct{}, 1),
		catchUp: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	cl.topics = newInterests(b, func(op, topic string, err error) {
		h.log.Warn("broker "+op+" failed", "topic", topic, "err", err)
	})
	cl.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return cl
}

// start connects the node to the cluster and announces it.
func (cl *cluster) start() error {
	if err := cl.broker.Start(cl); err != nil {
		return err
	}
	for _, t := range []string{allTopic, nodeTopic(cl.node)} {
		if err := cl.broker.Subscribe(t); err != nil {
			return err
		}
	}
	cl.publish(allTopic, &packet{kind: pktHello})
	cl.wg.Add(2)
	go cl.heartbeats()
	go cl.background()
	return nil
}

// close announces the node's departure and stops its goroutines.
func (cl *cluster) close() {
	cl.publish(allTopic, &packet{kind: pktBye})
	close(cl.stop)
	cl.wg.Wait()
}

// publish encodes p as sent by this node and hands it to the broker.
func (cl *cluster) publish(topic string, p *packet) {
	p.origin = cl.node
	bp := cl.bufs.Get().(*[]byte)
	b := p.append((*bp)[:0])
	if err := cl.broker.Publish(topic, b); err != nil {
		cl.h.log.Warn("broker publish failed", "topic", topic, "err", err)
	} else {
		cl.published.Add(1)
	}
	*bp = b
	cl.bufs.Put(bp)
}

// heartbeats announces the node and forgets nodes gone silent.
func (cl *cluster) heartbeats() {
	defer cl.wg.Done()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-cl.stop:
			return
		case now := <-t.C:
			// The heartbeat carries its time: when it comes back, what
			// was published before it is known to have got through.
			cl.publish(allTopic, &packet{kind: pktHeartbeat, req: uint64(now.UnixMilli())})
			var gone []string
			cl.mu.Lock()
			for n, seen := range cl.members {
				if now.Sub(seen) > nodeTTL {
					delete(cl.members, n)
					gone = append(gone, n)
				}
			}
			cl.mu.Unlock()
			for _, n := range gone {
				cl.h.log.Warn("node gone silent", "node", n)
				cl.h.nodeGone(n)
			}
		}
	}
}

// background unsubscribes from topics nobody here needs any more, and
// catches connections up from the store after a broker outage.
func (cl *cluster) background() {
	defer cl.wg.Done()
	for {
		select {
		case <-cl.stop:
			cl.drainReleases()
			return
		case <-cl.wake:
			cl.drainReleases()
		case <-cl.catchUp:
			cl.catchUpAll()
		}
	}
}

func (cl *cluster) drainReleases() {
	cl.releaseMu.Lock()
	topics := cl.releases
	cl.releases = nil
	cl.releaseMu.Unlock()
	for _, t := range topics {
		cl.topics.release(t)
	}
}

// leave drops a local reference to topic; the last one unsubscribes later.
func (cl *cluster) leave(topic string) {
	if !cl.topics.remove(topic) {
		return
	}
	cl.releaseMu.Lock()
	cl.releases = append(cl.releases, topic)
	cl.releaseMu.Unlock()
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// catchUpAll has every local connection read from the store what it may
// have missed while the broker was unreachable.
func (cl *cluster) catchUpAll() {
	h := cl.h
	h.mu.RLock()
	users := make(map[string][]*Conn, len(h.users))
	for u, cs := range h.users {
		users[u] = cs
	}
	h.mu.RUnlock()
	for u, cs := range users {
		select {
		case <-cl.stop:
			return
		default:
		}
		head, err := h.store.LatestSeq(context.Background(), u)
		if err != nil {
			h.log.Warn("catch up after broker outage", "user", u, "err", err)
			continue
		}
		for _, c := range cs {
			c.behind(head)
		}
	}
}

// liveNodes returns the other nodes believed alive.
func (cl *cluster) liveNodes() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	nodes := make([]string, 0, len(cl.members))
	for n := range cl.members {
		nodes = append(nodes, n)
	}
	return nodes
}

func (cl *cluster) isMember(node string) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, ok := cl.members[node]
	return ok
}

func (cl *cluster) stats() ClusterStats {
	cl.mu.Lock()
	n := len(cl.members) + 1
	cl.mu.Unlock()
	return ClusterStats{
		Node: cl.node, Nodes: n, Topics: cl.topics.subscribed(),
		Published: cl.published.Load(), Received: cl.received.Load(),
		Delivered: cl.delivered.Load(), Unrouted: cl.unrouted.Load(),
		Reconnects: cl.reconnects.Load(),
	}
}

// A call is a question put to other nodes, waiting for their answers.
type call struct {
	want    int
	replies []*packet
	timer   *time.Timer
	done    func(replies []*packet)
}

// ask publishes p on topic as a question that want nodes will answer, and
// calls done with their answers once they have all come, or at the timeout
// with what came.
func (cl *cluster) ask(topic string, p *packet, want int, done func(replies []*packet)) {
	if want <= 0 {
		done(nil)
		return
	}
	cl.mu.Lock()
	cl.nextReq++
	id := cl.nextReq
	c := &call{want: want, done: done}
	cl.calls[id] = c
	c.timer = time.AfterFunc(askTimeout, func() { cl.answered(id, nil) })
	cl.mu.Unlock()
	p.req = id
	cl.publish(topic, p)
}

// answered records an answer to call id (nil: the time is up).
func (cl *cluster) answered(id uint64, p *packet) {
	cl.mu.Lock()
	c := cl.calls[id]
	if c == nil {
		cl.mu.Unlock()
		return
	}
	if p != nil {
		c.replies = append(c.replies, p)
	}
	finished := p == nil || len(c.replies) >= c.want
	if finished {
		delete(cl.calls, id)
		c.timer.Stop()
	}
	cl.mu.Unlock()
	if finished {
		c.done(c.replies)
	}
}

// query asks every other live node how many connections of each of users
// (or members of room) it holds, and returns the answers.
func (cl *cluster) query(ctx context.Context, users []string, room string) []*packet {
	ch := make(chan []*packet, 1)
	cl.ask(allTopic, &packet{kind: pktQuery, users: users, room: room}, len(cl.liveNodes()), func(r []*packet) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return nil
	}
}

// count returns how many connections of user (or members of room) the
// other live nodes hold.
func (cl *cluster) count(ctx context.Context, user, room string) int {
	var users []string
	if room == "" {
		users = []string{user}
	}
	n := 0
	for _, r := range cl.query(ctx, users, room) {
		if len(r.counts) > 0 {
			n += r.counts[0]
		}
	}
	return n
}

// counts returns, for each of users, how many connections the other live
// nodes hold.
func (cl *cluster) counts(ctx context.Context, users []string) []int {
	sum := make([]int, len(users))
	for _, r := range cl.query(ctx, users, "") {
		for i := range min(len(sum), len(r.counts)) {
			sum[i] += r.counts[i]
		}
	}
	return sum
}

// answer replies to a question from node origin.
func (cl *cluster) answer(origin string, req uint64, counts []int, found bool) {
	if req == 0 {
		return
	}
	cl.publish(nodeTopic(origin), &packet{kind: pktCount, req: req, counts: counts, found: found})
}

// sendConn hands a live message to a connection on another node, and calls
// done once that node has answered whether it holds the connection.
func (cl *cluster) sendConn(id string, msg Message, done func(Receipt, error)) {
	node := nodeOf(id)
	notFound := func() { done(Receipt{}, fmt.Errorf("%w: no connection %s", ErrNotFound, msg.To)) }
	if !cl.isMember(node) {
		notFound()
		return
	}
	cl.ask(nodeTopic(node), &packet{kind: pktVolatile, msg: msg}, 1, func(r []*packet) {
		if len(r) == 0 || !r[0].found {
			notFound()
			return
		}
		done(Receipt{ID: msg.ID, Delivered: 1}, nil)
	})
}

// publishInbox publishes a stored message at its seq in user's inbox, and
// remembers it until the broker is seen to have passed it on.
func (cl *cluster) publishInbox(user string, m Message) {
	cl.pending.add(user, m.Seq)
	cl.publish(userTopic(user), &packet{kind: pktInbox, msg: m})
}

// publishInboxAsking is publishInbox for a message whose recipient has no
// connection here: the nodes that hold one answer, and online reports
// whether any did (within the ask timeout).
func (cl *cluster) publishInboxAsking(user string, m Message, online func(bool)) {
	cl.pending.add(user, m.Seq)
	cl.ask(userTopic(user), &packet{kind: pktInbox, msg: m}, 1, func(r []*packet) {
		for _, p := range r {
			if len(p.counts) > 0 && p.counts[0] > 0 {
				online(true)
				return
			}
		}
		online(false)
	})
}

func (cl *cluster) confirm(at int64) { cl.pending.confirm(at) }

// resync asks the nodes of every user this node published to since the last
// proof that the broker passed its packets on to check their connections
// against the store: those packets may have been lost with the connection.
func (cl *cluster) resync() {
	for user, m := range cl.pending.take() {
		cl.publish(userTopic(user), &packet{kind: pktSync, user: user, msg: Message{Seq: m.seq}})
	}
}
