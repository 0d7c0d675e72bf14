package courier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// WebSocket close codes the hub asks transports to use.
const (
	CloseGoingAway      = 1001 // the client went away
	CloseSlowConsumer   = 1008 // the client did not read its messages fast enough
	CloseInternal       = 1011 // the server failed to serve the connection
	CloseServiceRestart = 1012 // the server is shutting down
	CloseDisconnected   = 4001 // the server API disconnected the user
)

// DefaultMaxBatch is how many messages one store commit takes at most
// unless Config.MaxBatch says otherwise. A commit's fixed costs (the fsync,
// the WAL pages its rows dirty) are shared by its messages, and under a
// sustained load the batch is what queued during the last commit: with
// 8,000 durable sends in flight, SQLite stored 5,300 messages per CPU-second
// with a cap of 512 and 9,400 with 4,096 (docs/benchmarks.md). Below
// saturation batches are smaller than the cap and it changes nothing.
const DefaultMaxBatch = 4096

// DefaultMaxStoreQueue is how many bytes of durable messages may wait for,
// or be in, a store commit unless Config.MaxStoreQueue says otherwise.
const DefaultMaxStoreQueue = 64 << 20

// Config configures a Hub.
type Config struct {
	// Store keeps durable messages. Required.
	Store Store
	// Logger receives the hub's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics receives the hub's measurements; none when nil.
	Metrics Metrics
	// MaxBatch caps how many messages one store commit takes
	// (DefaultMaxBatch when 0).
	MaxBatch int
	// MaxStoreQueue bounds the bytes of durable messages waiting for, or
	// in, a store commit (DefaultMaxStoreQueue when 0); a durable Post
	// waits for room. Each message counts its data and key, and 256 bytes
	// more.
	MaxStoreQueue int
	// Broker joins this hub to the other nodes of a cluster; nil for a
	// single node. All nodes of a cluster must share one Store.
	Broker Broker
	// MaxWatches bounds the users one connection may watch
	// (DefaultMaxWatches when 0).
	MaxWatches int
	// RoomsRequireClaim refuses rooms to a token without a rooms claim;
	// by default such a token may join any room.
	RoomsRequireClaim bool
	// Offline, when set, is called with each durable message stored for a
	// user who has no live connection on any node (the offline webhook). It
	// must not block.
	Offline func(user string, m Message)
	// Retention, when positive, deletes messages older than it in the
	// background; a resume from before what is left is told what is gone.
	Retention time.Duration
}

// Metrics receives a hub's measurements. Package server implements it with
// Prometheus; every method must be cheap and safe for concurrent use.
type Metrics interface {
	ConnOpened()
	ConnClosed()
	MessageIn(durable bool)
	MessagesOut(n int)
	Committed(batch int, took time.Duration, err error)
	// BrokerReceived counts a message received from another node, handed
	// to n local connections.
	BrokerReceived(n int)
}

// A Hub routes messages to users, connections and rooms, and keeps durable
// messages in its Store before acknowledging them.
type Hub struct {
	store   Store
	log     *slog.Logger
	metrics Metrics
	ids     *ids
	node    string   // this node's id, the first nodeIDLen bytes of its connection ids
	cl      *cluster // nil on a single node

	mu    sync.RWMutex
	users map[string][]*Conn // replaced, never changed in place, so readers may keep a slice after unlocking
	conns map[string]*Conn
	rooms map[string][]*Conn // as users
	seen  *seenWriter
	watch *watchers
	marks *deliveredMarks

	roomsRequireClaim bool
	offline           func(user string, m Message)
	retention         time.Duration

	commits  chan *pending
	maxBatch int
	queued   *semaphore.Weighted // MaxStoreQueue
	maxQueue int64
	stopped  context.Context // done at Close: stops waits for queued
	cancel   context.CancelFunc
	stop     chan struct{}
	closing  sync.Once
	wg       sync.WaitGroup // the committer and every replay
	commitWG sync.WaitGroup
}

