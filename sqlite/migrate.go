package sqlite

import (
	"embed"
	"fmt"

	schemas "github.com/courier-im/courier/internal/migrations"
)

// schemaFS holds the migrations, schema/NNNN_name.sql: file i (from 1, in
// name order) takes the database from user_version i-1 to i. Add files; never
// edit one that has shipped.
//
//go:embed schema/*.sql
var schemaFS embed.FS

// migrations returns the SQL of each schema version, in order.
func migrations() ([]string, error) { return schemas.Read(schemaFS) }

// migrate applies, each in its own transaction, the migrations the
// database has not had yet, recording each in PRAGMA user_version. It
// refuses a database newer than this package.
func migrate(c *rawConn) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: read schema: %w", err)
	}
	return migrateTo(c, ms)
}

// migrateTo brings the database to version len(ms).
func migrateTo(c *rawConn, ms []string) error {
	version, err := c.prepare("PRAGMA user_version")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer version.close()
	for {
		done, err := migrateOne(c, version, ms)
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
func migrateOne(c *rawConn, version *rawStmt, ms []string) (done bool, err error) {
	if err := c.exec("BEGIN IMMEDIATE"); err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = c.exec("ROLLBACK")
		}
	}()
	var v int64
	if _, err := c.queryInt(version, &v); err != nil {
		return false, fmt.Errorf("read user_version: %w", err)
	}
	switch {
	case v > int64(len(ms)):
		return false, fmt.Errorf("database schema version %d is newer than this program's %d", v, len(ms))
	case v == int64(len(ms)):
		return true, c.exec("COMMIT")
	}
	if err := c.exec(ms[v]); err != nil {
		return false, fmt.Errorf("apply version %d: %w", v+1, err)
	}
	// PRAGMA takes no bound parameters; v+1 is an int.
	if err := c.exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return false, fmt.Errorf("set user_version %d: %w", v+1, err)
	}
	if err := c.exec("COMMIT"); err != nil {
		return false, fmt.Errorf("commit version %d: %w", v+1, err)
	}
	return false, nil
}
