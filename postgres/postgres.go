package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courier-im/courier"
)

// ErrClosed is returned by the methods of a Store after Close.
var ErrClosed = errors.New("postgres: store closed")

// Store is a courier.Store in a PostgreSQL database, shared by any number of
// Stores in any number of processes. It is safe for concurrent use: each
// call takes a connection from the Store's pool.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	// mu is held for reading by every call in progress and for writing by
	// Close, which so waits for them.
	mu     sync.RWMutex
	closed bool

	stop chan struct{}  // closed by Close: background work ends
	bg   sync.WaitGroup // background work (backfill.go)

	stats stats
}

var _ courier.Store = (*Store)(nil)

// idleInTxTimeout is the idle_in_transaction_session_timeout of the
// store's sessions, unless the URL sets one. An Append is idle in its
// transaction only between its two round trips, for microseconds.
const idleInTxTimeout = time.Minute

// Options configure Open. The zero value is the default.
type Options struct {
	// Schema puts the store's tables in this schema, created when missing,
	// instead of the URL's search_path (by default public). Every node of a
	// cluster must name the same one.
	Schema string
	// MaxConns is the size of the connection pool; when 0, the URL's
	// pool_max_conns, or pgxpool's default, max(4, cores).
	MaxConns int
	// Retries is how many times Append tries a transaction again after a
	// deadlock or serialization failure (which the locking order should
	// make impossible), or on a connection that broke before the
	// transaction wrote anything: 5 when 0, none when negative.
	Retries int
	// CommitTimeout bounds the second half of an Append, once its locks
	// are held (30s when 0): that part runs to its end even when the
	// caller's context is canceled, as a cancellation then would leave the
	// caller unsure whether the commit happened.
	CommitTimeout time.Duration
	// Logger receives the store's logs (migrations applied, transactions
	// tried again, commits confirmed after a lost connection);
	// slog.Default() when nil.
	Logger *slog.Logger
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	switch {
	case o.Retries == 0:
		o.Retries = 5
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Open connects to the database at url (see the package doc for its forms),
// brings the schema up to date, and returns the store. Several nodes may
// open the same database at once: migrations are serialized by an advisory
// lock. ctx bounds the connection and the migrations.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, errors.New("open postgres store: the URL must start with postgres:// or postgresql://")
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password and all.
		return nil, errors.New("open postgres store: cannot parse the URL")
	}
	rp := pc.ConnConfig.RuntimeParams
	if opts.Schema != "" {
		rp["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	// A node that stops halfway through an Append (paused, cut off) must not
	// hold the heads it locked for long: the server ends its session.
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = fmt.Sprint(idleInTxTimeout.Milliseconds())
	}
	// Every statement here is a short indexed one: compiling one with JIT,
	// when a misestimate makes it look expensive, costs more than it saves.
	if _, ok := rp["jit"]; !ok {
		rp["jit"] = "off"
	}
	if opts.MaxConns > 0 {
		pc.MaxConns = int32(min(opts.MaxConns, 1<<20))
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := migrate(ctx, pool, opts.Schema, rp["search_path"], opts.Logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{pool: pool, opts: opts, log: opts.Logger, stop: make(chan struct{})}
	s.bg.Add(1)
	go s.backfill()
	return s, nil
}

// begin starts a call: it returns false when the store is closed, and
// otherwise holds off Close until end.
func (s *Store) begin() bool {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return false
	}
	return true
}

func (s *Store) end() { s.mu.RUnlock() }

// connFailed reports whether err is a failure to talk to the server
// rather than an answer from it (or the caller's context ending): another
// connection of the pool may do better.
func connFailed(err error) bool {
	var pe *pgconn.PgError
	return err != nil && !errors.As(err, &pe) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// again runs fn, a call that is safe to repeat, and once more when it
// fails on a connection that broke (a server restarted, say, leaves the
// pool with dead connections until they are used).
func again(ctx context.Context, fn func() error) error {
	err := fn()
	if connFailed(err) && ctx.Err() == nil {
		err = fn()
	}
	return err
}

// Close waits for the calls in progress, Appends among them, then closes
// the connections. Later calls to Close return nil; other methods return
// ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Background work holds s.mu for reading only within a step, and ends
	// at its next; the pool stays open until it has.
	close(s.stop)
	s.mu.Unlock()
	s.bg.Wait()
	s.mu.Lock()
	s.pool.Close()
	return nil
}
