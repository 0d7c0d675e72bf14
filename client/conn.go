package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// dial opens one connection with since= the last delivered seq and reads
// the welcome frame. fresh asks TokenFunc for a token first; a 401 asks it
// once more.
func (c *Client) dial(ctx context.Context, fresh bool) (*websocket.Conn, welcome, error) {
	for attempt := 0; ; attempt++ {
		if fresh && c.opts.TokenFunc != nil {
			t, err := c.opts.TokenFunc(ctx)
			if err != nil {
				return nil, welcome{}, fmt.Errorf("courier: token: %w", err)
			}
			c.mu.Lock()
			c.token = t
			c.mu.Unlock()
		}
		c.mu.Lock()
		tok, since, known := c.token, c.lastSeq, c.known
		c.mu.Unlock()
		u := c.url
		if known {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + "since=" + strconv.FormatUint(since, 10)
		}
		h := http.Header{}
		for k, v := range c.opts.HTTPHeader {
			h[k] = v
		}
		h.Set("Authorization", "Bearer "+tok)
		ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
			HTTPHeader: h,
			// A ping or pong from the server is a sign of life too.
			OnPingReceived: func(context.Context, []byte) bool { c.touch(); return true },
			OnPongReceived: func(context.Context, []byte) { c.touch() },
		})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusUnauthorized {
				if c.opts.TokenFunc != nil && attempt == 0 {
					fresh = true
					continue
				}
				return nil, welcome{}, ErrUnauthorized
			}
			return nil, welcome{}, fmt.Errorf("courier: dial %s: %w", c.url, err)
		}
		ws.SetReadLimit(1 << 24)
		_, b, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return nil, welcome{}, fmt.Errorf("courier: read welcome: %w", err)
		}
		var w struct {
			Type, User, Conn string
			Seq              *uint64
		}
		if json.Unmarshal(b, &w) != nil || w.Type != "welcome" {
			ws.CloseNow()
			return nil, welcome{}, fmt.Errorf("courier: first frame is not a welcome: %.200s", b)
		}
		// A client that knows no place in the inbox yet starts at the head
		// the welcome names (a server that names none leaves it unknown):
		// should this connection drop before the head ack, the next one
		// resumes from there and misses nothing stored since.
		if w.Seq != nil {
			c.mu.Lock()
			if !c.known {
				c.lastSeq, c.known = *w.Seq, true
			}
			c.mu.Unlock()
		}
		return ws, welcome{user: w.User, conn: w.Conn}, nil
	}
}

// setConn makes ws the current connection and returns the durable sends to
// write again on it, oldest first.
func (c *Client) setConn(ws *websocket.Conn, connID string) []*request {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.connID = ws, connID
	close(c.ready)
	c.await = awaitHead // headFrame was written first on ws
	c.touch()
	var again []*request
	for id, r := range c.pending {
		if r.resend {
			again = append(again, r)
			if r.inbox && r.written { // it may be stored: the replay may bring it back
				c.holdFor[id] = true
				c.holding = true
			}
			r.written = true
		}
	}
	sort.Slice(again, func(i, j int) bool { return again[i].order < again[j].order })
	return again
}

// run owns the connection: it reads until the connection breaks, then
// reconnects with backoff, until Close or a fatal error.
func (c *Client) run(ctx context.Context, ws *websocket.Conn) {
	var bg sync.WaitGroup // writers of rejoins and resends, one per connection
	defer func() {
		bg.Wait()
		c.mu.Lock()
		if c.err == nil {
			c.err = ErrClosed
		}
		err := c.err
		for id, r := range c.pending {
			r.reply <- reply{err: err}
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.msgs)
		close(c.events)
		close(c.done)
	}()
	fresh := false
	for {
		stop := c.heartbeat(ctx, ws)
		err := c.read(ctx, ws)
		stop()
		bg.Wait()
		select {
		case <-c.closing:
			return // Close closes the connection
		default:
		}
		code := websocket.CloseStatus(err)
		c.lost()
		if ctx.Err() != nil {
			return
		}
		if code == 4001 {
			c.fail(&CloseError{Code: code, Reason: "disconnected by the server"})
			return
		}
		fresh = code == 4003
		var connID welcome
		ws, connID, err = c.reconnect(ctx, fresh)
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		// Rooms and watches first, then the unacknowledged requests: the
		// server handles a connection's frames in order.
		again := c.setConnAfter(ctx, ws, connID.conn)
		bg.Add(1)
		go func(ws *websocket.Conn) {
			defer bg.Done()
			for _, r := range again {
				if ws.Write(ctx, websocket.MessageText, r.frame) != nil {
					return
				}
			}
		}(ws)
	}
}

