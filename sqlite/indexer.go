package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/courier-im/courier"
)

// SearchFileName is the file of the full-text index, beside FileName.
//
// The index is filled in the background, not by Append, and in a file of
// its own: an FTS5 insert flushes a new segment (and rewrites the index's
// structure record) at each commit, and merges segments now and then,
// pages that a durable Append would pay for with every fsync, and work
// that would hold the writer's lock. The indexer instead takes what was
// committed since its last run (from memory, as Append hands it over, or
// read back from the file after a restart or when the hand-over queue was
// full), computes the text outside any lock, and inserts it, with its
// watermark, in one transaction of its own connection to this file,
// beside the writer. The file is
// derived data: synchronous=NORMAL (a crash of the OS may take the last
// runs back, watermark and rows together, and they are done again), and
// rebuilt from the messages when missing or of another version.
//
// The contract allows search to lag a write by a second; here the lag is
// indexDelay plus a run, tens of milliseconds.
const SearchFileName = "courier-search.db"

const (
	indexDelay = 50 * time.Millisecond // gathers the Appends of a burst into one run
	indexBatch = 512                   // messages read per transaction
	// searchVersion is the index's schema (PRAGMA user_version): a file of
	// another version is emptied and filled again.
	searchVersion = 1
)

// searchSchema creates the index: rowid is messages.pk; body holds the
// words of the message (courier.IndexText, so that the index splits text
// exactly as queries are split); owners holds "u<uid>" of each inbox the
// message is in, so that a search is the intersection of the query's
// doclists with the user's. Contentless: the text is not kept twice;
// contentless_delete lets Expire delete rows by rowid. state holds the
// watermark: the pk up to which messages are indexed.
const searchSchema = `CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(body, owners, content = '',
		contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0');
	CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_pk INTEGER NOT NULL) STRICT;
	INSERT OR IGNORE INTO state (id, indexed_pk) VALUES (1, 0);`

