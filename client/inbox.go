package client

import (
	"context"
	"slices"
	"strconv"

	"github.com/coder/websocket"
)

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
//
// The inbox head. The first frame on every connection asks for the inbox
// head (headFrame): a resume beyond the head is acked with the head. A head
// below lastSeq means that the server's store was reset, or that
// Options.Since came from elsewhere: the server goes on from its head, and
// so must the client, or it would drop every new message as seen already.
// The same server sends, before that ack, inbox messages at or below
// lastSeq (only a server whose head is below lastSeq does): they are held
// in headHold, with every inbox message after them, until the ack tells
// where the client stands.
//
// A head above lastSeq is a gap: the server says it passed on messages
// that never came. A server can swallow a message stored while it answers
// the head request (it takes the head as including a message whose live
// delivery comes only after the answer, which its seq gate then drops as
// seen). The client then asks for the messages after lastSeq again with a
// resume (fillID), and holds every inbox message until its ack, so that
// the replayed ones and the live ones that overtook them are passed on in
// seq order, each once.

// The replies a connection waits for.
const (
	awaitNone uint8 = iota
	awaitHead       // the ack of headFrame
	awaitFill       // the ack of the resume that fills a gap
)

// headAck takes the reply f to headFrame or to the fill resume, on ws: it
// moves lastSeq back to the server's head when the head is below it, then
// passes on the messages held while the reply was awaited, and asks for a
// gap the head ack reveals.
func (c *Client) headAck(ctx context.Context, ws *websocket.Conn, f frame) error {
	c.mu.Lock()
	held, fill := c.headHold, c.await == awaitFill
	c.await, c.headHold = awaitNone, nil
	if fill {
		slices.SortStableFunc(held, func(a, b Message) int {
			switch {
			case a.Seq < b.Seq:
				return -1
			case a.Seq > b.Seq:
				return 1
			}
			return 0
		})
	} else if f.Type == "ack" && c.known && f.Seq < c.lastSeq {
		c.lastSeq = f.Seq
		if len(held) > 0 && held[0].Seq <= c.lastSeq {
			c.lastSeq = held[0].Seq - 1
		}
		clear(c.ahead)
	}
	c.mu.Unlock()
	for _, m := range held {
		if err := c.take(ctx, m); err != nil {
			return err
		}
	}
	if f.Type == "ack" {
		c.mu.Lock()
		if !fill && f.ID == headID && c.known && f.Seq > c.lastSeq {
			since := c.lastSeq
			c.await = awaitFill
			c.mu.Unlock()
			b := []byte(`{"type":"resume","id":"` + fillID + `","since":` + strconv.FormatUint(since, 10) + `}`)
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := ws.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return err
			}
			return c.release(ctx)
		}
		c.advance(f.Seq)
		c.mu.Unlock()
	}
	return c.release(ctx)
}

// lostHead forgets the head awaited on a broken connection. Messages held
// for it prove a head below lastSeq: lastSeq moves back before the first
// of them, so that the next connection replays them.
func (c *Client) lostHead() {
	if c.await == awaitHead && len(c.headHold) > 0 && c.headHold[0].Seq <= c.lastSeq {
		c.lastSeq = c.headHold[0].Seq - 1
		clear(c.ahead)
	}
	c.await, c.headHold = awaitNone, nil
}

// take delivers message m unless admit keeps it back or drops it.
//
// An inbox message moves lastSeq only once it is on Messages, so that a
// Since saved from LastSeq never skips a message the application did not
// get. When Messages has room, the two happen under c.mu together: an
// application that has received m and then asks LastSeq sees m.Seq. Only
// when it had to wait for room can LastSeq lag the message just received,
// by a moment.
func (c *Client) take(ctx context.Context, m Message) error {
	if !c.admit(&m) {
		return nil
	}
	inbox := m.Room == "" && m.Seq > 0
	if inbox {
		c.mu.Lock()
		select {
		case c.msgs <- m:
			c.advance(m.Seq)
			c.mu.Unlock()
			return nil
		default:
		}
		c.mu.Unlock()
	}
	if err := c.deliver(ctx, m); err != nil {
		return err
	}
	if inbox {
		c.mu.Lock()
		c.advance(m.Seq)
		c.mu.Unlock()
	}
	return nil
}

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
// delivered now. An inbox message at or below lastSeq before the head ack,
// and every inbox message after it, waits for that ack; during a fill,
// every inbox message waits for the fill's ack. A stored inbox
// message already passed on, or the sender's copy of an own send already
// acked, is dropped; while sends written again are waiting for their acks,
// m is held.
func (c *Client) admit(m *Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	inbox := m.Room == "" && m.Seq > 0
	if inbox && (c.await == awaitFill || c.await == awaitHead && c.known && (len(c.headHold) > 0 || m.Seq <= c.lastSeq)) {
		c.headHold = append(c.headHold, *m)
		return false
	}
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
	return put(c, ctx, c.msgs, m)
}

// put sends v on ch, the Messages or Events channel. While it waits for
// the application, the connection's silence is not counted (heartbeat.go).
func put[T any](c *Client, ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	default:
	}
	c.stalled.Store(true)
	defer func() {
		c.touch()
		c.stalled.Store(false)
	}()
	select {
	case ch <- v:
		return nil
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
