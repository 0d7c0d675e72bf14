package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

// schemaFS holds the migrations, schema/NNNN_name.sql: file i (from 1, in
// name order) takes the database from user_version i-1 to i. Add files; never
// edit one that has shipped.
//
//go:embed schema/*.sql
var schemaFS embed.FS

// migrations returns the SQL of each schema version, in order.
func migrations() ([]string, error) {
	names, err := fs.Glob(schemaFS, "schema/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		b, err := schemaFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

// migrate applies, each in its own transaction, the migrations db has not
// had yet, recording each in PRAGMA user_version. It refuses a database newer
// than this package.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: read schema: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db, ms)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next migration; done is true when there is none.
// Reading user_version inside the (immediate) transaction makes two
// processes opening a new database at once apply each migration once.
func migrateOne(ctx context.Context, db *sql.DB, ms []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return false, fmt.Errorf("read user_version: %w", err)
	}
	switch {
	case v > len(ms):
		return false, fmt.Errorf("database schema version %d is newer than this program's %d", v, len(ms))
	case v == len(ms):
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, ms[v]); err != nil {
		return false, fmt.Errorf("apply version %d: %w", v+1, err)
	}
	// PRAGMA takes no bound parameters; v+1 is an int.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("set user_version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit version %d: %w", v+1, err)
	}
	return false, nil
}
