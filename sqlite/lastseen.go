package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/courier-im/courier"
)

// setLastSeenSQL keeps the newest of the stored and the given time: an
// older (or equal) ts leaves the row as it is.
const setLastSeenSQL = `INSERT INTO last_seen (name, ts) VALUES (?, ?)
	ON CONFLICT (name) DO UPDATE SET ts = excluded.ts WHERE excluded.ts > last_seen.ts`

// SetLastSeen records t, truncated to the millisecond, as when user's last
// connection closed, unless a later time is already recorded. The zero time
// records nothing. It writes on the writer connection, after any Append in
// progress, as a transaction of its own: another connection's commit would
// make the next Append reload the heads it keeps in memory.
func (s *Store) SetLastSeen(ctx context.Context, user string, t time.Time) error {
	if user == "" {
		return fmt.Errorf("set last seen: %w: empty user", courier.ErrBadRequest)
	}
	if t.IsZero() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set last seen %s: %w", user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("set last seen %s: %w", user, ErrClosed)
	}
	defer s.wc.arena.reset()
	st := s.w.setLastSeen
	st.bindText(1, user)
	st.bindInt(2, t.UnixMilli())
	if err := st.exec(); err != nil {
		return fmt.Errorf("set last seen %s: %w", user, err)
	}
	return nil
}

// LastSeen returns what SetLastSeen recorded for user, in UTC, or the zero
// time when nothing was.
func (s *Store) LastSeen(ctx context.Context, user string) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, fmt.Errorf("last seen %s: %w", user, ErrClosed)
	}
	var ms int64
	err := s.r.lastSeen.QueryRowContext(ctx, user).Scan(&ms)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("last seen %s: %w", user, err)
	}
	return time.UnixMilli(ms).UTC(), nil
}
