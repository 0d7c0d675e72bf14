package courier

import "context"

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

	// Close releases the store; it waits for writes in progress.
	Close() error
}
