package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Ping payloads on the Pub/Sub connection. Redis answers a PING there in
// order with everything else, so its PONG proves that the commands written
// before it were carried out.
const (
	pingHello    = "courier-hello"    // New opening the connection
	pingHealth   = "courier-health"   // keeps an idle connection checked
	pingConfirm  = "courier-confirm-" // + token: confirms subscriptions
	pingRestored = "courier-restored" // every subscription is restored
)

// A subOp is a SUBSCRIBE (sub) or UNSUBSCRIBE for the subscribing
// goroutine, with the channel a confirmed Subscribe waits on.
type subOp struct {
	channel string
	sub     bool
	waiter  chan struct{}
}

// Subscribe adds interest in topic and returns once Redis confirmed it:
// the subscribing goroutine writes SUBSCRIBE, batching concurrent calls in
// one command, then a PING, whose PONG arrives after Redis carried the
// subscription out. While the connection is down it returns an error at
// once; the interest stays registered all the same, and is restored, like
// every subscription, before Reconnected is called. Redis keeps one
// subscription per channel, however often it is subscribed.
func (b *Broker) Subscribe(topic string) error {
	waiter := make(chan struct{})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	connected := b.connected
	op := subOp{channel: b.prefix + topic, sub: true}
	if connected {
		op.waiter = waiter
	}
	b.ops = append(b.ops, op)
	b.mu.Unlock()
	b.wake()
	if !connected {
		return fmt.Errorf("redis: subscribe %q: %w; it is restored on reconnection", topic, ErrDisconnected)
	}
	timer := time.NewTimer(b.opts.Timeout)
	defer timer.Stop()
	select {
	case <-waiter:
		return nil
	case <-timer.C:
		return fmt.Errorf("redis: subscribe %q: not confirmed within %v; it stays registered", topic, b.opts.Timeout)
	case <-b.done:
		return ErrClosed
	}
}

// Unsubscribe removes interest in topic; it does not wait for the server.
func (b *Broker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.ops = append(b.ops, subOp{channel: b.prefix + topic})
	b.wake()
	return nil
}

// wake wakes the subscribing goroutine.
func (b *Broker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// subscriber is the goroutine that writes subscription changes on the
// Pub/Sub connection in the order they were made, and the health pings.
func (b *Broker) subscriber() {
	defer b.wg.Done()
	health := time.NewTicker(b.opts.HealthInterval)
	defer health.Stop()
	ctx := context.Background()
	for {
		select {
		case <-b.done:
			return
		case <-health.C:
			b.mu.Lock()
			connected := b.connected
			b.mu.Unlock()
			if connected {
				_ = b.ps.Ping(ctx, pingHealth) // a failure shows in the receiving goroutine
			}
		case <-b.kick:
			b.writeOps(ctx)
		}
	}
}

// writeOps writes the queued subscription changes, a run of one kind in
// one command, then confirms the subscriptions (and those to confirm again
// after a reconnection) with a ping.
func (b *Broker) writeOps(ctx context.Context) {
	b.mu.Lock()
	ops := b.ops
	b.ops = nil
	var waiters []chan struct{}
	if b.connected {
		waiters, b.retry = b.retry, nil
	}
	b.mu.Unlock()

	channels := make([]string, 0, len(ops))
	for i := 0; i < len(ops); {
		sub := ops[i].sub
		channels = channels[:0]
		for ; i < len(ops) && ops[i].sub == sub; i++ {
			channels = append(channels, ops[i].channel)
			if ops[i].waiter != nil {
				waiters = append(waiters, ops[i].waiter)
			}
		}
		// go-redis records the change even when the write fails, and
		// applies it to the connection that replaces this one: an error
		// here needs no handling beyond the receiving goroutine's.
		var err error
		if sub {
			err = b.ps.Subscribe(ctx, channels...)
		} else {
			err = b.ps.Unsubscribe(ctx, channels...)
		}
		if err != nil {
			b.log.Debug("redis: writing subscriptions", "err", err, "channels", len(channels))
		}
	}
	b.confirm(ctx, waiters)
}

// confirm releases waiters once Redis answers a ping written after their
// subscriptions. Without a connection they wait for the next one.
func (b *Broker) confirm(ctx context.Context, waiters []chan struct{}) {
	if len(waiters) == 0 {
		return
	}
	b.mu.Lock()
	if !b.connected {
		b.retry = append(b.retry, waiters...)
		b.mu.Unlock()
		return
	}
	b.token++
	token := pingConfirm + strconv.FormatUint(b.token, 10)
	b.pongs[token] = waiters
	b.mu.Unlock()
	if err := b.ps.Ping(ctx, token); err != nil {
		b.mu.Lock()
		if w, ok := b.pongs[token]; ok {
			delete(b.pongs, token)
			b.retry = append(b.retry, w...)
		}
		b.mu.Unlock()
	}
}

// receive is the goroutine that reads the Pub/Sub connection: packets go
// to the inbox, PONGs release confirmations. When the connection
// fails, go-redis opens a new one at the next use and subscribes it again
// to every channel; receive then writes a ping, whose PONG means that all
// of them are restored, and calls Reconnected.
func (b *Broker) receive() {
	defer b.wg.Done()
	var (
		restoring  bool   // a connection was lost and is not restored yet
		marker     string // the ping that completes a restoration
		attempt    int    // failed reconnection attempts in a row
		generation int
	)
	var live liveness
	defer live.stop()
	for {
		if restoring && marker == "" {
			generation++
			marker = pingRestored + strconv.Itoa(generation)
			if err := b.ps.Ping(context.Background(), marker); err != nil {
				marker = ""
				if b.isClosed() || !b.pause(attempt) {
					return
				}
				attempt++
				continue
			}
		}
		msg, err := b.ps.Receive(live.context(b.opts.HealthInterval))
		if err != nil {
			if b.isClosed() {
				return
			}
			b.lost(err, !restoring)
			restoring, marker = true, ""
			live.stop()
			if attempt > 0 && !b.pause(attempt) {
				return
			}
			attempt++
			continue
		}
		switch m := msg.(type) {
		case *goredis.Message:
			topic, ok := strings.CutPrefix(m.Channel, b.prefix)
			if !ok {
				continue
			}
			if b.in.put(inbound{topic: topic, payload: m.Payload}) {
				b.log.Warn("redis: receive buffer full, packets dropped; the node will catch up",
					"buffer", b.opts.ReceiveBuffer)
			}
		case *goredis.Pong:
			if restoring && m.Payload == marker {
				restoring, marker, attempt = false, "", 0
				b.restored()
				continue
			}
			b.confirmed(m.Payload)
		}
	}
}

// A liveness is the context of the reads on the Pub/Sub connection: its
// deadline is three health intervals ahead, renewed every interval, so a
// connection silent that long fails the read and go-redis replaces it. The
// subscribing goroutine pings every interval to keep a healthy one talking.
type liveness struct {
	ctx     context.Context
	cancel  context.CancelFunc
	renewAt time.Time
}

func (l *liveness) context(interval time.Duration) context.Context {
	if now := time.Now(); l.ctx == nil || !now.Before(l.renewAt) {
		l.stop()
		l.ctx, l.cancel = context.WithDeadline(context.Background(), now.Add(3*interval))
		l.renewAt = now.Add(interval)
	}
	return l.ctx
}

// stop ends the context; the next read gets a new one.
func (l *liveness) stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.ctx, l.cancel = nil, nil
}

