package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/storetest"
)

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) courier.Store { return openTest(t, dir) })
}

// writerInt runs a query returning one integer on the writer connection.
func (s *Store) writerInt(q string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.wc.prepare(q)
	if err != nil {
		return 0, err
	}
	defer st.close()
	var n int64
	_, err = s.wc.queryInt(st, &n)
	return n, err
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // temp tables are per connection
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	s := openTest(t, dir)
	defer s.Close()
	ctx := context.Background()
	readerInt := func(q string) (n int64, err error) {
		err = s.reader.QueryRowContext(ctx, q).Scan(&n)
		return n, err
	}
	checks := []struct {
		query string
		fn    func(string) (int64, error)
		want  int64
	}{
		{"PRAGMA user_version", s.writerInt, 4},
		{"PRAGMA synchronous", s.writerInt, 2}, // FULL
		{"PRAGMA synchronous", readerInt, 2},
		{"PRAGMA busy_timeout", s.writerInt, 5000},
		{"PRAGMA cache_size", s.writerInt, -writerCacheKiB},
		{"PRAGMA wal_autocheckpoint", s.writerInt, 0}, // replaced by the WAL hook
		{"PRAGMA query_only", readerInt, 1},
	}
	for _, c := range checks {
		if got, err := c.fn(c.query); err != nil || got != c.want {
			t.Errorf("%s = %d, %v; want %d", c.query, got, err, c.want)
		}
	}
	var mode string
	if err := s.reader.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("reader journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := s.reader.ExecContext(ctx, "DELETE FROM inbox"); err == nil {
		t.Error("reader connection can write")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Append(ctx, []*courier.Envelope{{Message: courier.Message{ID: "x", From: "a", To: "b"}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Inbox(ctx, "b", 0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Inbox after Close: %v, want ErrClosed", err)
	}
	if err := s.SetLastSeen(ctx, "b", time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetLastSeen after Close: %v, want ErrClosed", err)
	}
	if _, err := s.LastSeen(ctx, "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("LastSeen after Close: %v, want ErrClosed", err)
	}
	storetest.CheckClosed(t, s, ErrClosed)
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir).Close()
	if _, err := rawDB(t, filepath.Join(dir, FileName)).Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a version 99 database: %v, want an error", err)
		if s != nil {
			s.Close()
		}
	}
}

func TestAppendValidates(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	msg := func(id, from, to, room string) *courier.Envelope {
		return &courier.Envelope{Message: courier.Message{ID: id, From: from, To: to, Room: room}}
	}
	for _, e := range []*courier.Envelope{
		nil, msg("", "a", "b", ""), msg("x", "a", "", ""), msg("x", "a", "b", "r"), msg("x", "", "b", ""),
	} {
		if err := s.Append(context.Background(), []*courier.Envelope{e}); !errors.Is(err, courier.ErrBadRequest) {
			t.Errorf("Append(%+v) = %v, want ErrBadRequest", e, err)
		}
	}
}

// TestQueryPlans checks that the reads the schema is designed for are index
// range scans, including the later ones: a conversation newest first and a
// key lookup.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	plans := []struct{ query, want string }{
		{`SELECT i.seq, m.id FROM users AS u JOIN inbox AS i ON i.uid = u.uid AND i.peer = 0 JOIN messages AS m ON m.pk = i.msg
			WHERE u.name = 'a' AND i.seq > 5 ORDER BY i.seq LIMIT 10`, "SEARCH i USING PRIMARY KEY (uid=? AND peer=? AND seq>?)"},
		{`SELECT seq, msg FROM inbox WHERE uid = 1 AND peer = 2 ORDER BY seq DESC LIMIT 50`,
			"SEARCH inbox USING PRIMARY KEY (uid=? AND peer=?)"},
		{`SELECT seq, msg FROM inbox WHERE uid = 1 AND peer = 2 AND seq < 100 ORDER BY seq DESC LIMIT 50`,
			"SEARCH inbox USING PRIMARY KEY (uid=? AND peer=? AND seq<?)"},
		{`SELECT id FROM messages WHERE sender = 'a' AND sender_key = 'k'`,
			"SEARCH messages USING INDEX messages_sender_key (sender=? AND sender_key=?)"},
		{findKeys.sql(3), "SEARCH messages USING INDEX messages_sender_key (sender=? AND sender_key=?)"},
		{`SELECT id FROM messages WHERE id = 'x'`, "SEARCH messages USING COVERING INDEX sqlite_autoindex_messages_1 (id=?)"},
		// The reads of history.go and search.go, newest first.
		{sqlHistory, "SEARCH i USING PRIMARY KEY (uid=? AND peer=? AND seq<?)"},
		{sqlRoomHistory, "SEARCH r USING PRIMARY KEY (rid=? AND seq<?)"},
		{sqlConversations, "SEARCH c USING PRIMARY KEY (uid=? AND peer=?)"},
		{sqlHorizon, "SEARCH i USING PRIMARY KEY (uid=? AND peer=?)"},
		// The writes of append.go, receipts.go, expire.go.
		{unlinkConvs.sql(3), "SEARCH inbox USING PRIMARY KEY (uid=? AND peer=? AND seq=?)"},
		{markDelivered.sql(3), "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (id=?)"},
		{sqlNewestFrom, "SEARCH i USING PRIMARY KEY (uid=? AND peer=? AND seq<?)"},
		{sqlConvLast, "SEARCH i USING PRIMARY KEY (uid=? AND peer=?)"},
		{`SELECT pk FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2`, "SEARCH messages USING COVERING INDEX messages_ts (ts<?)"},
	}
	for _, p := range plans {
		q := regexp.MustCompile(`\?\d*`).ReplaceAllString(p.query, "'x'")
		got := explain(t, s.reader, q)
		// A list of values given with the query is scanned, not a table,
		// and so are a constant row and an FTS5 index for a MATCH (M2).
		scans := regexp.MustCompile(`SCAN \d+-ROW VALUES CLAUSE|SCAN CONSTANT ROW|SCAN f VIRTUAL TABLE INDEX \d+:M2`).ReplaceAllString(got, "")
		if !strings.Contains(got, p.want) || strings.Contains(got, "TEMP B-TREE") || strings.Contains(scans, "SCAN") {
			t.Errorf("plan of %s:\n  %s\nwant %s, no SCAN, no TEMP B-TREE", p.query, got, p.want)
		}
	}
	// Search: the FTS5 index of its own file, read by MATCH in rowid order
	// descending (index flags 0x80|0x40), then the messages by pk.
	if got := explain(t, s.search, sqlSearch, "x", 10); got != "SCAN search VIRTUAL TABLE INDEX 192:M2" {
		t.Errorf("plan of the search index's query: %s", got)
	}
	if got := explain(t, s.reader, sqlFound, "x", "[1,2]"); !strings.Contains(got, "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)") {
		t.Errorf("plan of reading what search found: %s", got)
	}
}

