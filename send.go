package courier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// An Outgoing is a message to send: to a user, to one connection
// ("conn:<id>"), or to a room.
type Outgoing struct {
	// From is the sender: the authenticated user of Origin, or a label
	// given by the server API (then set Label).
	From string
	// Label marks From as a label rather than a user: the message goes into
	// no sender inbox.
	Label bool
	// To is a user id or "conn:<id>"; empty for a room message.
	To string
	// Room is the room for a room message.
	Room  string
	Event string // "message" when empty
	Data  []byte // JSON; null when empty
	// Volatile messages are delivered live only: not stored, not replayed.
	// Messages to a connection are always volatile.
	Volatile bool
	// Key makes a durable send idempotent: a key the sender used before
	// stores and delivers nothing new and returns the first message.
	Key string
	// Origin is the sending connection, or nil for the server API. It gets
	// no copy of its own message; its ack is ordered with its user's seq.
	Origin *Conn
}

// A Receipt tells what became of a sent message.
type Receipt struct {
	ID string
	// Seq is the message's place in the sender's inbox for a user's send,
	// in the recipient's for a labelled (server API) send, or the room seq;
	// 0 for a volatile message.
	Seq uint64
	// Delivered counts the live connections the message was handed to.
	Delivered int
	// Duplicate is set when Key was used before.
	Duplicate bool
}

// pending is a durable message waiting for the committer.
type pending struct {
	env   Envelope
	out   *Outgoing
	done  func(Receipt, error)
	bytes int64 // what it holds of h.queued
}

// Post sends o and calls done with the receipt: for a durable message after
// it is stored and handed to the connections; for a sending connection,
// done runs in order with the deliveries of its user's inbox, so that the
// ack of seq N never follows a message with seq > N. done must not block.
func (h *Hub) Post(o Outgoing, done func(Receipt, error)) {
	if err := h.check(&o); err != nil {
		done(Receipt{}, err)
		return
	}
	if o.Volatile {
		h.postVolatile(&o, done)
		return
	}
	h.postDurable(o, done, true)
}

// postVolatile is Post of a live-only message. A function of its own, so
// that o and the message stay on the stack: the durable path keeps both.
func (h *Hub) postVolatile(o *Outgoing, done func(Receipt, error)) {
	h.metrics.MessageIn(false)
	now := Now() // one clock read for the id and the time
	msg := Message{ID: h.ids.next(now), From: o.From, To: o.To, Room: o.Room, Event: o.Event, Data: o.Data, Time: now}
	if id, ok := ConnTarget(o.To); ok && h.cl != nil && nodeOf(id) != h.node {
		h.cl.sendConn(id, msg, done)
		return
	}
	d := &Delivery{Message: msg}
	n, err := h.deliverVolatile(o, d)
	done(Receipt{ID: d.ID, Delivered: n}, err)
}

// TryPost is Post for a caller that must not wait, such as a connection's
// event loop: when a durable message would wait for room in the commit
// queue (MaxBatch, MaxStoreQueue), it does nothing and returns false, and
// the caller calls Post from where it may wait. Otherwise it does what Post
// does and returns true: done is called as Post calls it.
func (h *Hub) TryPost(o Outgoing, done func(Receipt, error)) bool {
	if err := h.check(&o); err != nil {
		done(Receipt{}, err)
		return true
	}
	if o.Volatile {
		h.postVolatile(&o, done)
		return true
	}
	return h.postDurable(o, done, false)
}

// postDurable is Post of a message to store first. When wait is false and
// the commit queue has no room, it does nothing and returns false.
func (h *Hub) postDurable(o Outgoing, done func(Receipt, error), wait bool) bool {
	bytes := min(int64(len(o.Data)+len(o.Key)+256), h.maxQueue)
	if wait {
		if err := h.queued.Acquire(h.stopped, bytes); err != nil {
			done(Receipt{}, ErrClosed)
			return true
		}
	} else if !h.queued.TryAcquire(bytes) {
		return false
	}
	now := Now() // one clock read for the id and the time
	msg := Message{ID: h.ids.next(now), From: o.From, To: o.To, Room: o.Room, Event: o.Event, Data: o.Data, Time: now}
	if c := o.Origin; c != nil {
		c.sent(msg.ID, done)
		done = func(r Receipt, err error) {
			// A gap-filling replay may have acked it already, in its place.
			if ack := c.takeSent(msg.ID); ack != nil {
				ack(r, err)
			}
		}
	}
	p := &pending{env: Envelope{Message: msg, Key: o.Key, NoSenderCopy: o.Label}, out: &o, done: done, bytes: bytes}
	if !wait {
		select {
		case h.commits <- p:
			h.metrics.MessageIn(true)
			return true
		default:
			h.queued.Release(bytes)
			if c := o.Origin; c != nil {
				c.takeSent(msg.ID) // nobody has seen the id: forget it
			}
			return false
		}
	}
	h.metrics.MessageIn(true)
	select {
	case h.commits <- p:
	case <-h.stop:
		h.queued.Release(bytes)
		done(Receipt{}, ErrClosed)
	}
	return true
}

