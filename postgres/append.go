package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courier-im/courier"
)

// The statements of an Append. Names are passed as sorted arrays, and the
// heads are locked ORDER BY name (bytewise, as the columns are COLLATE
// "C", like Go's sort): the same order in every transaction.
const (
	sqlLockKeys = `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`
	sqlFindKeys = `SELECT m.sender, m.sender_key, m.id, m.ts, m.to_seq, m.from_seq
		FROM unnest($1::text[], $2::text[]) AS k(sender, key)
		JOIN messages AS m ON m.sender = k.sender AND m.sender_key = k.key
		WHERE m.sender_key IS NOT NULL`
	sqlLockUsers = `SELECT name, uid, last_seq FROM users WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE`
	sqlPeerUsers = `SELECT name, uid, last_seq FROM users WHERE name = ANY($1::text[])`
	sqlLockRooms = `SELECT name, rid, last_seq FROM rooms WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE`
	sqlNextPKs   = `SELECT array_agg(nextval('messages_pk_seq')) FROM generate_series(1, $1::int)`

	// The search document of a direct message: its words, and the owners'
	// lexemes '@<uid>' (see schema/0002), from the columns body, owner and
	// owner2 (0 when the message is in one inbox only).
	searchDoc = `to_tsvector('simple', body) || array_to_tsvector(CASE WHEN owner2 > 0
		THEN ARRAY['@' || owner, '@' || owner2] ELSE ARRAY['@' || owner] END)`

	sqlInsertMsgs = `INSERT INTO messages (pk, id, sender, recipient, room, event, data, ts, sender_key, to_seq, from_seq, search)
		SELECT pk, id, sender, recipient, room, event, data::json, ts, nullif(key, ''), to_seq, from_seq,
			CASE WHEN owner > 0 THEN ` + searchDoc + ` END
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::text[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[])
			AS t(pk, id, sender, recipient, room, event, data, ts, key, to_seq, from_seq, body, owner, owner2)`
	// The summaries of the conversations a batch adds to, one row per
	// (uid, peer), sorted: the batch holds the heads of the uids.
	sqlUpsertConvs = `INSERT INTO conversations AS c (uid, peer, last_seq, last_msg, unread)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
		ON CONFLICT (uid, peer) DO UPDATE SET last_seq = excluded.last_seq, last_msg = excluded.last_msg,
			unread = c.unread + excluded.unread`
	sqlInsertInbox = `INSERT INTO inbox (uid, seq, msg, peer)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])`
	sqlInsertRoom = `INSERT INTO room_messages (rid, seq, msg)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])`
	sqlSetUserHeads = `UPDATE users SET last_seq = h.seq
		FROM unnest($1::bigint[], $2::bigint[]) AS h(uid, seq) WHERE users.uid = h.uid`
	sqlSetRoomHeads = `UPDATE rooms SET last_seq = h.seq
		FROM unnest($1::bigint[], $2::bigint[]) AS h(rid, seq) WHERE rooms.rid = h.rid`

	// After a connection failed during the commit: wait for the
	// transaction to end, then see whether it stored its first message.
	sqlWaitUser = `SELECT 1 FROM users WHERE uid = $1 FOR SHARE`
	sqlWaitRoom = `SELECT 1 FROM rooms WHERE rid = $1 FOR SHARE`
	sqlFindPK   = `SELECT EXISTS (SELECT 1 FROM messages WHERE pk = $1 AND id = $2)`

	// Names are created outside the Append's transaction, so that its
	// locks are all taken in one statement each; a name row with no
	// messages is an empty inbox or room.
	sqlCreateUsers = `INSERT INTO users (name) SELECT * FROM unnest($1::text[]) ON CONFLICT (name) DO NOTHING`
	sqlCreateRooms = `INSERT INTO rooms (name) SELECT * FROM unnest($1::text[]) ON CONFLICT (name) DO NOTHING`
)