// NewHub returns a hub serving cfg.Store. Close it to stop its committer.
func NewHub(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("courier: hub needs a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxStoreQueue <= 0 {
		cfg.MaxStoreQueue = DefaultMaxStoreQueue
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	h := &Hub{
		store:    cfg.Store,
		log:      cfg.Logger,
		metrics:  cfg.Metrics,
		ids:      newIDs(),
		users:    make(map[string][]*Conn),
		conns:    make(map[string]*Conn),
		rooms:    make(map[string][]*Conn),
		commits:  make(chan *pending, 2*cfg.MaxBatch), // a full batch waits while one commits
		maxBatch: cfg.MaxBatch,
		queued:   semaphore.NewWeighted(int64(cfg.MaxStoreQueue)),
		maxQueue: int64(cfg.MaxStoreQueue),
		stop:     make(chan struct{}),
		node:     newNodeID(),
	}
	h.stopped, h.cancel = context.WithCancel(context.Background())
	h.seen = newSeenWriter(cfg.Store, cfg.Logger)
	h.watch = newWatchers(cfg.MaxWatches)
	h.marks = newDeliveredMarks(cfg.Store, cfg.Logger, h.notify)
	h.roomsRequireClaim = cfg.RoomsRequireClaim
	h.offline, h.retention = cfg.Offline, cfg.Retention
	if h.retention > 0 {
		h.commitWG.Add(1)
		go h.expirer()
	}
	if cfg.Broker != nil {
		h.cl = newCluster(h, cfg.Broker)
		if err := h.cl.start(); err != nil {
			return nil, fmt.Errorf("join cluster: %w", err)
		}
	}
	h.commitWG.Add(1)
	go h.committer()
	return h, nil
}

// NewConn returns a connection of identity over link, with its id, not yet
// attached: the transport can greet the client before anything is delivered.
func (h *Hub) NewConn(identity Identity, link Link) *Conn {
	return &Conn{id: h.node + randomID(), identity: identity, hub: h, link: link}
}

// headTimeout bounds the inbox head read at attach; past it the connection
// starts without one (Conn.startAt).
const headTimeout = 10 * time.Second

// Attach starts delivery to c. With since, the connection first replays its
// user's inbox after that seq; live messages that arrive meanwhile are held
// and follow the replay, with no gap and no duplicate.
//
// attached, when not nil, is called once c is reachable (on a cluster, its
// node subscribed to the user) and its starting seq is settled, before
// anything is delivered to it. A transport greets the client there: a client
// that has its greeting then gets every message stored after it.
func (h *Hub) Attach(c *Conn, since *uint64, attached func()) {
	// The connection starts at a known seq: the inbox head read once the
	// connection (and on a cluster the node) is reachable, then since when
	// given. On a cluster, messages for the user may arrive from several
	// nodes out of seq order; on any node, a resume beyond the head falls
	// back to where the connection stood, which must be known (Conn.replay).
	//
	// Live messages are held before the connection is reachable, so that
	// none can overtake the replay or the head.
	c.mu.Lock()
	if since != nil {
		c.resumes = append(c.resumes, resumeRequest{since: *since, done: func(uint64, error) {}})
	}
	c.replaying = true
	c.mu.Unlock()
	var sub *interest
	h.mu.Lock()
	h.conns[c.id] = c
	h.users[c.identity.User] = appendCopy(h.users[c.identity.User], c)
	first := len(h.users[c.identity.User]) == 1
	if h.cl != nil {
		sub = h.cl.topics.take(userTopic(c.identity.User))
	}
	h.mu.Unlock()
	h.metrics.ConnOpened()
	if first {
		h.localPresence(c.identity.User, true, time.Time{})
	}
	if sub != nil {
		h.cl.topics.subscribe(userTopic(c.identity.User), sub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), headTimeout)
	head, err := h.store.LatestSeq(ctx, c.identity.User)
	cancel()
	if err != nil {
		h.log.Warn("read inbox head", append(c.LogAttrs(), "err", err)...)
	}
	if err == nil {
		c.mu.Lock()
		c.head, c.headKnown = head, true
		c.mu.Unlock()
	}
	if attached != nil {
		attached() // still replaying: what arrived meanwhile is held
	}
	c.welcome()
	if since != nil {
		// The head is where the replay falls back to should since lie
		// beyond it (Conn.replay).
		if err == nil {
			c.mu.Lock()
			c.seq, c.synced = head, true
			c.mu.Unlock()
		}
		h.wg.Add(1)
		go c.replay()
		return
	}
	c.startAt(head, err == nil)
}

// Detach removes a closed connection from every user and room; the
// transport calls it once when the connection ends.
func (h *Hub) Detach(c *Conn) {
	c.markClosed()
	h.mu.Lock()
	if _, ok := h.conns[c.id]; !ok {
		h.mu.Unlock()
		return
	}
	delete(h.conns, c.id)
	offline := false
	if h.users[c.identity.User] = removeCopy(h.users, c.identity.User, c); h.users[c.identity.User] == nil {
		offline = true
	}
	for room := range c.rooms {
		h.rooms[room] = removeCopy(h.rooms, room, c)
		if h.cl != nil {
			h.cl.leave(roomTopic(room))
		}
	}
	c.rooms = nil
	if h.cl != nil {
		h.cl.leave(userTopic(c.identity.User))
	}
	h.mu.Unlock()
	h.metrics.ConnClosed()
	h.unwatchAll(c)
	if offline {
		at := h.seen.mark(c.identity.User)
		h.localPresence(c.identity.User, false, at)
	}
}

// appendCopy returns a new slice: s with c added.
func appendCopy(s []*Conn, c *Conn) []*Conn {
	n := make([]*Conn, len(s), len(s)+1)
	copy(n, s)
	return append(n, c)
}

// removeCopy returns m[key] without c as a new slice, deleting the key when
// nothing is left (an empty room or user is forgotten).
func removeCopy(m map[string][]*Conn, key string, c *Conn) []*Conn {
	s := m[key]
	n := make([]*Conn, 0, len(s))
	for _, x := range s {
		if x != c {
			n = append(n, x)
		}
	}
	if len(n) == 0 {
		delete(m, key)
		return nil
	}
	return n
}

// Conn returns the local connection with id, or nil.
func (h *Hub) Conn(id string) *Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.conns[id]
}

