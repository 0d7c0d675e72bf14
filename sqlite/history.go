package sqlite

import (
	"context"
	"fmt"
	"math"

	"github.com/courier-im/courier"
)

// The reads of conversations and rooms, newest first. Each is a backward
// range scan of a primary key that stops at the limit (TestQueryPlans):
// a conversation is inbox's (uid, peer) range, a room room_messages' (rid)
// range, the list of conversations inbox's (uid, -1) range.
const (
	// The uids are subqueries: a name that has none gives no row.
	sqlHistory = `SELECT i.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts,
			CASE WHEN m.sender = ?1 AND m.recipient = ?2 AND ?1 != ?2 THEN ` + sqlStatus + ` ELSE 0 END
		FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
		WHERE i.uid = (SELECT uid FROM users WHERE name = ?1) AND i.peer = (SELECT uid FROM users WHERE name = ?2)
			AND i.seq < ?3
		ORDER BY i.seq DESC LIMIT ?4`
	sqlRoomHistory = `SELECT r.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
		FROM room_messages AS r JOIN messages AS m ON m.pk = r.msg
		WHERE r.rid = (SELECT rid FROM rooms WHERE name = ?1) AND r.seq < ?2
		ORDER BY r.seq DESC LIMIT ?3`
	// The conversation entries (uid, -1, seq) newest first; the peer is
	// the other side of each one's message; unread counts the messages of
	// the conversation after the read mark whose sender is not the user.
	sqlConversations = `SELECT c.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts, p.name,
			(SELECT count(*) FROM inbox AS i JOIN messages AS im ON im.pk = i.msg
				WHERE i.uid = c.uid AND i.peer = p.uid AND im.sender != ?1
					AND i.seq > coalesce((SELECT r.seq FROM read_marks AS r WHERE r.uid = c.uid AND r.peer = p.uid), 0)),
			CASE WHEN m.sender = ?1 AND m.recipient = p.name AND p.name != ?1 THEN ` + sqlStatus + ` ELSE 0 END
		FROM inbox AS c JOIN messages AS m ON m.pk = c.msg
			JOIN users AS p ON p.name = CASE WHEN m.recipient = ?1 THEN m.sender ELSE m.recipient END
		WHERE c.uid = (SELECT uid FROM users WHERE name = ?1) AND c.peer = -1
		ORDER BY c.seq DESC LIMIT ?2`
	// The courier.Status of a direct message m, for its sender: read when
	// the recipient's read mark of the conversation (in the recipient's
	// seqs, like m.to_seq) has reached it, else delivered when marked so.
	sqlStatus = `CASE WHEN m.to_seq <= coalesce((SELECT r.seq FROM read_marks AS r
				WHERE r.uid = (SELECT uid FROM users WHERE name = m.recipient)
					AND r.peer = (SELECT uid FROM users WHERE name = m.sender)), 0) THEN 3
			WHEN m.delivered IS NOT NULL THEN 2 ELSE 1 END`
	// The lowest seq left, or past the last one given out.
	sqlHorizon = `SELECT coalesce((SELECT coalesce((SELECT min(seq) FROM inbox AS i WHERE i.uid = u.uid AND i.peer = 0),
			max(u.expired_seq, coalesce((SELECT max(seq) FROM inbox AS i WHERE i.uid = u.uid AND i.peer = 0), 0)) + 1)
		FROM users AS u WHERE u.name = ?1), 1)`
)

// before returns the exclusive upper bound of a page: before, or past any
// seq when 0.
func before(seq uint64) int64 {
	if seq == 0 || seq > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(seq)
}

// History returns up to limit messages of user's conversation with peer
// (received from peer and sent to it) as they stand in user's inbox,
// newest first, with seq < before (from the newest when before is 0), each
// with Seq set to its place in user's inbox.
func (s *Store) History(ctx context.Context, user, peer string, beforeSeq uint64, limit int) ([]courier.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("history %s with %s: %w", user, peer, ErrClosed)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.history.QueryContext(ctx, user, peer, before(beforeSeq), limit)
	if err == nil {
		var out []courier.Message
		if out, err = scanMessages(rows, limit, true); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("history %s with %s before %d: %w", user, peer, beforeSeq, err)
}

// RoomHistory returns up to limit messages of room, newest first, with room
// seq < before (from the newest when before is 0), each with Seq set to its
// room seq.
func (s *Store) RoomHistory(ctx context.Context, room string, beforeSeq uint64, limit int) ([]courier.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("room history %s: %w", room, ErrClosed)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.roomHistory.QueryContext(ctx, room, before(beforeSeq), limit)
	if err == nil {
		var out []courier.Message
		if out, err = scanMessages(rows, limit, false); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("room history %s before %d: %w", room, beforeSeq, err)
}

// Conversations returns up to limit of user's conversations, the most
// recent first: the peer, the newest message (Seq in user's inbox) and how
// many messages from the peer came after user's read mark. It reads the
// conversation entries of user's inbox backwards, one per conversation,
// and stops at the limit; counting the unread messages of a conversation
// reads those after its read mark.
func (s *Store) Conversations(ctx context.Context, user string, limit int) ([]courier.Conversation, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("conversations %s: %w", user, ErrClosed)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.conversations.QueryContext(ctx, user, limit)
	if err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	defer rows.Close()
	out := make([]courier.Conversation, 0, min(limit, 64))
	for rows.Next() {
		var c courier.Conversation
		var st uint8
		if c.Last, err = scanMessage(rows, &c.With, &c.Unread, &st); err != nil {
			return nil, fmt.Errorf("conversations %s: %w", user, err)
		}
		c.Last.Status = courier.Status(st)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	return out, nil
}

// Horizon returns the lowest seq of user's inbox that can still be read:
// 1 unless Expire deleted its oldest messages, and LatestSeq+1 when it
// deleted all of them.
func (s *Store) Horizon(ctx context.Context, user string) (uint64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("horizon %s: %w", user, ErrClosed)
	}
	var n int64
	if err := s.r.horizon.QueryRowContext(ctx, user).Scan(&n); err != nil {
		return 0, fmt.Errorf("horizon %s: %w", user, err)
	}
	return uint64(n), nil
}
