package courier

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// replayPage is how many stored messages a replay reads at a time.
const replayPage = 256

// maxHeld bounds the live deliveries a connection holds back while it
// replays. Deliveries beyond it are dropped: they are stored, and the replay
// reads them from the store when it reaches them.
const maxHeld = 1024

// A Conn is one live connection of a user, as the hub sees it.
//
// A Conn keeps its user's stored messages flowing in seq order with no gap
// and no duplicate: it remembers the last inbox seq it has passed on, drops
// what it has already seen, holds back live messages while it replays from
// the store, and fills any gap from the store.
type Conn struct {
	id       string
	identity Identity
	hub      *Hub
	link     Link

	mu        sync.Mutex
	seq       uint64 // last inbox seq passed on (delivered or acknowledged)
	synced    bool   // seq is meaningful: set at attach, by a resume, or (the head unread) by the first durable delivery
	replaying bool
	head      uint64 // the inbox head read at attach (Head)
	headKnown bool
	held      []heldItem
	sendMu    sync.Mutex                      // guards sending; taken under mu, or alone
	sending   map[string]func(Receipt, error) // acks owed for durable messages sent here
	resumes   []resumeRequest
	closed    bool
	welcomed  atomic.Bool         // the transport's welcome is out (Hub.Attach); set under mu
	early     *[]*Delivery        // live deliveries that came before it, in order (guarded by mu)
	rooms     map[string]struct{} // guarded by hub.mu, not mu
	watching  map[string]struct{} // users watched; guarded by hub.watch.mu

	// stopReplay cancels the running replay's store reads (guarded by mu).
	// A context per replay, not per connection: a query under a context
	// leaves a map of child contexts in it, about 360 bytes that an idle
	// connection would keep for good.
	stopReplay context.CancelFunc
}

type heldItem struct {
	d   *Delivery
	ack func() // set instead of delivering: the sending connection's ack
}

func (h heldItem) seq() uint64 { return h.d.Seq }

type resumeRequest struct {
	since uint64
	done  func(latest uint64, err error)
}

// Head returns the inbox head read when c was attached: every message of
// its user stored with a greater seq reaches c, live or by its replay. ok
// is false before Attach reads it, or when the store could not be read. A
// transport may tell the client in its greeting (the welcome's seq), so
// that a client that knows no seq yet has a place to resume from.
func (c *Conn) Head() (seq uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.head, c.headKnown
}

// ID returns the connection id, unique across nodes.
func (c *Conn) ID() string { return c.id }

// User returns the authenticated user of the connection.
func (c *Conn) User() string { return c.identity.User }

// Identity returns what the connection's token proved.
func (c *Conn) Identity() Identity { return c.identity }

// offer passes a durable delivery of this connection's user through the seq
// gate. ack, when set, is sent in place of the message: this connection sent it.
func (c *Conn) offer(d *Delivery, ack func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.replaying {
		c.hold(heldItem{d, ack})
		return
	}
	if !c.pass(heldItem{d, ack}) {
		c.hold(heldItem{d, ack})
		c.startReplay(nil)
	}
}

// live hands d, a delivery outside the inbox's seq order (a volatile
// message, a notice), to the link: at once when the welcome is out, else
// right after it. A connection is in Hub.users from the start of Attach, a
// store read before its welcome, and the welcome must be its first frame.
func (c *Conn) live(d *Delivery) {
	if c.welcomed.Load() {
		c.link.Deliver(d)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.welcomed.Load():
		c.link.Deliver(d)
	case c.early == nil:
		c.early = &[]*Delivery{d}
	case len(*c.early) < maxHeld:
		*c.early = append(*c.early, d)
	}
}

// welcome marks the welcome sent and passes on what came before it.
func (c *Conn) welcome() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early != nil {
		for _, d := range *c.early {
			c.link.Deliver(d)
		}
		c.early = nil
	}
	c.welcomed.Store(true)
}

// pass delivers item if it is next in seq order, drops it if already seen,
// and reports false for a gap. c.mu is held.
func (c *Conn) pass(it heldItem) bool {
	s := it.seq()
	switch {
	case !c.synced || s == c.seq+1:
		c.synced, c.seq = true, s
	case s <= c.seq:
		// Seen already (a replay got there first). The ack is still owed.
		if it.ack != nil {
			it.ack()
		}
		return true
	default:
		return false
	}
	if it.ack != nil {
		it.ack()
	} else {
		// The mark goes first: once the frame is out, the recipient may
		// read it, and the read waits only for marks already added.
		c.reached(it.d)
		c.link.Deliver(it.d)
	}
	return true
}

