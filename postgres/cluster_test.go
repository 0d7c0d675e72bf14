package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/storetest"
)

// TestNodes runs several Stores on one schema, as several courier nodes
// would (each its own pool of connections), appending at once for the same
// users and rooms (storetest.AppendConcurrently), in batches that name them
// in every order, with idempotency keys repeated across nodes. Then every
// inbox and room must be gap-free and duplicate-free, every key stored
// once, every duplicate resolved to its first message, each node must read
// the same inboxes, and no transaction may have deadlocked.
func TestNodes(t *testing.T) {
	url := requirePostgres(t)
	schema := testSchema(t, url, t.Name()+t.TempDir())
	const nodes, workers, appends = 4, 3, 30
	stores := make([]*Store, nodes)
	for i := range stores {
		stores[i] = openTest(t, url, schema)
		defer stores[i].Close()
	}
	all := make([]courier.Store, len(stores))
	for i, s := range stores {
		all[i] = s
	}
	done := storetest.AppendConcurrently(t, workers, appends, all...)
	if t.Failed() {
		return
	}
	dups := 0
	for _, e := range done {
		if e.Duplicate {
			dups++
		}
	}
	if dups == 0 {
		t.Error("the test made no duplicates")
	}
	t.Logf("%d envelopes, %d duplicates", len(done), dups)
	for i, s := range stores {
		t.Logf("node %d: %d retried after creating names, %d after a conflict, %d on a new connection",
			i, s.stats.created.Load(), s.stats.conflicts.Load(), s.stats.reconnect.Load())
		if n := s.stats.conflicts.Load(); n != 0 {
			t.Errorf("node %d retried %d transactions after a deadlock or serialization failure; want none", i, n)
		}
	}
	// What is stored, whatever Append said: each key once, each room's
	// seqs 1..n with its head at n.
	var keys, distinct int
	err := stores[0].pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT (sender, sender_key))
		FROM messages WHERE sender_key IS NOT NULL`).Scan(&keys, &distinct)
	if err != nil || keys != distinct || keys == 0 {
		t.Errorf("messages with a key: %d for %d keys, %v; want one each", keys, distinct, err)
	}
	var rows, gaps int
	err = stores[0].pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE r.last_seq <> n OR n <> top)
		FROM rooms AS r JOIN (SELECT rid, count(*) AS n, max(seq) AS top FROM room_messages GROUP BY rid) AS m USING (rid)`).Scan(&rows, &gaps)
	if err != nil || rows != 2 || gaps != 0 {
		t.Errorf("rooms: %d, %d with a gap or a head off, %v; want 2, none", rows, gaps, err)
	}
}

// TestNodesConversationsAndReceipts runs read marks against Appends to the
// same conversation, delivered marks of the same messages, and Expire,
// from several nodes at once: unread counts must not drift, each first
// delivery must be reported once over all nodes, and each message expired
// once.
func TestNodesConversationsAndReceipts(t *testing.T) {
	url := requirePostgres(t)
	schema := testSchema(t, url, t.Name()+t.TempDir())
	var all []courier.Store
	for range 3 {
		s := openTest(t, url, schema)
		defer s.Close()
		all = append(all, s)
	}
	storetest.ConversationsConcurrently(t, all...)
	storetest.MarkDeliveredConcurrently(t, all...)
	storetest.ExpireConcurrently(t, all...)
	var stored int
	if err := all[0].(*Store).pool.QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	counts := make(chan int, len(all))
	for _, s := range all {
		go func() {
			n, err := s.Expire(context.Background(), time.Now().Add(time.Hour))
			if err != nil {
				t.Errorf("Expire: %v", err)
			}
			counts <- n
		}()
	}
	total := 0
	for range all {
		total += <-counts
	}
	if total != stored {
		t.Errorf("the nodes expired %d messages in all, want the %d stored", total, stored)
	}
	for _, table := range []string{"messages", "inbox", "conversations", "deliveries"} {
		var n int
		if err := all[0].(*Store).pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s holds %d rows after Expire, %v; want none", table, n, err)
		}
	}
}
