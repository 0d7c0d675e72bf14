package load

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// runIdle opens cfg.Conns authenticated connections that then stay idle,
// and measures what each costs the server and the load generator.
func runIdle(ctx context.Context, cfg *Config, r *IdleResult) error {
	n := cfg.Conns
	if n <= 0 {
		return fmt.Errorf("idle: --conns must be positive")
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	r.Conns, r.SettleS = n, cfg.Settle.Seconds()
	r.GenNoFile, _ = RaiseNoFile()
	// One server's file limit is checked below; the processes of a cluster
	// (nodes and broker) are not: which of them holds how many connections
	// is not known here.
	if len(cfg.PIDs) == 1 {
		r.ServerNoFile = NoFileLimit(cfg.PIDs[0])
	}
	// Past a file descriptor limit, connects fail or, on the server side,
	// hang in the listen backlog: refuse at once.
	if need := uint64(n + cfg.DialConcurrency + 64); r.GenNoFile < need {
		return fmt.Errorf("idle: this process may open %d files (RLIMIT_NOFILE hard limit), fewer than the %d that %d connections need; raising the hard limit needs root with CAP_SYS_RESOURCE", r.GenNoFile, need, n)
	}
	if need := uint64(n) + 32; r.ServerNoFile > 0 && r.ServerNoFile < need {
		return fmt.Errorf("idle: the server (pid %d) may open %d files (RLIMIT_NOFILE), fewer than the %d that %d connections need", cfg.PIDs[0], r.ServerNoFile, need, n)
	}

	metrics := func() map[string]float64 {
		return ScrapeAll(ctx, cfg.MetricsURLs, "go_goroutines", "go_memstats_heap_inuse_bytes", "courier_connections")
	}
	before := metrics()
	if len(cfg.PIDs) > 0 {
		r.ServerRSSBeforeKiB = ServerRSSKiB(cfg.PIDs)
	}
	r.GenRSSBeforeKiB = genRSS()

	var closing atomic.Bool
	var dropped atomic.Int64
	h := Handler{
		Message: func([]byte, uint64) {},
		Ack:     func(bool, uint64) {},
		Closed: func(error) {
			if !closing.Load() {
				dropped.Add(1)
			}
		},
	}
	logf(cfg, "idle: connecting %d", n)
	start := time.Now()
	var connected atomic.Int64
	stopProgress := progress(cfg, "idle: connected", connected.Load)
	clients, errs, first := dialAll(ctx, cfg, n, func(i int) string { return fmt.Sprintf("%si%d", cfg.Prefix, i) }, nil,
		func(int) Handler { return h }, &connected)
	stopProgress()
	defer func() {
		closing.Store(true)
		closeAll(clients)
	}()
	r.ConnectS = round(time.Since(start).Seconds(), 3)
	r.DialErrors = errs
	r.Connected = n - errs
	if first != nil {
		r.FirstDialError = first.Error()
	}
	r.ConnectsPerS = round(float64(r.Connected)/r.ConnectS, 0)
	logf(cfg, "idle: %d connected in %.1fs (%d failed), settling %s", r.Connected, r.ConnectS, errs, cfg.Settle)
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return err
	}
	if len(cfg.PIDs) > 0 {
		r.ServerRSSAfterKiB = ServerRSSKiB(cfg.PIDs)
	}
	after := metrics()
	r.GenRSSAfterKiB = genRSS()
	r.Dropped = dropped.Load()
	if c := r.Connected; c > 0 {
		r.ServerKiBPerConn = round(float64(r.ServerRSSAfterKiB-r.ServerRSSBeforeKiB)/float64(c), 3)
		r.GenKiBPerConn = round(float64(r.GenRSSAfterKiB-r.GenRSSBeforeKiB)/float64(c), 3)
		hb, ok1 := before["go_memstats_heap_inuse_bytes"]
		ha, ok2 := after["go_memstats_heap_inuse_bytes"]
		if ok1 && ok2 {
			v := round((ha-hb)/1024/float64(c), 3)
			r.ServerHeapKiBConn = &v
		}
	}
	if v, ok := before["go_goroutines"]; ok {
		r.ServerGoroutinesB = &v
	}
	if v, ok := after["go_goroutines"]; ok {
		r.ServerGoroutinesA = &v
	}
	if v, ok := after["courier_connections"]; ok {
		r.ServerConnsGauge = &v
	}
	if r.Connected == 0 {
		return fmt.Errorf("idle: no connection succeeded: %v", first)
	}
	return nil
}

// progress logs count() (or nothing when nil) every 2 s until stopped.
func progress(cfg *Config, what string, count func() int64) func() {
	if count == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				logf(cfg, "%s %d", what, count())
			}
		}
	}()
	return func() { close(done) }
}
