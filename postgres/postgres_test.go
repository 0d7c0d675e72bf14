package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/storetest"
)

// defaultTestURL is the server the tests use unless COURIER_TEST_POSTGRES
// names another: the local one of the development and CI machines.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var probe struct {
	once sync.Once
	url  string
	err  error
}

// requirePostgres returns the URL of the test server. When the server
// cannot be reached it skips t, or fails it when COURIER_TEST_SERVICES=1
// (as CI sets it): there a missing service is an error, not a reason to
// test nothing.
func requirePostgres(t testing.TB) string {
	t.Helper()
	probe.once.Do(func() {
		probe.url = os.Getenv("COURIER_TEST_POSTGRES")
		if probe.url == "" {
			probe.url = defaultTestURL
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, probe.url)
		if err == nil {
			err = errors.Join(conn.Ping(ctx), conn.Close(ctx))
		}
		probe.err = err
	})
	if probe.err != nil {
		if os.Getenv("COURIER_TEST_SERVICES") == "1" {
			t.Fatalf("PostgreSQL is required (COURIER_TEST_SERVICES=1) but unreachable: %v", probe.err)
		}
		t.Skipf("PostgreSQL unreachable, skipping (set COURIER_TEST_POSTGRES to its URL; COURIER_TEST_SERVICES=1 fails instead): %v", probe.err)
	}
	return probe.url
}

