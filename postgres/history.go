package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier"
)

// The reads of conversations and rooms, newest first: each a backward
// index scan that stops at the limit (TestQueryPlans). The uids and rids
// are subqueries, so that the planner reads the index from ($1, before)
// down rather than joining; a name that has none gives no row.
const (
	sqlHistory = `SELECT i.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts,
			CASE WHEN m.sender = $1 AND m.recipient = $2 AND $1 <> $2 THEN ` + sqlStatus + ` ELSE 0 END
		FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
		WHERE i.uid = (SELECT uid FROM users WHERE name = $1) AND i.peer = (SELECT uid FROM users WHERE name = $2)
			AND i.seq < $3
		ORDER BY i.seq DESC LIMIT $4`
	sqlRoomHistory = `SELECT r.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
		FROM room_messages AS r JOIN messages AS m ON m.pk = r.msg
		WHERE r.rid = (SELECT rid FROM rooms WHERE name = $1) AND r.seq < $2
		ORDER BY r.seq DESC LIMIT $3`
	sqlConversations = `SELECT c.last_seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts, p.name, c.unread,
			CASE WHEN m.sender = $1 AND m.recipient = p.name AND p.name <> $1 THEN ` + sqlStatus + ` ELSE 0 END
		FROM conversations AS c JOIN users AS p ON p.uid = c.peer JOIN messages AS m ON m.pk = c.last_msg
		WHERE c.uid = (SELECT uid FROM users WHERE name = $1)
		ORDER BY c.last_seq DESC LIMIT $2`
	// The courier.Status of a direct message m, for its sender: read when
	// the recipient's read mark of the conversation (in the recipient's
	// seqs, like m.to_seq) has reached it, else delivered when marked so.
	sqlStatus = `CASE WHEN m.to_seq <= coalesce((SELECT r.read_seq FROM conversations AS r
				WHERE r.uid = (SELECT uid FROM users WHERE name = m.recipient)
					AND r.peer = (SELECT uid FROM users WHERE name = m.sender)), 0) THEN 3
			WHEN EXISTS (SELECT 1 FROM deliveries AS d WHERE d.pk = m.pk) THEN 2 ELSE 1 END`
	// The lowest seq left, or past the last one given out.
	sqlHorizon = `SELECT coalesce((SELECT min(seq) FROM inbox AS i WHERE i.uid = u.uid), u.last_seq + 1)
		FROM users AS u WHERE u.name = $1`
)

// before returns the exclusive upper bound of a page: before, or past any
// seq when 0.
func before(seq uint64) int64 {
	if seq == 0 || seq > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(seq)
}

// readMessages runs query, whose columns are seq, id, sender, recipient,
// room, event, data, ts and, with status, the message's courier.Status, and
// returns its messages; it tries again on a new connection when one fails.
func (s *Store) readMessages(ctx context.Context, limit int, status bool, query string, args ...any) ([]courier.Message, error) {
	out := make([]courier.Message, 0, min(limit, 64))
	err := again(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		var m courier.Message
		var seq int64
		// Data is scanned as []byte, which pgx copies as it is; into a
		// json.RawMessage it would go through json.Unmarshal, which trims.
		var data []byte
		var st int32
		cols := []any{&seq, &m.ID, &m.From, &m.To, &m.Room, &m.Event, &data, &m.Time}
		if status {
			cols = append(cols, &st)
		}
		_, err = pgx.ForEachRow(rows, cols, func() error {
			m.Seq, m.Data, m.Time, m.Status = uint64(seq), data, m.Time.UTC(), courier.Status(st)
			out = append(out, m)
			return nil
		})
		return err
	})
	return out, err
}

// History returns up to limit messages of user's conversation with peer
// (received from peer and sent to it) as they stand in user's inbox,
// newest first, with seq < before (from the newest when before is 0), each
// with Seq set to its place in user's inbox.
func (s *Store) History(ctx context.Context, user, peer string, beforeSeq uint64, limit int) ([]courier.Message, error) {
	if !s.begin() {
		return nil, fmt.Errorf("history %s with %s: %w", user, peer, ErrClosed)
	}
	defer s.end()
	if limit < 1 || !validText(user) || !validText(peer) {
		return nil, nil
	}
	out, err := s.readMessages(ctx, limit, true, sqlHistory, user, peer, before(beforeSeq), limit)
	if err != nil {
		return nil, fmt.Errorf("history %s with %s before %d: %w", user, peer, beforeSeq, err)
	}
	return out, nil
}

// RoomHistory returns up to limit messages of room, newest first, with room
// seq < before (from the newest when before is 0), each with Seq set to its
// room seq.
func (s *Store) RoomHistory(ctx context.Context, room string, beforeSeq uint64, limit int) ([]courier.Message, error) {
	if !s.begin() {
		return nil, fmt.Errorf("room history %s: %w", room, ErrClosed)
	}
	defer s.end()
	if limit < 1 || !validText(room) {
		return nil, nil
	}
	out, err := s.readMessages(ctx, limit, false, sqlRoomHistory, room, before(beforeSeq), limit)
	if err != nil {
		return nil, fmt.Errorf("room history %s before %d: %w", room, beforeSeq, err)
	}
	return out, nil
}

// Conversations returns up to limit of user's conversations, the most
// recent first: the peer, the newest message (Seq in user's inbox) and how
// many messages from the peer came after user's read mark. It reads
// conversations_recent backwards, never the inbox.
func (s *Store) Conversations(ctx context.Context, user string, limit int) ([]courier.Conversation, error) {
	if !s.begin() {
		return nil, fmt.Errorf("conversations %s: %w", user, ErrClosed)
	}
	defer s.end()
	if limit < 1 || !validText(user) {
		return nil, nil
	}
	out := make([]courier.Conversation, 0, min(limit, 64))
	err := again(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sqlConversations, user, limit)
		if err != nil {
			return err
		}
		var c courier.Conversation
		var seq, unread int64
		var st int32
		var data []byte
		m := &c.Last
		_, err = pgx.ForEachRow(rows, []any{&seq, &m.ID, &m.From, &m.To, &m.Room, &m.Event, &data, &m.Time, &c.With, &unread, &st},
			func() error {
				m.Seq, m.Data, m.Time, c.Unread = uint64(seq), data, m.Time.UTC(), int(unread)
				m.Status = courier.Status(st)
				out = append(out, c)
				return nil
			})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	return out, nil
}

// Horizon returns the lowest seq of user's inbox that can still be read:
// 1 unless Expire deleted its oldest messages, and LatestSeq+1 when it
// deleted all of them.
func (s *Store) Horizon(ctx context.Context, user string) (uint64, error) {
	if !s.begin() {
		return 0, fmt.Errorf("horizon %s: %w", user, ErrClosed)
	}
	defer s.end()
	if !validText(user) {
		return 1, nil
	}
	n := int64(1)
	err := again(ctx, func() error { return s.pool.QueryRow(ctx, sqlHorizon, user).Scan(&n) })
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("horizon %s: %w", user, err)
	}
	return uint64(n), nil
}
