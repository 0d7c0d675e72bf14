package courier

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxWatches bounds the users one connection may watch.
const DefaultMaxWatches = 1000

// MaxPresenceUsers bounds the users one presence question may name.
const MaxPresenceUsers = 500

// presenceTopic carries a user's presence changes between nodes; a node
// subscribes to it while one of its connections watches the user.
func presenceTopic(user string) string { return "p:" + user }

// watchers tracks which connections watch which users, and each watched
// user's state as last told to them.
type watchers struct {
	mu    sync.Mutex
	users map[string]*watched
	max   int
}

type watched struct {
	conns    map[*Conn]struct{}
	remote   map[string]int // connections on other nodes, by node
	online   bool           // as last told
	lastSeen time.Time
}

func newWatchers(max int) *watchers {
	if max <= 0 {
		max = DefaultMaxWatches
	}
	return &watchers{users: make(map[string]*watched), max: max}
}

// Watch makes c told of each change of users' presence, and returns their
// current state, for the transport to send after its reply. Watching more
// than the hub's limit is ErrTooLarge.
func (h *Hub) Watch(ctx context.Context, c *Conn, users []string) ([]Notice, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("%w: no users to watch", ErrBadRequest)
	}
	for _, u := range users {
		if !ValidUser(u) {
			return nil, fmt.Errorf("%w: invalid user %q", ErrBadRequest, u)
		}
	}
	w := h.watch
	var fresh []string
	var subs []*interest
	w.mu.Lock()
	if c.isClosed() {
		w.mu.Unlock()
		return nil, ErrClosed
	}
	if c.watching == nil {
		c.watching = make(map[string]struct{})
	}
	n := len(c.watching)
	for _, u := range users {
		if _, ok := c.watching[u]; !ok {
			n++
		}
	}
	if n > w.max {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: a connection may watch at most %d users", ErrTooLarge, w.max)
	}
	for _, u := range users {
		if _, ok := c.watching[u]; ok {
			continue
		}
		c.watching[u] = struct{}{}
		e := w.users[u]
		if e == nil {
			e = &watched{conns: make(map[*Conn]struct{}), remote: make(map[string]int)}
			w.users[u] = e
			fresh = append(fresh, u)
			if h.cl != nil {
				subs = append(subs, h.cl.topics.take(presenceTopic(u)))
			}
		}
		e.conns[c] = struct{}{}
	}
	w.mu.Unlock()

	if h.cl != nil && len(fresh) > 0 {
		for i, u := range fresh {
			h.cl.topics.subscribe(presenceTopic(u), subs[i])
		}
		// Subscribed first, so that no change falls between the answer
		// and the subscription.
		replies := h.cl.query(ctx, fresh, "")
		w.mu.Lock()
		for _, r := range replies {
			for i, u := range fresh {
				if e := w.users[u]; e != nil && i < len(r.counts) {
					e.remote[r.origin] = r.counts[i]
				}
			}
		}
		w.mu.Unlock()
	}

	out := make([]Notice, 0, len(users))
	for _, u := range users {
		local := h.Connections(u)
		lastSeen, err := h.lastSeenOf(ctx, u)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		online := local > 0
		if e := w.users[u]; e != nil {
			for _, n := range e.remote {
				online = online || n > 0
			}
			e.online, e.lastSeen = online, lastSeen
		}
		w.mu.Unlock()
		out = append(out, Notice{Kind: NoticePresence, User: u, Online: online, LastSeen: lastSeen})
	}
	return out, nil
}

// Unwatch stops telling c of users' changes; users it does not watch are
// ignored.
func (h *Hub) Unwatch(c *Conn, users []string) {
	w := h.watch
	w.mu.Lock()
	var gone []string
	for _, u := range users {
		if _, ok := c.watching[u]; !ok {
			continue
		}
		delete(c.watching, u)
		if e := w.users[u]; e != nil {
			delete(e.conns, c)
			if len(e.conns) == 0 {
				delete(w.users, u)
				gone = append(gone, u)
			}
		}
	}
	if h.cl != nil {
		for _, u := range gone {
			h.cl.leave(presenceTopic(u))
		}
	}
	w.mu.Unlock()
}

