package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/courier-im/courier"
)

// sqlSearch finds, in the search index, the pks of the messages of an
// FTS5 query, newest first (FTS5 reads its doclists backwards for ORDER BY
// rowid DESC).
const sqlSearch = `SELECT rowid FROM search WHERE search MATCH ?1 ORDER BY rowid DESC LIMIT ?2`

// sqlFound reads the messages of a JSON array of pks, newest first, with
// the seq they have in the inbox of ?1: the recipient's copy or the
// sender's. A pk whose message Expire deleted gives no row.
const sqlFound = `SELECT CASE WHEN m.recipient = ?1 THEN m.to_seq ELSE m.from_seq END,
		m.id, m.sender, m.recipient, m.room, m.event, m.data, m.ts
	FROM json_each(?2) AS j JOIN messages AS m ON m.pk = j.value
	ORDER BY m.pk DESC`

// Search returns up to limit messages of user's inbox (sent or received)
// whose text matches every term of q, newest first, each with Seq set to
// its place in user's inbox. Messages are indexed in the background (see
// SearchFileName), so one stored less than about a second ago may be
// missing. A q that courier.ParseQuery cannot have made is
// courier.ErrBadRequest (Query.Check).
func (s *Store) Search(ctx context.Context, user string, q courier.Query, limit int) ([]courier.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("search %s: %w", user, ErrClosed)
	}
	expr, err := ftsQuery(q)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", user, err)
	}
	if limit < 1 {
		return nil, nil
	}
	var uid int64
	switch err := s.r.uid.QueryRowContext(ctx, user).Scan(&uid); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil // no inbox
	case err != nil:
		return nil, fmt.Errorf("search %s: %w", user, err)
	}
	// The owner's token, then the terms: the uid is an integer and every
	// word letters and digits, quoted, so the user's text is never syntax.
	match := `owners : "u` + strconv.FormatInt(uid, 10) + `" AND ` + expr
	pks, err := s.searchPKs(ctx, match, limit)
	if err != nil || len(pks) == 0 {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, sqlFound, user, "["+strings.Join(pks, ",")+"]")
	if err == nil {
		var out []courier.Message
		if out, err = scanMessages(rows, limit, false); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("search %s: %w", user, err)
}

// searchPKs returns the pks the index finds for match, as decimal strings.
func (s *Store) searchPKs(ctx context.Context, match string, limit int) ([]string, error) {
	rows, err := s.search.QueryContext(ctx, sqlSearch, match, limit)
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	var pks []string
	for rows.Next() {
		var pk int64
		if err := rows.Scan(&pk); err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		pks = append(pks, strconv.FormatInt(pk, 10))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return pks, nil
}

// ftsQuery translates q into an FTS5 expression over the body column:
// each term a phrase of its words in double quotes, followed by * when its
// last word is a prefix, the terms joined by AND.
func ftsQuery(q courier.Query) (string, error) {
	if err := q.Check(); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, t := range q.Terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(`body : "`)
		b.WriteString(strings.Join(t.Words, " "))
		b.WriteString(`"`)
		if t.Prefix {
			b.WriteString(" *")
		}
	}
	return b.String(), nil
}
