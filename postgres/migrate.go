package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	schemas "github.com/courier-im/courier/internal/migrations"
)

// schemaFS holds the migrations, schema/NNNN_name.sql: file i (from 1, in
// name order) takes the database from version i-1 to i. Add files; never
// edit one that has shipped.
//
//go:embed schema/*.sql
var schemaFS embed.FS

// versionTable records the migrations applied, one row each.
const versionTable = `CREATE TABLE IF NOT EXISTS courier_schema_version (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrations returns the SQL of each schema version, in order.
func migrations() ([]string, error) { return schemas.Read(schemaFS) }

// migrateLockKey is the session advisory lock that serializes migrations
// of the tables found through searchPath: the nodes of one cluster wait
// for each other, stores in other schemas of the database do not.
func migrateLockKey(searchPath string) int64 {
	h := fnv.New64a()
	h.Write([]byte("courier migrate\x00" + searchPath))
	return int64(h.Sum64())
}

// migrate brings the schema up to date: it creates schema when it is not
// empty, then applies the migrations not yet recorded, each in its own
// transaction, holding an advisory lock so that nodes starting at once
// apply each migration once. It refuses a database newer than this
// package.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema, searchPath string, log *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: read schema: %w", err)
	}
	return migrateTo(ctx, pool, schema, searchPath, ms, log)
}

func migrateTo(ctx context.Context, pool *pgxpool.Pool, schema, searchPath string, ms []string, log *slog.Logger) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	key := migrateLockKey(searchPath)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); uerr != nil {
			// Ending the session releases the lock: the pool drops a
			// closed connection on Release.
			_ = conn.Conn().Close(uctx)
			err = errors.Join(err, fmt.Errorf("migrate: unlock: %w", uerr))
		}
	}()
	if schema != "" {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrate: create schema %s: %w", schema, err)
		}
	}
	if _, err := conn.Exec(ctx, versionTable); err != nil {
		return fmt.Errorf("migrate: version table: %w", err)
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM courier_schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if v > len(ms) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", v, len(ms))
	}
	for ; v < len(ms); v++ {
		if err := applyOne(ctx, conn.Conn(), v+1, ms[v]); err != nil {
			return fmt.Errorf("migrate: apply version %d: %w", v+1, err)
		}
		log.Info("postgres store: schema migrated", "version", v+1, "schema", schema)
	}
	return nil
}

// applyOne applies migration version, whose SQL is sql, and records it, in
// one transaction.
func applyOne(ctx context.Context, conn *pgx.Conn, version int, sql string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// The simple protocol runs a file of several statements.
		if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO courier_schema_version (version) VALUES ($1)`, version)
		return err
	})
}
