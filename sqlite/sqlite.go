// Package sqlite is a courier.Store on SQLite (modernc.org/sqlite, pure Go).
//
// One database file, FileName in the directory given to Open, in WAL mode.
// All writes go through a single connection, one transaction per Append, so a
// batch from the hub's group commit costs one commit (and, with SyncFull, one
// fsync). Reads use a separate pool of read-only connections, which WAL lets
// run alongside the writer, each on the last committed snapshot.
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

// Synchronous is the durability an acknowledged Append has, set with
// WithSynchronous; it maps to SQLite's PRAGMA synchronous.
//
// In WAL mode SyncFull fsyncs the WAL at every commit, so an Append that has
// returned survives a crash of the process, of the OS, and a power loss (as
// far as the disk honours flushes). SyncNormal fsyncs only at checkpoints: a
// returned Append survives a crash of the process (its WAL frames are in the
// OS page cache), but an OS crash or power loss can lose the transactions
// committed since the last checkpoint; the database stays consistent either
// way, it just goes back in time.
//
// SyncFull is the default: acknowledged must mean committed. Its cost is one
// fsync per commit, which the hub's group commit shares over the batch.
// BenchmarkAppend, median of 3 runs of -benchtime 2s, µs per message, ext4
// on a virtio disk in a 2-vCPU VM shared with other jobs (runs vary by
// ±30%), seqs from max(seq) / from counter tables:
//
//	batch   FULL max/counter   NORMAL max/counter
//	    1        416 / 482          177 / 247
//	   16        130 / 152          112 / 135
//	  128        100 / 100           96 /  99
//
// So the fsync costs ~240µs a commit: doubling the cost of a lone message,
// ~15% at a batch of 16, nothing measurable at 128, where the per-message
// B-tree work (about six random pages, written to the WAL and again at
// checkpoint) dominates. SyncNormal is for deployments that accept losing
// the last moments on power loss.
type Synchronous int

const (
	// SyncFull is PRAGMA synchronous=FULL: durable across power loss.
	SyncFull Synchronous = iota
	// SyncNormal is PRAGMA synchronous=NORMAL: durable across process crash
	// only.
	SyncNormal
)

func (s Synchronous) pragma() string {
	if s == SyncNormal {
		return "NORMAL"
	}
	return "FULL"
}

// An Option configures Open.
type Option func(*config)

type config struct {
	sync        Synchronous
	readers     int
	busyTimeout time.Duration
	// seqSchema and seqSQL replace how Append finds the next seq of an
	// inbox and a room; BenchmarkAppend uses them to measure counter tables.
	seqSchema string
	seqSQL    [2]string
}

// WithSynchronous sets the durability of a committed Append; SyncFull by
// default.
func WithSynchronous(s Synchronous) Option { return func(c *config) { c.sync = s } }

// WithReaders sets the number of read connections; by default
// max(4, GOMAXPROCS).
func WithReaders(n int) Option { return func(c *config) { c.readers = n } }

// WithBusyTimeout sets how long a statement waits for a lock held by another
// connection (another process on the same file, or a checkpoint) before it
// fails; 5s by default.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// Store is a courier.Store in a SQLite database. It is safe for concurrent
// use: Appends are serialized on the single writer connection, reads run in
// parallel on the read pool.
type Store struct {
	path   string
	cfg    config
	writer *sql.DB // one connection
	reader *sql.DB // read-only pool

	mu     sync.Mutex  // held by Append and Close: one write at a time
	closed atomic.Bool // set by Close, under mu
	w      writeStmts
	r      readStmts
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
	s := &Store{path: filepath.Join(dir, FileName), cfg: cfg}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open sqlite store %s: %w", s.path, err)
	}
	return s, nil
}

// dsn returns the data source name of a connection: pragmas run on every
// connection the pool opens.
func (s *Store) dsn(write bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.cfg.busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous("+s.cfg.sync.pragma()+")")
	q.Add("_pragma", "temp_store(MEMORY)")
	if write {
		q.Add("_pragma", "journal_mode(WAL)")
		// Take the write lock at BEGIN: a transaction never has to upgrade
		// (and fail with SQLITE_BUSY) halfway through a batch.
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return s.path + "?" + q.Encode()
}

func (s *Store) open() error {
	var err error
	if s.writer, err = sql.Open("sqlite", s.dsn(true)); err != nil {
		return err
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	ctx := context.Background()
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if err := migrate(ctx, s.writer); err != nil {
		return err
	}
	if s.cfg.seqSchema != "" {
		if _, err := s.writer.ExecContext(ctx, s.cfg.seqSchema); err != nil {
			return fmt.Errorf("seq schema: %w", err)
		}
	}
	if err := s.w.prepare(ctx, s.writer, s.cfg); err != nil {
		return err
	}
	if s.reader, err = sql.Open("sqlite", s.dsn(false)); err != nil {
		return err
	}
	s.reader.SetMaxOpenConns(s.cfg.readers)
	s.reader.SetMaxIdleConns(s.cfg.readers)
	return s.r.prepare(ctx, s.reader)
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close waits for an Append in progress, then closes the database. Later
// calls to Close return nil; other methods return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	// Keep the planner's statistics fresh, as SQLite recommends at close.
	_, optErr := s.writer.Exec("PRAGMA optimize")
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	if optErr != nil {
		return fmt.Errorf("close sqlite store: optimize: %w", optErr)
	}
	return nil
}

func (s *Store) closeDBs() error {
	errs := []error{s.w.close(), s.r.close()}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	return errors.Join(errs...)
}
