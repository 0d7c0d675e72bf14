// Package postgres is a courier.Store on PostgreSQL, for a cluster: several
// courier nodes (separate processes, on any hosts) that share one database
// and so every user's inbox, room history, idempotency keys and last seen
// times. Any node may append for any user at any time; the store keeps each
// inbox's and room's seq gap-free and each idempotency key stored once
// across all of them. A single node is better served by package sqlite.
//
// The schema (schema/*.sql, embedded and applied by Open) stores each
// message once in messages, with inbox rows (uid, seq -> message, peer)
// and room_messages rows (rid, seq -> message) pointing at it, and the head
// of each inbox and room (its last seq) in users and rooms. Beside them
// (schema/0002): conversations, one row per (user, peer) with the newest
// message, the unread count and the read mark, which Append upserts under
// its head locks; deliveries, the first delivery of each message; a
// tsvector of each direct message's words and owners with a GIN index,
// computed in Append's INSERT, for search; and an index on ts for Expire.
//
// # Connection URL
//
// Open takes a URL in libpq's form, as pgx reads it:
//
//	postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=disable
//	postgresql://USER@HOST/DATABASE?sslmode=verify-full&pool_max_conns=20
//	postgres:///DATABASE?host=/var/run/postgresql   (a Unix socket)
//
// Query parameters are libpq's (sslmode, connect_timeout, application_name,
// search_path, ...) and pgxpool's (pool_max_conns, pool_min_conns,
// pool_max_conn_lifetime, ...). Missing parts come from the PG* environment
// variables, as with libpq. Options.Schema puts the tables in a schema of their
// own.
//
// # Concurrency between nodes
//
// An Append is one transaction at READ COMMITTED in two round trips. The
// first begins it, takes a transaction-level advisory lock per idempotency
// key of the batch (sorted), looks those keys up, and locks the head rows of
// the inboxes and rooms the batch advances (SELECT ... FOR UPDATE, sorted by
// name, users before rooms). The second inserts the messages, inbox and room
// rows (one INSERT ... SELECT FROM unnest(arrays) each), moves the heads,
// and commits. Every transaction takes its locks in the same order, so
// batches that touch the same users in different orders wait for each other
// instead of deadlocking; a deadlock or serialization failure that happens
// anyway is retried. A duplicate key sent through two nodes at once: the
// second waits on the key's lock, then finds the first message.
//
// The other writes keep to the same order. MarkRead and Expire lock the
// conversations rows they recount (SELECT ... FOR UPDATE, by (uid, peer))
// and recount in a later statement, whose snapshot sees every Append that
// committed before; Appends to those conversations wait for the lock and
// add to the recount. MarkDelivered inserts into deliveries in pk order
// with ON CONFLICT DO NOTHING RETURNING: concurrent marks of one message,
// from any node, report it once. Expire takes its messages FOR UPDATE SKIP
// LOCKED, so several nodes may run it at once.
//
// A name seen for the first time gets its users or rooms row in a short
// transaction of its own, after which the Append starts again: so its
// locks are still all taken in one sorted statement. When the connection
// fails while the COMMIT may have run, Append waits for the transaction to
// end (by locking one of its heads) and looks for its first message before
// it answers, so that a stored batch is not reported as failed.
package postgres