// stats counts what Append went through, for tests and diagnosis.
type stats struct {
	conflicts atomic.Int64 // transactions retried after a deadlock or serialization failure
	reconnect atomic.Int64 // transactions retried on a connection that failed before sending
	created   atomic.Int64 // transactions restarted after creating missing names
}

// Append stores batch in one transaction, in order, filling in ToSeq,
// FromSeq and Duplicate (see courier.Store and the package doc). It returns
// once the transaction has committed. On error nothing of the batch is
// stored and the envelopes are as they were passed in: they are written
// only after the commit (rows of users and rooms, which name an inbox or
// room and hold no message, may have been created). When the connection
// fails while the COMMIT may have run, Append waits for the transaction to
// end and looks: a batch that was stored is reported as stored. ctx bounds
// the wait for locks; once they are held, the rest runs to its end,
// bounded by Options.CommitTimeout.
func (s *Store) Append(ctx context.Context, batch []*courier.Envelope) error {
	for i, e := range batch {
		if err := validate(e); err != nil {
			return fmt.Errorf("append batch: envelope %d: %w", i, err)
		}
	}
	if !s.begin() {
		return fmt.Errorf("append batch: %w", ErrClosed)
	}
	defer s.end()
	if len(batch) == 0 {
		return nil
	}
	p := newPlan(batch)
	if err := s.appendRetrying(ctx, p); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	for i, e := range batch {
		r := &p.out[i]
		if r.dup {
			e.ID, e.Time = r.id, r.ts
		}
		e.ToSeq, e.FromSeq, e.Duplicate = uint64(r.toSeq), uint64(r.fromSeq), r.dup
	}
	return nil
}

// validate rejects an envelope the schema could not hold meaningfully
// (Envelope.Check), or PostgreSQL would refuse: text with a NUL byte or
// invalid UTF-8.
func validate(e *courier.Envelope) error {
	if err := e.Check(); err != nil {
		return err
	}
	for _, f := range [...]struct{ name, v string }{
		{"id", e.ID}, {"from", e.From}, {"to", e.To}, {"room", e.Room}, {"event", e.Event}, {"key", e.Key},
	} {
		if !validText(f.v) {
			return fmt.Errorf("%w: message %.64q: %s holds a NUL byte or invalid UTF-8", courier.ErrBadRequest, e.ID, f.name)
		}
	}
	if len(e.Data) > 0 && (!utf8.Valid(e.Data) || slices.Contains(e.Data, 0)) {
		return fmt.Errorf("%w: message %s: data holds a NUL byte or invalid UTF-8", courier.ErrBadRequest, e.ID)
	}
	return nil
}

// validText reports whether PostgreSQL's text type can hold v.
func validText(v string) bool { return utf8.ValidString(v) && !strings.Contains(v, "\x00") }

// appendRetrying runs the transaction of p until it commits, retrying
// what can be retried: a transaction that found names missing (after
// creating them), a deadlock or serialization failure, a connection that
// failed before anything was sent on it.
func (s *Store) appendRetrying(ctx context.Context, p *plan) error {
	conflicts := 0
	for creates := 0; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		missing, err := s.appendTx(ctx, p)
		switch {
		case err == nil && missing:
			if creates++; creates > 3 {
				return errors.New("names created, and still missing")
			}
			s.stats.created.Add(1)
			if err := s.createNames(ctx, p); err != nil {
				return err
			}
			continue
		case err == nil:
			return nil
		}
		var pe *pgconn.PgError
		var le *lockError
		switch {
		case ctx.Err() != nil:
			return err
		case errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001"):
			s.stats.conflicts.Add(1)
		case errors.As(err, &le) && connFailed(err), pgconn.SafeToRetry(err):
			// Before the second round trip nothing can have been
			// committed, so a connection that failed then is safe to
			// try again; after it, only one that failed before sending.
			s.stats.reconnect.Add(1)
		default:
			return err
		}
		if conflicts++; conflicts > s.opts.Retries {
			return fmt.Errorf("after %d tries: %w", conflicts, err)
		}
		s.log.Warn("postgres store: append tried again", "try", conflicts+1, "err", err)
		wait := time.Duration(rand.Int64N(int64(conflicts) * int64(5*time.Millisecond)))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
}

