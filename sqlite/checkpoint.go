package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// Checkpoints copy committed pages from the WAL back into the database
// file. SQLite runs them in the committing connection, inside COMMIT, once
// the WAL holds wal_autocheckpoint frames: a pread and a pwrite per page and
// an fsync of the database file, on the path of the Append that happens to
// cross the threshold. The store replaces that with a WAL hook on the
// writer (sqlite3_wal_hook, which disables the autocheckpoint):
//
//   - from bgCheckpointFrames frames on (SQLite's default threshold), each
//     commit wakes a goroutine that runs PASSIVE checkpoints, which never
//     block the writer, on a connection of its own, at most every
//     checkpointEvery so that a page rewritten meanwhile is copied once;
//   - from writerCheckpointFrames frames on, the writer checkpoints itself.
//     A checkpoint running beside a busy writer never catches up with it,
//     and SQLite starts the WAL over only when a writer begins after a
//     checkpoint that did; by then the background has copied all but the
//     newest frames, so the writer's checkpoint is short, and its next
//     transaction starts the WAL over. That bounds the WAL at about
//     writerCheckpointFrames pages (32 MiB).
const (
	bgCheckpointFrames     = 1000
	writerCheckpointFrames = 8192
	checkpointEvery        = 20 * time.Millisecond
)

// checkpointer runs PASSIVE checkpoints on its own connection when woken.
type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	done sync.WaitGroup

	mu  sync.Mutex
	n   int   // checkpoints run
	err error // the last one's
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c
}

// wake asks for a checkpoint soon; it never blocks.
func (c *checkpointer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer c.done.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// A busy result (the writer's own checkpoint is running) is no
		// error; the frames are copied either way.
		var busy, log, copied int64
		err := c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied)
		c.mu.Lock()
		c.n++
		c.err = err
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// stats returns how many checkpoints ran and the last one's error.
func (c *checkpointer) stats() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.n, fmt.Errorf("checkpoint: %w", c.err)
	}
	return c.n, nil
}

// close stops the goroutine and closes its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	c.done.Wait()
	return c.db.Close()
}

// The WAL hook is one C callback for every store; its argument is a key to
// the store's checkpointer in walHooks.
var (
	walHookFn uintptr // walHook as a C function pointer
	walHooks  struct {
		sync.Mutex
		next uintptr
		m    map[uintptr]*checkpointer
	}
)

func init() {
	setFn[func(*libc.TLS, uintptr, uintptr, uintptr, int32) int32](&walHookFn, walHook)
	walHooks.m = make(map[uintptr]*checkpointer)
}

// setWALHook installs the WAL hook on c for ck, replacing the autocheckpoint;
// the returned func removes it from walHooks (after c is closed).
func setWALHook(c *rawConn, ck *checkpointer) (remove func()) {
	walHooks.Lock()
	walHooks.next++
	key := walHooks.next
	walHooks.m[key] = ck
	walHooks.Unlock()
	lib.Xsqlite3_wal_hook(c.tls, c.db, walHookFn, key)
	return func() {
		walHooks.Lock()
		delete(walHooks.m, key)
		walHooks.Unlock()
	}
}

// walHook runs after each commit of the writer with the frames in the WAL.
func walHook(tls *libc.TLS, key, db, zDb uintptr, frames int32) int32 {
	switch {
	case frames >= writerCheckpointFrames:
		// Errors, SQLITE_BUSY from a background checkpoint in progress
		// among them, leave the frames for the next commit to try again.
		lib.Xsqlite3_wal_checkpoint_v2(tls, db, zDb, lib.SQLITE_CHECKPOINT_PASSIVE, 0, 0)
	case frames >= bgCheckpointFrames:
		walHooks.Lock()
		ck := walHooks.m[key]
		walHooks.Unlock()
		if ck != nil {
			ck.wake()
		}
	}
	return lib.SQLITE_OK
}
