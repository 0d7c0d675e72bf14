-- Schema version 2: conversations, read marks, delivered receipts, full-text
-- search and retention (Store.History ... Store.Horizon).

-- conversations summarizes each of a user's conversations: the newest
-- message (its seq in uid's inbox and its pk), the count of messages
-- received from peer after the read mark, and the read mark. Append
-- upserts the rows of the (uid, peer) pairs a batch adds to, in (uid, peer)
-- order, while it holds the head locks of the inboxes (so the newest seq
-- only grows); MarkRead and Expire lock the rows they recount (SELECT ...
-- FOR UPDATE, in the same order) and recount in a later statement, whose
-- snapshot sees every Append that committed before the lock. "Most recent
-- first" is a backward scan of conversations_recent.
CREATE TABLE conversations (
	uid      bigint NOT NULL,            -- users.uid
	peer     bigint NOT NULL,            -- users.uid of the other side
	last_seq bigint NOT NULL,            -- the newest message's seq in uid's inbox
	last_msg bigint NOT NULL,            -- its messages.pk
	unread   bigint NOT NULL DEFAULT 0,  -- received from peer after read_seq
	read_seq bigint NOT NULL DEFAULT 0,  -- the read mark, at most last_seq when set
	PRIMARY KEY (uid, peer)
);

CREATE INDEX conversations_recent ON conversations (uid, last_seq);

INSERT INTO conversations (uid, peer, last_seq, last_msg, unread)
	SELECT DISTINCT ON (i.uid, i.peer) i.uid, i.peer, i.seq, i.msg,
		(SELECT count(*) FROM inbox AS j JOIN messages AS m ON m.pk = j.msg
			WHERE j.uid = i.uid AND j.peer = i.peer AND m.sender <> u.name)
	FROM inbox AS i JOIN users AS u ON u.uid = i.uid
	ORDER BY i.uid, i.peer, i.seq DESC;

-- deliveries holds the pk of each direct message that reached a connection
-- of its recipient (Store.MarkDelivered): INSERT ... ON CONFLICT DO NOTHING
-- RETURNING makes each message's first delivery reported once, whichever
-- node asks, without rewriting messages rows.
CREATE TABLE deliveries (
	pk bigint PRIMARY KEY  -- messages.pk
);

-- search is the full-text document of a direct message (NULL for a room
-- message): the words of courier.SearchText(data), as the store splits them
-- (courier.Words, lower-case runs of letters and digits, the same words
-- package sqlite's FTS5 index holds), through to_tsvector('simple', ...),
-- plus one lexeme '@<uid>' per inbox the message is in, which no word can
-- be: a search is the GIN intersection of the query's lexemes and the
-- user's. Append computes it in the INSERT of the messages; the messages
-- stored before this version get theirs in the background (search_backfill).
ALTER TABLE messages ADD COLUMN search tsvector;

CREATE INDEX messages_search ON messages USING gin (search);

-- search_backfill is the progress of filling search for the messages stored
-- before this version, pks next_pk..last_pk (see backfill.go): one node at
-- a time takes the row FOR UPDATE SKIP LOCKED and does the next range.
CREATE TABLE search_backfill (
	id      integer PRIMARY KEY CHECK (id = 1),
	next_pk bigint NOT NULL,
	last_pk bigint NOT NULL
);

INSERT INTO search_backfill (id, next_pk, last_pk) SELECT 1, 1, coalesce(max(pk), 0) FROM messages;

-- Retention (Store.Expire) deletes by ts, oldest first, a batch at a time.
CREATE INDEX messages_ts ON messages (ts);