// createNames creates the users and rooms the last transaction of p found
// missing, in one implicit transaction.
func (s *Store) createNames(ctx context.Context, p *plan) error {
	b := &pgx.Batch{}
	if len(p.newUsers) > 0 {
		b.Queue(sqlCreateUsers, p.newUsers)
	}
	if len(p.newRooms) > 0 {
		b.Queue(sqlCreateRooms, p.newRooms)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("create users and rooms: %w", err)
	}
	return nil
}

// appendTx runs one try of p's transaction. missing reports that it
// stopped (and rolled back) because names were missing, listed in
// p.newUsers and p.newRooms.
func (s *Store) appendTx(ctx context.Context, p *plan) (missing bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, &lockError{fmt.Errorf("connect: %w", err)}
	}
	committed := false
	defer func() {
		if conn == nil {
			return
		}
		if !committed {
			rollback(ctx, conn)
		}
		conn.Release()
	}()
	p.reset()
	if err := s.lock(ctx, conn, p); err != nil {
		return false, &lockError{err}
	}
	if len(p.newUsers)+len(p.newRooms) > 0 {
		return true, nil
	}
	if err := p.place(); err != nil {
		return false, err
	}
	// The locks are held: finish even if ctx ends now, for a commit cut
	// off by a cancellation would leave the caller unsure of what is
	// stored. The commit timeout bounds it instead.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CommitTimeout)
	defer cancel()
	err = p.write(wctx, conn)
	var pe *pgconn.PgError
	if err != nil && !errors.As(err, &pe) && !pgconn.SafeToRetry(err) {
		// The connection failed with the COMMIT perhaps sent: find out.
		conn.Release()
		conn = nil
		err = s.resolve(ctx, p, err)
	}
	committed = err == nil
	return false, err
}

// resolve tells whether p's transaction, whose connection failed (with
// err) while it was being written, committed: it returns nil if it did,
// and err if not. It waits for the transaction to end by locking one of
// the heads it locked (the server ends it when it notices the connection
// is gone, at the latest after idle_in_transaction_session_timeout), then
// looks for p's first message, whose pk no other transaction can have.
func (s *Store) resolve(ctx context.Context, p *plan, err error) error {
	if len(p.m.pk) == 0 {
		return nil // it wrote nothing: what it read stands
	}
	q, id := sqlWaitUser, int64(0)
	for _, h := range p.users {
		id = h.id
		break
	}
	for _, h := range p.rooms {
		if id == 0 {
			q, id = sqlWaitRoom, h.id
		}
		break
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CommitTimeout)
	defer cancel()
	var found bool
	ferr := pgx.BeginFunc(rctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(rctx, q, id); err != nil {
			return err
		}
		return tx.QueryRow(rctx, sqlFindPK, p.m.pk[0], p.m.id[0]).Scan(&found)
	})
	switch {
	case ferr != nil:
		return fmt.Errorf("%w (and whether it committed is unknown: %w)", err, ferr)
	case found:
		s.log.Warn("postgres store: commit confirmed after the connection failed", "err", err)
		return nil
	}
	return err
}

// lockError is an error of the first round trip of an Append, or of
// getting a connection for it: nothing has been written then.
type lockError struct{ err error }

func (e *lockError) Error() string { return e.err.Error() }
func (e *lockError) Unwrap() error { return e.err }

// rollback ends the transaction open on conn, if any. When it cannot, the
// pool drops the connection on Release, which ends it too.
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	pc := conn.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = pc.Exec(rctx, "ROLLBACK").ReadAll()
}

