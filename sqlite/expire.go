package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// expireBatch is how many messages one transaction of Expire deletes: the
// writer's mutex is released between them, so Appends wait at most for
// one.
const expireBatch = 2000

// expireTemp are the writer's temporary tables (in memory, temp_store) of
// one Expire transaction: the messages it deletes, their inbox entries
// (both kinds) and room entries.
const expireTemp = `CREATE TEMP TABLE IF NOT EXISTS x_msgs (pk INTEGER PRIMARY KEY);
	CREATE TEMP TABLE IF NOT EXISTS x_inbox (uid INTEGER, peer INTEGER, seq INTEGER, PRIMARY KEY (uid, peer, seq)) WITHOUT ROWID;
	CREATE TEMP TABLE IF NOT EXISTS x_rooms (rid INTEGER, seq INTEGER, PRIMARY KEY (rid, seq)) WITHOUT ROWID;
	DELETE FROM temp.x_msgs; DELETE FROM temp.x_inbox; DELETE FROM temp.x_rooms`

// expireSteps delete the messages in temp.x_msgs and everything that
// points at them, in order. The conversation entries (uid, -1, seq) of the
// pairs touched are deleted while inbox still holds the conversations'
// newest entries, and put back at the newest entry left, if any.
var expireSteps = []string{
	`INSERT OR IGNORE INTO temp.x_inbox (uid, peer, seq)
		SELECT r.uid, 0, m.to_seq FROM temp.x_msgs AS x JOIN messages AS m ON m.pk = x.pk JOIN users AS r ON r.name = m.recipient
			WHERE m.recipient != ''
		UNION ALL SELECT r.uid, s.uid, m.to_seq FROM temp.x_msgs AS x JOIN messages AS m ON m.pk = x.pk
			JOIN users AS r ON r.name = m.recipient JOIN users AS s ON s.name = m.sender WHERE m.recipient != ''
		UNION ALL SELECT s.uid, 0, m.from_seq FROM temp.x_msgs AS x JOIN messages AS m ON m.pk = x.pk
			JOIN users AS s ON s.name = m.sender WHERE m.recipient != '' AND m.from_seq > 0 AND m.sender != m.recipient
		UNION ALL SELECT s.uid, r.uid, m.from_seq FROM temp.x_msgs AS x JOIN messages AS m ON m.pk = x.pk
			JOIN users AS r ON r.name = m.recipient JOIN users AS s ON s.name = m.sender
			WHERE m.recipient != '' AND m.from_seq > 0 AND m.sender != m.recipient`,
	`INSERT OR IGNORE INTO temp.x_rooms (rid, seq)
		SELECT ro.rid, m.to_seq FROM temp.x_msgs AS x JOIN messages AS m ON m.pk = x.pk JOIN rooms AS ro ON ro.name = m.room
		WHERE m.room != ''`,
	`UPDATE users SET expired_seq = max(expired_seq, (SELECT max(seq) FROM temp.x_inbox AS x WHERE x.uid = users.uid AND x.peer = 0))
		WHERE uid IN (SELECT uid FROM temp.x_inbox WHERE peer = 0)`,
	`UPDATE rooms SET expired_seq = max(expired_seq, (SELECT max(seq) FROM temp.x_rooms AS x WHERE x.rid = rooms.rid))
		WHERE rid IN (SELECT rid FROM temp.x_rooms)`,
	`DELETE FROM inbox WHERE (uid, peer, seq) IN (SELECT p.uid, -1, (SELECT max(i.seq) FROM inbox AS i WHERE i.uid = p.uid AND i.peer = p.peer)
		FROM (SELECT DISTINCT uid, peer FROM temp.x_inbox WHERE peer > 0) AS p)`,
	`DELETE FROM inbox WHERE (uid, peer, seq) IN (SELECT uid, peer, seq FROM temp.x_inbox)`,
	`DELETE FROM room_messages WHERE (rid, seq) IN (SELECT rid, seq FROM temp.x_rooms)`,
	`INSERT INTO inbox (uid, peer, seq, msg)
		SELECT q.uid, -1, q.seq, (SELECT msg FROM inbox AS i WHERE i.uid = q.uid AND i.peer = q.peer AND i.seq = q.seq)
		FROM (SELECT p.uid, p.peer, (SELECT max(i.seq) FROM inbox AS i WHERE i.uid = p.uid AND i.peer = p.peer) AS seq
			FROM (SELECT DISTINCT uid, peer FROM temp.x_inbox WHERE peer > 0) AS p) AS q
		WHERE q.seq IS NOT NULL`,
	`UPDATE store_state SET expired_pk = max(expired_pk, (SELECT max(pk) FROM temp.x_msgs))`,
	`DELETE FROM messages WHERE pk IN (SELECT pk FROM temp.x_msgs)`,
}

// Expire deletes the messages whose Time is before t, from every inbox and
// room, with their conversation entries (a conversation's last message
// becomes the newest one left, or the conversation goes), search rows (in
// SearchFileName, after each transaction),
// delivered marks and idempotency keys: a key goes with its message, so a
// retention shorter than the contract's 24 hours shortens how long keys
// are remembered. Seqs and message pks are never given out again (see
// users.expired_seq). It deletes expireBatch messages per transaction,
// found with the index on ts, and returns how many it deleted; on error,
// what the transactions before it deleted stays deleted.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("expire: %w", err)
		}
		pks, err := s.expireOnce(before.UnixMilli())
		total += len(pks)
		if err == nil {
			err = s.unindex(ctx, pks)
		}
		if err != nil {
			return total, fmt.Errorf("expire before %s: %w", before.UTC().Format(time.RFC3339Nano), err)
		}
		if len(pks) < expireBatch {
			return total, nil
		}
	}
}

// expireOnce deletes up to expireBatch messages with ts < before in one
// transaction and returns their pks.
func (s *Store) expireOnce(before int64) (pks []int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	err = s.writeTx(func(w *writer) error {
		pks = pks[:0]
		if err := w.conn.exec(expireTemp); err != nil {
			return fmt.Errorf("temporary tables: %w", err)
		}
		if err := w.run(`INSERT INTO temp.x_msgs (pk) SELECT pk FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2`,
			nil, before, int64(expireBatch)); err != nil {
			return fmt.Errorf("find messages: %w", err)
		}
		if err := w.run(`SELECT pk FROM temp.x_msgs`, func(st *rawStmt) { pks = append(pks, st.int(0)) }); err != nil || len(pks) == 0 {
			return err
		}
		for _, q := range expireSteps {
			if err := w.run(q, nil); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(strings.Fields(q)[:3], " "), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pks, nil
}
