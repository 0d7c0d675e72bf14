package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courier-im/courier"
)

// TestQueryPlans checks that the reads and locks the schema is designed for
// can run on its indexes, including the later ones: a conversation and a
// room's history newest first, paged by seq.
func TestQueryPlans(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The tables are nearly empty: make the planner show what it can do,
	// an index read in the order asked for.
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET ALL`)
	plans := []struct{ query, want string }{
		{strings.NewReplacer("$1", "'ann'", "$2", "5", "$3", "10").Replace(sqlInbox), "Index Scan using inbox_pkey"},
		{`SELECT seq, msg FROM inbox WHERE uid = 1 AND peer = 2 AND seq < 100 ORDER BY seq DESC LIMIT 50`,
			"Index Only Scan Backward using inbox_conversation"},
		{`SELECT seq, msg FROM room_messages WHERE rid = 1 AND seq < 100 ORDER BY seq DESC LIMIT 50`,
			"Index Scan Backward using room_messages_pkey"},
		{strings.NewReplacer("$1", "'{ann,bo}'", "$2", "'{k1,k2}'").Replace(sqlFindKeys), "messages_sender_key"},
		{strings.ReplaceAll(sqlLockUsers, "$1", "'{ann,bo}'"), "users_name_key"},
		{strings.ReplaceAll(sqlLockRooms, "$1", "'{hall}'"), "rooms_name_key"},
		{strings.ReplaceAll(sqlLatest, "$1", "'ann'"), "users_name_key"},
		// The reads of history.go, newest first, and the statements of
		// receipts.go and expire.go.
		{args(sqlHistory, "'ann'", "'bo'", "100", "50"), "Index Only Scan Backward using inbox_conversation"},
		{args(sqlRoomHistory, "'hall'", "100", "50"), "Index Scan Backward using room_messages_pkey"},
		{args(sqlConversations, "'ann'", "50"), "Index Scan Backward using conversations_recent"},
		{args(sqlHorizon, "'ann'"), "inbox_pkey"},
		{args(sqlLockConv, "'ann'", "'bo'"), "conversations_pkey"},
		{args(sqlNewestFrom, "1", "2", "100", "'bo'"), "Index Only Scan Backward using inbox_conversation"},
		{args(sqlExpiring, "now()", "2000"), "Index Scan using messages_ts"},
	}
	for _, p := range plans {
		plan := explain(t, conn, p.query)
		if !strings.Contains(plan, p.want) || strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort  ") {
			t.Errorf("plan of %s:\n%s\nwant %s, no Seq Scan, no Sort", p.query, plan, p.want)
		}
	}
}

// args replaces $1, $2, ... in q by vals, for EXPLAIN.
func args(q string, vals ...string) string {
	for i := len(vals); i > 0; i-- {
		q = strings.ReplaceAll(q, fmt.Sprintf("$%d", i), vals[i-1])
	}
	return q
}

// explain returns the plan of q, one line a node.
func explain(t *testing.T, conn *pgxpool.Conn, q string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "EXPLAIN "+q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", q, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestPlansAtScale checks, on thousands of conversations and messages and
// with the planner's own statistics (nothing disabled), that the list of
// conversations is a backward scan of conversations_recent that stops at
// the limit, and that search intersects the query's and the user's
// lexemes in the GIN index.
func TestPlansAtScale(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	// Two messages with each of 3000 peers, in batches of 500: one in four
	// sent by hub.
	const peers, n = 3000, 6000
	for start := 0; start < n; start += 500 {
		batch := make([]*courier.Envelope, 0, 500)
		for i := start; i < start+500; i++ {
			peer := fmt.Sprint("p", i%peers)
			e := dm(fmt.Sprint("m", i), peer, "hub")
			e.Data = []byte(fmt.Sprintf(`{"text":"hello number %d from %s"}`, i, peer))
			if i%4 == 0 {
				e.From, e.To = e.To, e.From
			}
			batch = append(batch, e)
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// Delivered marks, so that the planner sees deliveries as the table
	// it becomes, not an empty one it may as well scan.
	for start := 0; start < n; start += 500 {
		ids := make([]string, 0, 500)
		for i := start; i < start+500; i += 2 {
			ids = append(ids, fmt.Sprint("m", i))
		}
		if _, err := s.MarkDelivered(ctx, ids); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ query, want string }{
		{args(sqlConversations, "'hub'", "50"), "Index Scan Backward using conversations_recent"},
		// Search's plan depends on how common its lexemes are: on a table
		// this small a scan is cheaper, so the scan is taken off the
		// table to show that the GIN index serves both lexemes.
		{"SET LOCAL enable_seqscan = off", ""},
		{args(sqlSearch, "'hub'", `'''hello'' & ''p17'''`, `'''@1'''`, "20"), "Bitmap Index Scan on messages_search"},
		{args(sqlMarkDelivered, "'{m1,m2,m3}'"), "messages_id_key"},
		{args(sqlHistory, "'hub'", "'p5'", "100000", "50"), "Index Only Scan Backward using inbox_conversation"},
	} {
		if p.want == "" {
			if _, err := conn.Exec(ctx, "BEGIN; "+p.query); err != nil {
				t.Fatal(err)
			}
			defer conn.Exec(ctx, "ROLLBACK")
			continue
		}
		plan := explain(t, conn, p.query)
		t.Logf("%s", plan)
		if !strings.Contains(plan, p.want) || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %s:\n%s\nwant %s, no Seq Scan", p.query, plan, p.want)
		}
	}
	start := time.Now()
	cs, err := s.Conversations(ctx, "hub", 50)
	if err != nil || len(cs) != 50 || cs[0].Last.ID != fmt.Sprint("m", n-1) {
		t.Fatalf("Conversations(hub, 50): %d, %v", len(cs), err)
	}
	t.Logf("%d conversations: the 50 most recent in %v", peers, time.Since(start))
}

// TestUpgradeFromVersion1 checks that a database of schema version 1, with
// messages, gets their conversations (in the migration) and their search
// documents (in the background), and goes on from there.
func TestUpgradeFromVersion1(t *testing.T) {
	url := requirePostgres(t)
	schema := testSchema(t, url, t.Name()+t.TempDir())
	ctx := context.Background()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrateTo(ctx, pool, schema, schema, ms[:1], slog.New(slog.NewTextHandler(tLog{t}, nil))); err != nil {
		t.Fatal(err)
	}
	// Version 1 rows as its Append wrote them: ann -> bo, then bo -> ann.
	_, err = pool.Exec(ctx, `INSERT INTO users (name, last_seq) VALUES ('ann', 2), ('bo', 2);
		INSERT INTO messages (pk, id, sender, recipient, event, data, ts, to_seq, from_seq) VALUES
			(nextval('messages_pk_seq'), 'm1', 'ann', 'bo', 'message', '{"text":"historic pumpkin"}', now(), 1, 1),
			(nextval('messages_pk_seq'), 'm2', 'bo', 'ann', 'message', '{"text":"old \u0000 soup"}', now(), 2, 2);
		INSERT INTO inbox (uid, seq, msg, peer)
			SELECT u.uid, s.seq, m.pk, p.uid FROM (VALUES ('bo', 1, 'm1', 'ann'), ('ann', 1, 'm1', 'bo'),
				('ann', 2, 'm2', 'bo'), ('bo', 2, 'm2', 'ann')) AS s(owner, seq, id, peer)
			JOIN users AS u ON u.name = s.owner JOIN users AS p ON p.name = s.peer JOIN messages AS m ON m.id = s.id`)
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, url, schema)
	defer s.Close()
	cs, err := s.Conversations(ctx, "bo", 10)
	if err != nil || len(cs) != 1 || cs[0].With != "ann" || cs[0].Last.ID != "m2" || cs[0].Last.Seq != 2 || cs[0].Unread != 1 {
		t.Errorf("Conversations(bo) after the upgrade = %+v, %v; want ann, m2 at 2, 1 unread", cs, err)
	}
	for _, c := range []struct{ user, q, want string }{{"bo", "pumpkin", "m1"}, {"ann", "historic", "m1"}, {"ann", "soup", "m2"}} {
		q, err := courier.ParseQuery(c.q)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			found, err := s.Search(ctx, c.user, q, 10)
			if err == nil && len(found) == 1 && found[0].ID == c.want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Search(%s, %s) after the upgrade = %+v, %v; want %s", c.user, c.q, found, err, c.want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var left bool
	if err := s.pool.QueryRow(ctx, sqlBackfillLeft).Scan(&left); err != nil || left {
		t.Errorf("backfill left: %v, %v; want done", left, err)
	}
	e := dm("m3", "ann", "bo")
	if err := s.Append(ctx, []*courier.Envelope{e}); err != nil || e.ToSeq != 3 || e.FromSeq != 3 {
		t.Errorf("Append after the upgrade: %v, seqs %d, %d; want 3, 3", err, e.ToSeq, e.FromSeq)
	}
}
