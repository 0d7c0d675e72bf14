package client

import "context"

// Inbox bookkeeping: the client's place in its user's inbox (lastSeq), and
// the sender's copies of its own durable sends.
//
// The ack of a durable send takes the message's place in the connection's
// stream (protocol.md), so it normally names lastSeq+1. Only the ack of a
// send repeated after a reconnect (a repeated idempotency key) may overtake
// the replay of the messages before it: its seq is then kept in ahead and
// counted when the replay reaches it, so that those messages are not taken
// for seen ones. The replay may also bring back the sender's copy of such a
// send, before or after its ack: while sends written again after a
// reconnect wait for their acks, message frames are held, and the sender's
// copies the acks name are left out when the held messages are delivered.
// The fields below are guarded by c.mu.

// sawOwn counts the ack of an own durable send with inbox seq seq.
func (c *Client) sawOwn(seq uint64) {
	switch {
	case !c.known:
		c.lastSeq, c.known = max(c.lastSeq, seq), true
	case seq == c.lastSeq+1:
		c.lastSeq = seq
	case seq > c.lastSeq:
		c.ahead[seq] = true
	}
	c.drainAhead()
}

// advance moves lastSeq to seq, a seq the client has passed on (or skipped).
func (c *Client) advance(seq uint64) {
	c.lastSeq, c.known = max(c.lastSeq, seq), true
	delete(c.ahead, seq)
	c.drainAhead()
}

func (c *Client) drainAhead() {
	if len(c.ahead) == 0 {
		return
	}
	for c.ahead[c.lastSeq+1] {
		delete(c.ahead, c.lastSeq+1)
		c.lastSeq++
	}
	for s := range c.ahead {
		if s <= c.lastSeq {
			delete(c.ahead, s)
		}
	}
}

// admit decides what becomes of message m: it returns true when m is to be
// delivered now. A stored inbox message already passed on, or the sender's
// copy of an own send already acked, is dropped; while sends written again
// are waiting for their acks, m is held.
func (c *Client) admit(m *Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	inbox := m.Room == "" && m.Seq > 0
	if inbox {
		if c.known && m.Seq <= c.lastSeq {
			return false // delivered before a reconnect
		}
		if c.ahead[m.Seq] { // the sender's copy of an own send, acked already
			c.advance(m.Seq)
			return false
		}
	}
	if c.holding {
		if inbox {
			c.advance(m.Seq)
		}
		c.hold = append(c.hold, *m)
		return false
	}
	return true
}

// release delivers the messages held while sends written again waited for
// their acks, once none waits any more, but not the sender's copies of
// those sends.
func (c *Client) release(ctx context.Context) error {
	c.mu.Lock()
	if !c.holding || len(c.holdFor) > 0 {
		c.mu.Unlock()
		return nil
	}
	held, own := c.hold, c.own
	c.holding, c.hold, c.own = false, nil, map[string]bool{}
	c.mu.Unlock()
	for _, m := range held {
		if m.Room == "" && own[m.ID] {
			continue
		}
		if err := c.deliver(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// deliver hands m to Messages.
func (c *Client) deliver(ctx context.Context, m Message) error {
	select {
	case c.msgs <- m:
		return nil
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