// TestFTS5 checks that the driver has FTS5, which search over the string
// values of messages.data will use: an external-content index on messages.
func TestFTS5(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	err := s.Append(ctx, []*courier.Envelope{
		{Message: courier.Message{ID: "m1", From: "alice", To: "bob", Data: []byte(`{"text":"the quick brown fox","n":1}`)}},
		{Message: courier.Message{ID: "m2", From: "alice", To: "bob", Data: []byte(`{"text":"lazy dogs"}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, s.Path())
	for _, q := range []string{
		`CREATE VIRTUAL TABLE temp.search USING fts5(body, content='')`,
		`INSERT INTO temp.search (rowid, body) SELECT m.pk,
			(SELECT group_concat(j.value, ' ') FROM json_tree(m.data) AS j WHERE j.type = 'text')
			FROM main.messages AS m`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var id string
	err = db.QueryRowContext(ctx, `SELECT m.id FROM temp.search AS f JOIN messages AS m ON m.pk = f.rowid
		WHERE search MATCH 'quick AND fox'`).Scan(&id)
	if err != nil || id != "m1" {
		t.Errorf("full-text search found %q, %v; want m1", id, err)
	}
}

// explain returns the query plan of q with args, one detail a line.
func explain(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// TestConversationsAtScale checks that a user with thousands of
// conversations gets the most recent ones from an index, after ANALYZE
// too: a backward range scan of the user's conversation entries that
// stops at the limit, and for each, a range scan of its unread messages.
func TestConversationsAtScale(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	const peers = 3000
	n := 0
	for round := range 2 {
		var batch []*courier.Envelope
		for p := range peers {
			from, to := fmt.Sprint("p", p), "hub"
			if (p+round)%4 == 0 {
				from, to = to, from
			}
			batch = append(batch, dmAt(fmt.Sprint("m", n), from, to, n))
			n++
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.MarkRead(ctx, "hub", "p1", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writerInt("ANALYZE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cs, err := s.Conversations(ctx, "hub", 50)
	took := time.Since(start)
	if err != nil || len(cs) != 50 || cs[0].With != fmt.Sprint("p", peers-1) || cs[0].Last.ID != fmt.Sprint("m", n-1) {
		t.Fatalf("Conversations(hub, 50) = %d, %v; first %+v", len(cs), err, cs[0])
	}
	plan := explain(t, s.reader, sqlConversations, "hub", 50)
	t.Logf("%d conversations, the 50 most recent in %v; plan: %s", peers, took, plan)
	if !strings.Contains(plan, "SEARCH c USING PRIMARY KEY (uid=? AND peer=?)") || strings.Contains(plan, "TEMP B-TREE") ||
		strings.Contains(strings.ReplaceAll(plan, "SCAN CONSTANT ROW", ""), "SCAN") {
		t.Errorf("plan of Conversations with %d conversations: %s; want a range scan of the conversation entries, no sort", peers, plan)
	}
}
