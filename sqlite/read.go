package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/courier-im/courier"
)

// readStmts are the statements of the read methods, prepared on the read
// pool (database/sql prepares them again on each connection as needed).
type readStmts struct {
	inbox  *sql.Stmt
	latest *sql.Stmt
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, q := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&r.inbox, `SELECT i.seq, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
			FROM users AS u JOIN inbox AS i ON i.uid = u.uid AND i.peer = 0 JOIN messages AS m ON m.pk = i.msg
			WHERE u.name = ? AND i.seq > ? ORDER BY i.seq LIMIT ?`},
		{&r.latest, `SELECT coalesce((SELECT max(seq) FROM inbox
			WHERE uid = (SELECT uid FROM users WHERE name = ?) AND peer = 0), 0)`},
	} {
		st, err := db.PrepareContext(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q.sql, err)
		}
		*q.dst = st
	}
	return nil
}

func (r *readStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{r.inbox, r.latest} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// Inbox returns up to limit messages of user's inbox with seq > after, in
// seq order, each with Seq set to its place in that inbox. A limit below 1
// returns none.
func (s *Store) Inbox(ctx context.Context, user string, after uint64, limit int) ([]courier.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("inbox %s: %w", user, ErrClosed)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.inbox.QueryContext(ctx, user, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("inbox %s after %d: %w", user, after, err)
	}
	defer rows.Close()
	out := make([]courier.Message, 0, min(limit, 64))
	for rows.Next() {
		var m courier.Message
		var seq, ts int64
		var data []byte
		if err := rows.Scan(&seq, &m.ID, &m.From, &m.To, &m.Room, &m.Event, &data, &ts); err != nil {
			return nil, fmt.Errorf("inbox %s after %d: scan: %w", user, after, err)
		}
		m.Seq, m.Data, m.Time = uint64(seq), data, time.UnixMilli(ts).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inbox %s after %d: %w", user, after, err)
	}
	return out, nil
}

// LatestSeq returns the seq of the newest message in user's inbox, 0 when it
// is empty.
func (s *Store) LatestSeq(ctx context.Context, user string) (uint64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("latest seq %s: %w", user, ErrClosed)
	}
	var n int64
	if err := s.r.latest.QueryRowContext(ctx, user).Scan(&n); err != nil {
		return 0, fmt.Errorf("latest seq %s: %w", user, err)
	}
	return uint64(n), nil
}
