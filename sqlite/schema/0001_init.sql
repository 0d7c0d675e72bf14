-- Schema version 1. Applied once, in a transaction, by migrate; later
-- versions go in new files (0002_*.sql, ...) and never edit this one.

-- messages holds every durable message once, however many inboxes it is in.
-- The integer rowid pk is what inbox and room_messages point to (an integer
-- join is a direct B-tree seek) and what a later FTS5 index over the string
-- values of data can use as content_rowid. It grows with insertion order,
-- and so, near enough, with ts: retention by time can delete a pk range
-- without an index on ts. data is TEXT, not BLOB: SQLite's json functions
-- read a BLOB as JSONB.
CREATE TABLE messages (
	pk         INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL UNIQUE,
	sender     TEXT    NOT NULL,             -- Message.From
	recipient  TEXT    NOT NULL DEFAULT '',  -- Message.To; '' for a room message
	room       TEXT    NOT NULL DEFAULT '',  -- Message.Room; '' for a direct message
	event      TEXT    NOT NULL,
	data       TEXT    NOT NULL,
	ts         INTEGER NOT NULL,             -- Message.Time, Unix milliseconds UTC
	sender_key TEXT,                         -- idempotency key; NULL for none
	to_seq     INTEGER NOT NULL,             -- Envelope.ToSeq (room seq for a room message)
	from_seq   INTEGER NOT NULL DEFAULT 0    -- Envelope.FromSeq; 0 for none
) STRICT;

-- Idempotency: a key is unique per sender. Keys are kept as long as their
-- message, i.e. forever for now; the contract only asks for 24 hours, so a
-- later job may set old sender_key to NULL to keep this index small.
CREATE UNIQUE INDEX messages_sender_key ON messages (sender, sender_key)
	WHERE sender_key IS NOT NULL;

-- inbox holds each user's copies, gap-free seq from 1. peer is the other
-- side of the conversation (the sender in the recipient's copy, the
-- recipient in the sender's copy, the user for a note to self), so that a
-- conversation read newest first is a range scan of inbox_peer (covering:
-- it carries msg, so no lookup into the table).
--
-- The next seq is max(seq)+1, one seek to the end of the user's range; there
-- is no counter table: BenchmarkAppend measured users/rooms(last_seq) tables
-- 15-40% slower at batches of 1 to 16 (one more row written per seq), no
-- faster at 128. Retention must therefore keep the newest row of every
-- inbox and room (or add counter tables first), or a seq would be given out
-- twice.
CREATE TABLE inbox (
	user TEXT    NOT NULL,
	seq  INTEGER NOT NULL,
	msg  INTEGER NOT NULL,  -- messages.pk
	peer TEXT    NOT NULL,
	PRIMARY KEY (user, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX inbox_peer ON inbox (user, peer, seq, msg);

-- room_messages is each room's history, gap-free seq from 1, next seq
-- max(seq)+1 like inbox.
CREATE TABLE room_messages (
	room TEXT    NOT NULL,
	seq  INTEGER NOT NULL,
	msg  INTEGER NOT NULL,  -- messages.pk
	PRIMARY KEY (room, seq)
) STRICT, WITHOUT ROWID;