// openSearch opens (creating) the index's file, in WAL mode, on a pool
// that Search reads and the indexer writes.
func (s *Store) openSearch() error {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.cfg.busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "journal_mode(WAL)")
	db, err := sql.Open("sqlite", s.searchPath()+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open search index: %w", err)
	}
	db.SetMaxOpenConns(s.cfg.readers)
	db.SetMaxIdleConns(s.cfg.readers)
	s.search = db
	ctx := context.Background()
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("search index version: %w", err)
	}
	if v != searchVersion && v != 0 {
		if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS search; DROP TABLE IF EXISTS state`); err != nil {
			return fmt.Errorf("drop search index of version %d: %w", v, err)
		}
	}
	if _, err := db.ExecContext(ctx, searchSchema+fmt.Sprintf("PRAGMA user_version = %d", searchVersion)); err != nil {
		return fmt.Errorf("create search index: %w", err)
	}
	return nil
}

func (s *Store) searchPath() string { return strings.TrimSuffix(s.path, FileName) + SearchFileName }

// indexer runs the index's transactions when woken.
type indexer struct {
	s    *Store
	kick chan struct{}
	stop chan struct{}
	once sync.Once
	done sync.WaitGroup

	mu   sync.Mutex
	err  error // the last run's, for tests and diagnosis
	runs int
	// handed holds what Append committed, in pk order, so that the
	// indexer need not read it back from the file; handedBytes is the
	// size of their data, at most maxHanded.
	handed      []committed
	handedBytes int
	maxHanded   int
	fromMemory  int // messages indexed from handed, for tests
}

// maxHandedBytes bounds the data of the committed messages waiting for the
// indexer in memory. Past it Append hands over nothing, and the indexer
// reads those messages back from the file, as it does after a restart.
const maxHandedBytes = 8 << 20

// committed is a stored message as Append hands it to the indexer: its pk,
// data, and the uids of the inboxes it is in (0 for none: from when the
// sender has no copy, both for a room message, which is not indexed).
type committed struct {
	pk       int64
	data     []byte
	to, from int64
}

// indexed is a message's row of the index.
type indexed struct {
	pk           int64
	body, owners string
}

func newIndexer(s *Store) *indexer {
	x := &indexer{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), maxHanded: maxHandedBytes}
	x.done.Add(1)
	go x.run()
	x.wake() // catch up with what an earlier process or version left
	return x
}

// wake asks for a run soon; it never blocks. A nil indexer does nothing.
func (x *indexer) wake() {
	if x == nil {
		return
	}
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// hand queues the messages of a committed Append, contiguous in pk, for
// the indexer. A nil indexer does nothing. rows is copied; the data it
// points to must not change (Envelope.Data never does once stored).
func (x *indexer) hand(rows []committed) {
	if x == nil || len(rows) == 0 {
		return
	}
	n := 0
	for _, r := range rows {
		n += len(r.data)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.handedBytes+n > x.maxHanded {
		return // the indexer reads these from the file
	}
	if k := len(x.handed); k > 0 && x.handed[k-1].pk+1 != rows[0].pk {
		// A gap (another store wrote to the file, or a batch was left
		// out above): the queue must stay contiguous, so the indexer
		// reads all of it from the file instead.
		clear(x.handed)
		x.handed, x.handedBytes = x.handed[:0], 0
	}
	x.handed = append(x.handed, rows...)
	x.handedBytes += n
}

// takeHanded returns up to indexBatch queued messages that follow mark
// without a gap, dropping those at or before it; none when the next one
// queued is not mark+1.
func (x *indexer) takeHanded(mark int64) []committed {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := 0
	for i < len(x.handed) && x.handed[i].pk <= mark {
		x.handedBytes -= len(x.handed[i].data)
		i++
	}
	clear(x.handed[:i]) // the array outlives them until append moves it
	x.handed = x.handed[i:]
	if len(x.handed) == 0 || x.handed[0].pk != mark+1 {
		return nil
	}
	n := min(len(x.handed), indexBatch)
	out := make([]committed, n)
	copy(out, x.handed)
	return out
}

// close stops the indexer and waits for a run in progress.
func (x *indexer) close() {
	if x == nil {
		return
	}
	x.once.Do(func() { close(x.stop) })
	x.done.Wait()
}

// stats returns how many runs ended and the last one's error.
func (x *indexer) stats() (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.runs, x.err
}

func (x *indexer) run() {
	defer x.done.Done()
	for {
		select {
		case <-x.stop:
			return
		case <-x.kick:
		}
		select {
		case <-x.stop:
			return
		case <-time.After(indexDelay):
		}
		err := x.catchUp()
		x.mu.Lock()
		x.runs++
		x.err = err
		x.mu.Unlock()
		if err != nil {
			// Try again later (a busy file, say); the watermark has not moved.
			time.AfterFunc(time.Second, x.wake)
		}
	}
}

// catchUp indexes every message committed so far, indexBatch at a time.
func (x *indexer) catchUp() error {
	for {
		n, err := x.step()
		if err != nil || n < indexBatch {
			return err
		}
		select {
		case <-x.stop:
			return nil
		default:
		}
	}
}

// sqlToIndex reads the messages after a watermark with the uids of their
// owners: the recipient, and the sender when the message is in the
// sender's inbox too. Room messages are read only to move the watermark
// past them.
const sqlToIndex = `SELECT m.pk, m.data, coalesce(r.uid, 0),
		coalesce((SELECT uid FROM users WHERE name = m.sender AND m.from_seq > 0 AND m.sender != m.recipient), 0)
	FROM messages AS m LEFT JOIN users AS r ON r.name = m.recipient AND m.recipient != ''
	WHERE m.pk > ? ORDER BY m.pk LIMIT ?`

// step indexes the next messages after the watermark and returns how many
// it read: those Append handed over when they follow the watermark, else
// those in the file.
func (x *indexer) step() (int, error) {
	s, ctx := x.s, context.Background()
	var mark int64
	if err := s.search.QueryRowContext(ctx, `SELECT indexed_pk FROM state`).Scan(&mark); err != nil {
		return 0, fmt.Errorf("index: read watermark: %w", err)
	}
	var batch []indexed
	n, last := 0, mark
	if rows := x.takeHanded(mark); len(rows) > 0 {
		for _, r := range rows {
			batch = appendIndexed(batch, r)
		}
		n, last = len(rows), rows[len(rows)-1].pk
		x.mu.Lock()
		x.fromMemory += n
		x.mu.Unlock()
	} else {
		var err error
		if batch, n, last, err = x.read(ctx, mark); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.writeIndex(ctx, batch, mark, last)
}

// appendIndexed adds r's row of the index to batch, unless r is in no
// inbox (a room message).
func appendIndexed(batch []indexed, r committed) []indexed {
	if r.to == 0 {
		return batch
	}
	owners := "u" + strconv.FormatInt(r.to, 10)
	if r.from != 0 {
		owners += " u" + strconv.FormatInt(r.from, 10)
	}
	return append(batch, indexed{pk: r.pk, body: courier.IndexText(r.data), owners: owners})
}

// read reads the messages after mark from the file: the rows to index,
// how many messages it read and the last one's pk.
func (x *indexer) read(ctx context.Context, mark int64) (batch []indexed, n int, last int64, err error) {
	rows, err := x.s.reader.QueryContext(ctx, sqlToIndex, mark, indexBatch)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("index: read messages: %w", err)
	}
	defer rows.Close()
	last = mark
	for rows.Next() {
		var r committed
		if err := rows.Scan(&r.pk, &r.data, &r.to, &r.from); err != nil {
			return nil, 0, 0, fmt.Errorf("index: scan: %w", err)
		}
		n, last = n+1, r.pk
		batch = appendIndexed(batch, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("index: read messages: %w", err)
	}
	return batch, n, last, nil
}

// writeIndex inserts batch into the index and moves the watermark from
// mark to last, in one transaction, unless another store on the same file
// moved it first.
func (s *Store) writeIndex(ctx context.Context, batch []indexed, mark, last int64) error {
	tx, err := s.search.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE state SET indexed_pk = ? WHERE indexed_pk = ?`, last, mark)
	if err != nil {
		return fmt.Errorf("index: move watermark: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(errors.New("index: watermark moved by another store"), err)
	}
	// One statement: FTS5 flushes what it has gathered into a new segment
	// at each statement's savepoint, so one statement makes one segment.
	// indexBatch rows of 3 parameters stay under SQLite's limit of 32,766.
	if len(batch) > 0 {
		args := make([]any, 0, 3*len(batch))
		for _, r := range batch {
			args = append(args, r.pk, r.body, r.owners)
		}
		q := `INSERT INTO search (rowid, body, owners) VALUES ` + strings.TrimSuffix(strings.Repeat("(?,?,?),", len(batch)), ",")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("index: insert: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index: commit: %w", err)
	}
	return nil
}

// unindex deletes the rows of the messages pks from the index, after
// Expire deleted them. A row it misses (the indexer read the message just
// before it went) names a pk no message will have again: Search skips it.
func (s *Store) unindex(ctx context.Context, pks []int64) error {
	for len(pks) > 0 {
		n := min(len(pks), 500)
		args := make([]any, n)
		for i, pk := range pks[:n] {
			args[i] = pk
		}
		q := `DELETE FROM search WHERE rowid IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
		if _, err := s.search.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("unindex: %w", err)
		}
		pks = pks[n:]
	}
	return nil
}
