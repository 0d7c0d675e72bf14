package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
		{"PRAGMA user_version", s.writerInt, 2},
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
	}
	for _, p := range plans {
		q := strings.ReplaceAll(p.query, "?", "'x'")
		rows, err := s.reader.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		// A list of values given with the query is scanned, not a table.
		scans := regexp.MustCompile(`SCAN \d+-ROW VALUES CLAUSE`).ReplaceAllString(got, "")
		if !strings.Contains(got, p.want) || strings.Contains(got, "TEMP B-TREE") || strings.Contains(scans, "SCAN") {
			t.Errorf("plan of %s:\n  %s\nwant %s, no SCAN, no TEMP B-TREE", p.query, got, p.want)
		}
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