// hold keeps it back until the replay catches up. c.mu is held.
func (c *Conn) hold(it heldItem) {
	if len(c.held) >= maxHeld && it.ack == nil {
		return // stored: the replay reads it from the store
	}
	c.held = append(c.held, it)
}

// Resume replays every stored message of the user with seq > since, then
// continues with live ones, with no gap and no duplicate. done is called
// with the latest seq once the replay has caught up. Resume returns at once;
// the replay runs in a goroutine owned by the connection.
func (c *Conn) Resume(since uint64, done func(latest uint64, err error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.startReplay(&resumeRequest{since: since, done: done})
}

// startAt begins live delivery after seq head, read when the connection
// attached; what was held meanwhile follows in order. With ok false (the
// head could not be read) the connection syncs on the first message it gets.
func (c *Conn) startAt(head uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if ok {
		c.seq, c.synced = head, true
	}
	if len(c.resumes) == 0 && c.drainHeld() {
		c.replaying = false
		return
	}
	// A gap, or a resume asked for meanwhile: the replay goroutine takes over.
	c.hub.wg.Add(1)
	go c.replay()
}

// behind starts a replay when the inbox head is past what the connection
// has seen: messages were stored that never reached it live.
func (c *Conn) behind(head uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.replaying || !c.synced || head <= c.seq {
		return
	}
	c.startReplay(nil)
}

// startReplay queues r (nil: fill a gap from the current seq) and starts the
// replay goroutine unless it runs. c.mu is held.
func (c *Conn) startReplay(r *resumeRequest) {
	if r != nil {
		c.resumes = append(c.resumes, *r)
	}
	if c.replaying {
		return
	}
	c.replaying = true
	c.hub.wg.Add(1)
	go c.replay()
}

// replay is the connection's replay goroutine: it serves queued resume
// requests and gaps until it has caught up with live delivery.
func (c *Conn) replay() {
	defer c.hub.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.mu.Lock()
	if c.closed {
		cancel()
	}
	c.stopReplay = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.stopReplay = nil
		c.mu.Unlock()
	}()
	var req *resumeRequest
	// before is where the connection stood when req was taken, known when
	// it was synced: a resume beyond the head falls back to it (see below).
	var before uint64
	var beforeOK bool
	take := func() {
		r := c.resumes[0]
		c.resumes[0] = resumeRequest{} // the array outlives the request
		c.resumes = c.resumes[1:]
		if len(c.resumes) == 0 {
			c.resumes = nil
		}
		req = &r
		before, beforeOK = c.seq, c.synced
		c.seq, c.synced = r.since, true
	}
	c.mu.Lock()
	if len(c.resumes) > 0 {
		take()
	}
	c.mu.Unlock()
	for {
		latest, err := c.catchUp(ctx)
		c.mu.Lock()
		if err != nil {
			c.replaying = false
			c.held = nil
			reqs := c.resumes
			c.resumes = nil
			c.mu.Unlock()
			if !c.isClosed() {
				c.hub.log.Warn("replay failed", "conn", c.id, "user", c.identity.User, "err", err)
				c.link.Close(CloseInternal, "replay failed")
			}
			if req != nil {
				req.done(0, err)
			}
			for _, r := range reqs {
				r.done(0, err)
			}
			return
		}
		if latest < c.seq {
			// The client claimed more than the inbox holds (a reset store,
			// a client asking for the head, or a client bug). The head just
			// read may count a message committed but not yet routed, so
			// the connection goes back to what it had passed before the
			// resume and reads the rest from the store: the ack then names
			// only what this connection was given, and the late live copy
			// is dropped as a duplicate instead of being swallowed.
			if beforeOK && before <= latest {
				c.seq, beforeOK = before, false
				c.mu.Unlock()
				continue
			}
			// Where the connection stood is unknown (its head could not
			// be read at attach): fall back to the head as it stood when
			// the resume began — before anything held back since — so that
			// new messages are not mistaken for duplicates.
			c.seq = latest
			for _, it := range c.held {
				if it.seq() <= c.seq {
					c.seq = it.seq() - 1
				}
			}
		}
		if c.drainHeld() {
			if req != nil {
				// Under c.mu, so that no live message slips in before
				// the reply that ends the replay.
				req.done(c.seq, nil)
				req = nil
			}
			if len(c.resumes) == 0 {
				c.replaying = false
				c.mu.Unlock()
				return
			}
			take()
		}
		c.mu.Unlock()
	}
}

