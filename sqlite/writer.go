package sqlite

import (
	"errors"
	"fmt"
	"strings"
)

// A multiRow is a statement over many rows at once: prefix, then one
// parenthesized group of cols parameters per row, comma-separated, then
// suffix. Append writes a batch with a few of these, however many messages
// it holds, instead of one statement per row: per-statement work (VM start,
// halt and reset) is a large part of a small insert.
//
// The inserts are OR ROLLBACK: on a constraint error SQLite rolls the whole
// transaction back, which Append does anyway, and so needs no statement
// journal to undo a multi-row statement halfway (OR ABORT, the default,
// copied every page such a statement touched into one).
type multiRow struct {
	name   string
	prefix string
	cols   int
	suffix string
}

var (
	insertUsers = &multiRow{"insert users", `INSERT OR ROLLBACK INTO users (uid, name) VALUES `, 2, ``}
	insertRooms = &multiRow{"insert rooms", `INSERT OR ROLLBACK INTO rooms (rid, name) VALUES `, 2, ``}
	insertMsgs  = &multiRow{"insert messages", `INSERT OR ROLLBACK INTO messages
		(pk, id, sender, recipient, room, event, data, ts, sender_key, to_seq, from_seq) VALUES `, 11, ``}
	insertInbox = &multiRow{"insert inbox", `INSERT OR ROLLBACK INTO inbox (uid, peer, seq, msg) VALUES `, 4, ``}
	insertRoom  = &multiRow{"insert room messages", `INSERT OR ROLLBACK INTO room_messages (rid, seq, msg) VALUES `, 3, ``}
	// unlinkConvs deletes the conversation entries (uid, convPeer, seq) of
	// the (uid, peer) pairs a batch adds to, at their conversation's newest
	// seq before the batch (see schema/0004).
	unlinkConvs = &multiRow{"unlink conversations", `DELETE FROM inbox WHERE (uid, peer, seq) IN
		(SELECT v.column1, -1, (SELECT max(i.seq) FROM inbox AS i WHERE i.uid = v.column1 AND i.peer = v.column2)
		FROM (VALUES `, 2, `) AS v)`}
	// markDelivered marks the direct messages with a sender copy among the
	// ids, once, and returns the ones it marked.
	markDelivered = &multiRow{"mark delivered", `UPDATE messages SET delivered = 1
		WHERE delivered IS NULL AND recipient != '' AND from_seq > 0 AND id IN (VALUES `, 1, `)
		RETURNING id, sender, recipient`}
	// findKeys finds the messages stored with any of the (sender, key)
	// pairs; the partial index messages_sender_key answers it.
	findKeys = &multiRow{"find keys", `SELECT sender, sender_key, id, ts, to_seq, from_seq FROM messages
		WHERE sender_key IS NOT NULL AND (sender, sender_key) IN (VALUES `, 2, `)`}
)

// sql returns the statement for rows rows.
func (m *multiRow) sql(rows int) string {
	var b strings.Builder
	group := "(" + strings.Repeat("?,", m.cols-1) + "?)"
	b.Grow(len(m.prefix) + rows*(len(group)+1) + len(m.suffix))
	b.WriteString(m.prefix)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	b.WriteString(m.suffix)
	return b.String()
}

// Chunks: a statement for up to exactRows rows is prepared for its exact
// row count; more rows go in chunks of the sizes in bigChunks, largest
// first, and a remainder of up to exactRows. So at most 20 statements of
// each kind are ever prepared, and a batch of up to 512 (the hub's default
// maximum) takes at most 7 statements of a kind, most batches one or two.
const exactRows = 16

var bigChunks = [...]int{128, 64, 32}

// chunk returns how many of n rows the next statement takes.
func chunk(n int) int {
	if n <= exactRows {
		return n
	}
	for _, c := range bigChunks {
		if n >= c {
			return c
		}
	}
	return exactRows
}

type stmtKey struct {
	m    *multiRow
	rows int
}

// writer is the store's one write connection with its statements.
type writer struct {
	conn  *rawConn
	stmts map[stmtKey]*rawStmt
	// single-row statements, prepared at open
	begin, commit, rollback *rawStmt
	dataVersion, counters   *rawStmt
	loadUser, loadRoom      *rawStmt
	setLastSeen             *rawStmt
	// statements of the other writes (receipts, retention, the indexer),
	// prepared on first use by sql
	once map[string]*rawStmt
}

