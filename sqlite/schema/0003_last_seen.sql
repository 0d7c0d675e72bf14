-- Schema version 3: when each user's last connection closed (presence's
-- "last seen"), as Store.SetLastSeen records it.
--
-- Keyed by name, not users.uid: a user who has connected but never had a
-- message has no users row, and users rows are given out by Append from
-- memory (heads.go), which a write of another kind must not disturb.
-- ts is Unix milliseconds UTC, like messages.ts; SetLastSeen only ever
-- moves it forward.
CREATE TABLE last_seen (
	name TEXT    PRIMARY KEY,
	ts   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
