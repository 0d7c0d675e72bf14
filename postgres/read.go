package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier"
)

const (
	// The uid is a subquery, not a join, so that the planner reads inbox's
	// primary key from (uid, after) on in seq order and stops at the limit,
	// rather than reading all of the inbox past after and sorting it.
	sqlInbox = `SELECT i.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
		FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
		WHERE i.uid = (SELECT uid FROM users WHERE name = $1) AND i.seq > $2 ORDER BY i.seq LIMIT $3`
	sqlLatest      = `SELECT last_seq FROM users WHERE name = $1`
	sqlLastSeen    = `SELECT ts FROM last_seen WHERE name = $1`
	sqlSetLastSeen = `INSERT INTO last_seen (name, ts) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET ts = excluded.ts WHERE excluded.ts > last_seen.ts`
)

// Inbox returns up to limit messages of user's inbox with seq > after, in
// seq order, each with Seq set to its place in that inbox. A limit below 1
// returns none.
func (s *Store) Inbox(ctx context.Context, user string, after uint64, limit int) ([]courier.Message, error) {
	if !s.begin() {
		return nil, fmt.Errorf("inbox %s: %w", user, ErrClosed)
	}
	defer s.end()
	if limit < 1 || !validText(user) {
		return nil, nil // PostgreSQL's text holds no such name: no inbox
	}
	out, err := s.readMessages(ctx, limit, false, sqlInbox, user, int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("inbox %s after %d: %w", user, after, err)
	}
	return out, nil
}

// LatestSeq returns the seq of the newest message in user's inbox, 0 when it
// is empty.
func (s *Store) LatestSeq(ctx context.Context, user string) (uint64, error) {
	if !s.begin() {
		return 0, fmt.Errorf("latest seq %s: %w", user, ErrClosed)
	}
	defer s.end()
	if !validText(user) {
		return 0, nil
	}
	var n int64
	err := again(ctx, func() error { return s.pool.QueryRow(ctx, sqlLatest, user).Scan(&n) })
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("latest seq %s: %w", user, err)
	}
	return uint64(n), nil
}

// SetLastSeen records t, truncated to the millisecond, as when user's last
// connection closed, unless a later time is already recorded (by any node).
// The zero time records nothing. Setting it is idempotent, so it is tried
// again on a new connection when one fails.
func (s *Store) SetLastSeen(ctx context.Context, user string, t time.Time) error {
	if user == "" || !validText(user) {
		return fmt.Errorf("set last seen: %w: empty user, NUL byte or invalid UTF-8", courier.ErrBadRequest)
	}
	if t.IsZero() {
		return nil
	}
	if !s.begin() {
		return fmt.Errorf("set last seen %s: %w", user, ErrClosed)
	}
	defer s.end()
	t = time.UnixMilli(t.UnixMilli()).UTC()
	err := again(ctx, func() error {
		_, err := s.pool.Exec(ctx, sqlSetLastSeen, user, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("set last seen %s: %w", user, err)
	}
	return nil
}

// LastSeen returns what SetLastSeen recorded for user, in UTC, or the zero
// time when nothing was.
func (s *Store) LastSeen(ctx context.Context, user string) (time.Time, error) {
	if !s.begin() {
		return time.Time{}, fmt.Errorf("last seen %s: %w", user, ErrClosed)
	}
	defer s.end()
	if !validText(user) {
		return time.Time{}, nil
	}
	var t time.Time
	err := again(ctx, func() error { return s.pool.QueryRow(ctx, sqlLastSeen, user).Scan(&t) })
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("last seen %s: %w", user, err)
	}
	return t.UTC(), nil
}
