package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/courier-im/courier"
)

// Read marks run on the writer connection, after any Append in progress,
// each as one transaction: a write by another connection would make the
// next Append reload the heads it keeps in memory (heads.go), and the
// writer's mutex makes each of them atomic. Delivered marks too, but they
// ride along with Appends when they can (delivered.go).

const (
	sqlConvLast = `SELECT u.uid, p.uid, (SELECT max(seq) FROM inbox AS i WHERE i.uid = u.uid AND i.peer = p.uid)
		FROM users AS u, users AS p WHERE u.name = ?1 AND p.name = ?2`
	sqlReadMark = `SELECT seq FROM read_marks WHERE uid = ?1 AND peer = ?2`
	// The newest message from the peer at or before the mark: a backward
	// scan of the conversation, past the user's own messages.
	sqlNewestFrom = `SELECT m.id FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
		WHERE i.uid = ?1 AND i.peer = ?2 AND i.seq <= ?3 AND m.sender = ?4
		ORDER BY i.seq DESC LIMIT 1`
	sqlSetReadMark = `INSERT INTO read_marks (uid, peer, seq) VALUES (?1, ?2, ?3)
		ON CONFLICT (uid, peer) DO UPDATE SET seq = excluded.seq`
	// The messages from the peer that the mark passes, not yet marked
	// delivered (see courier.ReadMark.Delivered); a forward scan of the
	// conversation from the old mark.
	sqlDeliveredByRead = `UPDATE messages SET delivered = 1
		WHERE delivered IS NULL AND from_seq > 0 AND sender = ?5 AND pk IN
			(SELECT msg FROM inbox WHERE uid = ?1 AND peer = ?2 AND seq > ?3 AND seq <= ?4)
		RETURNING pk, id, sender, recipient`
)

// MarkRead moves user's read mark of the conversation with peer up to seq,
// never back, and never past the conversation's newest message (so that
// every later message counts as unread). It returns the id of the newest
// message from peer at or before the mark, and whether the mark moved;
// unread counts, counted by Conversations from the mark, follow. A
// conversation with no message marks nothing.
func (s *Store) MarkRead(ctx context.Context, user, peer string, seq uint64) (courier.ReadMark, error) {
	var rm courier.ReadMark
	if err := ctx.Err(); err != nil {
		return rm, fmt.Errorf("mark read %s with %s: %w", user, peer, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return rm, fmt.Errorf("mark read %s with %s: %w", user, peer, ErrClosed)
	}
	if err := s.writeTx(func(w *writer) error {
		var uid, pid, last int64
		if err := w.run(sqlConvLast, func(st *rawStmt) {
			uid, pid, last = st.int(0), st.int(1), st.int(2)
		}, user, peer); err != nil || last == 0 {
			return err // no such conversation
		}
		mark := min(before(seq), last)
		var old int64
		if err := w.run(sqlReadMark, func(st *rawStmt) { old = st.int(0) }, uid, pid); err != nil {
			return err
		}
		if err := w.run(sqlNewestFrom, func(st *rawStmt) { rm.Msg = st.text(0) }, uid, pid, mark, peer); err != nil {
			return err
		}
		if mark <= old {
			return nil
		}
		rm.Moved = true
		if err := w.run(sqlSetReadMark, nil, uid, pid, mark); err != nil {
			return err
		}
		type first struct {
			pk int64
			d  courier.FirstDelivery
		}
		var fs []first
		if err := w.run(sqlDeliveredByRead, func(st *rawStmt) {
			fs = append(fs, first{st.int(0), courier.FirstDelivery{ID: st.text(1), From: st.text(2), To: st.text(3)}})
		}, uid, pid, old, mark, peer); err != nil {
			return err
		}
		// In seq order, which in one conversation is pk order.
		slices.SortFunc(fs, func(a, b first) int { return cmp.Compare(a.pk, b.pk) })
		for _, f := range fs {
			rm.Delivered = append(rm.Delivered, f.d)
		}
		return nil
	}); err != nil {
		return courier.ReadMark{}, fmt.Errorf("mark read %s with %s up to %d: %w", user, peer, seq, err)
	}
	return rm, nil
}

// writeTx runs fn in a transaction of the writer, under s.mu, and commits
// it, or rolls it back when fn fails.
func (s *Store) writeTx(fn func(*writer) error) (err error) {
	w := s.w
	if err := w.begin.exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = w.rollback.exec()
		}
		w.conn.arena.reset()
	}()
	if err := fn(w); err != nil {
		return err
	}
	if err := w.commit.exec(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
