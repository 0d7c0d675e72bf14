package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/courier-im/courier"
)

const (
	// The conversation's summary row, locked: Appends to it wait, and the
	// recount that follows, a later statement, sees all that committed.
	sqlLockConv = `SELECT c.uid, c.peer, c.last_seq, c.read_seq FROM conversations AS c
		WHERE c.uid = (SELECT uid FROM users WHERE name = $1) AND c.peer = (SELECT uid FROM users WHERE name = $2)
		FOR UPDATE`
	// The newest message from the peer at or before the mark: a backward
	// scan of the conversation, past the user's own messages.
	sqlNewestFrom = `SELECT m.id FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
		WHERE i.uid = $1 AND i.peer = $2 AND i.seq <= $3 AND m.sender = $4
		ORDER BY i.seq DESC LIMIT 1`
	sqlSetReadMark = `UPDATE conversations SET read_seq = $3,
			unread = (SELECT count(*) FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
				WHERE i.uid = $1 AND i.peer = $2 AND i.seq > $3 AND m.sender <> $4)
		WHERE uid = $1 AND peer = $2`
	// The messages from the peer that the mark passes, not yet delivered
	// (see courier.ReadMark.Delivered): as sqlMarkDelivered, in pk order.
	// The transaction holds its conversation's row, and MarkDelivered waits
	// on no conversation, so the two cannot deadlock.
	sqlDeliveredByRead = `WITH first AS (
			INSERT INTO deliveries (pk)
			SELECT m.pk FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
			WHERE i.uid = $1 AND i.peer = $2 AND i.seq > $3 AND i.seq <= $4 AND m.sender = $5 AND m.from_seq > 0
			ORDER BY m.pk
			ON CONFLICT DO NOTHING RETURNING pk)
		SELECT m.id, m.sender, m.recipient FROM first JOIN messages AS m ON m.pk = first.pk ORDER BY m.pk`
	// Each first delivery once: concurrent inserts of one pk wait for each
	// other and the later does nothing; rows are inserted in pk order, the
	// same in every transaction, so two batches cannot deadlock.
	sqlMarkDelivered = `WITH first AS (
			INSERT INTO deliveries (pk)
			SELECT pk FROM messages WHERE id = ANY($1::text[]) AND recipient <> '' AND from_seq > 0 ORDER BY pk
			ON CONFLICT DO NOTHING RETURNING pk)
		SELECT m.id, m.sender, m.recipient FROM first JOIN messages AS m ON m.pk = first.pk ORDER BY m.pk`
)

// MarkRead moves user's read mark of the conversation with peer up to seq,
// never back, and never past the conversation's newest message (so that
// every later message counts as unread). It returns the id of the newest
// message from peer at or before the mark, and whether the mark moved;
// the unread count is recounted in the same transaction. A conversation
// with no message marks nothing.
func (s *Store) MarkRead(ctx context.Context, user, peer string, seq uint64) (courier.ReadMark, error) {
	if !s.begin() {
		return courier.ReadMark{}, fmt.Errorf("mark read %s with %s: %w", user, peer, ErrClosed)
	}
	defer s.end()
	if !validText(user) || !validText(peer) {
		return courier.ReadMark{}, nil
	}
	var rm courier.ReadMark
	err := s.retry(ctx, func() error {
		rm = courier.ReadMark{}
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var uid, pid, last, old int64
			err := tx.QueryRow(ctx, sqlLockConv, user, peer).Scan(&uid, &pid, &last, &old)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // no such conversation
			} else if err != nil {
				return err
			}
			mark := min(before(seq), last)
			err = tx.QueryRow(ctx, sqlNewestFrom, uid, pid, mark, peer).Scan(&rm.Msg)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if mark <= old {
				return nil
			}
			rm.Moved = true
			if _, err = tx.Exec(ctx, sqlSetReadMark, uid, pid, mark, user); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, sqlDeliveredByRead, uid, pid, old, mark, peer)
			if err != nil {
				return err
			}
			var d courier.FirstDelivery
			_, err = pgx.ForEachRow(rows, []any{&d.ID, &d.From, &d.To}, func() error {
				rm.Delivered = append(rm.Delivered, d)
				return nil
			})
			return err
		})
	})
	if err != nil {
		return courier.ReadMark{}, fmt.Errorf("mark read %s with %s up to %d: %w", user, peer, seq, err)
	}
	return rm, nil
}

// MarkDelivered records that the direct messages ids reached a connection
// of their recipient and returns those that had not before and have a
// sender copy (their sender is a user, not a server API label), each once
// across every node. Unknown ids, room messages and repeated ids are
// ignored. One statement, however many ids.
func (s *Store) MarkDelivered(ctx context.Context, ids []string) ([]courier.FirstDelivery, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if !s.begin() {
		return nil, fmt.Errorf("mark delivered: %w", ErrClosed)
	}
	defer s.end()
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validText(id) })
	var out []courier.FirstDelivery
	err := s.retry(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sqlMarkDelivered, ids)
		if err != nil {
			return err
		}
		var d courier.FirstDelivery
		_, err = pgx.ForEachRow(rows, []any{&d.ID, &d.From, &d.To}, func() error {
			out = append(out, d)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mark delivered %d messages: %w", len(ids), err)
	}
	return out, nil
}

// retry runs fn, a transaction, again after a deadlock or serialization
// failure (up to Options.Retries times) and once on a connection that
// failed: nothing of a failed transaction stays.
func (s *Store) retry(ctx context.Context, fn func() error) error {
	for try := 0; ; try++ {
		err := again(ctx, fn)
		var pe *pgconn.PgError
		if err == nil || try >= s.opts.Retries || ctx.Err() != nil ||
			!errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			return err
		}
		s.stats.conflicts.Add(1)
	}
}
