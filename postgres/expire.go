package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// expireBatch is how many messages one transaction of Expire deletes.
const expireBatch = 2000

const (
	// The oldest messages, locked; SKIP LOCKED lets Expire run on several
	// nodes at once, each taking its own.
	sqlExpiring = `SELECT m.pk, m.room, r.rid, m.to_seq, coalesce(tu.uid, 0), coalesce(fu.uid, 0), m.from_seq
		FROM messages AS m
		LEFT JOIN rooms AS r ON r.name = m.room AND m.room <> ''
		LEFT JOIN users AS tu ON tu.name = m.recipient AND m.recipient <> ''
		LEFT JOIN users AS fu ON fu.name = m.sender AND m.recipient <> ''
		WHERE m.ts < $1 ORDER BY m.ts LIMIT $2 FOR UPDATE OF m SKIP LOCKED`
	// The conversations touched, locked in (uid, peer) order like Append's
	// upserts, before they are recounted by later statements.
	sqlLockConvs = `SELECT count(*) FROM (SELECT 1 FROM conversations AS c JOIN unnest($1::bigint[], $2::bigint[]) AS p(uid, peer)
		ON c.uid = p.uid AND c.peer = p.peer ORDER BY c.uid, c.peer FOR UPDATE OF c) AS l`
	sqlExpireInbox = `DELETE FROM inbox AS i USING unnest($1::bigint[], $2::bigint[]) AS x(uid, seq)
		WHERE i.uid = x.uid AND i.seq = x.seq`
	sqlExpireRooms = `DELETE FROM room_messages AS r USING unnest($1::bigint[], $2::bigint[]) AS x(rid, seq)
		WHERE r.rid = x.rid AND r.seq = x.seq`
	sqlExpireDeliveries = `DELETE FROM deliveries WHERE pk = ANY($1::bigint[])`
	sqlExpireMessages   = `DELETE FROM messages WHERE pk = ANY($1::bigint[])`
	// Each conversation touched: its newest message left and the unread
	// count after the read mark, or no row when nothing is left.
	sqlRelinkConvs = `UPDATE conversations AS c SET last_seq = l.seq, last_msg = l.msg,
			unread = (SELECT count(*) FROM inbox AS i JOIN messages AS m ON m.pk = i.msg
				WHERE i.uid = c.uid AND i.peer = c.peer AND i.seq > c.read_seq AND m.sender <> u.name)
		FROM unnest($1::bigint[], $2::bigint[]) AS p(uid, peer)
			JOIN users AS u ON u.uid = p.uid
			CROSS JOIN LATERAL (SELECT i.seq, i.msg FROM inbox AS i WHERE i.uid = p.uid AND i.peer = p.peer
				ORDER BY i.seq DESC LIMIT 1) AS l
		WHERE c.uid = p.uid AND c.peer = p.peer`
	sqlDropConvs = `DELETE FROM conversations AS c USING unnest($1::bigint[], $2::bigint[]) AS p(uid, peer)
		WHERE c.uid = p.uid AND c.peer = p.peer
			AND NOT EXISTS (SELECT 1 FROM inbox AS i WHERE i.uid = p.uid AND i.peer = p.peer)`
)

// expiring is what one transaction of Expire deletes, as columns.
type expiring struct {
	pks                []int64
	inboxUID, inboxSeq []int64 // inbox rows
	roomRID, roomSeq   []int64 // room_messages rows
	convUID, convPeer  []int64 // conversations to recount
	seenConv           map[convKey]bool
}

// conv adds the conversation of uid with peer, once.
func (x *expiring) conv(uid, peer int64) {
	if k := (convKey{uid, peer}); !x.seenConv[k] {
		x.seenConv[k] = true
		x.convUID, x.convPeer = append(x.convUID, uid), append(x.convPeer, peer)
	}
}

// Expire deletes the messages whose Time is before t, from every inbox and
// room, with their search documents, delivered marks, idempotency keys (a
// key goes with its message, so a retention shorter than the contract's
// 24 hours shortens how long keys are remembered) and their conversations'
// summaries (a conversation's last message becomes the newest one left, or
// the conversation goes). Seqs are counted by users.last_seq and rooms
// .last_seq and pks by a sequence: none is given out again. It deletes
// expireBatch messages per transaction, oldest first, and returns how
// many it deleted; on error, what earlier transactions deleted stays
// deleted. Several nodes may expire at once.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	if !s.begin() {
		return 0, fmt.Errorf("expire: %w", ErrClosed)
	}
	defer s.end()
	total := 0
	for {
		var n int
		err := s.retry(ctx, func() error {
			var err error
			n, err = s.expireOnce(ctx, before)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("expire before %s: %w", before.UTC().Format(time.RFC3339Nano), err)
		}
		if n < expireBatch {
			return total, nil
		}
	}
}

// expireOnce deletes up to expireBatch messages in one transaction.
func (s *Store) expireOnce(ctx context.Context, before time.Time) (n int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sqlExpiring, before, expireBatch)
		if err != nil {
			return err
		}
		x := expiring{seenConv: make(map[convKey]bool)}
		var pk, toSeq, to, from, fromSeq int64
		var room string
		var rid *int64
		_, err = pgx.ForEachRow(rows, []any{&pk, &room, &rid, &toSeq, &to, &from, &fromSeq}, func() error {
			x.pks = append(x.pks, pk)
			switch {
			case room != "":
				if rid != nil {
					x.roomRID, x.roomSeq = append(x.roomRID, *rid), append(x.roomSeq, toSeq)
				}
			case to != 0 && from != 0:
				x.inboxUID, x.inboxSeq = append(x.inboxUID, to), append(x.inboxSeq, toSeq)
				x.conv(to, from)
				if fromSeq > 0 && from != to {
					x.inboxUID, x.inboxSeq = append(x.inboxUID, from), append(x.inboxSeq, fromSeq)
					x.conv(from, to)
				}
			}
			return nil
		})
		if err != nil || len(x.pks) == 0 {
			return err
		}
		n = len(x.pks)
		b := &pgx.Batch{}
		b.Queue(sqlLockConvs, x.convUID, x.convPeer)
		b.Queue(sqlExpireInbox, x.inboxUID, x.inboxSeq)
		b.Queue(sqlExpireRooms, x.roomRID, x.roomSeq)
		b.Queue(sqlExpireDeliveries, x.pks)
		b.Queue(sqlExpireMessages, x.pks)
		b.Queue(sqlRelinkConvs, x.convUID, x.convPeer)
		b.Queue(sqlDropConvs, x.convUID, x.convPeer)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