// lost marks the connection down; the confirmations under way wait for
// the next one.
func (b *Broker) lost(err error, first bool) {
	b.mu.Lock()
	b.connected = false
	for token, waiters := range b.pongs {
		b.retry = append(b.retry, waiters...)
		delete(b.pongs, token)
	}
	b.mu.Unlock()
	if first {
		b.log.Warn("redis: Pub/Sub connection lost; reconnecting", "err", err)
	}
}

// restored marks the connection up, has the subscribing goroutine confirm
// what waited, and tells the node to catch up.
func (b *Broker) restored() {
	b.mu.Lock()
	b.connected = true
	b.mu.Unlock()
	b.wake()
	b.reconnects.Add(1)
	b.log.Info("redis: Pub/Sub connection restored")
	b.in.put(inbound{catchUp: true})
}

// dispatch is the goroutine that calls the Receiver with what the inbox
// holds, in the order read.
func (b *Broker) dispatch() {
	defer b.wg.Done()
	var (
		items []inbound
		buf   []byte // the payload passed to Receive
	)
	for {
		select {
		case <-b.in.wake:
		case <-b.done:
			return
		}
		for items = b.in.take(items); items != nil; items = b.in.take(items) {
			for _, in := range items {
				if b.isClosed() {
					return
				}
				if in.catchUp {
					b.r.Reconnected()
					continue
				}
				buf = append(buf[:0], in.payload...)
				b.received.Add(1)
				b.r.Receive(in.topic, buf)
			}
			clear(items)
		}
	}
}

// confirmed releases the Subscribe calls waiting for the ping token.
func (b *Broker) confirmed(token string) {
	b.mu.Lock()
	waiters := b.pongs[token]
	delete(b.pongs, token)
	b.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
}

// pause waits before reconnection attempt+1, doubling from ReconnectWait
// up to MaxReconnectWait; it returns false if the broker closed meanwhile.
func (b *Broker) pause(attempt int) bool {
	d := b.opts.ReconnectWait
	for i := 1; i < attempt && d < b.opts.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxReconnectWait)
	d += rand.N(d/4 + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.done:
		return false
	}
}