func newWriter(conn *rawConn) (*writer, error) {
	w := &writer{conn: conn, stmts: make(map[stmtKey]*rawStmt), once: make(map[string]*rawStmt)}
	for _, q := range []struct {
		dst **rawStmt
		sql string
	}{
		// Take the write lock at BEGIN: a transaction never has to upgrade
		// (and fail with SQLITE_BUSY) halfway through a batch.
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commit, `COMMIT`},
		{&w.rollback, `ROLLBACK`},
		{&w.dataVersion, `PRAGMA data_version`},
		{&w.counters, `SELECT max((SELECT coalesce(max(pk), 0) FROM messages), (SELECT expired_pk FROM store_state)),
			(SELECT coalesce(max(uid), 0) FROM users), (SELECT coalesce(max(rid), 0) FROM rooms)`},
		// A name's id and the last seq in its inbox or room, which may
		// have been expired.
		{&w.loadUser, `SELECT uid, max(expired_seq, coalesce((SELECT max(seq) FROM inbox WHERE inbox.uid = users.uid AND peer = 0), 0))
			FROM users WHERE name = ?`},
		{&w.loadRoom, `SELECT rid, max(expired_seq, coalesce((SELECT max(seq) FROM room_messages AS r WHERE r.rid = rooms.rid), 0))
			FROM rooms WHERE name = ?`},
		{&w.setLastSeen, setLastSeenSQL},
	} {
		st, err := conn.prepare(q.sql)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", q.sql, err), w.close())
		}
		*q.dst = st
	}
	return w, nil
}

// stmt returns the prepared statement of m for rows rows.
func (w *writer) stmt(m *multiRow, rows int) (*rawStmt, error) {
	k := stmtKey{m, rows}
	if st := w.stmts[k]; st != nil {
		return st, nil
	}
	st, err := w.conn.prepare(m.sql(rows))
	if err != nil {
		return nil, fmt.Errorf("prepare %s of %d rows: %w", m.name, rows, err)
	}
	w.stmts[k] = st
	return st, nil
}

// A rowBinder binds row i of b to st's parameters from at on.
type rowBinder func(st *rawStmt, at int, b *batchState, i int)

// execRows runs m over rows rows of b, bound by bind, in as few statements
// as chunk allows.
func (w *writer) execRows(m *multiRow, rows int, b *batchState, bind rowBinder) error {
	return w.queryRows(m, rows, b, bind, func(*rawStmt) {})
}

// queryRows runs the query m over rows rows of b and calls scan for each
// row of the results.
func (w *writer) queryRows(m *multiRow, rows int, b *batchState, bind rowBinder, scan func(*rawStmt)) error {
	for done := 0; done < rows; {
		n := chunk(rows - done)
		st, err := w.stmt(m, n)
		if err != nil {
			return err
		}
		for r := range n {
			bind(st, 1+r*m.cols, b, done+r)
		}
		for {
			row, err := st.step()
			if err != nil {
				_ = st.reset()
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if !row {
				break
			}
			scan(st)
		}
		if err := st.reset(); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		done += n
	}
	return nil
}

func (w *writer) close() error {
	var errs []error
	for _, st := range []*rawStmt{w.begin, w.commit, w.rollback, w.dataVersion, w.counters, w.loadUser, w.loadRoom, w.setLastSeen} {
		errs = append(errs, st.close())
	}
	for _, st := range w.stmts {
		errs = append(errs, st.close())
	}
	for _, st := range w.once {
		errs = append(errs, st.close())
	}
	return errors.Join(errs...)
}

// run runs sql (prepared on first use and kept) with args, int64 or
// string, and calls scan for each row of its results; scan may be nil.
func (w *writer) run(sql string, scan func(*rawStmt), args ...any) error {
	st := w.once[sql]
	if st == nil {
		var err error
		if st, err = w.conn.prepare(sql); err != nil {
			return fmt.Errorf("prepare %q: %w", sql, err)
		}
		w.once[sql] = st
	}
	for i, a := range args {
		switch v := a.(type) {
		case int64:
			st.bindInt(i+1, v)
		case string:
			st.bindText(i+1, v)
		default:
			return fmt.Errorf("bind %T: unsupported type", a)
		}
	}
	for {
		row, err := st.step()
		if err != nil {
			_ = st.reset()
			return err
		}
		if !row {
			return st.reset()
		}
		if scan != nil {
			scan(st)
		}
	}
}
