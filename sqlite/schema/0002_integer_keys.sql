-- Schema version 2: integer keys for inboxes and rooms.
--
-- Version 1 keyed inbox by (user TEXT, seq) and inbox_peer by (user, peer,
-- seq): every insert compared strings on the way down two B-trees, and each
-- row carried the names. Here every name that owns an inbox or is a peer in
-- one (users, and the labels the server API sends as) gets an integer uid
-- once, and every room an integer rid, so the per-message B-trees hold only
-- integers: smaller rows (more per page, fewer pages written to the WAL per
-- commit) and integer comparisons. Append keeps the uid and last seq of the
-- names it has seen in memory (see heads.go), so the names tables are
-- written once per new name and read on a cache miss only.

CREATE TABLE users (
	uid  INTEGER PRIMARY KEY,
	name TEXT    NOT NULL UNIQUE
) STRICT;

CREATE TABLE rooms (
	rid  INTEGER PRIMARY KEY,
	name TEXT    NOT NULL UNIQUE
) STRICT;

INSERT INTO users (name) SELECT user FROM inbox UNION SELECT peer FROM inbox;
INSERT INTO rooms (name) SELECT DISTINCT room FROM room_messages;

-- inbox holds each user's copies, twice: the inbox entry (uid, 0, seq),
-- gap-free seq from 1, and the conversation entry (uid, peer, seq), where
-- peer is the uid of the other side (the user itself for a note to self).
-- Reading an inbox is a range scan of (uid, 0); a conversation, newest first,
-- of (uid, peer). uids start at 1, so peer 0 is free to mark inbox entries.
--
-- Why one table and not an inbox table plus a conversation index, as in
-- version 1: a user's inbox and conversation entries sort next to each
-- other, so a message usually dirties one B-tree page per copy instead of
-- two. Each dirty page is 4 KiB written to the WAL, fsynced at commit, and
-- copied again at checkpoint; at the hub's batch sizes those pages, not the
-- rows, are what a durable message costs.
--
-- The next seq is max(seq)+1 of (uid, 0), as in version 1: retention must
-- keep the newest inbox entry of every user and room.
CREATE TABLE inbox_v2 (
	uid  INTEGER NOT NULL,  -- users.uid
	peer INTEGER NOT NULL,  -- 0 for the inbox entry, else users.uid
	seq  INTEGER NOT NULL,
	msg  INTEGER NOT NULL,  -- messages.pk
	PRIMARY KEY (uid, peer, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO inbox_v2 (uid, peer, seq, msg)
	SELECT u.uid, 0, i.seq, i.msg FROM inbox AS i JOIN users AS u ON u.name = i.user;
INSERT INTO inbox_v2 (uid, peer, seq, msg)
	SELECT u.uid, p.uid, i.seq, i.msg
	FROM inbox AS i JOIN users AS u ON u.name = i.user JOIN users AS p ON p.name = i.peer;
DROP TABLE inbox;
ALTER TABLE inbox_v2 RENAME TO inbox;

CREATE TABLE room_messages_v2 (
	rid INTEGER NOT NULL,  -- rooms.rid
	seq INTEGER NOT NULL,
	msg INTEGER NOT NULL,  -- messages.pk
	PRIMARY KEY (rid, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO room_messages_v2 (rid, seq, msg)
	SELECT r.rid, m.seq, m.msg FROM room_messages AS m JOIN rooms AS r ON r.name = m.room;
DROP TABLE room_messages;
ALTER TABLE room_messages_v2 RENAME TO room_messages;