// lock is the first round trip: it begins the transaction, takes the locks
// of p's keys and heads, and reads what it needs to place the batch.
func (s *Store) lock(ctx context.Context, conn *pgxpool.Conn, p *plan) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if len(p.lockKeys) > 0 {
		b.Queue(sqlLockKeys, p.lockKeys)
		b.Queue(sqlFindKeys, p.keySenders, p.keys).Query(func(rows pgx.Rows) error {
			var k keyPair
			var r result
			_, err := pgx.ForEachRow(rows, []any{&k.from, &k.key, &r.id, &r.ts, &r.toSeq, &r.fromSeq}, func() error {
				r.dup, r.ts = true, r.ts.UTC()
				p.found[k] = r
				return nil
			})
			return err
		})
	}
	heads := func(q string, names []string, into map[string]*head) {
		b.Queue(q, names).Query(func(rows pgx.Rows) error {
			var name string
			var h head
			_, err := pgx.ForEachRow(rows, []any{&name, &h.id, &h.seq}, func() error {
				into[name] = &head{id: h.id, seq: h.seq, last: h.seq}
				return nil
			})
			return err
		})
	}
	if len(p.lockUsers) > 0 {
		heads(sqlLockUsers, p.lockUsers, p.users)
	}
	if len(p.peerUsers) > 0 {
		heads(sqlPeerUsers, p.peerUsers, p.peers)
	}
	if len(p.lockRooms) > 0 {
		heads(sqlLockRooms, p.lockRooms, p.rooms)
	}
	b.Queue(sqlNextPKs, len(p.batch)).QueryRow(func(row pgx.Row) error { return row.Scan(&p.pks) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	for _, n := range p.lockUsers {
		if p.users[n] == nil {
			p.newUsers = append(p.newUsers, n)
		}
	}
	for _, n := range p.peerUsers {
		if p.peers[n] == nil {
			p.newUsers = append(p.newUsers, n)
		}
	}
	slices.Sort(p.newUsers)
	for _, n := range p.lockRooms {
		if p.rooms[n] == nil {
			p.newRooms = append(p.newRooms, n)
		}
	}
	if len(p.pks) != len(p.batch) {
		return fmt.Errorf("lock: got %d message keys, want %d", len(p.pks), len(p.batch))
	}
	return nil
}

// write is the second round trip: it inserts p's rows, moves the heads and
// commits.
func (p *plan) write(ctx context.Context, conn *pgxpool.Conn) error {
	b := &pgx.Batch{}
	if len(p.m.pk) > 0 {
		m := &p.m
		b.Queue(sqlInsertMsgs, m.pk, m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts, m.key, m.toSeq, m.fromSeq,
			m.body, m.owner, m.owner2)
	}
	if c := p.convRows(); len(c.uid) > 0 {
		b.Queue(sqlUpsertConvs, c.uid, c.peer, c.seq, c.msg, c.unread)
	}
	if len(p.in.uid) > 0 {
		b.Queue(sqlInsertInbox, p.in.uid, p.in.seq, p.in.msg, p.in.peer)
	}
	if len(p.rm.rid) > 0 {
		b.Queue(sqlInsertRoom, p.rm.rid, p.rm.seq, p.rm.msg)
	}
	if ids, seqs := moved(p.users); len(ids) > 0 {
		b.Queue(sqlSetUserHeads, ids, seqs)
	}
	if ids, seqs := moved(p.rooms); len(ids) > 0 {
		b.Queue(sqlSetRoomHeads, ids, seqs)
	}
	// COMMIT of a transaction that failed rolls it back instead, and says
	// so in its tag.
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return fmt.Errorf("commit: the server answered %q", tag.String())
		}
		return nil
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// moved returns the ids and new last seqs of the heads that moved.
func moved(heads map[string]*head) (ids, seqs []int64) {
	for _, h := range heads {
		if h.seq != h.last {
			ids, seqs = append(ids, h.id), append(seqs, h.seq)
		}
	}
	return ids, seqs
}
