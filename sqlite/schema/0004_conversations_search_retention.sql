-- Schema version 4: conversations, read marks, delivered receipts and
-- retention (Store.History ... Store.Horizon).

-- Conversations: each user's conversations, most recent first, are a third
-- kind of inbox entry, (uid, -1, seq) -> msg: one per conversation, at the
-- seq of its newest message (the peer is the other side of that message).
-- "The user's conversations, most recent first" is then a backward range
-- scan of (uid, -1) that stops at the limit, however many conversations the
-- user has. Append moves a conversation's entry when a message joins it: it
-- deletes the entry at the conversation's previous newest seq (the max(seq)
-- of (uid, peer), which it is about to write next to) and inserts the new
-- one with the batch's inbox rows. The entries sort just before the user's
-- inbox entries (uid, 0, ...), so for most users all three kinds share a
-- leaf page, and a message dirties no page more than before. Invariant:
-- (uid, -1, s) exists exactly when s = max(seq) of some (uid, peer > 0).
--
-- Unread counts are not stored: Conversations counts, for each
-- conversation it returns, the messages received after the read mark
-- (a range scan of (uid, peer, mark..)), so Append writes nothing more.
INSERT INTO inbox (uid, peer, seq, msg)
	SELECT uid, -1, max(seq), msg FROM inbox WHERE peer > 0 GROUP BY uid, peer;

-- read_marks is each user's read mark per conversation (Store.MarkRead): a
-- seq of uid's inbox, never more than the conversation's newest seq when
-- it was set, so that every message Append adds later counts as unread.
CREATE TABLE read_marks (
	uid  INTEGER NOT NULL,
	peer INTEGER NOT NULL,
	seq  INTEGER NOT NULL,
	PRIMARY KEY (uid, peer)
) STRICT, WITHOUT ROWID;

-- delivered is set (to 1) once a direct message reached a connection of its
-- recipient (Store.MarkDelivered). NULL to 1 keeps the record's size (serial
-- types 0 and 9 have no payload), so SQLite overwrites the cell in place.
ALTER TABLE messages ADD COLUMN delivered INTEGER;

-- Retention (Store.Expire) deletes by ts. Messages are appended with ts
-- nearly in pk order, so this index grows at its right edge: a page or two
-- per commit.
CREATE INDEX messages_ts ON messages (ts);

-- The highest seq Expire deleted from each inbox and room: the next seq is
-- max(this, max(seq) of what is left) + 1, so seqs are never given twice.
ALTER TABLE users ADD COLUMN expired_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN expired_seq INTEGER NOT NULL DEFAULT 0;

-- Full-text search has a file of its own, SearchFileName (see
-- indexer.go): it is derived from messages and rebuilt from them when
-- missing, and its writes never wait for, or add to, this file's.

-- store_state is one row: expired_pk, the highest pk Expire deleted. pks
-- are given out from max(max(pk), expired_pk) + 1, never reused, so the
-- search index's watermark never skips a message and none of its rows ever
-- names another message than the one it indexed.
CREATE TABLE store_state (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	expired_pk INTEGER NOT NULL
) STRICT;

INSERT INTO store_state (id, expired_pk) VALUES (1, 0);