// unwatchAll ends every watch of a closing connection.
func (h *Hub) unwatchAll(c *Conn) {
	h.watch.mu.Lock()
	users := make([]string, 0, len(c.watching))
	for u := range c.watching {
		users = append(users, u)
	}
	h.watch.mu.Unlock()
	if len(users) > 0 {
		h.Unwatch(c, users)
	}
}

// Watching returns how many users c watches.
func (h *Hub) Watching(c *Conn) int {
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	return len(c.watching)
}

// localPresence reports that user's connections on this node went from none
// to some (online) or back (at is when): other nodes learn it, and the
// user's watchers here are told if the user's state changed.
func (h *Hub) localPresence(user string, online bool, at time.Time) {
	if h.cl != nil {
		p := &packet{kind: pktPresence, user: user, counts: []int{h.Connections(user)}}
		if !online {
			p.notice.LastSeen = at
		}
		h.cl.publish(presenceTopic(user), p)
	}
	h.presenceChanged(user, func(*watched) {}, at)
}

// remotePresence records another node's count of user's connections.
func (h *Hub) remotePresence(node, user string, count int, lastSeen time.Time) {
	h.presenceChanged(user, func(e *watched) {
		if count > 0 {
			e.remote[node] = count
		} else {
			delete(e.remote, node)
		}
	}, lastSeen)
}

// nodeGone forgets a node that fell silent: its connections count no more.
func (h *Hub) nodeGone(node string) {
	h.watch.mu.Lock()
	var users []string
	for u, e := range h.watch.users {
		if e.remote[node] > 0 {
			users = append(users, u)
		}
	}
	h.watch.mu.Unlock()
	now := Now()
	for _, u := range users {
		h.presenceChanged(u, func(e *watched) { delete(e.remote, node) }, now)
	}
}

// presenceChanged applies update to user's watch entry, works out the
// user's state, and tells the watchers when it changed. at is when the user
// went offline, if that is what happened.
func (h *Hub) presenceChanged(user string, update func(*watched), at time.Time) {
	local := h.Connections(user)
	w := h.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.users[user]
	if e == nil {
		return
	}
	update(e)
	online := local > 0
	for _, n := range e.remote {
		online = online || n > 0
	}
	if online == e.online {
		return
	}
	e.online = online
	if !online && !at.IsZero() {
		e.lastSeen = at
	}
	d := &Delivery{Notice: &Notice{Kind: NoticePresence, User: user, Online: online, LastSeen: e.lastSeen}}
	for c := range e.conns {
		c.link.Deliver(d)
	}
}

// lastSeenOf returns when user's last connection closed, from memory when
// the store has not been told yet.
func (h *Hub) lastSeenOf(ctx context.Context, user string) (time.Time, error) {
	if t, ok := h.seen.pending(user); ok {
		return t, nil
	}
	t, err := h.store.LastSeen(ctx, user)
	if err != nil {
		return time.Time{}, fmt.Errorf("last seen of %s: %w", user, err)
	}
	return t, nil
}

// PresenceOf returns the presence of each of users, on every node.
func (h *Hub) PresenceOf(ctx context.Context, users []string) (map[string]Presence, error) {
	if len(users) == 0 || len(users) > MaxPresenceUsers {
		return nil, fmt.Errorf("%w: name 1 to %d users", ErrBadRequest, MaxPresenceUsers)
	}
	for _, u := range users {
		if !ValidUser(u) {
			return nil, fmt.Errorf("%w: invalid user %q", ErrBadRequest, u)
		}
	}
	var remote []int
	if h.cl != nil {
		remote = h.cl.counts(ctx, users)
	}
	out := make(map[string]Presence, len(users))
	for i, u := range users {
		p := Presence{Connections: h.Connections(u)}
		if remote != nil {
			p.Connections += remote[i]
		}
		t, err := h.lastSeenOf(ctx, u)
		if err != nil {
			return nil, err
		}
		p.LastSeen = t
		out[u] = p
	}
	return out, nil
}
