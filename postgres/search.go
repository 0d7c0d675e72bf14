package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier"
)

// sqlSearch finds the messages whose search document matches the tsquery
// $2 and holds the owner's lexeme $3 ('@<uid>', see schema/0002), with the
// seq each has in $1's inbox (the recipient's copy or the sender's),
// newest first. The GIN index messages_search answers both at once; the
// owner's lexeme is a parameter of its own, not a subquery, so that the
// planner estimates it from the column's statistics.
const sqlSearch = `SELECT CASE WHEN m.recipient = $1 THEN m.to_seq ELSE m.from_seq END AS seq,
		m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
	FROM messages AS m
	WHERE m.search @@ (to_tsquery('simple', $2) && $3::tsquery)
	ORDER BY seq DESC LIMIT $4`

// sqlUID is the uid of a name.
const sqlUID = `SELECT uid FROM users WHERE name = $1`

// Search returns up to limit messages of user's inbox (sent or received)
// whose text matches every term of q, newest first, each with Seq set to
// its place in user's inbox. Append indexes a message in its own
// transaction, so search has no lag. A q holding anything but letters and
// digits in its words, as courier.ParseQuery never makes, is
// courier.ErrBadRequest.
func (s *Store) Search(ctx context.Context, user string, q courier.Query, limit int) ([]courier.Message, error) {
	if !s.begin() {
		return nil, fmt.Errorf("search %s: %w", user, ErrClosed)
	}
	defer s.end()
	tsq, err := tsQuery(q)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", user, err)
	}
	if limit < 1 || !validText(user) {
		return nil, nil
	}
	var uid int64
	err = again(ctx, func() error { return s.pool.QueryRow(ctx, sqlUID, user).Scan(&uid) })
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil // no inbox
	case err != nil:
		return nil, fmt.Errorf("search %s: %w", user, err)
	}
	// The owner's lexeme is built from an integer: a quoted tsquery lexeme.
	owner := "'@" + strconv.FormatInt(uid, 10) + "'"
	out, err := s.readMessages(ctx, limit, false, sqlSearch, user, tsq, owner, limit)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", user, err)
	}
	return out, nil
}

// tsQuery translates q into tsquery syntax: each word a quoted lexeme
// (words are letters and digits, so the quotes hold them as they are), the
// words of a term followed by one another (<->), the last one :* when it is
// a prefix, the terms joined by &.
func tsQuery(q courier.Query) (string, error) {
	if err := q.Check(); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, t := range q.Terms {
		if i > 0 {
			b.WriteString(" & ")
		}
		b.WriteByte('(')
		for j, w := range t.Words {
			if j > 0 {
				b.WriteString(" <-> ")
			}
			b.WriteString("'" + w + "'")
		}
		if t.Prefix {
			b.WriteString(":*")
		}
		b.WriteByte(')')
	}
	return b.String(), nil
}
