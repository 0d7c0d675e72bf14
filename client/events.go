package client

import (
	"context"
	"encoding/json"
	"time"
)

// An Event is a notice from the server that is not a message: a Receipt, a
// PresenceChange or an Expired. Tell them apart with a type switch:
//
//	for e := range c.Events() {
//		switch e := e.(type) {
//		case client.Receipt:
//		case client.PresenceChange:
//		case client.Expired:
//		}
//	}
type Event interface {
	isEvent()
}

// Receipt statuses.
const (
	StatusSent      = "sent"      // stored, not yet at any connection of the recipient (Message.Status only)
	StatusDelivered = "delivered" // the message first reached one of the recipient's connections
	StatusRead      = "read"      // the recipient marked the conversation read up to the message
)

// A Receipt tells that a durable direct message this user sent was
// delivered to, or read by, its recipient. Every connection of the sender
// gets it: a delivered receipt once per message, a read receipt each time
// the recipient's read mark moves past a message of the sender (it names
// the newest one).
type Receipt struct {
	Status string `json:"status"` // StatusDelivered or StatusRead
	By     string `json:"by"`     // the recipient
	Msg    string `json:"msg"`    // the message id
}

// A PresenceChange is the state of a watched user: its current state after
// Watch (and again after every reconnect), then one per change, when its
// first connection opens and when its last one closes.
type PresenceChange struct {
	User string `json:"user"`
	PresenceState
}

// An Expired tells that the inbox seqs From to To (both included) were
// deleted by the server's retention before a replay could deliver them. The
// replay goes on after To; LastSeq moves past them.
type Expired struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

func (Receipt) isEvent()        {}
func (PresenceChange) isEvent() {}
func (Expired) isEvent()        {}

// PresenceState is a user's presence.
type PresenceState struct {
	// Online is true while the user has a connection on any node.
	Online bool `json:"online"`
	// LastSeen is when the user's last connection closed; the zero Time
	// if that never happened. It stays set while the user is online again.
	LastSeen time.Time `json:"lastSeen"`
}

// Events returns the channel of events: receipts, presence changes of
// watched users and expired notices, in the order the server sent them. It
// gets nothing unless Options.Events is set. Like Messages, it holds
// Options.Buffer events, the client stops reading the connection while it
// is full, and it is closed when the client stops.
func (c *Client) Events() <-chan Event { return c.events }

// event decodes the notice b of type typ and delivers it on Events.
func (c *Client) event(ctx context.Context, b []byte, typ string) error {
	var e Event
	switch typ {
	case "receipt":
		var r Receipt
		if json.Unmarshal(b, &r) != nil {
			return nil
		}
		e = r
	case "presence":
		var p PresenceChange
		if json.Unmarshal(b, &p) != nil {
			return nil
		}
		e = p
	case "expired":
		var x Expired
		if json.Unmarshal(b, &x) != nil {
			return nil
		}
		e = x
		defer func() {
			c.mu.Lock()
			c.advance(x.To)
			c.mu.Unlock()
		}()
	}
	if !c.opts.Events {
		return nil
	}
	return put(c, ctx, c.events, e)
}
