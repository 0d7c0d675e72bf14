// Package sqlite is a courier.Store on SQLite (modernc.org/sqlite, pure Go).
//
// One database file, FileName in the directory given to Open, in WAL mode.
// All writes go through a single connection, one transaction per Append, so a
// batch from the hub's group commit costs one commit (and, with SyncFull, one
// fsync). Reads use a separate pool of read-only connections, which WAL lets
// run alongside the writer, each on the last committed snapshot.
//
// The write path is built for that group commit; each part measured with
// BenchmarkDurableSend (package courier) and BenchmarkAppend:
//
//   - The writer is a connection driven through SQLite's C API directly
//     (raw.go), not database/sql: no per-parameter boxing, conversion or C
//     string copies, and the statements below bind thousands of parameters.
//   - A batch is a handful of multi-row INSERTs (writer.go), not a few
//     statements per message; they are OR ROLLBACK, so SQLite keeps no
//     statement journal.
//   - Seqs, users.uid, rooms.rid and messages.pk are given out from memory
//     (heads.go), so an Append reads nothing back in the common case.
//   - Inboxes are keyed by integer uids, and a user's inbox and
//     conversation entries share one B-tree (schema/0002_integer_keys.sql):
//     fewer and smaller pages written per message.
//   - WAL writes are gathered into one write per commit (walbuf.go), and
//     checkpoints run beside the writer instead of inside its commits
//     (checkpoint.go).
//
// What the reads beyond the inbox need is kept without costing Append more
// pages (schema/0004):
//
//   - History is a backward range scan of a conversation's entries.
//   - Conversations, most recent first, are a third kind of inbox entry,
//     one per conversation at its newest seq, beside the user's others;
//     unread counts are counted from the read mark when read.
//   - Full-text search is an FTS5 index in a file of its own
//     (SearchFileName), filled in the background by an indexer that never
//     takes the writer's lock (indexer.go).
//   - Expire finds old messages by an index on ts, and keeps the highest
//     seq and pk it deleted so that none is given out twice.
//   - Read marks are written on the writer, each call one transaction
//     (receipts.go); delivered marks ride along with the next Append's
//     transaction, or share one of their own (delivered.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courier-im/courier"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the name of the database file inside the directory given to
// Open. SQLite keeps FileName+"-wal" and FileName+"-shm" beside it.
const FileName = "courier.db"

// ErrClosed is returned by the methods of a Store after Close.
var ErrClosed = errors.New("sqlite: store closed")

// Store is a courier.Store in a SQLite database. It is safe for concurrent
// use: Appends are serialized on the single writer connection, reads run in
// parallel on the read pool.
type Store struct {
	path   string
	cfg    config
	wc     *rawConn // the writer connection
	reader *sql.DB  // read-only pool

	mu     sync.Mutex  // held by Append and Close: one write at a time
	closed atomic.Bool // set by Close, under mu
	w      *writer     // statements of wc
	heads  *heads
	batch  batchState
	ckpt   *checkpointer
	unhook func() // removes ckpt from the WAL hook's table
	r      readStmts
	search *sql.DB  // the full-text index, SearchFileName
	idx    *indexer // fills it
	marks  markQueue
}

var _ courier.Store = (*Store)(nil)

// Open opens the store in dir, creating dir and the database when missing
// and bringing the schema up to date.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := config{sync: SyncFull, readers: max(4, runtime.GOMAXPROCS(0)), busyTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.readers < 1 {
		cfg.readers = 1
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s := &Store{path: filepath.Join(dir, FileName), cfg: cfg, heads: newHeads(), marks: markQueue{wait: markWait}}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open sqlite store %s: %w", s.path, err)
	}
	return s, nil
}

// writerCacheKiB is the page cache of the writer, 16 MiB (SQLite's
// default is 2 MiB): the inbox pages an Append touches are spread over the
// whole table, and each one missing from the cache is a read.
const writerCacheKiB = 16 << 10

// dsn returns the data source name of a database/sql connection, a reader
// or the checkpointer: pragmas run on every connection the pool opens.
func (s *Store) dsn(reader bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.cfg.busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous("+s.cfg.sync.pragma()+")")
	q.Add("_pragma", "temp_store(MEMORY)")
	if reader {
		q.Add("_pragma", "query_only(1)")
	} else if s.cfg.sync == SyncFull {
		// The checkpointer syncs the database file as the writer does
		// (walBufVFS; registered by openWriter).
		q.Add("vfs", walBufVFS)
	}
	return s.path + "?" + q.Encode()
}

// openWriter opens the writer connection, in WAL mode, and migrates the
// schema.
func (s *Store) openWriter() error {
	vfs := ""
	if s.cfg.sync == SyncFull {
		if err := registerWALBuf(); err != nil {
			return err
		}
		vfs = walBufVFS // see walBufVFS for why only with SyncFull
	}
	c, err := openRaw(s.path, vfs, s.cfg.busyTimeout)
	if err != nil {
		return err
	}
	s.wc = c
	if err := c.exec(fmt.Sprintf(`PRAGMA synchronous = %s; PRAGMA temp_store = MEMORY; PRAGMA cache_size = %d`,
		s.cfg.sync.pragma(), -writerCacheKiB)); err != nil {
		return fmt.Errorf("writer settings: %w", err)
	}
	mode, err := c.prepare("PRAGMA journal_mode = WAL")
	if err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	got := ""
	row, err := mode.step()
	if row {
		got = mode.text(0)
	}
	if err := errors.Join(err, mode.close()); err != nil || got != "wal" {
		return errors.Join(fmt.Errorf("journal mode is %q, want wal", got), err)
	}
	return migrate(c)
}

func (s *Store) open() error {
	if err := s.openWriter(); err != nil {
		return err
	}
	var err error
	if s.w, err = newWriter(s.wc); err != nil {
		return err
	}
	ckdb, err := sql.Open("sqlite", s.dsn(false))
	if err != nil {
		return err
	}
	ckdb.SetMaxOpenConns(1)
	s.ckpt = newCheckpointer(ckdb)
	s.unhook = setWALHook(s.wc, s.ckpt)
	if s.reader, err = sql.Open("sqlite", s.dsn(true)); err != nil {
		return err
	}
	s.reader.SetMaxOpenConns(s.cfg.readers)
	s.reader.SetMaxIdleConns(s.cfg.readers)
	if err := s.r.prepare(context.Background(), s.reader); err != nil {
		return err
	}
	if err := s.openSearch(); err != nil {
		return err
	}
	s.idx = newIndexer(s)
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close waits for an Append in progress, then closes the database. Later
// calls to Close return nil; other methods return ErrClosed.
func (s *Store) Close() error {
	// The indexer takes mu for its transactions: stop it first.
	s.idx.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	// Keep the planner's statistics fresh, as SQLite recommends at close.
	optErr := s.wc.exec("PRAGMA optimize")
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	if optErr != nil {
		return fmt.Errorf("close sqlite store: optimize: %w", optErr)
	}
	return nil
}

// closeDBs closes the connections, the writer last: as the last connection
// to the file it checkpoints the WAL and removes it.
func (s *Store) closeDBs() error {
	s.idx.close()
	errs := []error{s.r.close()}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.search != nil {
		errs = append(errs, s.search.Close())
	}
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	if s.wc != nil {
		errs = append(errs, s.wc.close())
	}
	if s.unhook != nil {
		s.unhook()
	}
	return errors.Join(errs...)
}
