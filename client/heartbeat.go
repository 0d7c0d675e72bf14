package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The heartbeat. A connection can die without a close: a NAT or proxy
// that forgets it, a network that changes, a peer that freezes. Writes
// then still succeed (into the kernel's buffer) and reads wait forever, so
// only silence tells. When nothing has come for Options.Heartbeat, the
// client sends a WebSocket ping (coder/websocket's Conn.Ping, which waits
// for the pong); without an answer within Options.HeartbeatTimeout, it
// closes the connection, and run reconnects and resumes as after any other
// break.
//
// A WebSocket ping rather than the protocol's {"type":"ping"} frame: the
// server's WebSocket layer answers it, so it takes no request id, no frame
// of the server's rate limit and no place among the replies, and it is
// what the server's own keepalive uses. Anything received counts as an
// answer, too: a data frame, and the server's own pings (every
// --ping-interval), so an idle connection to a server that pings at least
// as often as Heartbeat costs no ping from the client.
//
// Neither the pong nor any frame is read while the read loop waits for the
// application to take a message or event (Messages or Events full): that
// time does not count as silence, and a ping that overlaps it is not held
// against the connection.

// touch records that something was received on the current connection.
func (c *Client) touch() { c.rx.Store(time.Now().UnixNano()) }

// heartbeat starts watching ws for silence (unless Options.Heartbeat is
// negative) and returns the function that stops it and waits until it has
// stopped. run calls it around each connection's read loop.
func (c *Client) heartbeat(ctx context.Context, ws *websocket.Conn) (stop func()) {
	if c.opts.Heartbeat < 0 {
		return func() {}
	}
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.beat(hctx, ws)
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// beat pings ws after each Options.Heartbeat of silence and closes it when
// a ping is not answered in time. It returns when ctx ends or it closed ws.
func (c *Client) beat(ctx context.Context, ws *websocket.Conn) {
	every, wait := c.opts.Heartbeat, c.opts.HeartbeatTimeout
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.stalled.Load() { // put touches when it is done
			t.Reset(every)
			continue
		}
		if idle := time.Since(time.Unix(0, c.rx.Load())); idle < every {
			t.Reset(every - idle)
			continue
		}
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := ws.Ping(pctx)
		cancel()
		switch {
		case err == nil:
			c.touch()
		case ctx.Err() != nil || errors.Is(err, net.ErrClosed) || c.isClosing():
			return // the connection ends anyway
		case c.stalled.Load() || c.rx.Load() >= sent.UnixNano():
			// Frames came, or the application held up reading: alive.
		default:
			ws.CloseNow() // dead: the read loop fails, run reconnects
			return
		}
		t.Reset(every)
	}
}

func (c *Client) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}
