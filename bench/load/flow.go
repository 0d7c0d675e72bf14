package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// flowConn is one connection of the dm and room scenarios.
type flowConn struct {
	c        Client
	room     string        // room scenario: its room
	credits  chan struct{} // a sender's free window slots (window mode)
	inflight atomic.Int64
	last     atomic.Uint64 // last seq seen, to check that seqs go up by one
}

// flowStats are the counters the callbacks update.
type flowStats struct {
	sent, acked, ackErr, sendErr, skipped atomic.Int64
	late                                  atomic.Int64 // rate mode: sends dropped because the generator fell behind
	delivered, seqErr, dropped            atomic.Int64
	lastDelivery                          atomic.Int64 // Unix ns
	hist                                  Hist
}

// runFlow runs dm (every user sends direct messages to random others) or
// room (one publisher per room), windowed or at a fixed rate.
func runFlow(ctx context.Context, cfg *Config, r *FlowResult) error {
	room := cfg.Scenario == "room"
	var n, fanout, nSenders int
	if room {
		if cfg.Rooms <= 0 || cfg.Members < 2 {
			return fmt.Errorf("room: need --rooms >= 1 and --members >= 2")
		}
		n, fanout, nSenders = cfg.Rooms*cfg.Members, cfg.Members-1, cfg.Rooms
		r.Rooms, r.Members = cfg.Rooms, cfg.Members
	} else {
		if cfg.Users < 2 {
			return fmt.Errorf("dm: need --users >= 2")
		}
		n, fanout, nSenders = cfg.Users, 1, cfg.Users
		r.Users = cfg.Users
	}
	if cfg.Duration <= 0 {
		return fmt.Errorf("%s: --duration must be positive", cfg.Scenario)
	}
	window := cfg.Window
	r.Mode = "window"
	if cfg.Rate > 0 {
		r.Mode, r.Rate = "rate", cfg.Rate
		if window <= 0 {
			window = 256
		}
	} else if window <= 0 {
		window = 8
	}
	r.Durable, r.Window, r.Size, r.DurationS = cfg.Durable, window, cfg.Size, cfg.Duration.Seconds()
	if _, err := RaiseNoFile(); err != nil {
		logf(cfg, "warning: raise RLIMIT_NOFILE: %v", err)
	}

	names := make([]string, n)
	conns := make([]*flowConn, n)
	senders := make([]*flowConn, 0, nSenders)
	for k := range n {
		fc := &flowConn{}
		if room {
			i, j := k/cfg.Members, k%cfg.Members
			names[k] = cfg.Prefix + "r" + strconv.Itoa(i) + "m" + strconv.Itoa(j)
			fc.room = cfg.Prefix + "room" + strconv.Itoa(i)
			if j == 0 {
				senders = append(senders, fc)
			}
		} else {
			names[k] = cfg.Prefix + "u" + strconv.Itoa(k)
			senders = append(senders, fc)
		}
		conns[k] = fc
	}
	if r.Mode == "window" {
		for _, fc := range senders {
			fc.credits = make(chan struct{}, window)
			for range window {
				fc.credits <- struct{}{}
			}
		}
	}

	var st flowStats
	var closing atomic.Bool
	durable := cfg.Durable
	checkSeq := func(fc *flowConn, seq uint64) {
		last := fc.last.Load()
		if seq != last+1 {
			st.seqErr.Add(1)
		}
		if seq > last {
			fc.last.Store(seq)
		}
	}
	handler := func(k int) Handler {
		fc := conns[k]
		return Handler{
			Message: func(p []byte, seq uint64) {
				now := time.Now()
				if t, ok := Stamped(p); ok {
					st.hist.Record(now.Sub(t))
				}
				st.delivered.Add(1)
				st.lastDelivery.Store(now.UnixNano())
				if durable {
					checkSeq(fc, seq)
				}
			},
			Ack: func(ok bool, seq uint64) {
				if ok {
					st.acked.Add(1)
					if durable {
						checkSeq(fc, seq)
					}
				} else {
					st.ackErr.Add(1)
				}
				fc.inflight.Add(-1)
				if fc.credits != nil {
					select {
					case fc.credits <- struct{}{}:
					default:
					}
				}
			},
			Closed: func(err error) {
				if !closing.Load() && st.dropped.Add(1) <= 3 {
					logf(cfg, "%s: connection dropped: %v", cfg.Scenario, err)
				}
			},
		}
	}

	logf(cfg, "%s: connecting %d", cfg.Scenario, n)
	var connected atomic.Int64
	stopProgress := progress(cfg, cfg.Scenario+": connected", connected.Load)
	clients, errs, first := dialAll(ctx, cfg, n, func(k int) string { return names[k] }, nil, handler, &connected)
	stopProgress()
	defer func() {
		closing.Store(true)
		closeAll(clients)
	}()
	if errs > 0 {
		return fmt.Errorf("%s: %d of %d connects failed, first: %v", cfg.Scenario, errs, n, first)
	}
	for k, c := range clients {
		conns[k].c = c
	}
	if room {
		jerrs, jfirst := parallel(ctx, n, cfg.DialConcurrency, func(k int) error { return conns[k].c.Join(ctx, conns[k].room) })
		if jerrs > 0 {
			return fmt.Errorf("room: %d joins failed, first: %v", jerrs, jfirst)
		}
	}
	// The welcome comes just before the server makes a connection
	// reachable; give the last ones a moment.
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		return err
	}

	logf(cfg, "%s: %d senders, %s mode, window %d, rate %g, durable %v, %s", cfg.Scenario, len(senders), r.Mode, window, cfg.Rate, durable, cfg.Duration)
	var cpu0 float64
	if len(cfg.PIDs) > 0 {
		cpu0 = ServerCPU(cfg.PIDs)
	}
	wr, _ := cfg.Driver.(WireReporter)
	var wire0 Wire
	if wr != nil {
		wire0 = wr.Wire()
	}
	if cfg.Sending != nil {
		cfg.Sending()
	}
	gen0, busy0 := SelfCPU(), MachineBusy()
	t0 := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	send := func(fc *flowConn, rng *rand.Rand, self int, buf []byte) {
		fc.inflight.Add(1)
		st.sent.Add(1)
		putStamp(buf)
		var err error
		if room {
			err = fc.c.Publish(fc.room, buf, durable)
		} else {
			to := rng.IntN(n - 1)
			if to >= self {
				to++
			}
			err = fc.c.Send(names[to], buf, durable)
		}
		if err != nil {
			fc.inflight.Add(-1)
			st.sent.Add(-1)
			st.sendErr.Add(1)
		}
	}
	seed := uint64(t0.UnixNano())
	if r.Mode == "window" {
		for s, fc := range senders {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(s)))
				buf := StampFill(cfg.Size, cfg.Fill)
				for {
					select {
					case <-stop:
						return
					case <-fc.credits:
					}
					select {
					case <-stop:
						return
					default:
					}
					send(fc, rng, s, buf)
				}
			})
		}
	} else {
		total := cfg.Rate
		if room {
			total *= float64(cfg.Rooms)
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 0))
			buf := StampFill(cfg.Size, cfg.Fill)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var issued int64
			maxLag := int64(total/10) + 1 // 100 ms of sends
			// What was due by the end and never went out was late too.
			defer func() { st.late.Add(max(int64(total*cfg.Duration.Seconds())-issued, 0)) }()
			rr := 0
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				due := int64(total*time.Since(t0).Seconds()) - issued
				// A generator that falls behind its schedule (its core taken
				// by something else, or sends that cost more than the rate
				// allows) does not catch up in a burst, which would measure
				// the burst and run past --duration: what is more than
				// maxLag behind is dropped and counted.
				if over := due - maxLag; over > 0 {
					st.late.Add(over)
					issued += over
					due = maxLag
				}
				for ; due > 0; due-- {
					if due%64 == 0 {
						select {
						case <-stop:
							return
						default:
						}
					}
					issued++
					s := rr % len(senders)
					rr++
					fc := senders[s]
					if fc.inflight.Load() >= int64(window) {
						st.skipped.Add(1)
						continue
					}
					self := s // dm: sender s is user s
					send(fc, rng, self, buf)
				}
			}
		})
	}
	stopProgress = progress(cfg, cfg.Scenario+": delivered", st.delivered.Load)
	err := sleepCtx(ctx, cfg.Duration)
	close(stop)
	wg.Wait()
	sendEnd := time.Now()
	drained := waitFor(ctx, cfg.Drain, 2*time.Millisecond, func() bool {
		a := st.acked.Load()
		return a+st.ackErr.Load() >= st.sent.Load() && st.delivered.Load() >= a*int64(fanout)
	})
	tEnd := time.Now()
	stopProgress()
	if len(cfg.PIDs) > 0 {
		r.ServerCPUs = round(ServerCPU(cfg.PIDs)-cpu0, 2)
	}
	r.GenCPUs = round(SelfCPU()-gen0, 3)
	if wr != nil {
		w := wr.Wire()
		r.WireIn, r.WireOut = w.InBytes-wire0.InBytes, w.OutBytes-wire0.OutBytes
	}
	if len(cfg.PIDs) > 0 {
		other := MachineBusy() - busy0 - r.ServerCPUs - r.GenCPUs
		r.OtherCores = round(max(other, 0)/tEnd.Sub(t0).Seconds(), 2)
	}

	r.Sent, r.Acked, r.AckErrors = st.sent.Load(), st.acked.Load(), st.ackErr.Load()
	r.SendErrors, r.Skipped, r.Late = st.sendErr.Load(), st.skipped.Load(), st.late.Load()
	r.Unacked = r.Sent - r.Acked - r.AckErrors
	r.Expected = r.Acked * int64(fanout)
	r.Delivered = st.delivered.Load()
	r.Lost = max(r.Expected-r.Delivered, 0)
	r.Extra = max(r.Delivered-r.Expected, 0)
	r.SeqErrors, r.Dropped = st.seqErr.Load(), st.dropped.Load()
	end := tEnd
	if ld := st.lastDelivery.Load(); ld > 0 {
		end = time.Unix(0, ld)
	}
	// A run whose deliveries stopped early still counts its whole send time.
	end = maxTime(end, sendEnd)
	r.ElapsedS = round(end.Sub(t0).Seconds(), 3)
	if r.ElapsedS > 0 {
		r.DeliveredPS = round(float64(r.Delivered)/r.ElapsedS, 0)
	}
	r.LatP50ms, r.LatP90ms, r.LatP99ms = ms(st.hist.Quantile(0.5)), ms(st.hist.Quantile(0.9)), ms(st.hist.Quantile(0.99))
	r.LatP999ms, r.LatMaxms = ms(st.hist.Quantile(0.999)), ms(st.hist.Max())
	if r.ServerCPUs > 0 {
		r.PerServerCPU = round(float64(r.Delivered)/r.ServerCPUs, 0)
	}
	if r.Delivered > 0 {
		r.GenUsPerMsg = round(r.GenCPUs/float64(r.Delivered)*1e6, 3)
		r.WireInPerDelivery = round(float64(r.WireIn)/float64(r.Delivered), 1)
	}
	if !drained {
		logf(cfg, "%s: not drained after %s: %d unacked, %d lost", cfg.Scenario, cfg.Drain, r.Unacked, r.Lost)
	}
	return err
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// parallel runs f(0..n-1), conc at a time, and counts the errors.
func parallel(ctx context.Context, n, conc int, f func(int) error) (errs int, first error) {
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs, first
}
