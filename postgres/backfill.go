package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier"
)

// The messages stored before schema version 2 have no search document.
// Every store fills them in the background, a range of pks at a time in
// one transaction that holds the row of search_backfill FOR UPDATE SKIP
// LOCKED: one node works at a time, and whichever node is up carries on
// where the last one stopped. A database created at version 2 has nothing
// to fill and its stores stop at once.

const (
	backfillRange = 1000            // pks per transaction
	backfillWait  = 5 * time.Second // before looking again while another node works or after an error
)

const (
	sqlBackfillClaim = `SELECT next_pk, last_pk FROM search_backfill WHERE next_pk <= last_pk FOR UPDATE SKIP LOCKED`
	sqlBackfillLeft  = `SELECT EXISTS (SELECT 1 FROM search_backfill WHERE next_pk <= last_pk)`
	// The direct messages of a range with their owners' uids, as Append
	// gives them: the recipient, and the sender when the message is in the
	// sender's inbox too.
	sqlBackfillRead = `SELECT m.pk, m.data::text, r.uid, coalesce(f.uid, 0)
		FROM messages AS m JOIN users AS r ON r.name = m.recipient
			LEFT JOIN users AS f ON f.name = m.sender AND m.from_seq > 0 AND m.sender <> m.recipient
		WHERE m.pk BETWEEN $1 AND $2 AND m.recipient <> '' AND m.search IS NULL`
	sqlBackfillWrite = `UPDATE messages AS m SET search = ` + searchDoc + `
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS x(pk, body, owner, owner2)
		WHERE m.pk = x.pk`
	sqlBackfillMove = `UPDATE search_backfill SET next_pk = $1`
)

// backfill fills the search documents of old messages until none is left
// or the store closes.
func (s *Store) backfill() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		left, worked, err := s.backfillStep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("postgres store: search backfill", "err", err)
		}
		if !left || ctx.Err() != nil {
			return
		}
		if worked && err == nil {
			continue
		}
		select {
		case <-s.stop:
			return
		case <-time.After(backfillWait):
		}
	}
}

// backfillStep fills the next range, if no other node holds it. left
// reports whether messages are left to fill, worked whether this step
// filled a range.
func (s *Store) backfillStep(ctx context.Context) (left, worked bool, err error) {
	if !s.begin() {
		return false, false, nil
	}
	defer s.end()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var next, last int64
		err := tx.QueryRow(ctx, sqlBackfillClaim).Scan(&next, &last)
		if errors.Is(err, pgx.ErrNoRows) {
			// Done, or another node is at it.
			return tx.QueryRow(ctx, sqlBackfillLeft).Scan(&left)
		} else if err != nil {
			return err
		}
		left, worked = true, true
		end := min(next+backfillRange-1, last)
		rows, err := tx.Query(ctx, sqlBackfillRead, next, end)
		if err != nil {
			return err
		}
		var pks, owners, owners2 []int64
		var bodies []string
		var pk, owner, owner2 int64
		var data string
		_, err = pgx.ForEachRow(rows, []any{&pk, &data, &owner, &owner2}, func() error {
			pks, owners, owners2 = append(pks, pk), append(owners, owner), append(owners2, owner2)
			bodies = append(bodies, courier.IndexText([]byte(data)))
			return nil
		})
		if err != nil {
			return err
		}
		if len(pks) > 0 {
			if _, err := tx.Exec(ctx, sqlBackfillWrite, pks, bodies, owners, owners2); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, sqlBackfillMove, end+1)
		return err
	})
	if err != nil {
		return true, false, fmt.Errorf("fill search documents: %w", err)
	}
	return left, worked, nil
}
