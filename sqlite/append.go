package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/courier-im/courier"
)

// writeStmts are the statements of Append, prepared once on the writer
// connection; each transaction binds them with Tx.StmtContext, which reuses
// the prepared statement of that one connection.
type writeStmts struct {
	findKey     *sql.Stmt // (sender, key) -> first message
	insertMsg   *sql.Stmt
	insertInbox *sql.Stmt
	insertRoom  *sql.Stmt
	nextInbox   *sql.Stmt // user -> next seq in the inbox
	nextRoom    *sql.Stmt // room -> next seq in the room
}

// stmtSQL is a statement to prepare and where to keep it.
type stmtSQL struct {
	dst **sql.Stmt
	sql string
}

func prepareAll(ctx context.Context, db *sql.DB, qs []stmtSQL) error {
	for _, q := range qs {
		st, err := db.PrepareContext(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q.sql, err)
		}
		*q.dst = st
	}
	return nil
}

// The next seq of an inbox or room is max(seq)+1, a seek to the end of its
// primary key range; Append inserts each row before it asks for the next.
const (
	nextInboxSQL = `SELECT coalesce(max(seq), 0) + 1 FROM inbox WHERE user = ?`
	nextRoomSQL  = `SELECT coalesce(max(seq), 0) + 1 FROM room_messages WHERE room = ?`
)

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB, cfg config) error {
	nextInbox, nextRoom := nextInboxSQL, nextRoomSQL
	if cfg.seqSQL[0] != "" {
		nextInbox, nextRoom = cfg.seqSQL[0], cfg.seqSQL[1]
	}
	return prepareAll(ctx, db, []stmtSQL{
		{&w.findKey, `SELECT id, ts, to_seq, from_seq FROM messages WHERE sender = ? AND sender_key = ?`},
		{&w.insertMsg, `INSERT INTO messages (id, sender, recipient, room, event, data, ts, sender_key, to_seq, from_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.insertInbox, `INSERT INTO inbox (user, seq, msg, peer) VALUES (?, ?, ?, ?)`},
		{&w.insertRoom, `INSERT INTO room_messages (room, seq, msg) VALUES (?, ?, ?)`},
		{&w.nextInbox, nextInbox},
		{&w.nextRoom, nextRoom},
	})
}

func (w *writeStmts) close() error {
	return closeStmts(w.findKey, w.insertMsg, w.insertInbox, w.insertRoom, w.nextInbox, w.nextRoom)
}

func closeStmts(sts ...*sql.Stmt) error {
	var errs []error
	for _, st := range sts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// Append stores batch in one transaction, in order, filling in ToSeq,
// FromSeq and Duplicate (see courier.Store). It returns once the transaction
// has committed with the configured Synchronous. On error nothing is stored,
// no seq is used up, and the envelopes are as they were passed in.
func (s *Store) Append(ctx context.Context, batch []*courier.Envelope) error {
	for i, e := range batch {
		if err := validate(e); err != nil {
			return fmt.Errorf("append batch: envelope %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("append batch: %w", ErrClosed)
	}
	if len(batch) == 0 {
		return nil
	}
	saved := make([]courier.Envelope, len(batch))
	for i, e := range batch {
		saved[i] = *e
	}
	if err := s.appendTx(ctx, batch); err != nil {
		for i, e := range batch {
			*e = saved[i]
		}
		return fmt.Errorf("append batch: %w", err)
	}
	return nil
}

// validate rejects an envelope the schema could not hold meaningfully.
func validate(e *courier.Envelope) error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: nil envelope", courier.ErrBadRequest)
	case e.ID == "":
		return fmt.Errorf("%w: empty message id", courier.ErrBadRequest)
	case (e.To == "") == (e.Room == ""):
		return fmt.Errorf("%w: message %s: want exactly one of To and Room", courier.ErrBadRequest, e.ID)
	case e.Room == "" && !e.NoSenderCopy && e.From == "":
		return fmt.Errorf("%w: message %s: empty From needs NoSenderCopy", courier.ErrBadRequest, e.ID)
	}
	return nil
}

// batchTx holds the statements of one Append transaction.
type batchTx struct {
	findKey, insertMsg, insertInbox, insertRoom, nextInbox, nextRoom *sql.Stmt
}

func (s *Store) appendTx(ctx context.Context, batch []*courier.Envelope) (err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	b := &batchTx{
		findKey:     tx.StmtContext(ctx, s.w.findKey),
		insertMsg:   tx.StmtContext(ctx, s.w.insertMsg),
		insertInbox: tx.StmtContext(ctx, s.w.insertInbox),
		insertRoom:  tx.StmtContext(ctx, s.w.insertRoom),
		nextInbox:   tx.StmtContext(ctx, s.w.nextInbox),
		nextRoom:    tx.StmtContext(ctx, s.w.nextRoom),
	}
	for i, e := range batch {
		if err := b.append(ctx, e); err != nil {
			return fmt.Errorf("message %d (%s): %w", i, e.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (b *batchTx) append(ctx context.Context, e *courier.Envelope) error {
	if e.Key != "" {
		var id string
		var ts, toSeq, fromSeq int64
		err := b.findKey.QueryRowContext(ctx, e.From, e.Key).Scan(&id, &ts, &toSeq, &fromSeq)
		if err == nil {
			e.ID, e.Time = id, time.UnixMilli(ts).UTC()
			e.ToSeq, e.FromSeq, e.Duplicate = uint64(toSeq), uint64(fromSeq), true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up key: %w", err)
		}
	}
	e.Duplicate = false
	var toSeq, fromSeq int64
	var err error
	if e.Room != "" {
		if toSeq, err = next(ctx, b.nextRoom, e.Room); err != nil {
			return fmt.Errorf("room %s seq: %w", e.Room, err)
		}
	} else {
		if toSeq, err = next(ctx, b.nextInbox, e.To); err != nil {
			return fmt.Errorf("inbox %s seq: %w", e.To, err)
		}
		switch {
		case e.NoSenderCopy:
		case e.From == e.To:
			fromSeq = toSeq // a note to self is in that inbox once
		default:
			if fromSeq, err = next(ctx, b.nextInbox, e.From); err != nil {
				return fmt.Errorf("inbox %s seq: %w", e.From, err)
			}
		}
	}
	data := string(e.Data)
	if len(data) == 0 {
		data = "null"
	}
	var key any
	if e.Key != "" {
		key = e.Key
	}
	res, err := b.insertMsg.ExecContext(ctx, e.ID, e.From, e.To, e.Room, e.Event, data,
		e.Time.UnixMilli(), key, toSeq, fromSeq)
	if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	pk, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	if e.Room != "" {
		if _, err := b.insertRoom.ExecContext(ctx, e.Room, toSeq, pk); err != nil {
			return fmt.Errorf("insert into room %s: %w", e.Room, err)
		}
	} else {
		if _, err := b.insertInbox.ExecContext(ctx, e.To, toSeq, pk, e.From); err != nil {
			return fmt.Errorf("insert into inbox %s: %w", e.To, err)
		}
		if fromSeq != 0 && e.From != e.To {
			if _, err := b.insertInbox.ExecContext(ctx, e.From, fromSeq, pk, e.To); err != nil {
				return fmt.Errorf("insert into inbox %s: %w", e.From, err)
			}
		}
	}
	e.ToSeq, e.FromSeq = uint64(toSeq), uint64(fromSeq)
	return nil
}

// next returns the next seq of the inbox or room name.
func next(ctx context.Context, st *sql.Stmt, name string) (int64, error) {
	var n int64
	err := st.QueryRowContext(ctx, name).Scan(&n)
	return n, err
}
