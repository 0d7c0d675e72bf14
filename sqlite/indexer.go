package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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
// that would hold the writer's lock. The indexer instead reads what was
// committed since its last run on the read pool, computes the text
// outside any lock, and inserts it, with its watermark, in one transaction
// of its own connection to this file, beside the writer. The file is
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
}

// indexed is a message's row of the index.
type indexed struct {
	pk           int64
	body, owners string
}

func newIndexer(s *Store) *indexer {
	x := &indexer{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{})}
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
// it read.
func (x *indexer) step() (int, error) {
	s, ctx := x.s, context.Background()
	var mark int64
	if err := s.search.QueryRowContext(ctx, `SELECT indexed_pk FROM state`).Scan(&mark); err != nil {
		return 0, fmt.Errorf("index: read watermark: %w", err)
	}
	rows, err := s.reader.QueryContext(ctx, sqlToIndex, mark, indexBatch)
	if err != nil {
		return 0, fmt.Errorf("index: read messages: %w", err)
	}
	defer rows.Close()
	var batch []indexed
	n, last := 0, mark
	for rows.Next() {
		var pk, to, from int64
		var data []byte
		if err := rows.Scan(&pk, &data, &to, &from); err != nil {
			return 0, fmt.Errorf("index: scan: %w", err)
		}
		n, last = n+1, pk
		if to == 0 {
			continue
		}
		owners := "u" + strconv.FormatInt(to, 10)
		if from != 0 {
			owners += " u" + strconv.FormatInt(from, 10)
		}
		batch = append(batch, indexed{pk: pk, body: courier.IndexText(data), owners: owners})
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("index: read messages: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.writeIndex(ctx, batch, mark, last)
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
	rows := make([][3]any, len(batch))
	for i, r := range batch {
		rows[i] = [3]any{r.pk, r.body, r.owners}
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO search (rowid, body, owners)
		SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)`, doc); err != nil {
		return fmt.Errorf("index: insert: %w", err)
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
