package courier

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A Store keeps durable messages: each user's inbox, with a gap-free seq
// starting at 1, and each room's history with its own seq. Implementations
// (sqlite, postgres) must be safe for concurrent use.
type Store interface {
	// Append stores a batch of envelopes in one transaction, in order, and
	// fills in their seqs (and Duplicate, for a repeated idempotency key).
	// A direct message goes into the recipient's inbox and, unless
	// NoSenderCopy, the sender's; a room message into the room's history.
	// Append returns only after the batch is durable; on error nothing of the
	// batch is stored and the envelopes are left as they were passed in, so
	// the caller may retry them.
	Append(ctx context.Context, batch []*Envelope) error

	// Inbox returns up to limit messages of user's inbox with seq > after,
	// in seq order, each with Seq set to its place in that inbox. A limit
	// of 0 or less returns nothing.
	Inbox(ctx context.Context, user string, after uint64, limit int) ([]Message, error)

	// LatestSeq returns the seq of the newest message in user's inbox, 0
	// when it is empty.
	LatestSeq(ctx context.Context, user string) (uint64, error)

	// SetLastSeen records t as when user's last connection closed. A
	// cluster shares it through a shared store, so that every node answers
	// presence alike, and it survives restarts. An older t than the one
	// stored does not replace it.
	SetLastSeen(ctx context.Context, user string, t time.Time) error

	// LastSeen returns what SetLastSeen recorded for user, or the zero time.
	LastSeen(ctx context.Context, user string) (time.Time, error)

	// History returns up to limit messages of user's conversation with peer
	// (received from peer and sent to it) as they stand in user's inbox,
	// newest first, with seq < before; before 0 means from the newest.
	History(ctx context.Context, user, peer string, before uint64, limit int) ([]Message, error)

	// RoomHistory returns up to limit messages of room, newest first, with
	// room seq < before; before 0 means from the newest.
	RoomHistory(ctx context.Context, room string, before uint64, limit int) ([]Message, error)

	// Search returns up to limit messages of user's inbox whose SearchText
	// matches every term of q, newest first, each with user's seq. It may
	// miss messages stored less than a second ago (indexing may lag).
	Search(ctx context.Context, user string, q Query, limit int) ([]Message, error)

	// Conversations returns up to limit of user's conversations, the most
	// recent first. It must not scan the inbox: an index serves it even for
	// users with thousands of conversations.
	Conversations(ctx context.Context, user string, limit int) ([]Conversation, error)

	// MarkRead moves user's read mark of the conversation with peer up to
	// seq (a seq in user's inbox), never back. The messages from peer it
	// passes that had no delivered mark get one, in the same transaction,
	// each once whichever node asks (ReadMark.Delivered).
	MarkRead(ctx context.Context, user, peer string, seq uint64) (ReadMark, error)

	// MarkDelivered records that the direct messages ids reached a
	// connection of their recipient, and returns the ones that had not
	// reached one before and whose sender is a user (not a server API
	// label). A message is returned once, whichever node asks.
	MarkDelivered(ctx context.Context, ids []string) ([]FirstDelivery, error)

	// Expire deletes messages stored before t, in every inbox and room,
	// with what indexes them, and returns how many messages it deleted.
	// Seqs are not reused.
	Expire(ctx context.Context, before time.Time) (int, error)

	// Horizon returns the lowest seq of user's inbox that can still be
	// read: 1 unless Expire deleted its oldest messages, and LatestSeq+1
	// when it deleted all of them.
	Horizon(ctx context.Context, user string) (uint64, error)

	// Close releases the store; it waits for writes in progress.
	Close() error
}

// Bounds of what a Store indexes of one message for Search.
const (
	MaxIndexText = 128 << 10 // bytes of text
	MaxIndexWord = 128       // bytes of a word; longer ones (tokens, blobs) are left out
)

// IndexText returns what a Store indexes of data for Search: the words of
// SearchText(data) (see Words: lower-case runs of letters and digits)
// separated by spaces, leaving out words longer than MaxIndexWord bytes, at
// most MaxIndexText bytes in all (cut at a word). Stores index this rather
// than the raw text so that their engines (SQLite FTS5, PostgreSQL
// tsvector) split text exactly as ParseQuery splits a query, and so find
// the same messages.
func IndexText(data json.RawMessage) string {
	var b strings.Builder
	for _, w := range Words(SearchText(data)) {
		switch {
		case len(w) > MaxIndexWord:
			continue
		case b.Len()+1+len(w) > MaxIndexText:
			return b.String()
		case b.Len() > 0:
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

// Check reports, as ErrBadRequest, a query that ParseQuery cannot have
// made: no term, a term without words, or a word that is not a lower-case
// run of letters and digits. Stores call it before they translate q into
// their engine's syntax, which then holds nothing but such words.
func (q Query) Check() error {
	if len(q.Terms) == 0 {
		return fmt.Errorf("%w: search: empty query", ErrBadRequest)
	}
	for _, t := range q.Terms {
		if len(t.Words) == 0 {
			return fmt.Errorf("%w: search: term without words", ErrBadRequest)
		}
		for _, w := range t.Words {
			if !slices.Equal(Words(w), []string{w}) {
				return fmt.Errorf("%w: search: %q is not a lower-case word of letters and digits", ErrBadRequest, w)
			}
		}
	}
	return nil
}