// Send is Post that waits for the receipt, for callers outside a connection
// such as the server API or a Go program embedding the hub. On a cluster,
// Delivered counts the recipient's connections on every node.
func (h *Hub) Send(ctx context.Context, o Outgoing) (Receipt, error) {
	type result struct {
		r   Receipt
		err error
	}
	ch := make(chan result, 1)
	remote := make(chan int, 1)
	_, isConn := ConnTarget(o.To)
	if h.cl != nil && !isConn && (o.To != "" || o.Room != "") {
		// The nodes holding the recipient count their connections while
		// the message is stored; each of them then gets it.
		go func() { remote <- h.cl.count(ctx, o.To, o.Room) }()
	} else {
		remote <- 0
	}
	h.Post(o, func(r Receipt, err error) { ch <- result{r, err} })
	select {
	case res := <-ch:
		if res.err == nil && !res.r.Duplicate {
			select {
			case n := <-remote:
				res.r.Delivered += n
			case <-ctx.Done():
			}
		}
		return res.r, res.err
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	}
}

// check validates o and fills its defaults.
func (h *Hub) check(o *Outgoing) error {
	if o.Event == "" {
		o.Event = "message"
	}
	if len(o.Data) == 0 {
		o.Data = rawNull
	}
	if !o.Label && !ValidUser(o.From) {
		return fmt.Errorf("%w: invalid sender", ErrBadRequest)
	}
	if o.Label && o.From == "" {
		o.From = "system"
	}
	// Stores keep text: a NUL or broken UTF-8 in these would be refused
	// there, failing the whole group commit it rode in.
	if o.Label && !ValidUser(o.From) {
		return fmt.Errorf("%w: invalid from label (1 to 128 bytes of UTF-8, no control characters)", ErrBadRequest)
	}
	if !plainText(o.Event) {
		return fmt.Errorf("%w: event must be UTF-8 without NUL", ErrBadRequest)
	}
	if !plainText(o.Key) {
		return fmt.Errorf("%w: key must be UTF-8 without NUL", ErrBadRequest)
	}
	switch {
	case o.Room != "" && o.To != "":
		return fmt.Errorf("%w: give either to or room", ErrBadRequest)
	case o.Room != "":
		if !ValidRoom(o.Room) {
			return fmt.Errorf("%w: invalid room name", ErrBadRequest)
		}
		if o.Origin != nil && !h.Member(o.Origin, o.Room) {
			return fmt.Errorf("%w: join room %q before publishing to it", ErrForbidden, o.Room)
		}
	case o.To == "":
		return fmt.Errorf("%w: missing to", ErrBadRequest)
	default:
		if _, ok := ConnTarget(o.To); ok {
			o.Volatile = true
		} else if !ValidUser(o.To) {
			return fmt.Errorf("%w: invalid recipient", ErrBadRequest)
		}
	}
	if o.Key != "" && (len(o.Key) > 256 || o.Volatile) {
		if o.Volatile {
			o.Key = "" // nothing is stored, so there is nothing to deduplicate
		} else {
			return fmt.Errorf("%w: key longer than 256 bytes", ErrBadRequest)
		}
	}
	return nil
}

// plainText reports whether s is valid UTF-8 without NUL bytes.
func plainText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// deliverVolatile hands a live-only message to the connections it is for.
func (h *Hub) deliverVolatile(o *Outgoing, d *Delivery) (int, error) {
	var targets []*Conn
	id, isConn := ConnTarget(o.To)
	h.mu.RLock()
	switch {
	case o.Room != "":
		targets = h.rooms[o.Room]
	case isConn:
		if c := h.conns[id]; c != nil {
			targets = []*Conn{c}
		}
	default:
		targets = h.users[o.To]
	}
	h.mu.RUnlock()
	if isConn && len(targets) == 0 {
		return 0, fmt.Errorf("%w: no connection %s", ErrNotFound, o.To)
	}
	n := 0
	for _, c := range targets {
		if c != o.Origin {
			c.live(d)
			n++
		}
	}
	h.metrics.MessagesOut(n)
	if h.cl != nil {
		switch {
		case o.Room != "":
			h.cl.publish(roomTopic(o.Room), &packet{kind: pktVolatile, msg: d.Message})
		case !isConn:
			h.cl.publish(userTopic(o.To), &packet{kind: pktVolatile, msg: d.Message})
		}
	}
	return n, nil
}