// Connections returns the number of live connections of user.
func (h *Hub) Connections(user string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[user])
}

// ConnCount returns the number of live connections on this hub.
func (h *Hub) ConnCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// Disconnect closes every connection of user with code, on every node; it
// returns how many.
func (h *Hub) Disconnect(ctx context.Context, user string, code int, reason string) int {
	n := h.disconnectLocal(user, code, reason)
	if h.cl != nil {
		n += h.cl.count(ctx, user, "")
		h.cl.publish(userTopic(user), &packet{kind: pktDisconnect, user: user, code: code, reason: reason})
	}
	return n
}

func (h *Hub) disconnectLocal(user string, code int, reason string) int {
	h.mu.RLock()
	conns := h.users[user]
	h.mu.RUnlock()
	for _, c := range conns {
		c.Close(code, reason)
	}
	return len(conns)
}

// CloseAll closes every connection with code, for a shutdown.
func (h *Hub) CloseAll(code int, reason string) {
	h.Range(func(c *Conn) bool {
		c.Close(code, reason)
		return true
	})
}

// Join adds c to room.
func (h *Hub) Join(c *Conn, room string) error {
	if !ValidRoom(room) {
		return fmt.Errorf("%w: invalid room name", ErrBadRequest)
	}
	if !h.MayJoin(c.identity, room) {
		return fmt.Errorf("%w: the token does not allow room %q", ErrForbidden, room)
	}
	h.mu.Lock()
	// Detach marks the connection closed before it takes h.mu to remove
	// it from its rooms, so a join racing a close cannot leave it behind.
	if c.isClosed() {
		h.mu.Unlock()
		return ErrClosed
	}
	if _, ok := c.rooms[room]; ok {
		h.mu.Unlock()
		return nil
	}
	if c.rooms == nil {
		c.rooms = make(map[string]struct{}, 1)
	}
	c.rooms[room] = struct{}{}
	h.rooms[room] = appendCopy(h.rooms[room], c)
	var sub *interest
	if h.cl != nil {
		sub = h.cl.topics.take(roomTopic(room))
	}
	h.mu.Unlock()
	if sub != nil {
		h.cl.topics.subscribe(roomTopic(room), sub)
	}
	return nil
}

// MayJoin reports whether id may join (and read) room: as its rooms claim
// allows, and without a claim any room unless the hub requires one.
func (h *Hub) MayJoin(id Identity, room string) bool {
	if id.Rooms == nil && h.roomsRequireClaim {
		return false
	}
	return id.MayJoin(room)
}

// Leave removes c from room; leaving a room not joined is not an error.
func (h *Hub) Leave(c *Conn, room string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.rooms[room]; !ok {
		return nil
	}
	delete(c.rooms, room)
	h.rooms[room] = removeCopy(h.rooms, room, c)
	if h.cl != nil {
		h.cl.leave(roomTopic(room))
	}
	return nil
}

// Member reports whether c has joined room.
func (h *Hub) Member(c *Conn, room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := c.rooms[room]
	return ok
}

// Close stops the committer after the messages already accepted are stored
// and waits for replays to end. It closes no connection (see CloseAll) and
// not the store.
func (h *Hub) Close() error {
	h.closing.Do(func() {
		h.cancel()
		close(h.stop)
	})
	h.commitWG.Wait()
	h.mu.RLock()
	for _, c := range h.conns {
		c.cancelReplay()
	}
	h.mu.RUnlock()
	h.wg.Wait()
	h.marks.close()
	if h.cl != nil {
		h.cl.close()
	}
	h.seen.close()
	return nil
}

// ClusterStats returns the node's routing counters; zero but for Node and
// Nodes on a single node.
func (h *Hub) ClusterStats() ClusterStats {
	if h.cl == nil {
		return ClusterStats{Node: h.node, Nodes: 1}
	}
	return h.cl.stats()
}

// Node returns this node's id; every connection id starts with it.
func (h *Hub) Node() string { return h.node }

// members returns how many local connections joined room.
func (h *Hub) members(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room])
}

type noMetrics struct{}

func (noMetrics) ConnOpened()                         {}
func (noMetrics) ConnClosed()                         {}
func (noMetrics) MessageIn(bool)                      {}
func (noMetrics) MessagesOut(int)                     {}
func (noMetrics) Committed(int, time.Duration, error) {}
func (noMetrics) BrokerReceived(int)                  {}

// rawNull is the JSON a message without data carries.
var rawNull = json.RawMessage("null")

// Range calls f for every live connection on this hub until f returns false.
// f must not call back into the hub's connection registry.
func (h *Hub) Range(f func(c *Conn) bool) {
	h.mu.RLock()
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.RUnlock()
	for _, c := range conns {
		if !f(c) {
			return
		}
	}
}