// testSchema returns a schema name of its own for key (a test's temporary
// directory, say) and drops that schema when t ends, so that tests running
// in parallel see none of each other's data.
func testSchema(t testing.TB, url, key string) string {
	t.Helper()
	h := fnv.New64a()
	h.Write([]byte(key))
	schema := fmt.Sprintf("courier_test_%016x", h.Sum64())
	t.Cleanup(func() { execAdmin(t, url, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
	return schema
}

// execAdmin runs sql on a connection of its own.
func execAdmin(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("connect: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// openTest opens the store in schema, with opts; their Schema is set, and
// their Logger when nil, to t's log.
func openTest(t testing.TB, url, schema string, opts ...Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Schema = schema
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(tLog{t}, nil))
	}
	s, err := Open(ctx, url, o)
	if err != nil {
		t.Fatalf("Open(schema %s): %v", schema, err)
	}
	return s
}

// newTestStore opens a store on a fresh schema, closed when t ends.
func newTestStore(t testing.TB, opts ...Options) (*Store, string, string) {
	t.Helper()
	url := requirePostgres(t)
	schema := testSchema(t, url, t.Name()+t.TempDir())
	s := openTest(t, url, schema, opts...)
	t.Cleanup(func() { s.Close() })
	return s, url, schema
}

// tLog writes a store's logs to its test's.
type tLog struct{ t testing.TB }

func (l tLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func TestStore(t *testing.T) {
	url := requirePostgres(t)
	storetest.Run(t, func(t *testing.T, dir string) courier.Store {
		return openTest(t, url, testSchema(t, url, dir))
	})
}

func dm(id, from, to string) *courier.Envelope {
	return &courier.Envelope{Message: courier.Message{ID: id, From: from, To: to, Event: "message",
		Data: []byte(`{"id":"` + id + `"}`), Time: courier.Now()}}
}

func TestOpenRefusesOtherURLs(t *testing.T) {
	for _, u := range []string{"", "mysql://x@localhost/db", "host=localhost user=postgres", "postgres://%zz"} {
		if s, err := Open(context.Background(), u, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
		}
	}
	_, err := Open(context.Background(), "postgres://user:s3cret@%zz/db", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL: %v; want an error that does not show the password", err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	url := requirePostgres(t)
	schema := testSchema(t, url, t.Name()+t.TempDir())
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() { stores[i] = openTest(t, url, schema) })
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			defer s.Close()
		}
	}
	if t.Failed() {
		return
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, v int
	err = stores[0].pool.QueryRow(context.Background(),
		`SELECT count(*), max(version) FROM courier_schema_version`).Scan(&n, &v)
	if err != nil || n != len(ms) || v != len(ms) {
		t.Errorf("schema versions: %d rows, newest %d, %v; want %d, %d", n, v, err, len(ms), len(ms))
	}
	if err := stores[1].Append(context.Background(), []*courier.Envelope{dm("m1", "ann", "bo")}); err != nil {
		t.Fatal(err)
	}

	execAdmin(t, url, `INSERT INTO `+schema+`.courier_schema_version (version) VALUES (99)`)
	if s, err := Open(context.Background(), url, Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a version 99 schema: %v, want an error", err)
		if s != nil {
			s.Close()
		}
	}
}

func TestAppendValidates(t *testing.T) {
	s, _, _ := newTestStore(t)
	msg := func(id, from, to, room string) *courier.Envelope {
		return &courier.Envelope{Message: courier.Message{ID: id, From: from, To: to, Room: room}}
	}
	withKey := msg("x", "a", "b", "")
	withKey.Key = "k\x00"
	badEvent := msg("x", "a", "b", "")
	badEvent.Event = "\xff"
	notJSON := msg("x", "a", "b", "")
	notJSON.Data = []byte(`{"a":`)
	nulData := msg("x", "a", "b", "")
	nulData.Data = []byte("\"a\x00\"")
	for _, e := range []*courier.Envelope{
		nil, msg("", "a", "b", ""), msg("x", "a", "", ""), msg("x", "a", "b", "r"), msg("x", "", "b", ""),
		msg("x", "a", "b\x00", ""), msg("x\x00", "a", "b", ""), withKey, badEvent, notJSON, nulData,
	} {
		if err := s.Append(context.Background(), []*courier.Envelope{dm("ok", "a", "b"), e}); !errors.Is(err, courier.ErrBadRequest) {
			t.Errorf("Append(%+v) = %v, want ErrBadRequest", e, err)
		}
	}
	if n, err := s.LatestSeq(context.Background(), "b"); n != 0 || err != nil {
		t.Errorf("LatestSeq(b) after rejected batches: %d, %v; want 0", n, err)
	}
	if ms, err := s.Inbox(context.Background(), "b\x00", 0, 10); len(ms) != 0 || err != nil {
		t.Errorf("Inbox of a name with a NUL: %v, %v; want nothing", ms, err)
	}
	if err := s.SetLastSeen(context.Background(), "a\x00", time.Now()); !errors.Is(err, courier.ErrBadRequest) {
		t.Errorf("SetLastSeen of a name with a NUL: %v, want ErrBadRequest", err)
	}
}

func TestClosed(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Append(ctx, []*courier.Envelope{dm("x", "a", "b")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Inbox(ctx, "b", 0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Inbox after Close: %v, want ErrClosed", err)
	}
	if _, err := s.LatestSeq(ctx, "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("LatestSeq after Close: %v, want ErrClosed", err)
	}
	if err := s.SetLastSeen(ctx, "b", time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetLastSeen after Close: %v, want ErrClosed", err)
	}
	if _, err := s.LastSeen(ctx, "b"); !errors.Is(err, ErrClosed) {
		t.Errorf("LastSeen after Close: %v, want ErrClosed", err)
	}
	storetest.CheckClosed(t, s, ErrClosed)
}

// holdHead locks user's head row from a transaction of its own, as
// another node's Append would, until the returned function is called.
func holdHead(t *testing.T, url, schema, user string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT 1 FROM `+schema+`.users WHERE name = $1 FOR UPDATE`, user)
	}
	if err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	return func() { tx.Rollback(ctx); conn.Close(ctx) }
}

// TestCloseWaitsForAppend checks that Close returns only after an Append
// in progress (waiting for a lock another node holds) has committed.
func TestCloseWaitsForAppend(t *testing.T) {
	s, url, schema := newTestStore(t)
	ctx := context.Background()
	if err := s.Append(ctx, []*courier.Envelope{dm("m1", "ann", "bo")}); err != nil {
		t.Fatal(err)
	}
	release := holdHead(t, url, schema, "bo")
	appended, closed := make(chan error, 1), make(chan error, 1)
	e := dm("m2", "ann", "bo")
	go func() { appended <- s.Append(ctx, []*courier.Envelope{e}) }()
	time.Sleep(200 * time.Millisecond) // let it reach the lock
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an Append was in progress", err)
	case err := <-appended:
		t.Fatalf("Append returned (%v) while its head was locked", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if err := <-appended; err != nil || e.ToSeq != 2 {
		t.Errorf("Append: %v, seq %d; want seq 2", err, e.ToSeq)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestCancelWhileLocked checks that an Append whose context ends while it
// waits for a lock fails, stores nothing and leaves its envelope alone.
func TestCancelWhileLocked(t *testing.T) {
	s, url, schema := newTestStore(t)
	bg := context.Background()
	if err := s.Append(bg, []*courier.Envelope{dm("m1", "ann", "bo")}); err != nil {
		t.Fatal(err)
	}
	release := holdHead(t, url, schema, "bo")
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	e := dm("m2", "ann", "bo")
	e.Key = "k"
	before := *e
	if err := s.Append(ctx, []*courier.Envelope{e}); err == nil {
		t.Error("Append succeeded while its head was locked")
	}
	if !reflect.DeepEqual(*e, before) {
		t.Errorf("failed Append changed the envelope: %+v, was %+v", *e, before)
	}
	release()
	e2 := dm("m3", "ann", "bo")
	e2.Key = "k"
	if err := s.Append(bg, []*courier.Envelope{e2}); err != nil || e2.ToSeq != 2 || e2.Duplicate {
		t.Errorf("Append after the canceled one: %v, seq %d, duplicate %v; want seq 2, new", err, e2.ToSeq, e2.Duplicate)
	}
}
