package courier

import (
	"context"
	"fmt"
)

// Page sizes of history, search and conversation lists: a larger limit is
// capped, not refused; 0 or less takes the default.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
	DefaultSearchLimit  = 20
	MaxSearchLimit      = 100
)

func pageSize(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

// History returns user's conversation with peer as it stands in user's
// inbox, newest first, with seq < before (0: from the newest). Only the
// two participants can read it, since it is read from user's own inbox.
func (h *Hub) History(ctx context.Context, user, peer string, before uint64, limit int) ([]Message, error) {
	if !ValidUser(peer) {
		return nil, fmt.Errorf("%w: invalid user to read the conversation with", ErrBadRequest)
	}
	msgs, err := h.store.History(ctx, user, peer, before, pageSize(limit, DefaultHistoryLimit, MaxHistoryLimit))
	if err != nil {
		return nil, fmt.Errorf("history of %s with %s: %w", user, peer, err)
	}
	return msgs, nil
}

// RoomHistory returns room's stored messages, newest first, with room seq
// < before (0: from the newest), to a user allowed to join the room. id nil
// is the server API, which may read any room.
func (h *Hub) RoomHistory(ctx context.Context, id *Identity, room string, before uint64, limit int) ([]Message, error) {
	if !ValidRoom(room) {
		return nil, fmt.Errorf("%w: invalid room name", ErrBadRequest)
	}
	if id != nil && !h.MayJoin(*id, room) {
		return nil, fmt.Errorf("%w: the token does not allow room %q", ErrForbidden, room)
	}
	msgs, err := h.store.RoomHistory(ctx, room, before, pageSize(limit, DefaultHistoryLimit, MaxHistoryLimit))
	if err != nil {
		return nil, fmt.Errorf("history of room %s: %w", room, err)
	}
	return msgs, nil
}

// Search returns the messages user sent or received whose data matches
// query (see ParseQuery), newest first.
func (h *Hub) Search(ctx context.Context, user, query string, limit int) ([]Message, error) {
	q, err := ParseQuery(query)
	if err != nil {
		return nil, err
	}
	msgs, err := h.store.Search(ctx, user, q, pageSize(limit, DefaultSearchLimit, MaxSearchLimit))
	if err != nil {
		return nil, fmt.Errorf("search of %s: %w", user, err)
	}
	return msgs, nil
}

// Conversations returns user's conversations, the most recent first, each
// with its last message and unread count.
func (h *Hub) Conversations(ctx context.Context, user string, limit int) ([]Conversation, error) {
	cs, err := h.store.Conversations(ctx, user, pageSize(limit, DefaultHistoryLimit, MaxHistoryLimit))
	if err != nil {
		return nil, fmt.Errorf("conversations of %s: %w", user, err)
	}
	return cs, nil
}

// MarkRead marks user's conversation with peer read up to seq (in user's
// inbox). When the mark moves past a message from peer, peer's connections,
// on every node, get a read receipt naming the newest such message, after
// the delivered receipts of those it passed that no delivery had marked.
func (h *Hub) MarkRead(ctx context.Context, user, peer string, seq uint64) error {
	if !ValidUser(peer) {
		return fmt.Errorf("%w: invalid user to mark the conversation with", ErrBadRequest)
	}
	// The delivered receipts owed for what user read go first.
	h.marks.sync()
	m, err := h.store.MarkRead(ctx, user, peer, seq)
	if err != nil {
		return fmt.Errorf("mark %s's conversation with %s read: %w", user, peer, err)
	}
	// What the read marked delivered (it was never marked where it was
	// delivered) gets its delivered receipt before the read receipt.
	for _, f := range m.Delivered {
		if f.From != f.To {
			h.notify(f.From, Notice{Kind: NoticeDelivered, By: f.To, Msg: f.ID})
		}
	}
	if m.Moved && m.Msg != "" && peer != user {
		h.notify(peer, Notice{Kind: NoticeRead, By: user, Msg: m.Msg})
	}
	return nil
}

// notify hands a notice to every connection of user, on every node.
func (h *Hub) notify(user string, n Notice) {
	d := &Delivery{Notice: &n}
	h.mu.RLock()
	conns := h.users[user]
	h.mu.RUnlock()
	for _, c := range conns {
		c.live(d)
	}
	if h.cl != nil {
		h.cl.publish(userTopic(user), &packet{kind: pktNotice, notice: n})
	}
}
