package courier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// WebSocket close codes the hub asks transports to use.
const (
	CloseGoingAway      = 1001 // the client went away
	CloseSlowConsumer   = 1008 // the client did not read its messages fast enough
	CloseInternal       = 1011 // the server failed to serve the connection
	CloseServiceRestart = 1012 // the server is shutting down
	CloseDisconnected   = 4001 // the server API disconnected the user
)

// Config configures a Hub.
type Config struct {
	// Store keeps durable messages. Required.
	Store Store
	// Logger receives the hub's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics receives the hub's measurements; none when nil.
	Metrics Metrics
	// MaxBatch caps how many messages one store commit takes (default 512).
	MaxBatch int
}

// Metrics receives a hub's measurements. Package server implements it with
// Prometheus; every method must be cheap and safe for concurrent use.
type Metrics interface {
	ConnOpened()
	ConnClosed()
	MessageIn(durable bool)
	MessagesOut(n int)
	Committed(batch int, took time.Duration, err error)
}

// A Hub routes messages to users, connections and rooms, and keeps durable
// messages in its Store before acknowledging them.
type Hub struct {
	store   Store
	log     *slog.Logger
	metrics Metrics
	ids     *ids

	mu    sync.RWMutex
	users map[string][]*Conn // replaced, never changed in place, so readers may keep a slice after unlocking
	conns map[string]*Conn
	rooms map[string][]*Conn // as users
	// lastSeen is when each user's last connection closed.
	lastSeen map[string]time.Time

	commits  chan *pending
	maxBatch int
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
		cfg.MaxBatch = 512
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
		lastSeen: make(map[string]time.Time),
		commits:  make(chan *pending, 4*cfg.MaxBatch),
		maxBatch: cfg.MaxBatch,
		stop:     make(chan struct{}),
	}
	h.commitWG.Add(1)
	go h.committer()
	return h, nil
}

// NewConn returns a connection of identity over link, with its id, not yet
// attached: the transport can greet the client before anything is delivered.
func (h *Hub) NewConn(identity Identity, link Link) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{id: randomID(), identity: identity, hub: h, link: link, ctx: ctx, cancel: cancel}
}

// Attach starts delivery to c. With since, the connection first replays its
// user's inbox after that seq; live messages that arrive meanwhile are held
// and follow the replay, with no gap and no duplicate.
func (h *Hub) Attach(c *Conn, since *uint64) {
	if since != nil {
		// Replaying before it is reachable, so that no live message can
		// overtake the replay.
		c.mu.Lock()
		c.resumes = append(c.resumes, resumeRequest{since: *since, done: func(uint64, error) {}})
		c.replaying = true
		c.mu.Unlock()
	}
	h.mu.Lock()
	h.conns[c.id] = c
	h.users[c.identity.User] = appendCopy(h.users[c.identity.User], c)
	h.mu.Unlock()
	h.metrics.ConnOpened()
	if since != nil {
		h.wg.Add(1)
		go c.replay()
	}
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
	if h.users[c.identity.User] = removeCopy(h.users, c.identity.User, c); h.users[c.identity.User] == nil {
		h.lastSeen[c.identity.User] = Now()
	}
	for room := range c.rooms {
		h.rooms[room] = removeCopy(h.rooms, room, c)
	}
	c.rooms = nil
	h.mu.Unlock()
	h.metrics.ConnClosed()
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

// Disconnect closes every connection of user with code; it returns how many.
func (h *Hub) Disconnect(user string, code int, reason string) int {
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
	if !c.identity.MayJoin(room) {
		return fmt.Errorf("%w: the token does not allow room %q", ErrForbidden, room)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Detach marks the connection closed before it takes h.mu to remove
	// it from its rooms, so a join racing a close cannot leave it behind.
	if c.isClosed() {
		return ErrClosed
	}
	if _, ok := c.rooms[room]; ok {
		return nil
	}
	if c.rooms == nil {
		c.rooms = make(map[string]struct{}, 1)
	}
	c.rooms[room] = struct{}{}
	h.rooms[room] = appendCopy(h.rooms[room], c)
	return nil
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
	h.closing.Do(func() { close(h.stop) })
	h.commitWG.Wait()
	h.mu.RLock()
	for _, c := range h.conns {
		c.cancel()
	}
	h.mu.RUnlock()
	h.wg.Wait()
	return nil
}

type noMetrics struct{}

func (noMetrics) ConnOpened()                         {}
func (noMetrics) ConnClosed()                         {}
func (noMetrics) MessageIn(bool)                      {}
func (noMetrics) MessagesOut(int)                     {}
func (noMetrics) Committed(int, time.Duration, error) {}

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

// Presence is a user's online state as this hub knows it.
type Presence struct {
	Connections int       // live connections
	LastSeen    time.Time // when the user's last connection closed; zero if never (since start)
}

// Presence returns user's presence.
func (h *Hub) Presence(user string) Presence {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return Presence{Connections: len(h.users[user]), LastSeen: h.lastSeen[user]}
}