// committer is the hub's single writer: it takes whatever durable messages
// have queued up while the previous commit ran and stores them in one
// transaction (group commit), then delivers them in order.
func (h *Hub) committer() {
	defer h.commitWG.Done()
	batch := make([]*pending, 0, h.maxBatch)
	envs := make([]*Envelope, 0, h.maxBatch)
	for {
		var first *pending
		select {
		case first = <-h.commits:
		case <-h.stop:
			// Store what was accepted before the stop.
			select {
			case first = <-h.commits:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < h.maxBatch {
			select {
			case p := <-h.commits:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		envs = envs[:0]
		for _, p := range batch {
			envs = append(envs, &p.env)
		}
		h.commit(batch, envs)
		for _, p := range batch {
			h.queued.Release(p.bytes)
		}
		clear(batch)
	}
}

// commit stores a batch and routes it. A batch the store refuses as a bad
// request is stored again one message at a time, so that one bad message
// cannot fail the others it was grouped with.
func (h *Hub) commit(batch []*pending, envs []*Envelope) {
	start := time.Now()
	err := h.store.Append(context.Background(), envs)
	h.metrics.Committed(len(batch), time.Since(start), err)
	if err == nil {
		for _, p := range batch {
			h.route(p)
		}
		return
	}
	if errors.Is(err, ErrBadRequest) && len(batch) > 1 {
		for i := range batch {
			h.commit(batch[i:i+1], envs[i:i+1])
		}
		return
	}
	if !errors.Is(err, ErrBadRequest) {
		h.log.Error("store batch failed", "messages", len(batch), "err", err)
	}
	for _, p := range batch {
		p.done(Receipt{}, fmt.Errorf("store message %s: %w", p.env.ID, err))
	}
}

// route hands a stored message to the live connections it is for.
func (h *Hub) route(p *pending) {
	e, o := &p.env, p.out
	if e.Room != "" {
		n := 0
		if !e.Duplicate {
			n = h.deliverRoom(e, o.Origin)
			if h.cl != nil {
				h.cl.publish(roomTopic(e.Room), &packet{kind: pktRoom, msg: withSeq(e.Message, e.ToSeq)})
			}
		}
		p.done(Receipt{ID: e.ID, Seq: e.ToSeq, Delivered: n, Duplicate: e.Duplicate}, nil)
		return
	}
	receipt := Receipt{ID: e.ID, Seq: e.FromSeq, Duplicate: e.Duplicate}
	if e.NoSenderCopy {
		receipt.Seq = e.ToSeq
	}
	if !e.Duplicate {
		receipt.Delivered = h.deliverInbox(e.To, e.ToSeq, e.Message, o.Origin, nil)
		m := withSeq(e.Message, e.ToSeq)
		offline := h.offline != nil && receipt.Delivered == 0 && e.From != e.To
		switch {
		case h.cl != nil && offline:
			h.cl.publishInboxAsking(e.To, m, func(online bool) {
				if !online {
					h.offline(e.To, m)
				}
			})
		case h.cl != nil:
			h.cl.publishInbox(e.To, m)
		case offline:
			h.offline(e.To, m)
		}
		if h.cl != nil && !e.NoSenderCopy && e.From != e.To {
			h.cl.publishInbox(e.From, withSeq(e.Message, e.FromSeq))
		}
	}
	ack := func() { p.done(receipt, nil) }
	switch {
	case e.NoSenderCopy || o.Origin == nil:
		if !e.NoSenderCopy && !e.Duplicate && e.From != e.To {
			h.deliverInbox(e.From, e.FromSeq, e.Message, nil, nil)
		}
		ack()
	case e.Duplicate:
		// Nothing new was stored; the ack is not part of the seq order.
		ack()
	case e.From == e.To:
		// One inbox copy, already handed to the other connections above;
		// the sender's ack takes its place in the gate.
		o.Origin.offer(&Delivery{Message: withSeq(e.Message, e.FromSeq), Durable: true}, ack)
	default:
		h.deliverInbox(e.From, e.FromSeq, e.Message, o.Origin, ack)
	}
}

// deliverInbox hands a stored message, as it stands at seq in user's inbox,
// to user's connections: except skips one (it gets ack through the gate
// instead). It returns how many connections it was handed to.
func (h *Hub) deliverInbox(user string, seq uint64, m Message, except *Conn, ack func()) int {
	h.mu.RLock()
	conns := h.users[user]
	h.mu.RUnlock()
	d := &Delivery{Message: withSeq(m, seq), Durable: true}
	n := 0
	for _, c := range conns {
		if c == except {
			if ack != nil {
				c.offer(d, ack)
			}
			continue
		}
		c.offer(d, nil)
		n++
	}
	h.metrics.MessagesOut(n)
	return n
}

// deliverRoom hands a stored room message to every member but its sender.
func (h *Hub) deliverRoom(e *Envelope, origin *Conn) int {
	h.mu.RLock()
	conns := h.rooms[e.Room]
	h.mu.RUnlock()
	d := &Delivery{Message: withSeq(e.Message, e.ToSeq), Durable: true}
	n := 0
	for _, c := range conns {
		if c != origin {
			c.link.Deliver(d)
			n++
		}
	}
	h.metrics.MessagesOut(n)
	return n
}

func withSeq(m Message, seq uint64) Message {
	m.Seq = seq
	return m
}
