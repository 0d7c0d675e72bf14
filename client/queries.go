package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// A HistoryQuery selects the stored messages History returns: those of the
// conversation With a user, or those of a Room. Set one of With and Room.
type HistoryQuery struct {
	// With is the other user of a direct conversation, as it stands in
	// this user's inbox (messages both ways, with this user's seqs).
	With string
	// Room is a room whose stored messages to read. Any user the token
	// allows to join the room may read it; joining is not needed.
	Room string
	// Limit is the most messages to return: 0 means the server's default
	// (50); the server caps it at 500.
	Limit int
	// Before returns only messages with a smaller seq (inbox seq for With,
	// room seq for Room): pass the smallest Seq of a page for the next
	// page. Zero means the newest.
	Before uint64
}

// History returns stored messages, newest first. A room the token may not
// join gets an *Error with Code "forbidden".
//
//	page, err := c.History(ctx, client.HistoryQuery{With: "bob", Limit: 50})
//	older, err := c.History(ctx, client.HistoryQuery{With: "bob", Limit: 50, Before: page[len(page)-1].Seq})
func (c *Client) History(ctx context.Context, q HistoryQuery) ([]Message, error) {
	f := map[string]any{"type": "history"}
	if q.With != "" {
		f["with"] = q.With
	}
	if q.Room != "" {
		f["room"] = q.Room
	}
	if q.Limit > 0 {
		f["limit"] = q.Limit
	}
	if q.Before > 0 {
		f["before"] = q.Before
	}
	return c.messages(ctx, f)
}

// Search returns the messages this user sent or received whose data holds
// the words of q, newest first, with this user's seqs. q is words (all must
// match), "quoted phrases" and word prefixes (piz*). limit 0 means the
// server's default (20); the server caps it at 100. A new message may take
// up to a second to be found. A query the server cannot take (empty, an
// unbalanced quote, too long) gets an *Error with Code "bad_request".
func (c *Client) Search(ctx context.Context, q string, limit int) ([]Message, error) {
	f := map[string]any{"type": "search", "q": q}
	if limit > 0 {
		f["limit"] = limit
	}
	return c.messages(ctx, f)
}

// messages sends f and decodes the history frame that answers it.
func (c *Client) messages(ctx context.Context, f map[string]any) ([]Message, error) {
	rep, err := c.do(ctx, f, &request{resend: true})
	if err != nil {
		return nil, err
	}
	var h struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(rep.raw, &h); err != nil {
		return nil, fmt.Errorf("courier: bad %s reply: %w", f["type"], err)
	}
	msgs := make([]Message, len(h.Messages))
	for i, raw := range h.Messages {
		if err := decodeMessage(raw, &msgs[i]); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

func decodeMessage(raw json.RawMessage, m *Message) error {
	if err := json.Unmarshal(raw, m); err != nil {
		return fmt.Errorf("courier: bad message %.200s: %w", raw, err)
	}
	m.Frame = raw
	return nil
}

// Presence returns whether each of users is online and when it was last
// seen. At most 500 users per call; more gets an *Error with Code
// "bad_request".
func (c *Client) Presence(ctx context.Context, users ...string) (map[string]PresenceState, error) {
	if len(users) == 0 {
		return map[string]PresenceState{}, nil
	}
	rep, err := c.do(ctx, map[string]any{"type": "presence", "users": users}, &request{resend: true})
	if err != nil {
		return nil, err
	}
	var p struct {
		Users map[string]PresenceState `json:"users"`
	}
	if err := json.Unmarshal(rep.raw, &p); err != nil {
		return nil, fmt.Errorf("courier: bad presence reply: %w", err)
	}
	if p.Users == nil {
		p.Users = map[string]PresenceState{}
	}
	return p.Users, nil
}

// Watch asks for the presence of users: once Watch has returned, Events
// gets a PresenceChange with the current state of each of them, then one
// per change (set Options.Events). The client watches them again after
// every reconnect, until Unwatch. The server allows 1000 watched users per
// connection by default; more gets an *Error with Code "too_large" and
// watches none of users.
func (c *Client) Watch(ctx context.Context, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	users = append([]string(nil), users...)
	_, err := c.do(ctx, map[string]any{"type": "watch", "users": users}, &request{resend: true, watch: users})
	return err
}

// Unwatch stops the presence changes of users. Unwatching a user not
// watched is not an error.
func (c *Client) Unwatch(ctx context.Context, users ...string) error {
	if len(users) == 0 {
		return nil
	}
	c.mu.Lock()
	for _, u := range users {
		delete(c.watched, u)
	}
	c.mu.Unlock()
	_, err := c.do(ctx, map[string]any{"type": "unwatch", "users": users}, &request{resend: true})
	return err
}

// Read marks this user's conversation with user with as read up to seq,
// a seq of this user's inbox (Message.Seq). The mark only moves forward.
// When it moves past messages from with, with's connections get a Receipt
// with Status StatusRead naming the newest of them.
func (c *Client) Read(ctx context.Context, with string, seq uint64) error {
	_, err := c.do(ctx, map[string]any{"type": "read", "with": with, "seq": seq}, &request{resend: true})
	return err
}

// A Conversation is one of this user's direct conversations.
type Conversation struct {
	With   string  // the other user, or the label of server API messages
	Last   Message // the newest message either way, with this user's seq
	Unread int     // messages from With after this user's read mark
}

// Conversations returns this user's conversations, the most recent first.
// limit 0 means the server's default (50); the server caps it at 500.
func (c *Client) Conversations(ctx context.Context, limit int) ([]Conversation, error) {
	f := map[string]any{"type": "conversations"}
	if limit > 0 {
		f["limit"] = limit
	}
	rep, err := c.do(ctx, f, &request{resend: true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Conversations []struct {
			With   string          `json:"with"`
			Last   json.RawMessage `json:"last"`
			Unread int             `json:"unread"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(rep.raw, &r); err != nil {
		return nil, fmt.Errorf("courier: bad conversations reply: %w", err)
	}
	cs := make([]Conversation, len(r.Conversations))
	for i, x := range r.Conversations {
		cs[i] = Conversation{With: x.With, Unread: x.Unread}
		if err := decodeMessage(x.Last, &cs[i].Last); err != nil {
			return nil, err
		}
	}
	return cs, nil
}