// setConnAfter writes the head request, the joins of the client's rooms and
// the watches of its watched users on ws, then makes it current.
func (c *Client) setConnAfter(ctx context.Context, ws *websocket.Conn, connID string) []*request {
	c.mu.Lock()
	rooms := sortedKeys(c.rooms)
	users := sortedKeys(c.watched)
	c.mu.Unlock()
	frames := [][]byte{headFrame}
	for _, r := range rooms {
		b, _ := json.Marshal(map[string]string{"type": "join", "id": rejoinID + r, "room": r})
		frames = append(frames, b)
	}
	for len(users) > 0 { // in chunks, well under the server's message size limit
		n := min(len(users), 200)
		b, _ := json.Marshal(map[string]any{"type": "watch", "id": "rewatch", "users": users[:n]})
		frames = append(frames, b)
		users = users[n:]
	}
	for _, b := range frames {
		if ws.Write(ctx, websocket.MessageText, b) != nil {
			break
		}
	}
	return c.setConn(ws, connID)
}

// rejoinID prefixes the id of a join the client sends again after a
// reconnect; the room follows. Request ids are decimal numbers.
const rejoinID = "rejoin:"

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// lost forgets the broken connection and fails the requests that cannot be
// sent again.
func (c *Client) lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.CloseNow()
	}
	c.conn, c.connID = nil, ""
	c.ready = make(chan struct{})
	clear(c.holdFor) // their acks will not come on this connection
	c.lostHead()
	for id, r := range c.pending {
		if !r.resend {
			r.reply <- reply{err: ErrConnectionLost}
			delete(c.pending, id)
		}
	}
}

// reconnect dials with jittered exponential backoff until it connects, the
// client is closed, or the server refuses the token for good.
func (c *Client) reconnect(ctx context.Context, fresh bool) (*websocket.Conn, welcome, error) {
	d := c.opts.MinBackoff
	for {
		wait := d/2 + rand.N(d/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, welcome{}, ctx.Err()
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, w, err := c.dial(dctx, fresh)
		cancel()
		if err == nil {
			return ws, w, nil
		}
		if errors.Is(err, ErrUnauthorized) && c.opts.TokenFunc == nil {
			return nil, welcome{}, err
		}
		fresh = errors.Is(err, ErrUnauthorized)
		if d *= 2; d > c.opts.MaxBackoff {
			d = c.opts.MaxBackoff
		}
	}
}

// read reads frames from ws until it fails.
func (c *Client) read(ctx context.Context, ws *websocket.Conn) error {
	if err := c.release(ctx); err != nil { // held across a reconnect
		return err
	}
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		c.touch()
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Type {
		case "message":
			var m Message
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			m.Frame = append(json.RawMessage(nil), b...)
			if err := c.take(ctx, m); err != nil {
				return err
			}
		case "receipt", "expired":
			if err := c.event(ctx, b, f.Type); err != nil {
				return err
			}
		case "presence":
			if f.ID == "" { // a push for a watched user; a reply has an id
				if err := c.event(ctx, b, f.Type); err != nil {
					return err
				}
				continue
			}
			c.answer(f, b)
		case "ack", "error", "history", "conversations", "pong":
			if f.ID == headID || f.ID == fillID {
				if err := c.headAck(ctx, ws, f); err != nil {
					return err
				}
				continue
			}
			c.answer(f, b)
			if err := c.release(ctx); err != nil {
				return err
			}
		}
	}
}

// answer hands reply frame f (raw b) to the request waiting for it.
func (c *Client) answer(f frame, b []byte) {
	c.mu.Lock()
	if c.holdFor[f.ID] { // a send written again: its ack names its sender's copy
		delete(c.holdFor, f.ID)
		if f.Type == "ack" && f.Msg != "" {
			c.own[f.Msg] = true
		}
	}
	if f.Type == "error" && f.Code == "forbidden" && strings.HasPrefix(f.ID, rejoinID) {
		delete(c.rooms, f.ID[len(rejoinID):]) // the token no longer allows it
	}
	r := c.pending[f.ID]
	delete(c.pending, f.ID)
	if r == nil {
		c.mu.Unlock()
		return
	}
	var rep reply
	if f.Type == "error" {
		rep.err = &Error{Code: f.Code, Message: f.Message}
	} else {
		rep.ack, rep.raw = Ack{Msg: f.Msg, Seq: f.Seq}, b
		if r.inbox && f.Seq > 0 {
			c.sawOwn(f.Seq)
		}
		if r.room != "" {
			c.rooms[r.room] = true
		}
		for _, u := range r.watch {
			c.watched[u] = true
		}
	}
	c.mu.Unlock()
	r.reply <- rep
}