// sent records that this connection sent durable message id and is owed
// its ack, which done gives: a replay that reads the message from the store
// acks it in its place, in seq order, instead of delivering it back.
func (c *Conn) sent(id string, done func(Receipt, error)) {
	c.sendMu.Lock()
	if c.sending == nil {
		c.sending = make(map[string]func(Receipt, error))
	}
	c.sending[id] = done
	c.sendMu.Unlock()
}

// takeSent returns and forgets the ack owed for id, or nil when it was
// given already. Acks run under c.mu (the gate passes them), hence a lock
// of its own.
func (c *Conn) takeSent(id string) func(Receipt, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	done := c.sending[id]
	delete(c.sending, id)
	return done
}

// drainHeld passes held items in seq order; it reports false when a gap is
// left, which the store must fill. c.mu is held.
func (c *Conn) drainHeld() bool {
	slices.SortStableFunc(c.held, func(a, b heldItem) int {
		switch {
		case a.seq() < b.seq():
			return -1
		case a.seq() > b.seq():
			return 1
		}
		return 0
	})
	for i, it := range c.held {
		if !c.pass(it) {
			c.held = slices.Delete(c.held, 0, i)
			return false
		}
	}
	c.held = c.held[:0]
	return true
}

// catchUp reads the inbox after the current seq until it is exhausted,
// delivering each message, paced by the link. It returns the latest seq read
// (or the seq it started from when there was nothing).
func (c *Conn) catchUp(ctx context.Context) (uint64, error) {
	c.mu.Lock()
	after := c.seq
	c.mu.Unlock()
	after, err := c.skipExpired(ctx, after)
	if err != nil {
		return 0, err
	}
	latest := after
	for {
		msgs, err := c.hub.store.Inbox(ctx, c.identity.User, after, replayPage)
		if err != nil {
			return 0, err
		}
		for i := range msgs {
			if err := c.link.Drained(ctx); err != nil {
				return 0, err
			}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return 0, ErrClosed
			}
			if msgs[i].Seq == c.seq+1 {
				c.seq = msgs[i].Seq
				// A message this connection sent and is still owed the
				// ack of: the ack takes its place, as it would live.
				if ack := c.takeSent(msgs[i].ID); ack != nil {
					ack(Receipt{ID: msgs[i].ID, Seq: msgs[i].Seq}, nil)
				} else {
					d := &Delivery{Message: msgs[i], Durable: true}
					c.reached(d) // before the frame leaves, as in pass
					c.link.Deliver(d)
				}
			}
			c.mu.Unlock()
		}
		if len(msgs) > 0 {
			after = msgs[len(msgs)-1].Seq
			latest = after
		}
		if len(msgs) < replayPage {
			if len(msgs) == 0 && after > 0 {
				// Nothing after `after`: learn the real head, for a
				// client that claimed more than exists.
				head, err := c.hub.store.LatestSeq(ctx, c.identity.User)
				if err != nil {
					return 0, err
				}
				latest = head
			}
			return latest, nil
		}
	}
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close closes the connection's transport with code and reason; the
// transport then reports the end with Hub.Detach.
func (c *Conn) Close(code int, reason string) { c.link.Close(code, reason) }

// markClosed ends the connection's part in delivery.
func (c *Conn) markClosed() {
	c.mu.Lock()
	c.closed = true
	c.held = nil
	if c.stopReplay != nil {
		c.stopReplay()
	}
	c.mu.Unlock()
}

// LogAttrs returns the connection's id and user as log attributes.
func (c *Conn) LogAttrs() []any {
	return []any{slog.String("conn", c.id), slog.String("user", c.identity.User)}
}

// cancelReplay stops the store reads of a running replay, as the hub
// closes.
func (c *Conn) cancelReplay() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopReplay != nil {
		c.stopReplay()
	}
}
