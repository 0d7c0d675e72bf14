package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/nats"
	"github.com/courier-im/courier/postgres"
	"github.com/courier-im/courier/redis"
	"github.com/courier-im/courier/sqlite"
)

// checkEngines refuses, before anything is created, a --store or --broker
// that cannot work.
func checkEngines(c *serveConfig) error {
	if c.store != "" && c.store != "sqlite" && !strings.HasPrefix(c.store, "postgres://") && !strings.HasPrefix(c.store, "postgresql://") {
		return fmt.Errorf("--store %q: want postgres://… (or nothing, for SQLite in --data)", redact(c.store))
	}
	if _, err := sqliteSync(c.sqliteSync); err != nil {
		return err
	}
	if c.broker == "" {
		return nil
	}
	if !strings.HasPrefix(c.broker, "nats://") && !strings.HasPrefix(c.broker, "tls://") &&
		!strings.HasPrefix(c.broker, "redis://") && !strings.HasPrefix(c.broker, "rediss://") {
		return fmt.Errorf("--broker %q: want nats://HOST:PORT or redis://HOST:PORT", redact(c.broker))
	}
	if c.store == "" || c.store == "sqlite" {
		return errors.New("--broker needs a shared --store (postgres://…): nodes with their own SQLite stores would number one user's messages differently")
	}
	return nil
}

// openStore opens the store --store names: PostgreSQL for a postgres:// URL,
// else the embedded SQLite store in --data.
func openStore(c *serveConfig, log *slog.Logger) (courier.Store, error) {
	switch {
	case c.store == "" || c.store == "sqlite":
		sync, err := sqliteSync(c.sqliteSync)
		if err != nil {
			return nil, err
		}
		s, err := sqlite.Open(c.data, sqlite.WithSynchronous(sync))
		if err != nil {
			return nil, fmt.Errorf("open store in %s: %w", c.data, err)
		}
		return s, nil
	case strings.HasPrefix(c.store, "postgres://") || strings.HasPrefix(c.store, "postgresql://"):
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, c.store, postgres.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redact(c.store), err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("--store %q: want postgres://… (or empty for SQLite in --data)", redact(c.store))
	}
}

// sqliteSync reads --sqlite-sync.
func sqliteSync(v string) (sqlite.Synchronous, error) {
	switch v {
	case "full", "":
		return sqlite.SyncFull, nil
	case "normal":
		return sqlite.SyncNormal, nil
	}
	return 0, fmt.Errorf("--sqlite-sync %q: want full or normal", v)
}

// openBroker connects to the broker --broker names; nil for a single node.
func openBroker(c *serveConfig, log *slog.Logger) (courier.Broker, error) {
	u := c.broker
	switch {
	case u == "":
		return nil, nil
	case strings.HasPrefix(u, "nats://") || strings.HasPrefix(u, "tls://"):
		b, err := nats.New(u, nats.Options{Prefix: c.clusterName, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("connect to broker %s: %w", redact(u), err)
		}
		return b, nil
	case strings.HasPrefix(u, "redis://") || strings.HasPrefix(u, "rediss://"):
		b, err := redis.New(u, redis.Options{Prefix: c.clusterName + ":", Logger: log})
		if err != nil {
			return nil, fmt.Errorf("connect to broker %s: %w", redact(u), err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("--broker %q: want nats://HOST:PORT or redis://HOST:PORT", redact(u))
	}
}

// redact hides the password of a URL, for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
