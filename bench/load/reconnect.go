package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// rcClient is one client of the reconnect scenario; it outlives its
// connections.
type rcClient struct {
	last            atomic.Uint64 // highest inbox seq seen
	got, gaps, dups atomic.Int64
	want            atomic.Int64 // messages the server API accepted for it
	done            atomic.Bool  // caught up after reconnecting
}

// runReconnect: every client gets a backlog while connected, all drop at
// once, more messages are sent while they are away, and all reconnect
// with since=<last seq seen>; it measures how long until all have caught
// up and checks that each saw exactly seqs 1..N.
func runReconnect(ctx context.Context, cfg *Config, r *ReconnectResult) error {
	api, ok := cfg.Driver.(APISender)
	if !ok {
		return fmt.Errorf("reconnect: the %s driver cannot send through a server API", cfg.Driver.Name())
	}
	k := cfg.Clients
	if k <= 0 {
		return errors.New("reconnect: --clients must be positive")
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 10
	}
	if cfg.Down <= 0 {
		cfg.Down = cfg.Backlog
	}
	r.Clients, r.Backlog, r.Down = k, cfg.Backlog, cfg.Down
	if _, err := RaiseNoFile(); err != nil {
		logf(cfg, "warning: raise RLIMIT_NOFILE: %v", err)
	}
	names := make([]string, k)
	cl := make([]*rcClient, k)
	for i := range k {
		names[i] = cfg.Prefix + "c" + strconv.Itoa(i)
		cl[i] = &rcClient{}
	}
	var catching atomic.Bool
	var caught, allAt atomic.Int64
	markDone := func(c *rcClient) {
		if catching.Load() && c.last.Load() >= uint64(c.want.Load()) && c.done.CompareAndSwap(false, true) {
			if caught.Add(1) == int64(k) {
				allAt.Store(time.Now().UnixNano())
			}
		}
	}
	var closing atomic.Bool
	var dropped atomic.Int64
	handler := func(i int) Handler {
		c := cl[i]
		return Handler{
			Message: func(_ []byte, seq uint64) {
				c.got.Add(1)
				last := c.last.Load()
				switch {
				case seq == last+1:
					c.last.Store(seq)
				case seq <= last:
					c.dups.Add(1)
				default:
					c.gaps.Add(int64(seq - last - 1))
					c.last.Store(seq)
				}
				markDone(c)
			},
			Ack: func(bool, uint64) {},
			Closed: func(err error) {
				if !closing.Load() && dropped.Add(1) <= 3 {
					logf(cfg, "reconnect: connection dropped: %v", err)
				}
			},
		}
	}
	connGauge := func() (float64, bool) {
		m := ScrapeAll(ctx, cfg.MetricsURLs, "courier_connections")
		v, ok := m["courier_connections"]
		return v, ok
	}
	baseline, haveGauge := connGauge()

	logf(cfg, "reconnect: connecting %d", k)
	clients, errs, first := dialAll(ctx, cfg, k, func(i int) string { return names[i] }, nil, handler, nil)
	r.DialErrors += errs
	if errs > 0 {
		closing.Store(true)
		closeAll(clients)
		return fmt.Errorf("reconnect: %d of %d connects failed, first: %v", errs, k, first)
	}
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	var apiErrs atomic.Int64
	var firstAPIErr atomic.Value
	apiRound := func(per int) float64 {
		t := time.Now()
		_, _ = parallel(ctx, k*per, 64, func(j int) error {
			i := j % k
			if _, err := api.APISend(ctx, names[i], StampFill(cfg.Size, cfg.Fill)); err != nil {
				apiErrs.Add(1)
				firstAPIErr.CompareAndSwap(nil, err.Error())
				return err
			}
			cl[i].want.Add(1)
			return nil
		})
		return time.Since(t).Seconds()
	}
	logf(cfg, "reconnect: sending %d messages to each client while connected", cfg.Backlog)
	s1 := apiRound(cfg.Backlog)
	live := waitFor(ctx, max(30*time.Second, cfg.Drain), 5*time.Millisecond, func() bool {
		for _, c := range cl {
			if c.last.Load() < uint64(c.want.Load()) {
				return false
			}
		}
		return true
	})
	if !live {
		logf(cfg, "reconnect: not every client got its live backlog")
	}

	logf(cfg, "reconnect: dropping all %d connections", k)
	closing.Store(true)
	closeAll(clients)
	if haveGauge {
		waitFor(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			v, ok := connGauge()
			return ok && v <= baseline
		})
	} else if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	closing.Store(false)

	logf(cfg, "reconnect: sending %d messages to each client while it is down", cfg.Down)
	s2 := apiRound(cfg.Down)
	r.APISends = int64(k*(cfg.Backlog+cfg.Down)) - apiErrs.Load()
	r.APIErrors = apiErrs.Load()
	if s1+s2 > 0 {
		r.APISendPS = round(float64(k*(cfg.Backlog+cfg.Down))/(s1+s2), 0)
	}
	if v := firstAPIErr.Load(); v != nil {
		logf(cfg, "reconnect: first API error: %s", v)
	}

	logf(cfg, "reconnect: reconnecting %d with since=<last seq>", k)
	catching.Store(true)
	for _, c := range cl {
		markDone(c) // a client that was owed nothing more
	}
	var cpu0 float64
	if len(cfg.PIDs) > 0 {
		cpu0 = ServerCPU(cfg.PIDs)
	}
	gen0 := SelfCPU()
	t0 := time.Now()
	dc := *cfg
	dc.DialConcurrency = max(cfg.DialConcurrency, 256)
	since := func(i int) uint64 { return cl[i].last.Load() }
	clients, errs, first = dialAll(ctx, &dc, k, func(i int) string { return names[i] }, since, handler, nil)
	defer func() {
		closing.Store(true)
		closeAll(clients)
	}()
	r.ReconnectS = round(time.Since(t0).Seconds(), 3)
	r.DialErrors += errs
	if errs > 0 {
		logf(cfg, "reconnect: %d reconnects failed, first: %v", errs, first)
	}
	all := waitFor(ctx, max(60*time.Second, cfg.Drain), time.Millisecond, func() bool { return caught.Load() == int64(k) })
	if all {
		r.CatchupS = round(time.Duration(allAt.Load()-t0.UnixNano()).Seconds(), 3)
		if allAt.Load() == 0 { // every client was caught up before reconnecting
			r.CatchupS = 0
		}
	} else {
		r.CatchupS = round(time.Since(t0).Seconds(), 3)
	}
	if len(cfg.PIDs) > 0 {
		r.ServerCPUs = round(ServerCPU(cfg.PIDs)-cpu0, 2)
	}
	r.GenCPUs = round(SelfCPU()-gen0, 3)
	// Late duplicates would show up now.
	if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	r.CaughtUp = caught.Load()
	for _, c := range cl {
		r.Received += c.got.Load()
		r.Expected += c.want.Load()
		r.Gaps += c.gaps.Load()
		r.Dups += c.dups.Load()
		if miss := c.want.Load() - int64(c.last.Load()); miss > 0 {
			r.Missing += miss
		}
	}
	if r.ServerCPUs > 0 {
		r.ReplayPerCPU = round(float64(int64(k*cfg.Down))/r.ServerCPUs, 0)
	}
	r.Verified = all && r.DialErrors == 0 && r.APIErrors == 0 && r.Gaps == 0 && r.Dups == 0 && r.Missing == 0 && r.Received == r.Expected
	if !r.Verified {
		return fmt.Errorf("reconnect: not verified: caught up %d/%d, received %d of %d, gaps %d, dups %d, missing %d", r.CaughtUp, k, r.Received, r.Expected, r.Gaps, r.Dups, r.Missing)
	}
	return nil
}
